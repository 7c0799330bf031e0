"""Feature-ETL benchmark: RasterTiles, PatchTiles and CubeFeatures end to end (Spark job + parquet written).

``python -m bench.etl`` writes ``bench/results/etl.json``; ``python -m bench.etl --quick`` is a small smoke run
that writes ``bench/results/etl_quick.json`` (so it never overwrites the full results).

Protocol (one process, one Spark session ``local[*]``; "per core" divides by Spark's default parallelism, i.e. the
cores the job ran on; all rates are measured in this run, side by side):

* **RasterTiles**: a full-extent synthetic raster (8000 x 5500 uint8 pixels on the GLC grid, 256 x 256 deflate
  tiles, nodata patches; :func:`tests.features.reference.write_extent_raster`) as the ``human_footprint`` group of a
  temporary data root; ``--sites`` survey sites (default 100,000) drawn uniformly over the raster (the worst case
  for locality: real surveys cluster); tile 128, k 8. Timed: :func:`glc.etl.tiles.write_raster_tiles` from the
  survey parquet to the finished artifact (``data/``, ``quarantine/``, ``_SUCCESS``), after a warm-up run (on
  another, small raster, so no block of the timed raster is cached) that starts the Python workers; Spark start-up
  and the warm-up are reported separately.
* **Reference**: the naive single-process loop of ``tests/features/reference.py`` (one rasterio boundless window
  read + ``scipy.fft.dctn`` per tile, one BLAS thread, in a freshly spawned process) on a random subsample of the
  same sites (``--ref-sites``), its rate extrapolated linearly to all sites and labelled so; its tiles are checked
  against the Spark output (``max_abs_diff_vs_reference``). ``ratio_vs_reference`` = Spark tiles/s per core /
  reference tiles/s.
* **Core only**: :func:`glc.features.tiles.extract_tiles` on all sites in one freshly spawned process (one BLAS
  thread), to show what the Spark wrapper costs (``spark_per_core_vs_core_single_process``).
* **PatchTiles**: ``--patches`` synthetic RGB + NIR JPEG pairs (128 x 128, default 20,000), k 8, timed like
  RasterTiles (warm-up on 200 other surveys).
* **CubeFeatures**: ``--cubes`` synthetic Landsat + bioclim ``.pt`` cubes (real storage layout, NaN quarters after
  the survey year; default 10,000), n 64, timed like RasterTiles.

The machine may be shared: the load average before and after is recorded with the results.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/etl.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench.etl")


def _sites(n: int, transform: Any, width: int, height: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lon, lat = transform @ (rng.uniform(0, width, n), rng.uniform(0, height, n))
    return pd.DataFrame(
        {
            "surveyId": rng.choice(np.arange(200, 4_000_000), n, replace=False).astype(np.int64),
            "split": np.where(rng.random(n) < 0.05, "test", "train"),
            "lon": lon,
            "lat": lat,
        }
    )


def _survey_parquet(spark: Any, pdf: pd.DataFrame, path: Path) -> Any:
    """Write the sites like a SurveyTable artifact (sorted parquet) and read them back as Spark would."""
    pdf.sort_values("surveyId").to_parquet(path, index=False)
    return spark.read.parquet(str(path))


def _reference_rate(raster: str, lons: np.ndarray, lats: np.ndarray, means: list[float]) -> tuple[float, np.ndarray]:
    """Naive loop (fresh process, one BLAS thread): seconds and the tiles (n, 1, 8, 8)."""
    from threadpoolctl import threadpool_limits

    from tests.features.reference import reference_tiles

    with threadpool_limits(1):
        t0 = time.perf_counter()
        ref, _ = reference_tiles(raster, lons, lats, 128, 8, np.asarray(means))
        return time.perf_counter() - t0, ref


def _core_rate(raster: str, ids: np.ndarray, lons: np.ndarray, lats: np.ndarray, means: list[float]) -> float:
    """extract_tiles on all sites (fresh process, one BLAS thread): seconds."""
    from threadpoolctl import threadpool_limits

    from glc.features.tiles import extract_tiles

    with threadpool_limits(1):
        t0 = time.perf_counter()
        extract_tiles(raster, ids, lons, lats, 128, 8, global_means=means)
        return time.perf_counter() - t0


def _fresh_process(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a freshly spawned interpreter (cold GDAL block cache, no shared state)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


def bench_raster_tiles(spark: Any, work: Path, n_sites: int, n_ref: int, cores: int) -> dict[str, Any]:
    """RasterTiles end to end vs the naive reference loop and the in-process core."""
    from glc.data.layout import Layout
    from glc.etl.tiles import write_raster_tiles
    from tests.features.reference import GLC_TRANSFORM, write_extent_raster

    layout = Layout(work / "world")
    raster = layout.env_root() / "HumanFootprint" / "detailed" / "Lights2009_WGS84.tif"
    raster.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_extent_raster(raster, "uint8")
    raster_seconds = time.perf_counter() - t0
    # The warm-up (Python workers, imports) reads another, small raster, so no block of the timed one is cached.
    warm_layout = Layout(work / "warm_world")
    warm_raster = warm_layout.env_root() / "HumanFootprint" / "detailed" / "Lights2009_WGS84.tif"
    warm_raster.parent.mkdir(parents=True, exist_ok=True)
    write_extent_raster(warm_raster, "uint8", width=800, height=550, seed=1)
    sites = _sites(n_sites, GLC_TRANSFORM, 8000, 5500, seed=0)
    surveys = _survey_parquet(spark, sites, work / "sites.parquet")
    warm = _survey_parquet(spark, _sites(2000, GLC_TRANSFORM, 800, 550, seed=5), work / "warm.parquet")
    t0 = time.perf_counter()
    write_raster_tiles(spark, warm_layout, warm, work / "warm_tiles", "human_footprint", k=8, tile_size=128)
    warm_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = write_raster_tiles(spark, layout, surveys, work / "tiles", "human_footprint", k=8, tile_size=128)
    seconds = time.perf_counter() - t0
    assert summary["n_written"] == n_sites, summary
    spark_rate = n_sites / seconds / cores

    means = [float(m) for m in summary["global_means"].values()]
    pick = sites.iloc[np.random.default_rng(1).choice(n_sites, n_ref, replace=False)]
    ref_seconds, ref = _fresh_process(_reference_rate, str(raster), pick["lon"].to_numpy(), pick["lat"].to_numpy(), means)
    core_seconds = _fresh_process(
        _core_rate, str(raster), sites["surveyId"].to_numpy(), sites["lon"].to_numpy(), sites["lat"].to_numpy(), means
    )
    out = pd.read_parquet(work / "tiles" / "data").set_index("surveyId")
    got = np.stack(out.loc[pick["surveyId"], "dct"].to_numpy())
    diff = float(np.abs(got - ref.reshape(n_ref, -1)).max())
    scale = float(np.abs(ref).max())
    if diff > 1e-5 * scale:
        raise AssertionError(f"RasterTiles output differs from the naive reference by {diff} (scale {scale})")
    ref_rate = n_ref / ref_seconds
    core_rate = n_sites / core_seconds
    return {
        "raster_tiles_sites": n_sites,
        "raster_tiles_site_distribution": "uniform over the raster (worst case for locality)",
        "raster_tiles_bands": len(summary["bands"]),
        "raster_tiles_tile_size": 128,
        "raster_tiles_k": 8,
        "raster_tiles_seconds": round(seconds, 3),
        "raster_tiles_per_s": round(n_sites / seconds, 1),
        "raster_tiles_per_s_per_core": round(spark_rate, 1),
        "raster_tiles_warmup_seconds": round(warm_seconds, 3),
        "raster_write_seconds": round(raster_seconds, 3),
        "reference_sites_subsample": n_ref,
        "reference_tiles_per_s_per_core": round(ref_rate, 1),
        "reference_seconds_extrapolated_to_all_sites": round(n_sites / ref_rate, 1),
        "reference_note": f"naive loop timed on a random subsample of {n_ref} sites, extrapolated linearly",
        "ratio_vs_reference": round(spark_rate / ref_rate, 2),
        "max_abs_diff_vs_reference": diff,
        "core_single_process_tiles_per_s": round(core_rate, 1),
        "spark_per_core_vs_core_single_process": round(spark_rate / core_rate, 3),
        "goal_tiles_per_s_per_core": 2000,
        "goal_met": bool(spark_rate >= 2000),
    }


def bench_patches(spark: Any, work: Path, n: int, cores: int) -> dict[str, Any]:
    """PatchTiles end to end on synthetic JPEG pairs."""
    from glc.data.layout import Layout
    from glc.etl.patches import write_patch_tiles
    from tests.etl.test_patches import write_patches

    layout = Layout(work / "patch_world")
    sites = _sites(n, _europe_box(), 1, 1, seed=2)
    t0 = time.perf_counter()
    write_patches(layout, sites, seed=2)
    gen = time.perf_counter() - t0
    seconds = _timed_artifact(spark, sites, work, "patch", lambda surveys, out: write_patch_tiles(spark, layout, surveys, out, k=8))
    return {
        "patch_surveys": n,
        "patch_k": 8,
        "patch_seconds": round(seconds, 3),
        "patch_tiles_per_s": round(n / seconds, 1),
        "patch_tiles_per_s_per_core": round(n / seconds / cores, 1),
        "patch_generation_seconds": round(gen, 3),
    }


def _timed_artifact(spark: Any, sites: Any, work: Path, name: str, write: Any) -> float:
    """Seconds of ``write(surveys, out_dir)`` on all ``sites``, after a 200-site warm-up that starts the workers."""
    surveys = _survey_parquet(spark, sites, work / f"{name}_sites.parquet")
    warm = _survey_parquet(spark, sites.iloc[:200], work / f"{name}_warm.parquet")
    write(warm, work / f"{name}_warm")
    t0 = time.perf_counter()
    s = write(surveys, work / f"{name}_all")
    seconds = time.perf_counter() - t0
    assert s["n_written"] == len(sites), s
    return seconds


def bench_cubes(spark: Any, work: Path, n: int, cores: int) -> dict[str, Any]:
    """CubeFeatures end to end on synthetic .pt cubes."""
    from glc.data.layout import Layout
    from glc.etl.cubes import write_cube_features
    from tests.etl.test_cubes import make_cubes, write_cube_files

    layout = Layout(work / "cube_world")
    sites = _sites(n, _europe_box(), 1, 1, seed=3)
    t0 = time.perf_counter()
    write_cube_files(layout, sites, make_cubes(sites, seed=3))
    gen = time.perf_counter() - t0
    seconds = _timed_artifact(spark, sites, work, "cube", lambda surveys, out: write_cube_features(spark, layout, surveys, out, n=64))
    return {
        "cube_surveys": n,
        "cube_n": 64,
        "cube_seconds": round(seconds, 3),
        "cube_surveys_per_s": round(n / seconds, 1),
        "cube_surveys_per_s_per_core": round(n / seconds / cores, 1),
        "cube_generation_seconds": round(gen, 3),
    }


def _europe_box() -> Any:
    from affine import Affine

    return Affine(20.0, 0, -5.0, 0, -15.0, 55.0)  # a box over Europe: lon -5..15, lat 40..55


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    from bench.common import write_result
    from glc.spark import get_spark

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (writes etl_quick.json)")
    ap.add_argument("--sites", type=int, default=None, help="RasterTiles sites (default 100000; quick 5000)")
    ap.add_argument("--ref-sites", type=int, default=None, help="reference-loop subsample (default 2000; quick 300)")
    ap.add_argument("--patches", type=int, default=None, help="PatchTiles surveys (default 20000; quick 300)")
    ap.add_argument("--cubes", type=int, default=None, help="CubeFeatures surveys (default 10000; quick 300)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary folder)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    n_sites = a.sites or (5_000 if a.quick else 100_000)
    n_ref = min(a.ref_sites or (300 if a.quick else 2_000), n_sites)
    n_patches = a.patches or (300 if a.quick else 20_000)
    n_cubes = a.cubes or (300 if a.quick else 10_000)
    work = Path(tempfile.mkdtemp(prefix="glc-bench-etl-", dir=a.workdir))
    try:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        spark = get_spark("glc-bench-etl")
        spark.range(1).count()
        startup = time.perf_counter() - t0
        cores = int(spark.sparkContext.defaultParallelism)
        results: dict[str, Any] = {"spark_master": spark.sparkContext.master, "spark_cores": cores, "spark_startup_seconds": round(startup, 3)}
        log.info("RasterTiles: %d sites", n_sites)
        results.update(bench_raster_tiles(spark, work, n_sites, n_ref, cores))
        log.info("PatchTiles: %d surveys", n_patches)
        results.update(bench_patches(spark, work, n_patches, cores))
        log.info("CubeFeatures: %d surveys", n_cubes)
        results.update(bench_cubes(spark, work, n_cubes, cores))
        results["quick"] = bool(a.quick)
        results["load_average_before"] = [round(x, 2) for x in load_before]
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        path = write_result("etl_quick" if a.quick else "etl", results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {path}")
    for k in ("raster_tiles_per_s_per_core", "reference_tiles_per_s_per_core", "ratio_vs_reference",
              "core_single_process_tiles_per_s", "patch_tiles_per_s_per_core", "cube_surveys_per_s_per_core"):
        print(f"  {k}: {results[k]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
