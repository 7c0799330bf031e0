"""Tabular survey features: survey columns, feature-set vectors, feat_* columns, neighbour context, feature joins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from glc.features.tabular import (
    CONTEXT_NAMES,
    TabularEncoder,
    context_features,
    join_feature_sets,
    oof_context_features,
)
from tests.fakes import toy_surveys


def test_encoder_columns_categories_and_missing_values() -> None:
    df = toy_surveys(80)
    df["feat_lights"] = np.where(np.arange(80) % 10 == 0, np.nan, 3.0)
    enc = TabularEncoder().fit(df)
    X = enc.transform(df)
    assert X.shape == (80, 9 + 5 + 1) and len(enc.names_) == X.shape[1]
    assert enc.names_[-1] == "feat_lights" and enc.n_missing_["feat_lights"] == 8  # counted, left NaN
    assert np.isnan(X[::10, -1]).all() and np.isnan(X[::17, enc.names_.index("log_area")]).all()
    q = df.head(3).copy()
    q["region"] = ["A1", "ZZ", "B2"]
    Xq = enc.transform(q)
    assert np.isnan(Xq[1, enc.names_.index("region")]) and enc.n_unseen_["region"] == 1
    assert Xq[0, enc.names_.index("region")] == enc.categories_["region"].index("A1")


def test_non_finite_feature_vector_raises_never_zero() -> None:
    df = toy_surveys(30)
    enc = TabularEncoder().fit(df)
    bad = df.copy()
    bad.at[4, "env"] = np.array([np.nan, 0, 0, 0, 0.0])
    with pytest.raises(ValueError, match="survey 5 element 0"):
        enc.transform(bad)
    with pytest.raises(ValueError, match="absent"):
        enc.transform(df.drop(columns=["env"]))


def test_context_features_exclude_self_and_repeat_visits() -> None:
    tr = pd.DataFrame(
        {
            "surveyId": [1, 2, 3],
            "x": [4.0e6, 4.0e6, 4.0e6 + 5000],
            "y": [3.0e6] * 3,
            "speciesIds": [np.array([1, 2]), np.array([1]), np.array([1, 2, 3, 4])],
        }
    )
    q = tr.iloc[[0]]
    ctx = context_features(tr, q)[0]
    # survey 2 is a repeat visit of survey 1's site (0 m): excluded like the survey itself; only survey 3 counts
    assert ctx[CONTEXT_NAMES.index("nearest_km")] == pytest.approx(5.0)
    assert ctx[CONTEXT_NAMES.index("n_within_10km")] == 1 and ctx[
        CONTEXT_NAMES.index("nbr_mean_richness")
    ] == pytest.approx(4.0)
    oof = oof_context_features(toy_surveys(200), n_folds=3)
    assert oof.shape == (200, 4) and np.isfinite(oof[:, 0]).all()


def test_join_feature_sets_follows_the_missing_policy(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "env"
    (d / "data").mkdir(parents=True)
    pq.write_table(pa.table({"surveyId": [1, 2], "env": [[1.0, 2.0], [3.0, 4.0]]}), d / "data" / "part-0.parquet")
    (d / "_SUCCESS").write_text(json.dumps({"rows": 2}))
    frame = pd.DataFrame({"surveyId": [2, 1]})
    out = join_feature_sets(frame, {"env": d})
    assert [list(v) for v in out["env"]] == [[3.0, 4.0], [1.0, 2.0]]
    with pytest.raises(ValueError, match=r"1 survey\(s\) have no row"):  # env's policy is "error": never a zero vector
        join_feature_sets(pd.DataFrame({"surveyId": [1, 3]}), {"env": d})
    (d / "_SUCCESS").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        join_feature_sets(frame, {"env": d})
