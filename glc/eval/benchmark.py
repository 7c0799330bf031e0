"""Spatial cross-validation benchmark: every model x every decoder on one labelled survey table.

Protocol: ``n_folds``-fold spatial block CV (``block_km`` blocks in EPSG:3035, seeded, :func:`glc.eval.split.
spatial_block_folds`). For each fold the model is fitted on the other folds and scores the held-out fold; each
decoder is then *cross-fitted* on the held-out fold's scores (fitted on one half of its blocks, scored on the other,
see :func:`glc.experiment.cross_fitted_f1`), so no decoder is tuned on the surveys it is scored on. Reported: mean
and standard deviation over folds of sample-F1 and micro-F1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from glc.config import resolve

log = logging.getLogger(__name__)


def bench_models(features: Sequence[str] | None = ()) -> dict[str, dict[str, Any]]:
    """Benchmark name -> ``[model]`` overrides, from the model registry (each kind declares its ``benchmarks``).

    Args:
        features: the feature sets available besides ``location``/``meta`` (entries reading others are left out,
            e.g. image models on the real surveys, which have no patches); None = every entry.
    """
    from glc.config import resolve
    from glc.models.registry import registered_specs

    out: dict[str, dict[str, Any]] = {}
    for kind, spec in registered_specs().items():
        for name, over in spec.benchmarks.items():
            if name in out:
                raise ValueError(f"benchmark name {name!r} is declared by two model kinds")
            model = {"kind": kind, **dict(over)}
            reads = set(spec.features(resolve({"model": model}, f"benchmark {name}")["model"]))
            if features is None or reads <= set(features):
                out[name] = model
    return out


#: Training settings of the trained models in the benchmark (``glc.config`` ``train`` table overrides).
BENCH_TRAIN: dict[str, Any] = {"reader": "memory", "loss": {"kind": "asl"}}
BENCH_DECODERS: tuple[str, ...] = (
    "topk",
    "threshold",
    "threshold_topk",
    "expected_f1",
    "expected_f1_mc",
    "expected_f1_platt",
    "count",
)


def cv_benchmark(
    surveys: pd.DataFrame,
    models: dict[str, dict[str, Any]] | None = None,
    decoders: Sequence[str] = BENCH_DECODERS,
    n_folds: int = 5,
    block_km: float = 10.0,
    seed: int = 0,
    progress: bool = True,
    features: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the CV; ``surveys`` needs surveyId, lon, lat, x, y, year, region, speciesIds (all labelled).

    ``models`` defaults to :func:`bench_models`. Trained kinds get a model-input table per fold from the one Spark
    writer (:func:`glc.experiment.fit_predict`); ``features`` gives the artifact folders of the feature sets they
    read (name -> folder), whose rows must cover ``surveys``.
    """
    from tqdm import tqdm

    from glc.eval.split import spatial_block_folds
    from glc.experiment import count_estimates, cross_fitted_f1, fit_predict

    models = models or bench_models()
    df = surveys.reset_index(drop=True)
    folds = spatial_block_folds(df["x"].to_numpy(), df["y"].to_numpy(), n_folds=n_folds, block_km=block_km, seed=seed)
    truth = dict(zip(df["surveyId"].astype(int), df["speciesIds"]))
    rows = []
    bar = tqdm(total=len(models) * n_folds, desc="spatial CV", disable=not progress)
    for mname, mover in models.items():
        cfg = resolve({"seed": seed, "model": mover, "validation": {"block_km": block_km}, "train": BENCH_TRAIN})
        per: dict[str, list[dict[str, float]]] = {d: [] for d in decoders}
        t0 = time.time()
        for f in range(n_folds):
            held = folds == f
            scores = fit_predict(df[~held], df[held], cfg, features)
            n_hat = count_estimates(df[~held], df[held], scores, cfg) if "count" in decoders else None
            for d in decoders:
                per[d].append(cross_fitted_f1(scores, truth, df[held], cfg, d, n_hat))
            bar.update(1)
        secs = time.time() - t0
        for d, res in per.items():
            s = np.array([r["sample_f1"] for r in res])
            m = np.array([r["micro_f1"] for r in res])
            rows.append(
                {
                    "model": mname,
                    "decoder": d,
                    "sample_f1_mean": float(s.mean()),
                    "sample_f1_std": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
                    "micro_f1_mean": float(m.mean()),
                    "sample_f1_folds": [float(v) for v in s],
                    "seconds": round(secs, 2),
                }
            )
        log.info("%s: best %s", mname, max((r for r in rows if r["model"] == mname), key=lambda r: r["sample_f1_mean"]))
    bar.close()
    rows.sort(key=lambda r: -r["sample_f1_mean"])
    return {
        "protocol": {
            "n_folds": n_folds,
            "block_km": block_km,
            "seed": seed,
            "n_surveys": len(df),
            "decoder_fit": "cross-fitted halves of each held-out fold",
        },
        "models": rows,
    }


def markdown_table(result: dict[str, Any], title: str, top_line: str | None = None) -> str:
    """Markdown table of a :func:`cv_benchmark` result."""
    p = result["protocol"]
    out = [
        f"# {title}",
        "",
        f"{p['n_folds']}-fold spatial CV, {p['block_km']:g} km blocks, seed "
        f"{p['seed']}, {p['n_surveys']} surveys; decoders {p['decoder_fit']}.",
        "",
    ]
    if top_line:
        out += [top_line, ""]
    out += ["| model | decoder | sample-F1 (mean ± std) | micro-F1 |", "|---|---|---|---|"]
    for r in result["models"]:
        out.append(
            f"| {r['model']} | {r['decoder']} | {r['sample_f1_mean']:.4f} "
            f"± {r['sample_f1_std']:.4f} | {r['micro_f1_mean']:.4f} |"
        )
    return "\n".join(out) + "\n"
