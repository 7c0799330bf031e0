"""The experiment pipeline as pure functions: survey table -> scores -> fitted decoder -> sets -> report.

The Luigi tasks in :mod:`glc.tasks.experiment` are thin glue over these functions; tests call them directly.

Validation protocol: the training surveys are split by 10 km spatial blocks in EPSG:3035 (``validation.block_km``,
``validation.val_fraction``, seeded), the model is fitted on the rest and scores the held-out blocks; the decoder
is fitted on those validation scores. The reported sample-F1 is *cross-fitted*: the validation blocks are halved
(by block), the decoder is fitted on one half and scored on the other and vice versa, so the number is not
inflated by tuning the decoder on the surveys it is scored on. For the submission the model is refitted on all
training surveys and the decoder fitted on all validation surveys.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glc.eval.split import validation_mask
from glc.predict.scores import ScoreTable

log = logging.getLogger(__name__)

__all__ = [
    "correct_sets",
    "count_estimates",
    "cross_fitted_f1",
    "cross_fitted_sets",
    "decode",
    "fallback_sets",
    "fit_decoder",
    "fit_predict",
    "predict_experiment",
    "truth_columns",
    "validation_mask",
]


def fit_predict(
    train: pd.DataFrame,
    query: pd.DataFrame,
    cfg: Mapping[str, Any],
    features: Mapping[str, str | Path] | None = None,
) -> ScoreTable:
    """Fit the configured model on ``train`` surveys and score ``query`` surveys (top-N table).

    Dispatches through the model registry (:mod:`glc.models.registry`): ``memory`` kinds call their ``fit_predict``;
    kinds trained from model inputs (``lightning``) get a model-input table written by the one Spark writer
    (:func:`glc.etl.inputs.write_model_inputs`; ``train``'s own spatial hold-out is its ``val`` split, ``query`` its
    ``test`` split) in a temporary folder, are trained on it (early stopping on the hold-out) and score ``query``.

    Args:
        train: labelled surveys (surveyId, lon, lat, x, y, year, region, [country], speciesIds).
        query: surveys to score (same columns but speciesIds).
        cfg: a resolved experiment config (:func:`glc.config.resolve`).
        features: artifact folders of the feature sets a trained kind reads besides ``location``/``meta``
            (name -> folder, e.g. ``{"patch_dct": ".../features/patches/k8"}``); their rows must cover both frames.

    Raises:
        ValueError: a trained kind needs a feature set whose artifact folder was not given.
    """
    from glc.training.runners import runner_of

    spec, runner = runner_of(cfg)
    if not spec.needs_inputs:
        assert spec.fit_predict is not None
        sets = spec.features(cfg["model"])
        if sets:  # in-memory kinds reading feature sets get them as frame columns (glc.features.tabular)
            from glc.features.tabular import join_feature_sets

            lacking = [s for s in sets if s not in (features or {})]
            if lacking:
                raise ValueError(
                    f"model.kind={spec.kind!r} reads feature set(s) {lacking}; "
                    "pass their artifact folders (features={name: folder})"
                )
            train, query = (join_feature_sets(f, {s: features[s] for s in sets}) for f in (train, query))  # type: ignore[index]
        return spec.fit_predict(train, query, cfg["model"])
    return _fit_predict_trained(train, query, cfg, features or {})


def _fit_predict_trained(
    train: pd.DataFrame, query: pd.DataFrame, cfg: Mapping[str, Any], features: Mapping[str, str | Path]
) -> ScoreTable:
    from glc.etl.inputs import read_feature_source, surveys_frame, write_model_inputs
    from glc.features.sets import ALWAYS, resolve_feature_sets
    from glc.spark import get_spark
    from glc.training.runners import runner_of

    spec, runner = runner_of(cfg)
    assert runner.train is not None and runner.predict is not None
    sets = [s for s in resolve_feature_sets(spec.features(cfg["model"])) if s not in ALWAYS]
    lacking = [s for s in sets if s not in features]
    if lacking:
        raise ValueError(
            f"model.kind={spec.kind!r} reads feature set(s) {lacking}; pass their artifact folders "
            f"(features={{name: folder}}) to score it outside the DAG"
        )
    train = train.reset_index(drop=True)
    spark = get_spark()
    val_ids = train.loc[validation_mask(train, cfg, query), "surveyId"].to_numpy(np.int64)
    with tempfile.TemporaryDirectory(prefix="glc-fold-") as d:
        root, work, model_dir = Path(d) / "inputs", Path(d) / "work", Path(d) / "model"
        sources = {s: read_feature_source(spark, s, features[s]) for s in sets}
        write_model_inputs(spark, surveys_frame(spark, train, query), root, val_ids, sources, seed=int(cfg["seed"]))
        summary = runner.train(root, work, cfg, "cv", progress=False, wandb=False, reader="memory")
        model_dir.mkdir()
        for name, src in summary["publish"].items():
            shutil.copy2(src, model_dir / name)
        _, test, _ = runner.predict(root, model_dir, cfg)
    return test


def predict_experiment(
    surveys: pd.DataFrame, cfg: dict[str, Any], features: Mapping[str, str | Path] | None = None
) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    """Validation scores (model fitted without the held-out blocks) and test scores (model fitted on all training);
    ``features``: artifact folders of the feature sets an in-memory kind reads."""
    train = surveys[surveys["split"] == "train"].reset_index(drop=True)
    test = surveys[surveys["split"] == "test"].reset_index(drop=True)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"survey table has {len(train)} training and {len(test)} test surveys; both are needed")
    if train["speciesIds"].isna().any():
        raise ValueError("training surveys without species lists in the survey table; rebuild SurveyTable")
    val = validation_mask(train, cfg, test)
    val_scores = fit_predict(train[~val], train[val], cfg, features)
    test_scores = fit_predict(train, test, cfg, features)
    info = {"n_train": int((~val).sum()), "n_val": int(val.sum()), "n_test": len(test), "model": cfg["model"]["kind"]}
    return val_scores, test_scores, info


def fallback_sets(train_species: list[Any], survey_ids: list[int], k_max: int = 100) -> dict[int, np.ndarray]:
    """The documented fallback prediction for test surveys whose metadata row is unusable (no location, year or
    region to predict from): the global species frequency of the training surveys (calibrated empirical
    probabilities), decoded with expected-F1 (:func:`glc.decoding.expected_f1.decode_expected_f1`). Every such
    survey gets the same set."""
    from glc.decoding.expected_f1 import decode_expected_f1
    from glc.models.frequency import FrequencyModel

    m = FrequencyModel(by_region=False).fit(["all"] * len(train_species), list(train_species))
    P = m.predict(["all"]).astype(np.float64)
    cols = decode_expected_f1(P, k_max=min(int(k_max), P.shape[1]))[0]
    order = np.argsort(-P[0, cols], kind="stable")
    ids = np.asarray(m.vocab, np.int64)[np.asarray(cols)[order]]
    return {int(s): ids for s in survey_ids}


# ---------------------------------------------------------------------------------------------- decoding
def truth_columns(scores: ScoreTable, truth: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Each survey's true species as column indices into its row of ``scores``; a species outside the row's top-N
    gets index N (outside the matrix: it counts as a false negative no decoder can recover)."""
    return scores.truth_columns(truth)


