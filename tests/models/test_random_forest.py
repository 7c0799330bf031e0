"""GLC2020 random forest: survey -> (survey, species) rows, multi-class forest, probability scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glc.metrics import score_submission
from glc.models.random_forest import RandomForestModel, expand_surveys
from tests.fakes import toy_surveys


def test_expansion_keeps_every_pair_once() -> None:
    lists = [np.array([3, 1, 3]), np.array([], np.int64), np.array([7])]
    rows, sp = expand_surveys(lists)
    assert sorted(zip(rows.tolist(), sp.tolist())) == [(0, 1), (0, 3), (2, 7)]
    rows, sp = expand_surveys(lists, keep=np.array([3, 7]))
    assert sorted(zip(rows.tolist(), sp.tolist())) == [(0, 3), (2, 7)]


def test_forest_learns_the_environment_and_caps_classes() -> None:
    df = toy_surveys(500, seed=2)
    train, query = df.iloc[:400], df.iloc[400:]
    cfg = {"kind": "random_forest", "top_n": 60, "features": ["env"], "n_estimators": 30, "max_depth": 8, "threads": 1}
    m = RandomForestModel(cfg, seed=0).fit(train)
    t = m.predict(query, 60)
    assert m.info_["rows"] == sum(len(np.unique(s)) for s in train["speciesIds"]) and m.info_["dropped_pairs"] == 0
    assert t.prob.max() <= 1.0 and np.isfinite(t.prob).all()
    truth = {int(s): v for s, v in zip(query["surveyId"], query["speciesIds"])}
    f1 = score_submission(truth, {int(s): t.species[i, :5] for i, s in enumerate(t.survey_ids)})["sample_f1"]
    # global-frequency top 5 as the reference
    glob = pd.Series(np.concatenate(list(train["speciesIds"]))).value_counts().index[:5].to_numpy()
    f1_glob = score_submission(truth, {s: glob for s in truth})["sample_f1"]
    assert f1 > f1_glob + 0.1
    small = RandomForestModel({**cfg, "max_classes": 10}, seed=0).fit(train)
    assert len(small.rf_.classes_) == 10 and small.info_["dropped_pairs"] > 0


def test_bad_env_row_is_an_error_not_a_zero() -> None:
    df = toy_surveys(50)
    df.at[3, "env"] = np.full(5, np.nan)
    with pytest.raises(ValueError, match="survey 4"):
        RandomForestModel({"kind": "random_forest", "top_n": 10, "features": ["env"], "n_estimators": 2}).fit(df)
