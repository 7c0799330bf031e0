"""Neighbour-table benchmark: exact (grid cells + cKDTree) vs LSH (Spark ML) on the same synthetic PO sites.

``python -m bench.neighbours [--n-sites 1000000] [--k 10] [--radius-km 50]`` writes ``bench/results/neighbours.json``.

Protocol (all measured side by side in one run, on this machine):

* Sites: ``--n-sites`` synthetic PO-like sites over Europe's extent in EPSG:3035 (x 2,500-6,500 km, y 1,400-5,400 km):
  3,000 clusters of heavy-tailed size and 2-40 km spread, 10 % uniform background, 5 % repeat visits (a copy of
  another site's coordinates). Every site queries all sites (self excluded, ``exclude_same_site=True``).
* Each method runs in its own fresh process (its own Spark session, so neither inherits the other's JVM heap).
  Time = read the sites parquet + build the table + write it as parquet (Spark start-up reported separately).
  Peak memory = the largest summed RSS of that process tree (driver Python, JVM, Python workers), sampled every 0.2 s.
* Recall = fraction of the reference's (query, neighbour) pairs a method returns; the reference is
  :func:`glc.features.neighbours.neighbours_numpy` (in-memory cKDTree). For exact, the tables are also compared for
  identity (ids and distances).
* LSH uses the paper's parameters with correct units: 20 km buckets, 5 hash tables, ``--radius-km`` cutoff. If it
  runs past ``--lsh-timeout-s`` (default 1200 s) or its shuffle files pass ``--lsh-max-shuffle-gb``, it is stopped and
  the time spent is reported as a lower bound (``lsh_status`` says which), never as a result. It is then run on
  random subsamples (``--lsh-subsamples``) and a power law ``t = a n^b`` fitted to them gives
  ``lsh_seconds_extrapolated``, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/neighbours.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench.neighbours")

EXTENT_X = (2_500_000.0, 6_500_000.0)
EXTENT_Y = (1_400_000.0, 5_400_000.0)
BUCKET_LENGTH_KM = 20.0
NUM_HASH_TABLES = 5


def synthetic_sites(n: int, seed: int = 0, n_clusters: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered PO-like sites over Europe in EPSG:3035 metres: ``(ids, x, y)``, ids shuffled."""
    rng = np.random.default_rng(seed)
    cx = rng.uniform(*EXTENT_X, n_clusters)
    cy = rng.uniform(*EXTENT_Y, n_clusters)
    weight = rng.pareto(1.2, n_clusters) + 1.0  # heavy tail: a few very dense clusters (cities)
    spread = np.clip(rng.lognormal(np.log(8_000.0), 0.7, n_clusters), 2_000.0, 40_000.0)
    n_bg = n // 10
    n_dup = n // 20
    n_cl = n - n_bg - n_dup
    c = rng.choice(n_clusters, n_cl, p=weight / weight.sum())
    x = np.concatenate([cx[c] + rng.normal(0, 1, n_cl) * spread[c], rng.uniform(*EXTENT_X, n_bg)])
    y = np.concatenate([cy[c] + rng.normal(0, 1, n_cl) * spread[c], rng.uniform(*EXTENT_Y, n_bg)])
    src = rng.integers(0, len(x), n_dup)  # repeat visits: same coordinates, new id
    x, y = np.concatenate([x, x[src]]), np.concatenate([y, y[src]])
    ids = rng.permutation(n).astype(np.int64) + 1
    return ids, x, y


def lsh_candidate_pairs(x: np.ndarray, y: np.ndarray, seed: int = 0) -> int:
    """Ordered candidate pairs (incl. self) an LSH self-join must examine, summed over the hash tables (an upper
    bound on distinct pairs), with random directions like Spark's BucketedRandomProjectionLSH."""
    rng = np.random.default_rng(seed)
    total = 0
    for _ in range(NUM_HASH_TABLES):
        v = rng.normal(size=2)
        v /= np.linalg.norm(v)
        b = np.floor((x * v[0] + y * v[1]) / 1000.0 / BUCKET_LENGTH_KM).astype(np.int64)
        _, counts = np.unique(b, return_counts=True)
        total += int((counts.astype(np.float64) ** 2).sum())
    return total


