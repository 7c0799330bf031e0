"""The experiment report: validation sample-F1 on a spatial hold-out, as JSON and markdown."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def main_label(cfg: dict[str, Any]) -> str:
    """How the experiment's own model is named beside the reference lines."""
    return f"{cfg['name']} ({cfg['model']['kind']})"


def build_report(
    surveys: pd.DataFrame,
    survey_summary: dict[str, Any],
    pred_dir: Path,
    decoder: dict[str, Any],
    cfg: dict[str, Any],
    data_root: str,
    extras: dict[str, Any] | None = None,
    corrections: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the report dict: data counts, bad rows, the experiment's cross-fitted validation scores, and the
    frequency baselines scored the same way as reference lines.

    ``corrections`` (``[decoder.po_correction]`` on): the validation surveys' PO-correction lists; the decoded sets
    are corrected with them (as the submission's are), and ``po_correction`` reports the sample-F1 without and with
    the correction.

    ``extras``, when given, is filled with what the figures need and the JSON does not keep: the validation scores,
    truth, validation surveys and the cross-fitted sets and per-survey F1 of the model and of each reference.
    """
    import json

    from glc.config import resolve
    from glc.eval.split import validation_mask
    from glc.experiment import count_estimates, cross_fitted_f1, cross_fitted_sets, fit_predict
    from glc.metrics import per_survey_f1, score_submission
    from glc.predict.scores import read_scores

    train = surveys[surveys["split"] == "train"].reset_index(drop=True)
    truth = dict(zip(train["surveyId"].astype(int), train["speciesIds"]))
    val_mask = validation_mask(train, cfg, surveys[surveys["split"] == "test"])
    val_train = train[val_mask]
    val_scores = read_scores(Path(pred_dir) / "val")
    pred_info = json.loads((Path(pred_dir) / "_SUCCESS").read_text())
    main_key = main_label(cfg)
    n_hat = count_estimates(train[~val_mask], val_train, val_scores, cfg)  # species-count model (count decoder)
    sets = {main_key: cross_fitted_sets(val_scores, truth, val_train, cfg, n_hat=n_hat)}
    sol = {int(i): truth[int(i)] for i in val_scores.survey_ids}
    main = score_submission(sol, sets[main_key])
    po_correction = None
    if corrections is not None:
        from glc.experiment import correct_sets

        sets[main_key], info = correct_sets(sets[main_key], corrections)
        corrected = score_submission(sol, sets[main_key])
        po_correction = {
            **info,
            "params": dict(cfg["decoder"]["po_correction"]),
            "sample_f1_without": float(main["sample_f1"]),
            "sample_f1_with": float(corrected["sample_f1"]),
        }
        main = corrected

    from glc.metrics import adaptive_topk_accuracy, topk_accuracy

    n_cols = val_scores.species.shape[1]
    cols = [c[c < n_cols] for c in val_scores.truth_columns(truth)]  # species outside the top-N can never be a hit
    ranking = {
        "top30_accuracy": topk_accuracy(val_scores.prob, cols, 30),
        "adaptive_top30_accuracy": adaptive_topk_accuracy(val_scores.prob, cols, 30),
    }

    decoders: dict[str, Any] = {}
    if cfg["decoder"].get("compare", False):
        from glc.decoding import DECODERS

        for kind in sorted(DECODERS):
            if kind == "expected_f1_exact":  # slow and ~ approx
                continue
            decoders[kind] = cross_fitted_f1(val_scores, truth, val_train, cfg, kind, n_hat)

    baselines = {}
    for kind in ("frequency", "region_frequency"):
        bcfg = resolve(
            {
                "seed": cfg["seed"],
                "validation": dict(cfg["validation"]),
                "model": {"kind": kind, "top_n": cfg["model"]["top_n"]},
                "decoder": {**cfg["decoder"], "kind": "topk"},
            },
            f"report baseline {kind}",
        )
        sc = fit_predict(train[~val_mask], val_train, bcfg)
        sets[kind] = cross_fitted_sets(sc, truth, val_train, bcfg)
        baselines[kind] = score_submission({int(i): truth[int(i)] for i in sc.survey_ids}, sets[kind])
    if extras is not None:
        ids = val_train["surveyId"].astype(int).to_numpy()
        extras.update(
            {
                "val_scores": val_scores,
                "truth": truth,
                "val_train": val_train,
                "sets": sets,
                "per_survey_f1": {
                    m: per_survey_f1([truth[i] for i in ids], [s.get(int(i), []) for i in ids]) for m, s in sets.items()
                },
            }
        )

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
        "ranking": ranking,
        "baselines": baselines,
        "decoders": decoders,
        "po_correction": po_correction,
    }


def _n(v: Any) -> str:
    """A count with thousands separators; anything else as text."""
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def survey_counts(d: dict[str, Any]) -> str:
    """The report's survey counts as a sentence: per split, then the fit/validation split of the training surveys."""
    by_split = d["surveys"] if isinstance(d["surveys"], dict) else {"all": d["surveys"]}
    counts = " and ".join(f"{_n(n)} {split}" for split, n in sorted(by_split.items(), key=lambda kv: kv[0] != "train"))
    return (
        f"{counts} surveys; fitted on {_n(d['n_train_fit'])}, validated on {_n(d['n_validation'])} "
        f"(mean {d['mean_species_per_validation_survey']:.1f} species per validation survey)"
    )


def rejected_rows(bad: Any) -> list[str]:
    """The SurveyTable's rejected-row counts (``bad_rows`` of its ``_SUCCESS``) as one sentence per split, with the
    reasons and examples, and the train rows without species (dropped, counted apart)."""
    if not isinstance(bad, dict):
        return [f"rejected metadata rows: {_n(bad)}"]
    out = []
    for key in sorted(k for k in bad if k.endswith("_rows") and isinstance(bad[k], dict)):
        r = bad[key]
        split = key[: -len("_rows")]
        text = f"{split} metadata: {_n(r.get('bad_rows', 0))} of {_n(r.get('total_rows', 0))} rows rejected"
        reasons = r.get("by_reason") or {}
        if reasons:
            text += " (" + ", ".join(f"{_n(n)} {why}" for why, n in reasons.items()) + ")"
        if r.get("examples"):
            text += "; e.g. " + "; ".join(r["examples"][:3])
        out.append(text)
    if bad.get("empty_species_rows"):
        text = f"train rows with an empty speciesId: {_n(bad['empty_species_rows'])} (dropped and counted"
        if bad.get("surveys_without_species"):
            text += f"; {_n(bad['surveys_without_species'])} surveys had no species left and were dropped"
        out.append(text + ")")
    return out


#: How the decoder's settings read in the report (a key not listed here is shown under its own name).
DECODER_FIELDS: dict[str, str] = {
    "kind": "decoder",
    "method": "method",
    "k": "set size k",
    "k_min": "smallest set",
    "k_max": "largest set",
    "threshold": "threshold",
    "theta": "threshold",
    "a": "calibration slope a",
    "b": "calibration intercept b",
    "f1": "validation sample-F1 (all validation surveys)",
    "f1_uncorrected": "validation sample-F1 before calibration",
}


def decoder_settings(decoder: dict[str, Any]) -> list[tuple[str, str]]:
    """The fitted decoder's settings as (readable name, value) pairs; numbers to 4 significant decimals."""
    rows = []
    for k, v in decoder.items():
        if k == "name" and v == decoder.get("kind"):
            continue
        value = f"{v:.4g}" if isinstance(v, float) else _n(v)
        rows.append((DECODER_FIELDS.get(k, k.replace("_", " ")), value))
    return rows


def _holdout(rep: dict[str, Any]) -> str:
    v = rep["config"]["validation"]
    how = (
        "drawn toward the test surveys' locations (`test_like`, for a shifted test set)"
        if v.get("scheme") == "test_like"
        else "drawn uniformly"
    )
    return (
        f"Hold-out: whole {v['block_km']:g} km blocks (EPSG:3035) {how}, {v['val_fraction']:.0%} of training "
        f"surveys, seed {rep['config']['seed']}. The decoder is fitted on one half of the held-out blocks and scored "
        "on the other, and vice versa."
    )


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
        _holdout(rep),
        "",
        "| model | decoder | sample-F1 | micro-P | micro-R | micro-F1 |",
        "|---|---|---|---|---|---|",
        f"| **{rep['config']['model']['kind']}** | {rep['decoder'].get('kind')} | **{v['sample_f1']:.4f}** "
        f"| {v['micro_precision']:.4f} | {v['micro_recall']:.4f} | {v['micro_f1']:.4f} |",
    ]
    for name, b in rep["baselines"].items():
        lines.append(
            f"| {name} (reference) | topk | {b['sample_f1']:.4f} | "
            f"{b['micro_precision']:.4f} | {b['micro_recall']:.4f} | {b['micro_f1']:.4f} |"
        )
    if rep.get("po_correction"):
        p = rep["po_correction"]
        lines += [
            "",
            f"PO output correction (Tighnari; N={p['params']['n_train']}, L={p['params']['min_train_count']}, "
            f"A={p['params']['n_po']}, M={p['params']['min_po_count']}): sample-F1 {p['sample_f1_without']:.4f} "
            f"without, **{p['sample_f1_with']:.4f}** with ({p['mean_added']:.2f} species added per survey, "
            f"{p['surveys_changed']} of {p['n_surveys']} surveys changed).",
        ]
    if rep.get("ranking"):
        r = rep["ranking"]
        lines += [
            "",
            f"Ranking (GLC2020's metrics, validation scores): top-30 accuracy {r['top30_accuracy']:.4f}, "
            f"adaptive top-30 accuracy {r['adaptive_top30_accuracy']:.4f} "
            "(a survey counts when one of its species is ranked in).",
        ]
    if rep.get("decoders"):
        lines += [
            "",
            "## Decoders on the same validation scores (cross-fitted)",
            "",
            "| decoder | sample-F1 | micro-F1 |",
            "|---|---|---|",
        ]
        for name, r in sorted(rep["decoders"].items(), key=lambda kv: -kv[1]["sample_f1"]):
            lines.append(f"| {name} | {r['sample_f1']:.4f} | {r['micro_f1']:.4f} |")
    d = rep["data"]
    lines += [
        "",
        "## Data",
        "",
        f"- {survey_counts(d)}",
        *(f"- {line}" for line in rejected_rows(d["bad_rows"])),
        "",
        "## Decoder used for the submission (fitted on all validation surveys)",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in decoder_settings(rep["decoder"])),
        "",
    ]
    if rep.get("figures"):
        lines += ["## Figures", "", "In `report.html` (same folder): " + "; ".join(rep["figures"]) + ".", ""]
    if rep.get("richness_map"):
        lines += [f"Richness map (GeoTIFF): `{rep['richness_map']}`", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- figures + HTML
@dataclass(frozen=True)
class Figure:
    """One report figure: a title, a caption and the PNG bytes."""

    title: str
    caption: str
    png: bytes


def report_figures(
    rep: dict[str, Any],
    extras: dict[str, Any],
    training_csv: Path | None = None,
    patch_image: np.ndarray | None = None,
    map_png: Path | None = None,
    encoders: dict[str, Path] | None = None,
) -> tuple[list[Figure], list[str]]:
    """The report's figures (:mod:`glc.eval.plots`) and a note for each one that does not apply to this model.

    ``encoders``: name -> artifact folder of each pretrained encoder whose embeddings the model reads (its pretraining
    curve, and the SatCLIP similarity heatmap, become figures)."""
    from glc.eval import plots
    from glc.eval.split import block_ids

    cfg = rep["config"]
    vt = extras["val_train"]
    ids = vt["surveyId"].astype(int).to_numpy()
    figs: list[Figure] = []
    notes: list[str] = []
    blocks, _ = block_ids(vt["x"].to_numpy(), vt["y"].to_numpy(), cfg["validation"]["block_km"])
    figs.append(
        Figure(
            "Validation sample-F1 by model",
            f"The experiment's model and the reference lines on the same held-out surveys ({len(ids)}); bars are the "
            "mean per-survey F1, whiskers a 90 % interval from resampling whole spatial blocks.",
            plots.f1_by_model(extras["per_survey_f1"], blocks, highlight=main_label(cfg), seed=int(cfg["seed"])),
        )
    )
    if rep.get("decoders"):
        figs.append(
            Figure(
                "Set decoders on the same scores",
                "Cross-fitted validation sample-F1 of each decoder (the experiment's in red).",
                plots.decoder_comparison(
                    {k: v["sample_f1"] for k, v in rep["decoders"].items()}, used=rep["decoder"].get("kind")
                ),
            )
        )
    else:
        notes.append("decoder comparison: off (decoder.compare = false)")
    sc = extras["val_scores"]
    truth = extras["truth"]
    hit = np.zeros(sc.prob.shape, bool)
    for i, sid in enumerate(sc.survey_ids):
        hit[i] = np.isin(sc.species[i], truth[int(sid)])
    figs.append(
        Figure(
            "Reliability diagram",
            f"Every top-{sc.prob.shape[1]} validation score: predicted probability vs how often the species "
            "is present. On the diagonal = calibrated (what expected-F1 decoding assumes).",
            plots.reliability_diagram(sc.prob, hit),
        )
    )
    main_sets = extras["sets"][main_label(cfg)]
    figs.append(
        Figure(
            "Predicted vs true species count",
            "Size of the decoded set of each validation survey against its true number of species.",
            plots.species_count(
                np.array([len(truth[i]) for i in ids]), np.array([len(main_sets.get(int(i), [])) for i in ids])
            ),
        )
    )
    figs.append(
        Figure(
            "Per-survey F1 of the validation surveys",
            "Each held-out survey at its location, coloured by its F1.",
            plots.f1_map(vt["lon"].to_numpy(), vt["lat"].to_numpy(), extras["per_survey_f1"][main_label(cfg)]),
        )
    )
    if training_csv is not None and Path(training_csv).exists():
        figs.append(
            Figure(
                "Training curves",
                f"Per-epoch metrics of the trained model ({Path(training_csv).name}).",
                plots.training_curves(training_csv),
            )
        )
    else:
        notes.append("training curves: the model is fitted in memory (no training epochs)")
    if patch_image is not None:
        figs.append(
            Figure(
                "DCT compression of a satellite patch",
                "A training patch (RGB) and its reconstruction from the top-left k x k block of "
                "its 2-D DCT per channel — what the tile models read.",
                plots.dct_strip(patch_image),
            )
        )
    if map_png is not None and Path(map_png).exists():
        figs.append(
            Figure(
                "Richness map",
                "Sum of every species' probability on a grid over the data extent (land only).",
                Path(map_png).read_bytes(),
            )
        )
    else:
        notes.append(
            "richness map: the model reads inputs a new point does not have (patches, cubes), so it cannot map"
        )
    for name, folder in (encoders or {}).items():
        summary = json.loads((Path(folder) / "summary.json").read_text())
        ev = summary.get("evaluation", {})
        if summary.get("curve"):
            what = (
                f"held-out triplet accuracy {ev['heldout_triplet_acc']:.4f}"
                if "heldout_triplet_acc" in ev
                else (
                    f"retrieval median error {ev['trained']['median_km']:.0f} km "
                    f"vs {ev['random']['median_km']:.0f} km with random embeddings"
                )
                if "trained" in ev
                else ""
            )
            figs.append(
                Figure(
                    f"Pretraining of encoder {name}",
                    f"Per-epoch validation metrics of {summary['kind']} "
                    f"({summary['objective']} objective) on held-out sites; {what}.",
                    plots.pretraining_curve(summary["curve"], f"{name} ({summary['kind']})"),
                )
            )
        else:
            notes.append(f"pretraining curve of {name}: not trained (max_epochs = 0, a control)")
        heat = Path(folder) / str(ev.get("heatmap", ""))
        if ev.get("heatmap") and heat.is_file():
            figs.append(
                Figure(
                    f"{name}: location-embedding similarity",
                    "Cosine similarity of the location embedding of every "
                    "point of a lon/lat grid to the embedding at the reference point (star).",
                    heat.read_bytes(),
                )
            )
    return figs, notes


def _table(head: list[str], rows: list[list[Any]]) -> str:
    from html import escape

    th = "".join(f"<th>{escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render_html(rep: dict[str, Any], figures: list[Figure], notes: list[str] = ()) -> str:
    """A self-contained HTML report: the tables of :func:`render_markdown` and every figure embedded as a PNG."""
    import base64
    from html import escape

    v = rep["validation"]
    rows = [
        [
            f"{main_label(rep['config'])}",
            rep["decoder"].get("kind"),
            f"{v['sample_f1']:.4f}",
            f"{v['micro_precision']:.4f}",
            f"{v['micro_recall']:.4f}",
            f"{v['micro_f1']:.4f}",
        ]
    ]
    rows += [
        [
            f"{n} (reference)",
            "topk",
            f"{b['sample_f1']:.4f}",
            f"{b['micro_precision']:.4f}",
            f"{b['micro_recall']:.4f}",
            f"{b['micro_f1']:.4f}",
        ]
        for n, b in rep["baselines"].items()
    ]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>glc report: {escape(rep['experiment'])}</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}figure{margin:2em 0}"
        "figcaption{color:#555;font-size:90%}img{max-width:100%}</style></head><body>",
        f"<h1>glc report — experiment <code>{escape(rep['experiment'])}</code></h1>",
        f"<p>Data root <code>{escape(rep['data_root'])}</code> · generated {escape(rep['generated_at'])}</p>",
        "<h2>Validation (spatial hold-out, cross-fitted decoder)</h2>",
        _table(["model", "decoder", "sample-F1", "micro-P", "micro-R", "micro-F1"], rows),
    ]
    if rep.get("po_correction"):
        p = rep["po_correction"]
        parts += [
            "<h2>PO output correction</h2>",
            _table(
                ["", ""],
                [
                    [
                        "parameters (N, L, A, M)",
                        f"{p['params']['n_train']}, {p['params']['min_train_count']}, "
                        f"{p['params']['n_po']}, {p['params']['min_po_count']}",
                    ],
                    ["sample-F1 without", f"{p['sample_f1_without']:.4f}"],
                    ["sample-F1 with", f"{p['sample_f1_with']:.4f}"],
                    ["species added per survey", f"{p['mean_added']:.2f}"],
                    ["surveys changed", f"{p['surveys_changed']} of {p['n_surveys']}"],
                ],
            ),
        ]
    if rep.get("decoders"):
        parts += [
            "<h2>Decoders on the same validation scores</h2>",
            _table(
                ["decoder", "sample-F1", "micro-F1"],
                [
                    [k, f"{r['sample_f1']:.4f}", f"{r['micro_f1']:.4f}"]
                    for k, r in sorted(rep["decoders"].items(), key=lambda kv: -kv[1]["sample_f1"])
                ],
            ),
        ]
    d = rep["data"]
    parts += [
        "<h2>Data</h2>",
        "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in [survey_counts(d), *rejected_rows(d["bad_rows"])]) + "</ul>",
        "<h2>Decoder used for the submission</h2>",
        _table(["setting", "value"], [list(r) for r in decoder_settings(rep["decoder"])]),
    ]
    parts.append("<h2>Figures</h2>")
    for f in figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        parts.append(
            f"<figure><h3>{escape(f.title)}</h3><img alt='{escape(f.title)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{escape(f.caption)}</figcaption></figure>"
        )
    if notes:
        parts.append("<h3>Not shown</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
