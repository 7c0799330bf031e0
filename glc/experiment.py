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
from typing import Any

import numpy as np
import pandas as pd

from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

MODELS = ("frequency", "region_frequency")


def validation_mask(train: pd.DataFrame, cfg: dict[str, Any]) -> np.ndarray:
    """Boolean mask of training surveys held out for validation (whole spatial blocks)."""
    from glc.eval.split import spatial_holdout

    v = cfg["validation"]
    return np.asarray(spatial_holdout(train["x"].to_numpy(), train["y"].to_numpy(), val_fraction=v["val_fraction"], block_km=v["block_km"], seed=cfg["seed"]), bool)


def fit_predict(train: pd.DataFrame, query: pd.DataFrame, cfg: dict[str, Any]) -> ScoreTable:
    """Fit the configured model on ``train`` surveys and score ``query`` surveys (top-N table)."""
    kind = cfg["model"]["kind"]
    if kind in ("frequency", "region_frequency"):
        from glc.models.frequency import FrequencyModel

        m = FrequencyModel(by_region=kind == "region_frequency").fit(train["region"].tolist(), list(train["speciesIds"]))
        return top_n(query["surveyId"].to_numpy(), m.predict(query["region"].tolist()), m.vocab, cfg["model"]["top_n"])
    raise ValueError(f"model.kind={kind!r} is not a known model; valid: {MODELS}")


def predict_experiment(surveys: pd.DataFrame, cfg: dict[str, Any]) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    """Validation scores (model fitted without the held-out blocks) and test scores (model fitted on all training)."""
    train = surveys[surveys["split"] == "train"].reset_index(drop=True)
    test = surveys[surveys["split"] == "test"].reset_index(drop=True)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"survey table has {len(train)} training and {len(test)} test surveys; both are needed")
    if train["speciesIds"].isna().any():
        raise ValueError("training surveys without species lists in the survey table; rebuild SurveyTable")
    val = validation_mask(train, cfg)
    val_scores = fit_predict(train[~val], train[val], cfg)
    test_scores = fit_predict(train, test, cfg)
    info = {"n_train": int((~val).sum()), "n_val": int(val.sum()), "n_test": len(test), "model": cfg["model"]["kind"]}
    return val_scores, test_scores, info


# ---------------------------------------------------------------------------------------------- decoding
def fit_decoder(scores: ScoreTable, truth: dict[int, np.ndarray], cfg: dict[str, Any]) -> dict[str, Any]:
    """Fit the configured set decoder on validation scores; returns JSON-able parameters."""
    from glc.metrics import sample_f1

    kind = cfg["decoder"]["kind"]
    k_max = min(int(cfg["decoder"]["k_max"]), scores.species.shape[1])
    y = [truth[int(s)] for s in scores.survey_ids]
    if kind == "topk":
        best = max(range(1, k_max + 1), key=lambda k: (sample_f1(y, list(scores.species[:, :k])), -k))
        return {"kind": "topk", "k": int(best)}
    raise ValueError(f"decoder.kind={kind!r} is not a known decoder; valid: ('topk',)")


def decode(scores: ScoreTable, params: dict[str, Any]) -> dict[int, np.ndarray]:
    """Apply fitted decoder parameters: ``{surveyId: species ids}``."""
    if params["kind"] == "topk":
        return {int(s): scores.species[i, : params["k"]] for i, s in enumerate(scores.survey_ids)}
    raise ValueError(f"unknown fitted decoder {params!r}")


def cross_fitted_f1(scores: ScoreTable, truth: dict[int, np.ndarray], val_train: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, float]:
    """Sample-F1 (and micro P/R/F1) of the decoder fitted on one half of the validation blocks, scored on the other."""
    from glc.eval.split import spatial_block_folds
    from glc.metrics import score_submission

    order = pd.Series(np.arange(len(val_train)), index=val_train["surveyId"].to_numpy())
    vt = val_train.iloc[order.loc[scores.survey_ids].to_numpy()]
    folds = np.asarray(spatial_block_folds(vt["x"].to_numpy(), vt["y"].to_numpy(), n_folds=2, block_km=cfg["validation"]["block_km"], seed=cfg["seed"] + 1))
    preds: dict[int, np.ndarray] = {}
    for f in (0, 1):
        params = fit_decoder(scores.subset(folds != f), truth, cfg)
        preds.update(decode(scores.subset(folds == f), params))
    sol = {int(s): truth[int(s)] for s in scores.survey_ids}
    return score_submission(sol, preds)