# ------------------------------------------------------------------------------------------------ worker process


def worker(a: argparse.Namespace) -> int:
    """Run one method in this (fresh) process and write its timings to ``a.timing``."""
    from glc.etl.neighbours import neighbours
    from glc.spark import get_spark

    t0 = time.perf_counter()
    spark = get_spark(f"bench-neighbours-{a.worker}")
    spark.range(1).count()
    t1 = time.perf_counter()
    Path(a.timing).write_text(json.dumps({"spark_start_seconds": t1 - t0, "compute_started_at": time.time()}))
    sites = spark.read.parquet(a.input)
    kw: dict[str, Any] = {"exclude_same_site": True}
    if a.worker == "lsh":
        kw.update(bucket_length_km=BUCKET_LENGTH_KM, num_hash_tables=NUM_HASH_TABLES)
    out = neighbours(sites, sites, a.radius_km, a.k, method=a.worker, **kw)
    out.write.mode("overwrite").parquet(a.output)
    t2 = time.perf_counter()
    Path(a.timing).write_text(json.dumps({"spark_start_seconds": t1 - t0, "seconds": t2 - t1}))
    spark.stop()
    return 0


# ------------------------------------------------------------------------------------------------ driver


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def run_method(
    method: str,
    sites_path: Path,
    out_path: Path,
    work: Path,
    k: int,
    radius_km: float,
    timeout_s: float,
    max_shuffle_gb: float,
) -> dict[str, Any]:
    """Run ``method`` in a fresh process, watching wall time, peak RSS and shuffle disk use."""
    import psutil

    tag = f"{method}-{time.time_ns()}"  # fresh names per run: a stale timing file must never be read
    timing = work / f"{tag}-timing.json"
    local_dir = work / f"{tag}-spark-local"
    local_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    extra = f"spark.local.dir={local_dir}"
    env["GLC_SPARK_CONF"] = f"{env['GLC_SPARK_CONF']},{extra}" if env.get("GLC_SPARK_CONF") else extra
    env.setdefault("GLC_SPARK_LOG_LEVEL", "ERROR")
    cmd = [
        sys.executable,
        "-m",
        "bench.neighbours",
        "--worker",
        method,
        "--input",
        str(sites_path),
        "--output",
        str(out_path),
    ]
    cmd += ["--timing", str(timing), "--k", str(k), "--radius-km", str(radius_km)]
    start = time.time()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ps = psutil.Process(proc.pid)
    peak, status, shuffle_peak = 0, "ok", 0
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    last_disk = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(ps))
        now = time.time()
        if now - last_disk > 2.0:
            shuffle_peak = max(shuffle_peak, _dir_bytes(local_dir))
            last_disk = now
        started = json.loads(timing.read_text()).get("compute_started_at") if timing.exists() else None
        if started is not None and now - started > timeout_s:
            status = "timeout"
        elif shuffle_peak > max_shuffle_gb * 2**30:
            status = "shuffle_cap"
        if status != "ok":
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group (its JVM and Python workers)
            proc.wait()
            break
        time.sleep(0.2)
    reader.join(timeout=10)
    res: dict[str, Any] = {
        "status": status,
        "peak_rss_gb": round(peak / 2**30, 3),
        "shuffle_peak_gb": round(shuffle_peak / 2**30, 3),
    }
    info = json.loads(timing.read_text()) if timing.exists() else {}
    res["spark_start_seconds"] = round(info.get("spark_start_seconds", float("nan")), 2)
    if status == "ok":
        if proc.returncode != 0 or "seconds" not in info:
            tail = b"".join(stderr_chunks).decode(errors="replace")[-3000:]
            raise RuntimeError(f"{method} worker failed (exit {proc.returncode}):\n{tail}")
        res["seconds"] = round(info["seconds"], 2)
    else:
        res["seconds_lower_bound"] = round(time.time() - info.get("compute_started_at", start), 1)
    shutil.rmtree(local_dir, ignore_errors=True)
    log.info("%s: %s", method, res)
    return res


