"""Synthetic-world generation benchmark: wall time, CPU time and peak memory of ``demo`` and ``full`` (and ``tiny``).

``python -m bench.synth [--scales demo,full] [--seed 0] [--workdir DIR]`` (``make bench-synth``) generates each
scale into a fresh temporary folder with ``python -m glc synth`` in a child process, samples the resident memory of
the whole process tree (generator + its workers) every 0.2 s, then reads the world back for its statistics, oracle
sample-F1 and frequency baseline (:mod:`glc.synth.stats`, :mod:`glc.synth.oracle`) and deletes it. Results are
merged per scale into ``bench/results/synth.json`` (so ``--scales full`` alone updates only the full entry).
CPU seconds (user + system of the tree) are reported beside wall seconds because they are less sensitive to other
load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def generate_and_measure(scale: str, seed: int, workdir: Path, keep: Path | None = None) -> dict[str, Any]:
    """Generate one world in a child process; wall/CPU seconds, peak tree RSS, disk size, stats and oracle.

    With ``keep``, the world is moved there afterwards (e.g. ``data/synthetic/full-seed0`` for the ETL benchmark)
    instead of being deleted; an existing ``keep`` folder is an error (never overwritten)."""
    import resource

    import psutil

    from glc.synth import world_stats
    from glc.synth.oracle import frequency_baseline_sample_f1, oracle_sample_f1

    if keep is not None and keep.exists():
        raise FileExistsError(f"--keep target {keep} exists; delete it or choose another folder")
    out = Path(tempfile.mkdtemp(prefix=f"synth-{scale}-", dir=workdir))
    world = out / f"{scale}-seed{seed}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "glc", "synth", "--scale", scale, "--seed", str(seed), "--out", str(world)], cwd=REPO
    )
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(proc))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise RuntimeError(f"python -m glc synth --scale {scale} exited with {child.returncode}; see its output above")
    try:
        size = sum(p.stat().st_size for p in world.rglob("*") if p.is_file())
        stats = world_stats(world)
        k, freq = frequency_baseline_sample_f1(world)
        res = {
            "scale": scale,
            "seed": seed,
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "peak_rss_gb": round(peak / 2**30, 2),
            "disk_gb": round(size / 2**30, 3),
            "oracle_sample_f1": round(float(oracle_sample_f1(world)), 4),
            "frequency_baseline": {"k": int(k), "sample_f1": round(float(freq), 4)},
            "stats": stats,
        }
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(world), str(keep))
            res["kept_at"] = str(keep)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    """Measure the requested scales and merge them into ``bench/results/synth.json``."""
    from bench.common import RESULTS, write_result

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="demo,full", help="comma-separated scales (tiny, demo, full)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="where the temporary worlds go (full needs ~4 GB)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the (single) generated world in this folder")
    a = ap.parse_args(argv)
    path = RESULTS / "synth.json"
    merged: dict[str, Any] = json.loads(path.read_text())["results"] if path.exists() else {}
    for scale in [s.strip() for s in a.scales.split(",") if s.strip()]:
        res = generate_and_measure(scale, a.seed, a.workdir or Path(tempfile.gettempdir()), a.keep)
        merged[scale] = res
        print(
            f"{scale}: {res['wall_seconds']} s wall, {res['cpu_seconds']} s CPU, peak RSS {res['peak_rss_gb']} GB, "
            f"{res['disk_gb']} GB on disk, oracle sample-F1 {res['oracle_sample_f1']}, frequency baseline "
            f"{res['frequency_baseline']['sample_f1']} (k={res['frequency_baseline']['k']})"
        )
        write_result("synth", merged)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
