"""Real-data benchmark: 5-fold spatial CV on the 4,716 real GLC24 PA-test surveys with their released labels.

``python -m bench.real_cv [--real-dir ../shared/data/glc24-real]`` writes ``bench/results/real_cv.json`` and
``bench/results/real_cv.md``. Features available for these surveys: location, year, region, country, area,
uncertainty (and tiles of the two real human-footprint rasters, used by later models). Species ids outside
0..11254 in the solution file stay in the truth (no model can predict them) and duplicates count once.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def load_real(real_dir: Path):  # noqa: ANN201 - pandas
    """The real labelled survey table: metadata + x/y (EPSG:3035) + speciesIds."""
    from glc.data.metadata import read_pa_metadata, read_solution
    from glc.geo import to_laea

    meta = read_pa_metadata(real_dir / "GLC24_PA_metadata_test.csv", "test")
    sol = read_solution(real_dir / "GLC24_SOLUTION_FILE.csv")
    meta = meta.drop_duplicates("surveyId").reset_index(drop=True)
    missing = set(meta["surveyId"]) - set(sol)
    if missing:
        raise ValueError(f"{len(missing)} surveys of the test metadata have no labels in the solution file, e.g. {sorted(missing)[:5]}")
    meta["speciesIds"] = [np.unique(np.asarray(sol[int(s)], np.int64)) for s in meta["surveyId"]]
    meta["x"], meta["y"] = to_laea(meta["lon"].to_numpy(), meta["lat"].to_numpy())
    return meta


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    from bench.common import RESULTS, select_models, write_result
    from glc.eval.benchmark import cv_benchmark, markdown_table

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--real-dir", type=Path, default=REPO.parent / "shared" / "data" / "glc24-real")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--block-km", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="", help="comma-separated subset of glc.eval.benchmark.BENCH_MODELS (default: all)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    df = load_real(a.real_dir)
    res = cv_benchmark(df, models=select_models(a.models), n_folds=a.folds, block_km=a.block_km, seed=a.seed)
    res["protocol"]["dataset"] = f"GLC24 PA test metadata + released labels ({a.real_dir})"
    path = write_result("real_cv", res["models"], {"protocol": res["protocol"], "models": res["models"]})
    (RESULTS / "real_cv.md").write_text(markdown_table(res, "Real-data benchmark: GLC24 PA test surveys (released labels)"))
    best = res["models"][0]
    print(f"best: {best['model']} + {best['decoder']}: sample-F1 {best['sample_f1_mean']:.4f} ± {best['sample_f1_std']:.4f}")
    print(f"wrote {path} and {RESULTS / 'real_cv.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
