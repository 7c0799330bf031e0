"""The experiment report: validation sample-F1 on a spatial hold-out, as JSON and markdown."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def build_report(
    surveys: pd.DataFrame,
    survey_summary: dict[str, Any],
    pred_dir: Path,
    decoder: dict[str, Any],
    cfg: dict[str, Any],
    data_root: str,
) -> dict[str, Any]:
    """Assemble the report dict: data counts, bad rows, the experiment's cross-fitted validation scores, and the
    frequency baselines scored the same way as reference lines."""
    import json

    from glc.config import resolve
    from glc.eval.split import validation_mask
    from glc.experiment import cross_fitted_f1, fit_predict
    from glc.predict.scores import read_scores

    train = surveys[surveys["split"] == "train"].reset_index(drop=True)
    truth = dict(zip(train["surveyId"].astype(int), train["speciesIds"]))
    val_mask = validation_mask(train, cfg)
    val_train = train[val_mask]
    val_scores = read_scores(Path(pred_dir) / "val")
    pred_info = json.loads((Path(pred_dir) / "_SUCCESS").read_text())
    main = cross_fitted_f1(val_scores, truth, val_train, cfg)

    decoders: dict[str, Any] = {}
    if cfg["decoder"].get("compare", False):
        from glc.decoding import DECODERS

        for kind in sorted(DECODERS):
            if kind in ("count", "expected_f1_exact"):  # count needs a count model; exact is slow and ~ approx
                continue
            decoders[kind] = cross_fitted_f1(val_scores, truth, val_train, cfg, kind)

    baselines = {}
    for kind in ("frequency", "region_frequency"):
        bcfg = resolve({
            "seed": cfg["seed"], "validation": dict(cfg["validation"]),
            "model": {"kind": kind, "top_n": cfg["model"]["top_n"]}, "decoder": {**cfg["decoder"], "kind": "topk"},
        }, f"report baseline {kind}")
        sc = fit_predict(train[~val_mask], val_train, bcfg)
        baselines[kind] = cross_fitted_f1(sc, truth, val_train, bcfg)

    n_species = val_train["speciesIds"].map(len)
    return {
        "experiment": cfg["name"],
        "config": cfg,
        "data_root": data_root,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "data": {
            "surveys": survey_summary.get("surveys", {}),
            "bad_rows": {k: v for k, v in survey_summary.items() if k.endswith("_rows")},
            "n_train_fit": int((~val_mask).sum()),
            "n_validation": int(val_mask.sum()),
            "mean_species_per_validation_survey": float(n_species.mean()) if len(n_species) else float("nan"),
        },
        "prediction": {k: v for k, v in pred_info.items() if k != "config"},
        "decoder": decoder,
        "validation": {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in main.items()},
        "baselines": baselines,
        "decoders": decoders,
    }


def render_markdown(rep: dict[str, Any]) -> str:
    """Human-readable report."""
    v = rep["validation"]
    lines = [
        f"# glc report — experiment `{rep['experiment']}`",
        "",
        f"Data root: `{rep['data_root']}` · generated {rep['generated_at']}",
        "",
        "## Validation (spatial hold-out, cross-fitted decoder)",
        "",
        f"Hold-out: whole {rep['config']['validation']['block_km']:g} km blocks (EPSG:3035), "
        f"{rep['config']['validation']['val_fraction']:.0%} of training surveys, seed {rep['config']['seed']}. "
        "The decoder is fitted on one half of the held-out blocks and scored on the other, and vice versa.",
        "",
        "| model | decoder | sample-F1 | micro-P | micro-R | micro-F1 |",
        "|---|---|---|---|---|---|",
        f"| **{rep['config']['model']['kind']}** | {rep['decoder'].get('kind')} | **{v['sample_f1']:.4f}** | {v['micro_precision']:.4f} | {v['micro_recall']:.4f} | {v['micro_f1']:.4f} |",
    ]
    for name, b in rep["baselines"].items():
        lines.append(f"| {name} (reference) | topk | {b['sample_f1']:.4f} | {b['micro_precision']:.4f} | {b['micro_recall']:.4f} | {b['micro_f1']:.4f} |")
    if rep.get("decoders"):
        lines += ["", "## Decoders on the same validation scores (cross-fitted)", "", "| decoder | sample-F1 | micro-F1 |", "|---|---|---|"]
        for name, r in sorted(rep["decoders"].items(), key=lambda kv: -kv[1]["sample_f1"]):
            lines.append(f"| {name} | {r['sample_f1']:.4f} | {r['micro_f1']:.4f} |")
    d = rep["data"]
    lines += [
        "",
        "## Data",
        "",
        f"- surveys: {d['surveys']}; fitted on {d['n_train_fit']}, validated on {d['n_validation']} "
        f"(mean {d['mean_species_per_validation_survey']:.1f} species per validation survey)",
        f"- rejected metadata rows: {d['bad_rows']}",
        f"- decoder fitted on all validation surveys (used for the submission): `{rep['decoder']}`",
        "",
    ]
    return "\n".join(lines)
