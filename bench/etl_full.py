"""Full-scale ETL run: every feature task on one data root (the full synthetic world by default), with wall time
and the peak resident memory of the whole process tree (Luigi/Python driver + Spark JVM + Python workers).

``python -m bench.etl_full [--data-root data/synthetic/full-seed0] [--out-root out-bench]`` (``make bench-etl-full``)
runs ``SurveyTable``, ``EnvFeatures``, ``CubeFeatures``, ``PatchTiles`` and ``RasterTiles`` for every raster group,
one Luigi invocation per task in a child process (so each task's time and peak memory are its own), sampling the
tree's RSS every 0.5 s. The issue's budget: every task completes with peak memory <= 16 GB. Results:
``bench/results/etl_full.json``. Existing complete artifacts are not rebuilt (Luigi), so use a fresh ``--out-root``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_task(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One ``luigi --module glc.tasks ...`` child: seconds, peak tree RSS (GB), exit code."""
    import psutil

    from bench.synth import _tree_rss

    t0 = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "luigi", "--module", "glc.tasks", *args, "--local-scheduler"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(proc))
        time.sleep(0.5)
    err = child.stderr.read() if child.stderr else ""
    return {
        "task": " ".join(args),
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_gb": round(peak / 2**30, 2),
        "returncode": child.returncode,
        **({"stderr_tail": err[-2000:]} if child.returncode else {}),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every ETL task and write ``bench/results/etl_full.json``."""
    from bench.common import write_result
    from glc.data.layout import RASTER_GROUPS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="data/synthetic/full-seed0")
    ap.add_argument("--out-root", default="out-bench")
    a = ap.parse_args(argv)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"), "PYTHONHASHSEED": "0"}
    common = ["--data-root", a.data_root, "--out-root", a.out_root]
    tasks = [["SurveyTable"], ["EnvFeatures"], ["CubeFeatures"], ["PatchTiles"]] + [
        ["RasterTiles", "--raster-group", g] for g in sorted(RASTER_GROUPS)
    ]
    rows = []
    for t in tasks:
        r = run_task([*t, *common], env)
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "stderr_tail"}), flush=True)
        if r["returncode"] != 0:
            print(r.get("stderr_tail", ""), file=sys.stderr)
            break
    summary_path = Path(a.out_root)
    n = None
    for p in summary_path.glob("*/surveys/_SUCCESS"):
        n = json.loads(p.read_text()).get("surveys")
    res = {
        "data_root": a.data_root,
        "surveys": n,
        "tasks": rows,
        "total_seconds": round(sum(r["seconds"] for r in rows), 1),
        "max_peak_rss_gb": max(r["peak_rss_gb"] for r in rows),
        "budget_gb": 16,
        "all_ok": all(r["returncode"] == 0 for r in rows),
    }
    path = write_result("etl_full", res)
    print(
        f"total {res['total_seconds']} s, max peak RSS "
        f"{res['max_peak_rss_gb']} GB, all ok: {res['all_ok']}; wrote {path}"
    )
    return 0 if res["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
