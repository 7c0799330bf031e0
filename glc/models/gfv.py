"""GFV scorer: species scores from the survey graph of :mod:`glc.features.graph` (Tighnari's graph feature vectors).

The graph joins a query survey to the training surveys at most ``radius_km`` away with the same year and region,
with weights ``w = radius_km - d``. The GFV itself, ``sum_j w_j y_j / sqrt(deg)``, is a feature, not a probability;
dividing it by the same quantity computed for a species present in every source (``sum_j w_j / sqrt(deg)``) gives
the weighted species frequency among the survey's graph neighbours. That frequency is shrunk towards the region
frequency (:class:`glc.models.frequency.FrequencyModel`) with a pseudo-weight ``prior_weight``::

    p_s = (sum_j w_j y_js + m * prior_s) / (sum_j w_j + m)

so a survey without edges gets the region prior and one with a single distant neighbour is not certain of its
species. The leak rules of :func:`glc.features.graph.graph_features_raw` hold (no self edge, no repeat visit of the
same site).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from glc.features.graph import graph_features_raw
from glc.models.frequency import FrequencyModel
from glc.models.registry import ModelSpec, register
from glc.params import Param
from glc.predict.scores import ScoreTable, top_n


class GFVScorer:
    """Weighted graph-neighbour species frequency, shrunk to the region frequency.

    Args:
        radius_km: edge cutoff and weight origin (Tighnari: 10 km).
        prior_weight: pseudo-weight ``m`` of the region prior (in km of edge weight; 5 = one neighbour 5 km away).
    """

    def __init__(self, radius_km: float = 10.0, prior_weight: float = 5.0) -> None:
        if not prior_weight > 0:
            raise ValueError(f"prior_weight={prior_weight!r} must be > 0 (it is the prior's pseudo edge weight)")
        self.radius_km = float(radius_km)
        self.prior_weight = float(prior_weight)
        self.train_: pd.DataFrame | None = None

    def fit(self, train: pd.DataFrame) -> GFVScorer:
        """Keep the training surveys (surveyId, x, y, year, region, speciesIds) and fit the region prior."""
        need = ["surveyId", "x", "y", "year", "region", "speciesIds"]
        missing = [c for c in need if c not in train.columns]
        if missing:
            raise ValueError(f"GFVScorer.fit: training frame lacks columns {missing}")
        self.train_ = train[need].reset_index(drop=True)
        self.prior_ = FrequencyModel(by_region=True).fit(
            self.train_["region"].astype(str).tolist(), list(self.train_["speciesIds"])
        )
        self.vocab = self.prior_.vocab
        return self

    def predict(self, query: pd.DataFrame) -> np.ndarray:
        """Dense (queries x vocab) scores in [0, 1]."""
        if self.train_ is None:
            raise RuntimeError("GFVScorer.predict called before fit")
        t = self.train_
        vocab = np.asarray(self.vocab, np.int64)
        col = {int(s): i for i, s in enumerate(vocab)}
        labels = [
            np.array([col[int(s)] for s in np.unique(np.asarray(sp, np.int64))], np.int64) for sp in t["speciesIds"]
        ]
        args = (
            query["x"].to_numpy(np.float64),
            query["y"].to_numpy(np.float64),
            query["year"].to_numpy(),
            query["region"].astype(str).to_numpy(),
            t["x"].to_numpy(np.float64),
            t["y"].to_numpy(np.float64),
            t["year"].to_numpy(),
            t["region"].astype(str).to_numpy(),
        )
        kw = {
            "query_ids": query["surveyId"].to_numpy(np.int64),
            "src_ids": t["surveyId"].to_numpy(np.int64),
            "degree": "weighted",
        }
        # degree="weighted" divides by sqrt(sum w): on a species present in every source that is sqrt(sum w) itself.
        num = graph_features_raw(*args, labels, self.radius_km, True, n_species=len(vocab), **kw)
        one = graph_features_raw(*args, [np.zeros(1, np.int64)] * len(t), self.radius_km, True, n_species=1, **kw)
        n = len(query)
        root_w = np.zeros(n)  # sqrt(sum_j w_j), 0 without edges
        root_w[np.repeat(np.arange(n), np.diff(one.indptr))] = one.val
        S = np.zeros((n, len(vocab)), np.float64)  # sum_j w_j y_js
        rows = np.repeat(np.arange(n), np.diff(num.indptr))
        S[rows, num.idx] = num.val.astype(np.float64) * root_w[rows]
        prior = self.prior_.predict(query["region"].astype(str).tolist()).astype(np.float64)
        m = self.prior_weight
        return np.clip((S + m * prior) / (root_w[:, None] ** 2 + m), 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------ registry
def fit_predict_gfv(train: pd.DataFrame, query: pd.DataFrame, model_cfg: Mapping[str, Any]) -> ScoreTable:
    """Fit the scorer on ``train`` and score ``query``: the top ``top_n`` table."""
    g = GFVScorer(radius_km=float(model_cfg["radius_km"])).fit(train)
    return top_n(query["surveyId"].to_numpy(), g.predict(query), g.vocab, int(model_cfg["top_n"]))


register(
    ModelSpec(
        "gfv",
        "Tighnari's survey graph as a scorer: weighted graph-neighbour frequency shrunk to the region prior",
        runner="memory",
        params={"radius_km": Param(10.0, "graph edge cutoff (km)", min=0.0, min_exclusive=True)},
        fit_predict=fit_predict_gfv,
        benchmarks={"gfv10km": {"radius_km": 10.0}},
    )
)
