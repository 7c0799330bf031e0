"""Gradient-boosted candidate re-ranking (``model.kind = "gbm"``): LightGBM on (survey, species) pairs.

Why a re-ranker and not one model per species: 11,255 per-species models (BernIgen fitted XGBoost per species and
dropped those with < 100 occurrences) cost 11,255 fits on 2 cores and leave the rare species — most of them — to a
prior. A single binary model over *candidate pairs* (:mod:`glc.models.candidates`: the ~150 species per survey that
neighbours and region priors suggest) learns **how much to trust each neighbour signal** given the survey
(distance to the nearest training survey, their density, year, area, region, environment) and the species
(prevalence, distance to its nearest record): one fit of a few hundred thousand rows, every species included.

Why LightGBM (not XGBoost): histogram GBDT with native categorical and NaN handling, fast on 2 CPU cores, a 4 MB
wheel (XGBoost's manylinux wheel pulls ~300 MB of NCCL), and a ``deterministic`` mode for byte-identical reruns.

Training pairs must look like the query pairs: the training surveys are split into ``inner_folds`` spatial-block
folds (``block_km``, seeded); each fold's candidates and features come from a builder fitted on the other folds
(out-of-fold), exactly as a held-out validation block or a test survey sees the training surveys. The queries' pairs
come from a builder fitted on *all* training surveys, and the booster trained on the out-of-fold pairs scores them.
Scores are LightGBM probabilities (binary log-loss), calibrated enough for the expected-F1 decoders; a species that is
not a candidate scores 0.

Survey features: :class:`glc.features.tabular.TabularEncoder` (location, year, area, region/country codes, the
``features`` sets joined into the frame, e.g. ``env``; ``feat_*`` columns such as real human-footprint raster
values) + :func:`glc.features.tabular.context_features`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from glc.features.tabular import CONTEXT_NAMES, TabularEncoder, context_features, describe
from glc.models.candidates import CandidateBuilder, candidate_recall, pair_labels
from glc.models.registry import ModelSpec, register
from glc.params import Param
from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

__all__ = ["GBMReranker", "binary_params", "fit_predict_gbm", "tabular_feature_sets"]


def tabular_feature_sets() -> tuple[str, ...]:
    """Feature sets a tree model can join as tabular columns (one vector per survey)."""
    return ("env",)


GBM_PARAMS: dict[str, Param] = {
    "features": Param(
        [],
        'feature sets joined as survey features (e.g. ["env"]); none on the real surveys',
        type="list[str]",
        choices=tabular_feature_sets,
    ),
    "n_candidates": Param(150, "candidate species per survey (neighbour/region priors); others score 0", min=1),
    "protocol_k": Param(
        0,
        "nearest training surveys of the query's protocol group (country and plot-area class) behind three more pair "
        "features: the species' frequency among them, the distance to the nearest, their mean richness (0: none)",
        min=0,
    ),
    "inner_folds": Param(
        8,
        "spatial-block folds over the training surveys for out-of-fold "
        "training pairs (more folds: training pairs closer to the queries)",
        min=2,
    ),
    "block_km": Param(10.0, "block size (km) of the inner folds", min=0.0, min_exclusive=True),
    "n_estimators": Param(600, "boosting rounds", min=1),
    "learning_rate": Param(0.02, "LightGBM learning rate", min=0.0, min_exclusive=True),
    "num_leaves": Param(15, "leaves per tree", min=2),
    "min_child_samples": Param(200, "minimum pairs per leaf", min=1),
    "subsample": Param(0.8, "row fraction per round (bagging)", min=0.0, max=1.0, min_exclusive=True),
    "colsample": Param(0.8, "feature fraction per tree", min=0.0, max=1.0, min_exclusive=True),
    "threads": Param(2, "LightGBM threads (results are deterministic for a given value)", min=1),
}


def binary_params(c: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """LightGBM parameters of a deterministic binary booster from a ``[model]`` table's tree keys
    (``learning_rate``, ``num_leaves``, ``min_child_samples``, ``subsample``, ``colsample``, ``threads``)."""
    return {
        "objective": "binary",
        "learning_rate": float(c["learning_rate"]),
        "num_leaves": int(c["num_leaves"]),
        "min_child_samples": int(c["min_child_samples"]),
        "bagging_fraction": float(c["subsample"]),
        "bagging_freq": 1,
        "feature_fraction": float(c["colsample"]),
        "lambda_l2": 1.0,
        "seed": int(seed),
        "num_threads": int(c["threads"]),
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


class GBMReranker:
    """LightGBM binary re-ranker over candidate pairs (module docstring).

    Args:
        model_cfg: a resolved ``[model]`` table of kind ``gbm`` (see :data:`GBM_PARAMS`).
        seed: random seed (folds, bagging).
    """

    def __init__(self, model_cfg: Mapping[str, Any], seed: int = 0) -> None:
        self.cfg = {**{k: p.default for k, p in GBM_PARAMS.items()}, **dict(model_cfg)}
        self.seed = int(seed)
        self.info_: dict[str, Any] = {}

    def _builder(self) -> CandidateBuilder:
        c = self.cfg
        return CandidateBuilder(int(c["n_candidates"]), tuple(c["features"]), int(c["protocol_k"]))

    def _survey_block(self, enc: TabularEncoder, train: pd.DataFrame, query: pd.DataFrame) -> np.ndarray:
        return np.hstack([enc.transform(query), context_features(train, query)])

    def _pair_matrix(self, pairs: Any, S: np.ndarray) -> np.ndarray:
        return np.hstack([pairs.features.astype(np.float32), S[pairs.rows].astype(np.float32)])

    def fit(self, train: pd.DataFrame) -> GBMReranker:
        """Out-of-fold candidate pairs of ``train`` -> LightGBM booster."""
        import lightgbm as lgb

        from glc.eval.split import spatial_block_folds

        t0 = time.time()
        train = train.reset_index(drop=True)
        c = self.cfg
        self.enc_ = TabularEncoder(arrays=tuple(c["features"])).fit(train)
        self.names_ = self._builder().names + self.enc_.names_ + list(CONTEXT_NAMES)
        folds = spatial_block_folds(
            train["x"].to_numpy(),
            train["y"].to_numpy(),
            n_folds=int(c["inner_folds"]),
            block_km=float(c["block_km"]),
            seed=self.seed + 17,
        )
        Xs, ys, recall = [], [], []
        for f in range(int(c["inner_folds"])):
            held = folds == f
            src, q = train[~held], train[held].reset_index(drop=True)
            pairs = self._builder().fit(src).pairs(q)
            Xs.append(self._pair_matrix(pairs, self._survey_block(self.enc_, src, q)))
            lists = list(q["speciesIds"])
            ys.append(pair_labels(pairs, lists))
            recall.append(candidate_recall(pairs, lists))
        y = np.concatenate(ys)
        cat = [self.names_.index(n) for n in ("region", "country")]
        params = binary_params(c, self.seed)
        # The folds' matrices go to LightGBM as a list (LGBM_DatasetCreateFromMats: the same bins and booster as one
        # stacked matrix, without the stacked copy: ~3 GB of float32 at 89k surveys x 150 candidates); the Dataset
        # holds the only reference and drops it once binned (free_raw_data).
        data = lgb.Dataset(
            [m for m in Xs if len(m)],
            y,
            feature_name=[n.replace("[", "_").replace("]", "") for n in self.names_],
            categorical_feature=cat,
            free_raw_data=True,
        )
        del Xs
        self.booster_ = lgb.train(params, data, num_boost_round=int(c["n_estimators"]))
        self.train_ = train
        gain = self.booster_.feature_importance("gain")
        self.info_ = {
            "train_pairs": int(len(y)),
            "positive_rate": round(float(y.mean()), 5),
            "oof_candidate_recall": round(float(np.mean(recall)), 4),
            "fit_seconds": round(time.time() - t0, 2),
            "top_features": describe(self.names_, gain / max(gain.sum(), 1e-12)),
        }
        log.info(
            "gbm: %d out-of-fold pairs (%.1f%% positive, candidate recall %.3f) fitted in %.1f s",
            len(y),
            100 * y.mean(),
            self.info_["oof_candidate_recall"],
            self.info_["fit_seconds"],
        )
        return self

    def predict(self, query: pd.DataFrame, n: int) -> ScoreTable:
        """Top-``n`` score table of ``query`` (pairs from a builder fitted on all training surveys)."""
        if not hasattr(self, "booster_"):
            raise RuntimeError("GBMReranker.predict called before fit")
        query = query.reset_index(drop=True)
        builder = self._builder().fit(self.train_)
        pairs = builder.pairs(query)
        p = self.booster_.predict(
            self._pair_matrix(pairs, self._survey_block(self.enc_, self.train_, query)),
            num_threads=int(self.cfg["threads"]),
        )
        if not np.isfinite(p).all():
            raise ValueError("gbm: the booster returned non-finite probabilities")
        vocab = builder.vocab_
        P = np.zeros((len(query), len(vocab)), np.float32)
        P[pairs.rows, np.searchsorted(vocab, pairs.species)] = p
        return top_n(query["surveyId"].to_numpy(), P, vocab, n)


def fit_predict_gbm(
    train: pd.DataFrame, query: pd.DataFrame, model_cfg: Mapping[str, Any], seed: int = 0
) -> ScoreTable:
    """Fit :class:`GBMReranker` on ``train`` and score ``query`` (top ``top_n``)."""
    m = GBMReranker(model_cfg, seed).fit(train)
    return m.predict(query, int(model_cfg["top_n"]))


register(
    ModelSpec(
        "gbm",
        "LightGBM re-ranking of neighbour/region candidate species with survey, environment and neighbour features",
        runner="memory",
        params=GBM_PARAMS,
        features=lambda m: tuple(m["features"]),
        fit_predict=fit_predict_gbm,
        # gbm_protocol: the same with the protocol-group neighbours (the real surveys come from national programmes
        # with their own plot sizes; their nearest neighbours are often another programme's plots)
        benchmarks={"gbm": {}, "gbm_protocol": {"protocol_k": 30}},
    )
)
