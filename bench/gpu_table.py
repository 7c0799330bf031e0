"""The fusion's table for a GPU lease in one command (``make gpu-table``): the world, its fusion ``ModelInputs``, the
test surveys' PO correction, and the packed ``.npz`` that travels to the GPU machine.

A GPU machine here has no Spark or Luigi and keeps nothing between leases, so every session that trains the fusion on
it (``bench/fusion_gpu_lease.sh``, ``bench/fusion_kfold_lease.sh``) first needs the table built here:

1. the synthetic world at ``--data-root``, generated when it is missing (``--scale``, seed 0: the full world by
   default, as ``make bench-full`` has it);
2. through Luigi, the experiment's ``ModelInputs`` (the feature sets its model reads, with ``--set`` overrides
   applied: ``model.image=dct16`` by default, the DCT block the packed table can carry instead of the raw pixels)
   and the ``POCorrection`` of the test surveys that ``bench.fusion_kfold merge`` adds to the decoded sets;
3. :func:`glc.loaders.pack.pack` of that table into ``--out`` (float16, the cubes' first DCT coefficients, the patch
   block cut to ``--patch-k``: ``bench.fusion_gpu pack`` with the same defaults), refused when it is larger than a
   call carries (``--max-mib``, 60 by default: the tracked tree travels beside it);
4. ``<out stem>.json`` beside it: where the table, the hidden test labels and the corrections are here, the packed
   sizes, and the ``merge`` command's arguments.

Rerun, it does no work that is done (Luigi's targets, an ``.npz`` newer than its table and packed with the same
settings). Example (the full world: 36 min on 2
cores the first time, 20 min of it generating the world)::

    python -m bench.gpu_table --data-root data/synthetic/full-seed0 --out .gpu/full.npz
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("bench.gpu_table")

#: The overrides the table depends on (the training switches of the lease scripts do not change it)
DEFAULT_SETS = ("model.image=dct16",)


def build_table(
    data_root: Path,
    out_root: Path,
    experiment: Path,
    sets: list[str],
    out: Path,
    patch_k: int = 6,
    cube_coefs: int = 8,
    gfv_top: int = 16,
    scale: str = "full",
    max_mib: float = 60.0,
) -> dict[str, Any]:
    """Steps 1-4 of the module docstring; returns what ``<out stem>.json`` holds.

    Raises:
        RuntimeError: a Luigi task failed (its log says which).
        ValueError: the packed table is larger than ``max_mib`` (pack with a smaller ``patch_k``).
    """
    import luigi

    from bench.fusion_gpu import _config
    from glc.io import write_json
    from glc.loaders.pack import pack
    from glc.tasks.experiment import po_correction_task
    from glc.tasks.training import model_inputs_for

    t0 = time.time()
    if not (data_root / "_SUCCESS").is_file():
        from glc.cli import main as glc_main

        log.info("no world at %s: generating the %s world (seed 0)", data_root, scale)
        if glc_main(["synth", "--scale", scale, "--seed", "0", "--out", str(data_root)]) != 0:
            raise RuntimeError(f"python -m glc synth --scale {scale} --out {data_root} failed")
    cfg = _config(experiment, sets)
    host = SimpleNamespace(data_root=str(data_root), out_root=str(out_root), cfg=cfg)
    inputs_task = model_inputs_for(host, cfg)
    tasks: list[luigi.Task] = [inputs_task]
    corr_task = po_correction_task(host, "test")
    if corr_task is not None:
        tasks.append(corr_task)
    res = luigi.build(tasks, local_scheduler=True, detailed_summary=True, log_level="WARNING")
    if res.status not in (luigi.LuigiStatusCode.SUCCESS, luigi.LuigiStatusCode.SUCCESS_WITH_RETRY):
        raise RuntimeError(f"the table's Luigi tasks did not all succeed ({res.status.name}):\n{res.summary_text}")
    inputs = Path(inputs_task.output().dir)
    t_tasks = time.time() - t0
    stamp = max(p.stat().st_mtime for p in inputs.rglob("*") if p.is_file())
    # an .npz is reused only when it is newer than its table and was packed from that table with these settings
    # (its .json says how; a refused table has no .json)
    pack_args = {"inputs": str(inputs), "patch_k": patch_k, "cube_coefs": cube_coefs, "gfv_top": gfv_top}
    described = out.with_suffix(".json")
    before = json.loads(described.read_text()).get("pack_args") if described.is_file() else None
    if not out.is_file() or out.stat().st_mtime < stamp or before != pack_args:
        info = pack(inputs, out, cube_coefs, patch_k, gfv_top)
    else:
        info = {"bytes": out.stat().st_size, "reused": True}
        log.info("%s is newer than its table: not packed again", out)
    mib = out.stat().st_size / 2**20
    if mib > max_mib:
        raise ValueError(
            f"{out}: {mib:.1f} MiB, more than the {max_mib:g} MiB a device call carries beside the tree; pack with a "
            f"smaller --patch-k (now {patch_k}) or fewer --cube-coefs (now {cube_coefs})"
        )
    truth = data_root / "_truth" / "GLC24_SOLUTION_FILE.csv"
    corrections = Path(corr_task.output().dir) / "data" if corr_task is not None else None
    summary = {
        "experiment": str(experiment),
        "overrides": list(sets),
        "inputs": str(inputs),
        "npz": str(out),
        "npz_mib": round(mib, 1),
        "pack": info,
        "pack_args": pack_args,
        "truth": str(truth) if truth.is_file() else None,
        "corrections": str(corrections) if corrections is not None else None,
        "merge_args": ["--truth", str(truth)] + (["--corrections", str(corrections)] if corrections else []),
        "seconds_tasks": round(t_tasks, 1),
        "seconds": round(time.time() - t0, 1),
    }
    write_json(out.with_suffix(".json"), summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_table", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=Path("data/synthetic/full-seed0"))
    ap.add_argument("--out-root", type=Path, default=Path("out-bench/full"), help="where Luigi writes the artifacts")
    ap.add_argument("--experiment", type=Path, default=Path("tasks/fusion-paper.toml"))
    ap.add_argument("--set", action="append", default=None, help=f"overrides (default: {' '.join(DEFAULT_SETS)})")
    ap.add_argument("--out", type=Path, default=Path(".gpu/full.npz"))
    ap.add_argument("--patch-k", type=int, default=6, help="patch DCT block kept (6: the full world's 53 MB)")
    ap.add_argument("--cube-coefs", type=int, default=8, help="1-D DCT coefficients kept per cube channel")
    ap.add_argument("--gfv-top", type=int, default=16, help="largest GFV entries kept per survey")
    ap.add_argument("--scale", default="full", help="the world generated when --data-root has none")
    ap.add_argument("--max-mib", type=float, default=60.0, help="refuse a packed table larger than this")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = build_table(
        a.data_root,
        a.out_root,
        a.experiment,
        list(DEFAULT_SETS if a.set is None else a.set),
        a.out,
        a.patch_k,
        a.cube_coefs,
        a.gfv_top,
        a.scale,
        a.max_mib,
    )
    print(json.dumps(s, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
