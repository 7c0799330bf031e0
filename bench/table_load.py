"""How long a GPU lease spends getting the packed fusion table into memory, one thread against all cores.

Every lease of ``bench/fusion_kfold_lease.sh`` starts by unpacking ``.gpu/full.npz`` (:func:`glc.loaders.pack.unpack`)
and every fold then loads the train split into tensors three times (its training view, its held-out view, the whole
split for scoring: :class:`glc.loaders.readers.MemorySource`), plus val and test. Device seconds spent there are
not spent training, so both steps use every core: the unpacked splits are written a part file per row group on
threads, and the memory reader decodes the row groups on threads and checks them as it loads them (the data
module skips its verifying scan for it: that was a second read of the whole split).

``python -m bench.table_load [--npz .gpu/full.npz]`` times, in one process, interleaved for ``--rounds`` rounds
(median reported):

* ``unpack``: :func:`~glc.loaders.pack.unpack` with ``threads=1`` and with all cores;
* ``load``: the train split as the data module's ``memory`` reader sets it up: *one thread* is the verifying scan
  (:func:`~glc.loaders.tables.scan_split` with ``verify``) and a one-thread load, what setup did before the
  change; *all cores* is the scan without the verification read and the load on every core.

The tensors of both loads are compared (they must be equal). Writes ``bench/results/table_load.json`` (a ``--out``
name otherwise). Without ``--npz`` a small fake table is packed first (a smoke run).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/table_load.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("bench.table_load")


def _fake_npz(folder: Path) -> Path:
    """A small packed table (the fusion's column kinds) for a smoke run."""
    from glc.loaders.fake import make_fake_inputs
    from glc.loaders.pack import pack

    sets = ("landsat_cube", "bioclim_cube", "patch_dct", "env", "gfv", "plot")
    make_fake_inputs(
        folder / "inputs",
        sets,
        sizes={"train": 3000, "val": 500, "test": 300},
        num_classes=200,
        widths={"env": 20},
    )
    pack(folder / "inputs", folder / "fake.npz", patch_k=6)
    return folder / "fake.npz"


def load_train(root: Path, threads: int, verify: bool) -> tuple[float, dict[str, Any]]:
    """Seconds to scan (``verify``: with the verification read) and load the train split on ``threads``; the
    tensors."""
    from glc.loaders.readers import MemorySource
    from glc.loaders.tables import read_meta, scan_split

    meta = read_meta(root)
    t0 = time.perf_counter()
    info = scan_split(root / "train", meta, ["surveyId", *meta["columns"]], verify=verify)
    src = MemorySource(info, threads=threads)
    return time.perf_counter() - t0, src.tensors


def run(npz: Path, rounds: int, work: Path) -> dict[str, Any]:
    """The measurements of the module docstring on ``npz``, unpacked under ``work``."""
    import torch

    from glc.loaders.pack import unpack

    cores = os.cpu_count() or 1
    modes = {"one_thread": 1, "all_cores": cores}
    times: dict[str, dict[str, list[float]]] = {"unpack": {m: [] for m in modes}, "load": {m: [] for m in modes}}
    root = work / "unpacked"
    for r in range(rounds):
        for mode, threads in modes.items():
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            unpack(npz, root, threads=threads)
            times["unpack"][mode].append(time.perf_counter() - t0)
        tensors = {}
        for mode, threads in modes.items():
            seconds, tensors[mode] = load_train(root, threads, verify=mode == "one_thread")
            times["load"][mode].append(seconds)
        a, b = tensors["one_thread"], tensors["all_cores"]
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            raise RuntimeError("the one-thread and all-core loads of the train split differ: a reader bug")
        rows = int(a["surveyId"].shape[0])
        log.info(
            "round %d/%d: %s", r + 1, rounds, {k: {m: round(v[-1], 2) for m, v in t.items()} for k, t in times.items()}
        )
    out: dict[str, Any] = {"npz": str(npz), "npz_mib": round(npz.stat().st_size / 2**20, 1), "rounds": rounds}
    out["train_rows"] = rows
    out["threads_all_cores"] = cores
    for step, t in times.items():
        med = {m: statistics.median(v) for m, v in t.items()}
        out[f"{step}_seconds_one_thread"] = round(med["one_thread"], 2)
        out[f"{step}_seconds_all_cores"] = round(med["all_cores"], 2)
        out[f"{step}_speedup"] = round(med["one_thread"] / med["all_cores"], 2)
        out[f"{step}_seconds_all"] = {m: [round(x, 2) for x in v] for m, v in t.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--npz", type=Path, default=None, help="the packed table (default: a small fake one)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="result name under bench/results (default table_load[_smoke])")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error(f"--rounds {a.rounds}: expected at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bench.common import write_result

    with tempfile.TemporaryDirectory(prefix="table_load-") as tmp:
        npz = a.npz if a.npz is not None else _fake_npz(Path(tmp))
        if not npz.is_file():
            print(f"bench.table_load: --npz {npz} does not exist; build it with `make gpu-table`", file=sys.stderr)
            return 2
        res = run(npz, a.rounds, Path(tmp))
    if a.npz is None:
        res["npz"] = "a fake table (smoke run)"
    path = write_result(a.out or ("table_load" if a.npz is not None else "table_load_smoke"), res)
    speedups = f"unpack x{res['unpack_speedup']}, load x{res['load_speedup']}"
    print(f"wrote {path}: {speedups} on {res['threads_all_cores']} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