def fit_decoder(
    scores: ScoreTable,
    truth: dict[int, np.ndarray],
    cfg: dict[str, Any],
    kind: str | None = None,
    n_hat: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit the configured set decoder (:data:`glc.decoding.DECODERS`) on validation scores; JSON-able params.

    ``n_hat``: the predicted species count of each row of ``scores`` (:func:`count_estimates`), required by the
    ``count`` decoder.
    """
    from glc.decoding import DECODERS
    from glc.decoding import fit_decoder as fit

    kind = kind or cfg["decoder"]["kind"]
    if kind not in DECODERS:
        raise ValueError(f"decoder.kind={kind!r} is not usable here; valid: {sorted(DECODERS)}")
    if kind == "count" and n_hat is None:
        raise ValueError(
            "decoder.kind='count' needs the species-count model's n_hat per survey (glc.experiment.count_estimates)"
        )
    k_max = min(int(cfg["decoder"]["k_max"]), scores.species.shape[1])
    kw: dict[str, Any] = {}
    if kind == "topk":
        kw["ks"] = range(1, k_max + 1)
    elif kind.startswith("expected_f1"):
        kw["k_max"] = k_max
        kw["prob_rest"] = scores.prob_rest
    elif kind == "threshold_topk":
        kw["Ks"] = range(1, k_max + 1)
    elif kind == "count":
        kw["n_hat"] = np.asarray(n_hat, np.float64)
    if kind == "expected_f1_mc":
        kw["seed"] = int(cfg["seed"])
    params = fit(kind, scores.prob, truth_columns(scores, truth), **kw)
    return {"kind": kind, **params}


def decode(scores: ScoreTable, params: dict[str, Any], n_hat: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Apply fitted decoder parameters: ``{surveyId: species ids}`` (ids in decreasing score order)."""
    from glc.decoding import decode as run

    kind = params["kind"]
    p = {k: v for k, v in params.items() if k != "kind"}
    extras: dict[str, Any] = {"prob_rest": scores.prob_rest} if kind.startswith("expected_f1") else {}
    if kind == "count":
        extras["n_hat"] = n_hat
    return scores.sets_to_ids(run(kind, scores.prob, p, **extras))


def correct_sets(
    sets: Mapping[int, np.ndarray], lists: Mapping[int, Any]
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Tighnari's PO output correction as the last step of decoding: each survey's decoded species ids united with
    its correction list (:class:`glc.tasks.neighbours.POCorrection`: species held by more than L of its N nearest
    training surveys or recorded at more than M of its A nearest PO sites). Only adds species.

    Returns:
        ``(corrected sets, info)``: sets as sorted unique species ids (rank order is not kept: nothing added has a
        rank); info counts the surveys without a list (left as decoded) and the species added.

    Raises:
        ValueError: a correction list holds a negative species id.
    """
    from glc.decoding.correction import apply_corrections

    ids = list(sets)
    rows = {r: np.asarray(lists[s], np.int64) for r, s in enumerate(ids) if s in lists}
    out = apply_corrections([np.asarray(sets[s], np.int64) for s in ids], rows)
    added = np.array([len(o) - len(np.unique(np.asarray(sets[s]))) for o, s in zip(out, ids)], np.int64)
    info = {
        "n_surveys": len(ids),
        "n_without_list": len(ids) - len(rows),
        "species_added": int(added.sum()),
        "mean_added": float(added.mean()) if len(added) else 0.0,
        "surveys_changed": int((added > 0).sum()),
    }
    return dict(zip(ids, out)), info


def count_estimates(
    train_fit: pd.DataFrame, query: pd.DataFrame, scores: ScoreTable, cfg: Mapping[str, Any]
) -> np.ndarray:
    """The species-count model (:func:`glc.decoding.count.fit_predict_counts`) fitted on ``train_fit`` and
    predicted for the surveys of ``scores``, aligned with its rows (``query`` must hold them all)."""
    from glc.decoding.count import fit_predict_counts

    q = query.drop_duplicates("surveyId").set_index("surveyId")
    missing = np.setdiff1d(scores.survey_ids, q.index.to_numpy())
    if len(missing):
        raise ValueError(
            f"count_estimates: {len(missing)} scored survey(s) are not in the query frame (e.g. {missing[:5].tolist()})"
        )
    rows = q.loc[scores.survey_ids].reset_index()
    return fit_predict_counts(train_fit, rows, seed=int(cfg["seed"]))


def cross_fitted_sets(
    scores: ScoreTable,
    truth: dict[int, np.ndarray],
    val_train: pd.DataFrame,
    cfg: dict[str, Any],
    kind: str | None = None,
    n_hat: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """Predicted sets of the validation surveys, each decoded by a decoder fitted on the *other* half of the
    validation blocks (both halves fitted on all when there are too few blocks to halve). ``n_hat``: per row of
    ``scores``, for the ``count`` decoder."""
    from glc.eval.split import spatial_block_folds

    order = pd.Series(np.arange(len(val_train)), index=val_train["surveyId"].to_numpy())
    vt = val_train.iloc[order.loc[scores.survey_ids].to_numpy()]
    folds = np.asarray(
        spatial_block_folds(
            vt["x"].to_numpy(),
            vt["y"].to_numpy(),
            n_folds=2,
            block_km=cfg["validation"]["block_km"],
            seed=cfg["seed"] + 1,
        )
    )
    nh = None if n_hat is None else np.asarray(n_hat, np.float64)
    preds: dict[int, np.ndarray] = {}
    for f in (0, 1):
        if (folds == f).all() or not (folds == f).any():  # too few blocks to halve: fit and score on all
            params = fit_decoder(scores, truth, cfg, kind, nh)
            return decode(scores, params, nh)
        fit_m, dec_m = folds != f, folds == f
        params = fit_decoder(scores.subset(fit_m), truth, cfg, kind, None if nh is None else nh[fit_m])
        preds.update(decode(scores.subset(dec_m), params, None if nh is None else nh[dec_m]))
    return preds


def cross_fitted_f1(
    scores: ScoreTable,
    truth: dict[int, np.ndarray],
    val_train: pd.DataFrame,
    cfg: dict[str, Any],
    kind: str | None = None,
    n_hat: np.ndarray | None = None,
) -> dict[str, float]:
    """Sample-F1 (and micro P/R/F1) of the decoder fitted on one half of the validation blocks, scored on the other."""
    from glc.metrics import score_submission

    preds = cross_fitted_sets(scores, truth, val_train, cfg, kind, n_hat)
    sol = {int(s): truth[int(s)] for s in scores.survey_ids}
    return score_submission(sol, preds)
