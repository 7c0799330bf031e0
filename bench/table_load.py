"""How long a GPU lease spends getting the packed fusion table into memory: one thread against all cores, and a
k-fold fold's two views of the train split from two decodes against one.

Every lease of ``bench/fusion_kfold_lease.sh`` starts by unpacking ``.gpu/full.npz`` (:func:`glc.loaders.pack.unpack`)
and every fold then loads the train split into tensors for its training view and its held-out view
(:class:`glc.loaders.readers.MemorySource`), plus val and test for scoring. Device seconds spent there are not spent
training, so these steps use every core: the unpacked splits are written a part file per row group on threads (row
groups of 5,000 rows: the full world's train split is 15 of them, one per core of a 16-core GPU machine), the memory
reader decodes the row groups on threads and checks them as it loads them (the data module skips its verifying scan
for it: that was a second read of the whole split), and the data module builds both views of a fold from one decode
of the split (:meth:`~glc.loaders.readers.MemorySource.views`).

``python -m bench.table_load [--npz .gpu/full.npz]`` times, in one process, interleaved for ``--rounds`` rounds
(median reported):

* ``unpack``: :func:`~glc.loaders.pack.unpack` with ``threads=1`` and with all cores;
* ``load``: the train split as the data module's ``memory`` reader sets it up: *one thread* is the verifying scan
  (:func:`~glc.loaders.tables.scan_split` with ``verify``) and a one-thread load, what setup did before the
  change; *all cores* is the scan without the verification read and the load on every core;
* ``views``: a fold's training view (9/10 of the train split) and held-out view (every tenth stored survey), all
  cores: *two decodes* is a ``MemorySource`` with ``keep`` for each, what the data module's setup did before;
  *one decode* is the data module's ``setup("fit")`` with those ``subsets`` as it is now.

The tensors of the two loads, and of the two ways to the views, are compared (they must be equal). Writes
``bench/results/table_load.json`` (a ``--out`` name otherwise). Without ``--npz`` a small fake table is packed first
(a smoke run).
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


def fold_views(root: Path, one_decode: bool) -> tuple[float, dict[str, dict[str, Any]]]:
    """Seconds to set up a fold's training and held-out views of the train split (every tenth stored survey held
    out) on all cores, from one decode (the data module, ``one_decode``) or from two; the views' tensors."""
    import numpy as np
    import pyarrow.parquet as pq

    from glc.loaders.datamodule import SurveyDataModule
    from glc.loaders.readers import MemorySource
    from glc.loaders.tables import read_meta, scan_split

    meta = read_meta(root)
    ids = pq.read_table(root / "train", columns=["surveyId"]).column("surveyId").to_numpy()
    views = {"train": np.setdiff1d(ids, ids[::10]), "val": ids[::10]}
    t0 = time.perf_counter()
    if one_decode:
        columns = [c for c in meta["columns"] if c not in ("surveyId", "labels")]
        subsets = {k: ("train", v) for k, v in views.items()}
        dm = SurveyDataModule(root, columns=columns, reader="memory", subsets=subsets)
        dm.setup("fit")
        got = {k: dm.source(k).tensors for k in views}
    else:
        info = scan_split(root / "train", meta, ["surveyId", *meta["columns"]], verify=False)
        got = {k: MemorySource(info, keep=v).tensors for k, v in views.items()}
    return time.perf_counter() - t0, got


def _equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run(npz: Path, rounds: int, work: Path) -> dict[str, Any]:
    """The measurements of the module docstring on ``npz``, unpacked under ``work``."""
    from glc.loaders.pack import unpack

    cores = os.cpu_count() or 1
    modes = {"one_thread": 1, "all_cores": cores}
    times: dict[str, dict[str, list[float]]] = {
        "unpack": {m: [] for m in modes},
        "load": {m: [] for m in modes},
        "views": {"two_decodes": [], "one_decode": []},
    }
    root = work / "unpacked"
    for r in range(rounds):
        for mode, threads in modes.items():
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            unpack(npz, root, threads=threads)
            times["unpack"][mode].append(time.perf_counter() - t0)
        tensors: dict[str, Any] = {}
        for mode, threads in modes.items():
            seconds, tensors[mode] = load_train(root, threads, verify=mode == "one_thread")
            times["load"][mode].append(seconds)
        if not _equal(tensors["one_thread"], tensors["all_cores"]):
            raise RuntimeError("the one-thread and all-core loads of the train split differ: a reader bug")
        rows = int(tensors["one_thread"]["surveyId"].shape[0])
        tensors.clear()  # the views step measures its own peak, not beside two copies of the split
        for mode in times["views"]:
            seconds, tensors[mode] = fold_views(root, one_decode=mode == "one_decode")
            times["views"][mode].append(seconds)
        a, b = tensors["two_decodes"], tensors["one_decode"]
        if a.keys() != b.keys() or not all(_equal(a[k], b[k]) for k in a):
            raise RuntimeError("a fold's views from one decode differ from its views from two: a reader bug")
        tensors.clear()
        log.info(
            "round %d/%d: %s", r + 1, rounds, {k: {m: round(v[-1], 2) for m, v in t.items()} for k, t in times.items()}
        )
    out: dict[str, Any] = {"npz": str(npz), "npz_mib": round(npz.stat().st_size / 2**20, 1), "rounds": rounds}
    out["train_rows"] = rows
    out["threads_all_cores"] = cores
    for step, t in times.items():
        med = {m: statistics.median(v) for m, v in t.items()}
        before, after = list(med)
        out[f"{step}_seconds_{before}"] = round(med[before], 2)
        out[f"{step}_seconds_{after}"] = round(med[after], 2)
        out[f"{step}_speedup"] = round(med[before] / med[after], 2)
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
    speedups = f"unpack x{res['unpack_speedup']}, load x{res['load_speedup']}, views x{res['views_speedup']}"
    print(f"wrote {path}: {speedups} on {res['threads_all_cores']} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