def read_table(path: Path):
    """A neighbour parquet directory as a NeighbourTable sorted by query id."""
    import pyarrow.parquet as pq

    from glc.features.neighbours import NeighbourTable

    df = pq.read_table(path).to_pandas()
    return NeighbourTable.from_pandas(df.sort_values("surveyId").reset_index(drop=True))


def _sorted(table):
    from glc.features.neighbours import NeighbourTable

    return NeighbourTable.from_pandas(table.to_pandas().sort_values("surveyId").reset_index(drop=True))


def identical(a, b) -> bool:
    """Same queries, neighbour ids and distances (exact equality)."""
    return bool(
        np.array_equal(a.query_ids, b.query_ids)
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.nbr_ids, b.nbr_ids)
        and np.array_equal(a.nbr_dist_km, b.nbr_dist_km)
    )


def write_sites(path: Path, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Write the sites as parquet (``surveyId long, x double, y double``), several row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"surveyId": ids, "x": x, "y": y}), path / "part-0.parquet", row_group_size=100_000)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one method in this process)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-sites", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--radius-km", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lsh-timeout-s", type=float, default=1200.0, help="stop the full-size LSH run after this long")
    ap.add_argument(
        "--lsh-max-shuffle-gb", type=float, default=15.0, help="stop LSH when its shuffle files pass this size"
    )
    ap.add_argument(
        "--lsh-subsamples", default="10000,20000,40000", help="subsample sizes for LSH when the full run stops"
    )
    ap.add_argument("--skip-lsh-full", action="store_true", help="do not try LSH at full size (subsamples only)")
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default bench/results/neighbours.json)")
    ap.add_argument("--worker", choices=["exact", "lsh"], help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--timing", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.n_sites < 100:
        raise SystemExit(f"--n-sites={a.n_sites}: use at least 100 sites")

    from bench.common import machine, repo_relative
    from glc.features.neighbours import neighbour_recall, neighbours_numpy
    from glc.io import write_json

    load_start = os.getloadavg()
    ids, x, y = synthetic_sites(a.n_sites, a.seed)
    work = Path(tempfile.mkdtemp(prefix="glc-bench-neighbours-"))
    try:
        sites = work / "sites.parquet"
        write_sites(sites, ids, x, y)
        t = time.perf_counter()
        ref = _sorted(neighbours_numpy(ids, x, y, ids, x, y, a.radius_km, a.k, exclude_same_site=True))
        ref_s = time.perf_counter() - t
        log.info("reference (numpy cKDTree, in memory): %.1f s, mean %.2f neighbours", ref_s, ref.counts().mean())

        exact = run_method("exact", sites, work / "exact.parquet", work, a.k, a.radius_km, float("inf"), float("inf"))
        got = read_table(work / "exact.parquet")
        exact_recall = neighbour_recall(ref, got)
        exact_same = identical(ref, got)
        shutil.rmtree(work / "exact.parquet", ignore_errors=True)

        lsh: dict[str, Any] = {"status": "not_run"}
        if not a.skip_lsh_full:
            lsh = run_method(
                "lsh", sites, work / "lsh.parquet", work, a.k, a.radius_km, a.lsh_timeout_s, a.lsh_max_shuffle_gb
            )
        lsh_recall = None
        if lsh["status"] == "ok":
            lsh_recall = neighbour_recall(ref, read_table(work / "lsh.parquet"))
        shutil.rmtree(work / "lsh.parquet", ignore_errors=True)

        subs: list[dict[str, Any]] = []
        if lsh["status"] != "ok":
            rng = np.random.default_rng(a.seed + 1)
            for m in sorted({int(s) for s in a.lsh_subsamples.split(",") if s.strip()}):
                if m >= a.n_sites:
                    continue
                pick = np.sort(rng.choice(a.n_sites, m, replace=False))
                sub_path = work / f"sites-{m}.parquet"
                write_sites(sub_path, ids[pick], x[pick], y[pick])
                sub_ref = _sorted(
                    neighbours_numpy(ids[pick], x[pick], y[pick], ids[pick], x[pick], y[pick], a.radius_km, a.k)
                )
                r = run_method(
                    "lsh",
                    sub_path,
                    work / "lsh-sub.parquet",
                    work,
                    a.k,
                    a.radius_km,
                    a.lsh_timeout_s,
                    a.lsh_max_shuffle_gb,
                )
                entry = {"n_sites": m, **r, "candidate_pairs": lsh_candidate_pairs(x[pick], y[pick], a.seed)}
                if r["status"] == "ok":
                    entry["recall"] = round(neighbour_recall(sub_ref, read_table(work / "lsh-sub.parquet")), 6)
                shutil.rmtree(work / "lsh-sub.parquet", ignore_errors=True)
                subs.append(entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results: dict[str, Any] = {
        "n_sites": a.n_sites,
        "k": a.k,
        "radius_km": a.radius_km,
        "exact_seconds": exact["seconds"],
        "lsh_seconds": lsh.get("seconds"),
        "speedup_exact_vs_lsh": round(lsh["seconds"] / exact["seconds"], 2) if lsh["status"] == "ok" else None,
        "lsh_recall": None if lsh_recall is None else round(lsh_recall, 6),
        "exact_recall": round(exact_recall, 6),
        "exact_identical_to_reference": exact_same,
        "exact_peak_rss_gb": exact["peak_rss_gb"],
        "lsh_peak_rss_gb": lsh.get("peak_rss_gb"),
        "lsh_status": lsh["status"],
        "reference_numpy_seconds": round(ref_s, 2),
        "mean_neighbours_per_site": round(float(ref.counts().mean()), 3),
        "exact_spark_start_seconds": exact["spark_start_seconds"],
        "lsh_spark_start_seconds": lsh.get("spark_start_seconds"),
        "lsh_shuffle_peak_gb": lsh.get("shuffle_peak_gb"),
        "lsh_candidate_pairs_full": lsh_candidate_pairs(x, y, a.seed),
        "lsh_params": {"bucket_length_km": BUCKET_LENGTH_KM, "num_hash_tables": NUM_HASH_TABLES, "coordinates": "km"},
        "exact_params": {"cell_km": max(4 * a.radius_km, 100.0), "exclude_same_site": True},
        "timing_scope": "read sites parquet + build table + write table parquet, in a fresh process per method",
        "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
    }
    if lsh["status"] not in ("ok", "not_run"):
        results["lsh_seconds_lower_bound"] = lsh["seconds_lower_bound"]
        results["speedup_exact_vs_lsh_lower_bound"] = round(lsh["seconds_lower_bound"] / exact["seconds"], 2)
    if subs:
        results["lsh_subsample_runs"] = subs
        ok = [s for s in subs if s["status"] == "ok"]
        if len(ok) >= 2:
            b, loga = np.polyfit(np.log([s["n_sites"] for s in ok]), np.log([s["seconds"] for s in ok]), 1)
            t_ext = float(np.exp(loga) * a.n_sites**b)
            results["lsh_seconds_extrapolated"] = round(t_ext, 1)
            results["speedup_exact_vs_lsh_extrapolated"] = round(t_ext / exact["seconds"], 2)
            results["lsh_extrapolation"] = (
                f"EXTRAPOLATED, not measured: power law t = a * n^b fitted to the LSH subsample runs "
                f"(n = {[s['n_sites'] for s in ok]}), b = {b:.2f}, evaluated at n = {a.n_sites}"
            )
    out = a.out or REPO / "bench" / "results" / "neighbours.json"
    write_json(out, repo_relative({"machine": machine(), "results": results}))  # atomic: temp file + os.replace
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
