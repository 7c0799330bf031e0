"""The gbm kind: LightGBM re-ranking of candidates, trained on out-of-fold pairs."""

from __future__ import annotations

import numpy as np

from glc.config import resolve
from glc.experiment import fit_predict
from glc.metrics import score_submission
from glc.models.gbm import GBMReranker
from tests.fakes import toy_surveys


def _f1(table, truth, k=8):
    return score_submission({int(s): truth[int(s)] for s in table.survey_ids}, {int(s): table.species[i, :k] for i, s in enumerate(table.survey_ids)})["sample_f1"]


def test_gbm_learns_the_niche_neighbours_miss_and_is_deterministic() -> None:
    df = toy_surveys(700, seed=1)
    # move every survey's (env, species) to a random other location: neighbours and regions carry no signal any
    # more, the environment still does (only the niche-distance feature can find it)
    perm = np.random.default_rng(0).permutation(len(df))
    df["env"] = [df["env"].iloc[i] for i in perm]
    df["speciesIds"] = [df["speciesIds"].iloc[i] for i in perm]
    train, query = df[df["y"] < 3.3e6], df[df["y"] >= 3.3e6]
    truth = dict(zip(df["surveyId"].astype(int), df["speciesIds"]))
    cfg = {"kind": "gbm", "top_n": 60, "features": ["env"], "n_candidates": 40, "n_estimators": 60, "inner_folds": 3, "block_km": 20.0, "threads": 1}
    m = GBMReranker(cfg, seed=0).fit(train)
    a = m.predict(query, 60)
    assert a.prob.max() <= 1.0 and a.prob.min() >= 0.0 and 0.5 < m.info_["oof_candidate_recall"] <= 1.0
    assert m.info_["top_features"][0]["importance"] > 0
    b = GBMReranker(cfg, seed=0).fit(train).predict(query, 60)
    assert np.array_equal(a.species, b.species) and np.array_equal(a.prob, b.prob)
    knn = fit_predict(train, query, resolve({"model": {"kind": "knn", "k": 10, "top_n": 60}}))
    assert _f1(a, truth, 4) > _f1(knn, truth, 4) + 0.05
