"""GLC2020 run 1: a random forest on environmental vectors (``model.kind = "random_forest"``), scikit-learn.

GLC2020 (LIRMM/Inria) trained on single-species occurrences, so the forest is a **multi-class** classifier whose
``predict_proba`` is a distribution over species ("which species is this occurrence?"). We do the same with presence
surveys: each training survey is expanded into one row per present species (:func:`expand_surveys`; every (survey,
species) pair exactly once), all rows of a survey sharing its feature vector, and species are ranked by
``predict_proba``. To give the set decoders presence-probability-like scores, the distribution is multiplied by the
mean number of species per training survey and clipped to 1 (``p_s ≈ P(s | occurrence) · E[#species]``); the
``expected_f1_platt`` decoder calibrates further.

Features: :class:`glc.features.tabular.TabularEncoder` — the ``features`` sets joined into the frame (``env``: 46
bioclim, elevation, land-cover, human-footprint and soil values), location (lon/lat/x/y), year, area, region and
country codes, and ``feat_*`` columns (real human-footprint raster values on the real surveys); NaN splits natively.

Cost: a tree node stores a class histogram, so memory is ``nodes x n_classes x 8`` bytes per tree (depth 10: up to
2,047 nodes; 11,255 species -> ~184 MB per tree, 18 GB for 100 trees; measured on the full-scale synthetic world,
7,820 species: 11.5 GB of trees, 13.1 GB peak RSS, 353 s on 2 cores), and each split scan is ``O(n_classes)`` per
distinct feature value. ``max_classes`` keeps the most frequent species (the rest are dropped from the training rows
and counted); ``max_samples`` bootstraps fewer rows per tree. ``bench/random_forest.py`` measures time and peak RSS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from glc.features.tabular import TabularEncoder, describe
from glc.models.gbm import tabular_feature_sets
from glc.models.registry import ModelSpec, register
from glc.params import Param
from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

__all__ = ["RandomForestModel", "expand_surveys", "fit_predict_random_forest"]


def expand_surveys(species_lists: list[Any], keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One row per (survey, species) pair: ``(survey row index, species id)``; duplicates within a survey count once.

    Args:
        species_lists: species ids per survey.
        keep: optional sorted species ids to keep (others dropped).
    """
    lists = [np.unique(np.asarray(s, np.int64)) for s in species_lists]
    if keep is not None:
        lists = [a[np.isin(a, keep)] for a in lists]
    rows = np.repeat(np.arange(len(lists)), [len(a) for a in lists])
    sp = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    return rows.astype(np.int64), sp


class RandomForestModel:
    """Multi-class random forest over expanded survey rows (module docstring)."""

    def __init__(self, model_cfg: Mapping[str, Any], seed: int = 0) -> None:
        self.cfg = {**{k: p.default for k, p in RF_PARAMS.items()}, **dict(model_cfg)}
        self.seed = int(seed)
        self.info_: dict[str, Any] = {}

    def fit(self, train: pd.DataFrame) -> RandomForestModel:
        """Expand ``train`` and fit the forest."""
        from sklearn.ensemble import RandomForestClassifier

        t0 = time.time()
        train = train.reset_index(drop=True)
        c = self.cfg
        self.enc_ = TabularEncoder(arrays=tuple(c["features"])).fit(train)
        X = self.enc_.transform(train)
        keep = None
        n_pairs_all = sum(len(np.unique(np.asarray(s))) for s in train["speciesIds"])
        if int(c["max_classes"]):
            sp_all = np.concatenate([np.unique(np.asarray(s, np.int64)) for s in train["speciesIds"]])
            u, cnt = np.unique(sp_all, return_counts=True)
            keep = np.sort(u[np.lexsort((u, -cnt))[: int(c["max_classes"])]])
        rows, sp = expand_surveys(list(train["speciesIds"]), keep)
        if len(rows) == 0:
            raise ValueError("random_forest: no (survey, species) row to train on")
        self.mean_count_ = float(n_pairs_all / len(train))
        max_samples = float(c["max_samples"]) if float(c["max_samples"]) < 1.0 else None
        self.rf_ = RandomForestClassifier(
            n_estimators=int(c["n_estimators"]),
            max_depth=int(c["max_depth"]) or None,
            max_features=c["max_features"],
            min_samples_leaf=int(c["min_samples_leaf"]),
            max_samples=max_samples,
            n_jobs=int(c["threads"]),
            random_state=self.seed,
        ).fit(X[rows], sp)
        self.info_ = {
            "rows": int(len(rows)),
            "surveys": int(len(train)),
            "classes": int(len(self.rf_.classes_)),
            "dropped_pairs": int(n_pairs_all - len(rows)),
            "fit_seconds": round(time.time() - t0, 2),
            "top_features": describe(self.enc_.names_, self.rf_.feature_importances_),
        }
        log.info(
            "random_forest: %d rows (%d surveys, %d species; %d rare pairs dropped) fitted in %.1f s",
            len(rows),
            len(train),
            len(self.rf_.classes_),
            self.info_["dropped_pairs"],
            self.info_["fit_seconds"],
        )
        return self

    def predict(self, query: pd.DataFrame, n: int) -> ScoreTable:
        """Top-``n`` table: ``min(1, predict_proba * mean species count)``."""
        P = self.rf_.predict_proba(self.enc_.transform(query.reset_index(drop=True)))
        P = np.minimum(P * self.mean_count_, 1.0)
        return top_n(query["surveyId"].to_numpy(), P, self.rf_.classes_.astype(np.int64), n)


def fit_predict_random_forest(
    train: pd.DataFrame, query: pd.DataFrame, model_cfg: Mapping[str, Any], seed: int = 0
) -> ScoreTable:
    """Fit :class:`RandomForestModel` on ``train`` and score ``query``."""
    return RandomForestModel(model_cfg, seed).fit(train).predict(query, int(model_cfg["top_n"]))


RF_PARAMS: dict[str, Param] = {
    "features": Param(
        [],
        'feature sets joined as features (GLC2020: ["env"]); none on the real surveys',
        type="list[str]",
        choices=tabular_feature_sets,
    ),
    "n_estimators": Param(100, "trees (GLC2020: 100)", min=1),
    "max_depth": Param(10, "maximum tree depth (GLC2020: 10; 0 = unlimited)", min=0),
    "max_features": Param("sqrt", "features tried per split", choices=("sqrt", "log2")),
    "min_samples_leaf": Param(1, "minimum rows per leaf", min=1),
    "max_samples": Param(
        1.0, "bootstrap rows per tree as a fraction of all rows (1 = all)", min=0.0, max=1.0, min_exclusive=True
    ),
    "max_classes": Param(0, "keep only the most frequent species as classes (0 = all; memory ~ classes)", min=0),
    "threads": Param(2, "parallel jobs", min=1),
}

register(
    ModelSpec(
        "random_forest",
        "GLC2020 random forest on environmental vectors: multi-class over expanded (survey, species) rows",
        runner="memory",
        params=RF_PARAMS,
        features=lambda m: tuple(m["features"]),
        fit_predict=fit_predict_random_forest,
        benchmarks={"random_forest": {}},
    )
)
