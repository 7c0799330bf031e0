"""The gbm kind: LightGBM re-ranking of candidates, trained on out-of-fold pairs."""

from __future__ import annotations

import numpy as np

from glc.config import resolve
from glc.experiment import fit_predict
from glc.metrics import score_submission
from glc.models.gbm import GBMReranker
from tests.fakes import toy_surveys


def _f1(table, truth, k=8):
    return score_submission(
        {int(s): truth[int(s)] for s in table.survey_ids},
        {int(s): table.species[i, :k] for i, s in enumerate(table.survey_ids)},
    )["sample_f1"]


def test_gbm_learns_the_niche_neighbours_miss_and_is_deterministic() -> None:
    df = toy_surveys(700, seed=1)
    # move every survey's (env, species) to a random other location: neighbours and regions carry no signal any
    # more, the environment still does (only the niche-distance feature can find it)
    perm = np.random.default_rng(0).permutation(len(df))
    df["env"] = [df["env"].iloc[i] for i in perm]
    df["speciesIds"] = [df["speciesIds"].iloc[i] for i in perm]
    train, query = df[df["y"] < 3.3e6], df[df["y"] >= 3.3e6]
    truth = dict(zip(df["surveyId"].astype(int), df["speciesIds"]))
    cfg = {
        "kind": "gbm",
        "top_n": 60,
        "features": ["env"],
        "n_candidates": 40,
        "n_estimators": 60,
        "inner_folds": 3,
        "block_km": 20.0,
        "threads": 1,
    }
    m = GBMReranker(cfg, seed=0).fit(train)
    a = m.predict(query, 60)
    assert a.prob.max() <= 1.0 and a.prob.min() >= 0.0 and 0.5 < m.info_["oof_candidate_recall"] <= 1.0
    assert m.info_["top_features"][0]["importance"] > 0
    b = GBMReranker(cfg, seed=0).fit(train).predict(query, 60)
    assert np.array_equal(a.species, b.species) and np.array_equal(a.prob, b.prob)
    knn = fit_predict(train, query, resolve({"model": {"kind": "knn", "k": 10, "top_n": 60}}))
    assert _f1(a, truth, 4) > _f1(knn, truth, 4) + 0.05


def test_gbm_gives_lightgbm_the_folds_unstacked_and_gets_the_stacked_booster(monkeypatch) -> None:
    """The out-of-fold matrices reach LightGBM as a list (no stacked copy at full scale) and the booster is the one
    a single stacked matrix gives, with LightGBM sampling rows for its bins (fewer samples than pairs)."""
    import lightgbm as lgb

    seen: dict = {}
    real_dataset, real_train = lgb.Dataset, lgb.train

    def dataset(data, label, **kw):
        seen.update(data=data, label=label, kw=kw)
        return real_dataset(data, label, **kw)

    def train(params, data, **kw):
        seen.update(params={**params, "bin_construct_sample_cnt": 500}, train_kw=kw)
        return real_train(seen["params"], data, **kw)

    monkeypatch.setattr(lgb, "Dataset", dataset)
    monkeypatch.setattr(lgb, "train", train)
    cfg = {
        "kind": "gbm",
        "top_n": 30,
        "features": ["env"],
        "n_candidates": 30,
        "n_estimators": 20,
        "inner_folds": 3,
        "block_km": 20.0,
        "threads": 1,
    }
    m = GBMReranker(cfg, seed=0).fit(toy_surveys(400, seed=2))
    mats = seen["data"]
    assert isinstance(mats, list) and len(mats) == 3 and all(x.dtype == np.float32 and len(x) for x in mats)
    assert sum(len(x) for x in mats) == m.info_["train_pairs"] > 500
    stacked = real_train(seen["params"], real_dataset(np.vstack(mats), seen["label"], **seen["kw"]), **seen["train_kw"])
    assert stacked.model_to_string() == m.booster_.model_to_string()


def test_gbm_reads_the_protocol_group_neighbours_when_asked() -> None:
    from glc.models.candidates import PAIR_NAMES, PROTOCOL_NAMES

    df = toy_surveys(500, seed=2)
    train, query = df[df["y"] < 3.3e6], df[df["y"] >= 3.3e6]
    cfg = {"kind": "gbm", "top_n": 30, "n_candidates": 30, "n_estimators": 40, "inner_folds": 3, "block_km": 20.0}
    m = GBMReranker({**cfg, "protocol_k": 10}, seed=0).fit(train)
    assert m.names_[: len(PAIR_NAMES) + len(PROTOCOL_NAMES)] == [*PAIR_NAMES, *PROTOCOL_NAMES]
    gain = dict(zip(m.names_, m.booster_.feature_importance("gain")))
    assert gain["protocol_knn"] > 0  # the booster splits on it
    t = m.predict(query, 30)
    assert t.prob.shape == (len(query), 30) and np.isfinite(t.prob).all()
    plain = GBMReranker(cfg, seed=0).fit(train)
    assert not set(PROTOCOL_NAMES) & set(plain.names_)
