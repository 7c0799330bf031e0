"""Real-data benchmark: 5-fold spatial CV on the 4,716 real GLC24 PA-test surveys with their released labels.

``python -m bench.real_cv [--real-dir data/real/glc24-real] [--models a,b]`` runs the ``RealCV`` Luigi task
(:mod:`glc.tasks.benchmark`; its artifact under ``out/benchmarks/``) and writes ``bench/results/real_cv.json`` and
``bench/results/real_cv.md`` (with ``--models``, the other models' rows of the existing table are kept). The dataset and
its conventions: :mod:`glc.eval.real`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    import luigi

    from bench.common import RESULTS, merge_models, select_models, write_result
    from glc.eval.benchmark import markdown_table
    from glc.tasks.benchmark import RealCV

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--real-dir",
        type=Path,
        default=None,
        help="folder with the real PA-test metadata and solution (default: glc24-real in $GLC_REAL_DATA or data/real)",
    )
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--block-km", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-root", default="out", help="artifact root of the RealCV Luigi task")
    ap.add_argument(
        "--models", default="", help="comma-separated subset of glc.eval.benchmark.bench_models() (default: all)"
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = select_models(a.models)
    if a.real_dir is None:
        from glc.eval.real import real_data_dir

        a.real_dir = real_data_dir() / "glc24-real"
    task = RealCV(
        real_dir=str(a.real_dir), out_root=a.out_root, folds=a.folds, block_km=a.block_km, seed=a.seed, models=a.models
    )
    from glc.eval.real import REAL_DATA_ENV, SOLUTION

    if not (Path(a.real_dir) / SOLUTION).is_file():
        raise SystemExit(
            f"real_cv: no {SOLUTION} in {a.real_dir}: pass --real-dir, or set {REAL_DATA_ENV} to the folder that "
            "holds glc24-real/ (the GLC24 PA test metadata and its released labels)"
        )
    res = luigi.build([task], local_scheduler=True, detailed_summary=True)
    if not task.complete():
        raise SystemExit(f"RealCV did not finish; see the log above:\n{res.summary_text}")
    res = json.loads((task.output().dir / "result.json").read_text())
    res = merge_models("real_cv", res, chosen)
    path = write_result("real_cv", res["models"], {"protocol": res["protocol"], "models": res["models"]})
    from bench.pages import update_readme_table

    update_readme_table()  # the README's table names the real benchmark's best models
    (RESULTS / "real_cv.md").write_text(
        markdown_table(res, "Real-data benchmark: GLC24 PA test surveys (released labels)")
    )
    best = res["models"][0]
    print(
        f"best: {best['model']} + {best['decoder']}: sample-F1 "
        f"{best['sample_f1_mean']:.4f} ± {best['sample_f1_std']:.4f}"
    )
    print(f"wrote {path} and {RESULTS / 'real_cv.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
