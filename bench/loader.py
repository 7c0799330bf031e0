"""Loader benchmark: Petastorm vs native pyarrow vs in-memory tensors, side by side, through ``SurveyDataModule``.

``python -m bench.loader`` writes ``bench/results/loader.json``; ``python -m bench.loader --quick`` is a small smoke
run that writes ``bench/results/loader_quick.json`` (so it never overwrites the full results).

Protocol (one process; every rate is measured in this run, interleaved, on the same table):

* **Table**: a model-input ``train`` split written with :func:`glc.loaders.fake.make_fake_inputs` in a
  temporary folder: ``--rows`` surveys (default 100,000), C = ``--classes`` (2000), L = ``--label-width`` (64,
  each survey 1..L species), E = ``--env-dim`` (30), 8 part files of one row group each (what Spark writes for a
  table this size; snappy). Columns loaded: ``x, y, lon, lat, year, region, env`` + ``labels`` -> ``target``.
* **What is timed**: one full shuffled training epoch of ``SurveyDataModule.train_dataloader()`` -- reading,
  decoding, shuffling, re-batching to exactly ``batch_size`` rows and building the float32 multi-hot ``target``
  [B, C]; the consumer only counts rows. Setup (scan + verification read, and for "memory" the load into RAM) is
  reported separately. Each configuration first runs one untimed warm-up epoch; then ``--rounds`` rounds each time
  one epoch of every configuration in turn (so machine load hits all alike), and the median rate is reported.
* **Configurations**, for each batch size (256 and 1024): ``memory`` (all tensors in RAM, batches index a shuffled
  permutation; ``num_workers=0``), ``petastorm`` and ``arrow`` (the native pyarrow reader) with ``num_workers`` 0
  and 2 (persistent DataLoader worker processes, each reading its own shard of row groups), and
  ``petastorm-public`` (Petastorm's own per-row numpy collation instead of ours; ``num_workers=0``). Petastorm runs
  as configured in :mod:`glc.loaders.readers` (thread pool, one thread; see there for why).
* **Ratios**: each reader's best configuration per batch size divided by the in-memory rate of that batch size.
  The headline keys (``petastorm_samples_per_s``, ``native_samples_per_s``, ``in_memory_samples_per_s``,
  ``ratio_petastorm_vs_memory``, ...) are for batch size 1024; per-batch-size keys carry a ``bs<N>_`` prefix, and
  ``runs`` (beside ``results``) lists every configuration's rates. Because the machine may be shared, the
  ratios are also given in CPU time of the benchmark process (``*_cpu_time``, ``num_workers=0`` only; Petastorm's
  pool thread counts), which other processes disturb much less than wall time.

Torch intra-op threads are set to ``--threads`` (default 1) in the main process for every configuration alike
(DataLoader workers always use 1): the machine this runs on may be shared, and oversubscribed OpenMP threads made
the same ``torch.zeros`` 5-10x slower in trials. The load average before and after is recorded.
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

if __package__ in (None, ""):  # run as `python bench/loader.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

log = logging.getLogger("bench.loader")

COLUMNS = ("x", "y", "lon", "lat", "year", "region", "env")


def write_table(root: Path, rows: int, classes: int, label_width: int, env_dim: int, files: int, seed: int) -> float:
    """Write the benchmark table with the shared fake-table maker (:func:`glc.loaders.fake.make_fake_inputs`; the
    ``env`` feature set of width ``env_dim``; val/test 1,000 rows, not timed); return the seconds it took."""
    from glc.loaders.fake import make_fake_inputs

    t0 = time.perf_counter()
    per_file = -(-rows // files)
    small = min(rows, 1000)
    make_fake_inputs(
        root,
        ("env",),
        sizes={"train": rows, "val": small, "test": small},
        num_classes=classes,
        label_width=label_width,
        widths={"env": env_dim},
        rows_per_file=per_file,
        row_group_size=per_file,
        seed=seed,
    )
    return time.perf_counter() - t0


def epoch_rate(loader: Any) -> tuple[float, float, int]:
    """Iterate one epoch; return (rows per wall second, rows per CPU second of this process, rows)."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for batch in loader:
        n += int(batch["surveyId"].shape[0])
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9), n


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    from bench.common import write_result
    from glc.loaders import SurveyDataModule

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (writes loader_quick.json)")
    ap.add_argument("--rows", type=int, default=None, help="surveys (default 100000; quick 5000)")
    ap.add_argument("--classes", type=int, default=2000)
    ap.add_argument("--label-width", type=int, default=64)
    ap.add_argument("--env-dim", type=int, default=30)
    ap.add_argument("--files", type=int, default=8, help="part files (one row group each)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers tried for petastorm/arrow")
    ap.add_argument("--rounds", type=int, default=None, help="timed epochs per configuration (default 7; quick 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads in the main process")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary folder)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("petastorm").setLevel(logging.WARNING)  # one INFO line per reader opened
    rows = a.rows or (5_000 if a.quick else 100_000)
    rounds = a.rounds or (1 if a.quick else 7)
    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="glc-bench-loader-", dir=a.workdir))
    try:
        load_before = os.getloadavg()
        write_s = write_table(work, rows, a.classes, a.label_width, a.env_dim, a.files, seed=0)
        log.info(
            "table written in %.1f s: %d rows, C=%d, L=%d, E=%d", write_s, rows, a.classes, a.label_width, a.env_dim
        )
        configs = [("memory", 0), ("petastorm-public", 0)]
        configs += [(r, w) for r in ("petastorm", "arrow") for w in a.workers]
        results: dict[str, Any] = {
            "rows": rows,
            "num_classes": a.classes,
            "label_width": a.label_width,
            "env_dim": a.env_dim,
            "part_files": a.files,
            "columns": list(COLUMNS),
            "rounds": rounds,
            "torch_threads": a.threads,
            "table_write_seconds": round(write_s, 3),
            "quick": bool(a.quick),
        }
        runs = []
        for bs in a.batch_sizes:
            loaders, modules = {}, {}
            for reader, nw in configs:
                dm = SurveyDataModule(work, columns=COLUMNS, batch_size=bs, reader=reader, num_workers=nw, seed=0)
                t0 = time.perf_counter()
                dm.setup("fit")
                setup_s = time.perf_counter() - t0
                loaders[(reader, nw)] = dm.train_dataloader()
                modules[(reader, nw)] = (dm, setup_s)
                rate, _, n = epoch_rate(loaders[(reader, nw)])  # warm-up epoch
                if n != rows:
                    raise RuntimeError(f"{reader} (num_workers={nw}) read {n} rows in an epoch, expected {rows}")
                log.info("bs %d %s nw=%d: setup %.2f s, warm-up %.0f samples/s", bs, reader, nw, setup_s, rate)
            rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
            cpu_rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
            for r in range(rounds):
                for c in configs:
                    wall, cpu, _ = epoch_rate(loaders[c])
                    rates[c].append(wall)
                    cpu_rates[c].append(cpu)
                log.info("bs %d round %d: %s", bs, r, {f"{k[0]}/{k[1]}": round(v[-1]) for k, v in rates.items()})
            for (reader, nw), vals in rates.items():
                dm, setup_s = modules[(reader, nw)]
                src = dm.source("train")
                runs.append(
                    {
                        "batch_size": bs,
                        "reader": reader,
                        "num_workers": nw,
                        "samples_per_s_median": round(statistics.median(vals)),
                        "samples_per_s_all": [round(v) for v in vals],
                        # CPU time of this process only: meaningful for num_workers=0 (workers' CPU is not counted)
                        "samples_per_cpu_s_median": round(statistics.median(cpu_rates[(reader, nw)]))
                        if nw == 0
                        else None,
                        "setup_seconds": round(setup_s, 3),
                        "petastorm_rereads": getattr(src, "rereads", None),
                    }
                )
            mem = statistics.median(rates[("memory", 0)])
            best = {}
            for reader in ("petastorm", "arrow"):
                nw, val = max(((w, statistics.median(rates[(reader, w)])) for w in a.workers), key=lambda t: t[1])
                best[reader] = (nw, val)
            results[f"bs{bs}_in_memory_samples_per_s"] = round(mem)
            results[f"bs{bs}_petastorm_samples_per_s"] = round(best["petastorm"][1])
            results[f"bs{bs}_petastorm_num_workers"] = best["petastorm"][0]
            results[f"bs{bs}_native_samples_per_s"] = round(best["arrow"][1])
            results[f"bs{bs}_native_num_workers"] = best["arrow"][0]
            results[f"bs{bs}_ratio_petastorm_vs_memory"] = round(best["petastorm"][1] / mem, 3)
            cpu = {k: statistics.median(cpu_rates[(k, 0)]) for k in ("memory", "petastorm", "arrow")}
            results[f"bs{bs}_ratio_petastorm_vs_memory_cpu_time"] = round(cpu["petastorm"] / cpu["memory"], 3)
            results[f"bs{bs}_ratio_native_vs_memory_cpu_time"] = round(cpu["arrow"] / cpu["memory"], 3)
            public = statistics.median(rates[("petastorm-public", 0)])
            results[f"bs{bs}_petastorm_public_collate_samples_per_s"] = round(public)
            results[f"bs{bs}_ratio_petastorm_public_collate_vs_memory"] = round(public / mem, 3)
            results[f"bs{bs}_ratio_native_vs_memory"] = round(best["arrow"][1] / mem, 3)
        head = 1024 if 1024 in a.batch_sizes else a.batch_sizes[-1]
        results["headline_batch_size"] = head
        for k in (
            "petastorm_samples_per_s",
            "native_samples_per_s",
            "in_memory_samples_per_s",
            "ratio_petastorm_vs_memory",
            "ratio_native_vs_memory",
            "petastorm_public_collate_samples_per_s",
            "ratio_petastorm_public_collate_vs_memory",
            "ratio_petastorm_vs_memory_cpu_time",
            "ratio_native_vs_memory_cpu_time",
        ):
            results[k] = results[f"bs{head}_{k}"]
        results["goal_ratio_petastorm_vs_memory"] = 0.5
        results["goal_met"] = bool(results["ratio_petastorm_vs_memory"] >= 0.5)
        results["load_average_before"] = [round(x, 2) for x in load_before]
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        path = write_result("loader_quick" if a.quick else "loader", results, extra={"runs": runs})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {path}")
    for bs in a.batch_sizes:
        print(
            f"  bs {bs}: memory {results[f'bs{bs}_in_memory_samples_per_s']}/s, "
            f"petastorm {results[f'bs{bs}_petastorm_samples_per_s']}/s "
            f"(x{results[f'bs{bs}_ratio_petastorm_vs_memory']}), petastorm public collation "
            f"{results[f'bs{bs}_petastorm_public_collate_samples_per_s']}/s "
            f"(x{results[f'bs{bs}_ratio_petastorm_public_collate_vs_memory']}), "
            f"native {results[f'bs{bs}_native_samples_per_s']}/s (x{results[f'bs{bs}_ratio_native_vs_memory']})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
