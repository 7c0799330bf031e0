"""Synthetic benchmark: the real-data CV table on a synthetic world, with the world's oracle as the top line.

``python -m bench.synth_cv [--world data/synthetic/demo-seed0]`` (generated if missing) writes
``bench/results/synth_cv.json`` and ``bench/results/synth_cv.md``. The CV runs on the world's PA *train* surveys
(their labels are public); the oracle is the expected-F1 decoding of the true probabilities of the world's test
surveys (``python -m glc oracle``), the best sample-F1 any model could reach there.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    from bench.common import RESULTS, merge_models, select_models, write_result
    from glc.data.layout import detect_layout
    from glc.data.metadata import read_pa_metadata, survey_table
    from glc.eval.benchmark import cv_benchmark, markdown_table
    from glc.geo import to_laea
    from glc.synth import generate_world
    from glc.synth.oracle import oracle_sample_f1

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--world", type=Path, default=REPO / "data" / "synthetic" / "demo-seed0")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--models", default="", help="comma-separated subset of glc.eval.benchmark.bench_models() (default: all)"
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not (a.world / "_SUCCESS").exists():
        generate_world(a.world, scale="demo", seed=0)
    lay = detect_layout(a.world)
    df = survey_table(read_pa_metadata(lay.pa_metadata("train"), "train"))
    df["x"], df["y"] = to_laea(df["lon"].to_numpy(), df["lat"].to_numpy())
    chosen = select_models(a.models)
    res = cv_benchmark(df, models=chosen, n_folds=a.folds, seed=a.seed)
    oracle = oracle_sample_f1(a.world)
    res["protocol"]["dataset"] = f"synthetic world {a.world.name} (PA train surveys)"
    res["protocol"]["oracle_sample_f1_test"] = oracle
    res = merge_models("synth_cv", res, chosen)
    write_result("synth_cv", res["models"], {"protocol": res["protocol"], "models": res["models"]})
    top = f"**Oracle** (true probabilities of the test surveys, expected-F1 decoding): sample-F1 **{oracle:.4f}**"
    (RESULTS / "synth_cv.md").write_text(markdown_table(res, f"Synthetic benchmark: {a.world.name}", top))
    best = res["models"][0]
    print(
        f"oracle {oracle:.4f}; best: {best['model']} + {best['decoder']}: "
        f"{best['sample_f1_mean']:.4f} ± {best['sample_f1_std']:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
