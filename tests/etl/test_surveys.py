"""SurveyTable: one row per survey, typed and projected; bad rows counted and quarantined, never silently dropped."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from glc.data.layout import Layout
from glc.etl.surveys import BadRowsError, build_survey_table, write_survey_table
from tests.fakes import BAD_ROWS, make_fake_metadata


def test_survey_table_rows_labels_and_projection(spark, tmp_path):
    truth = make_fake_metadata(tmp_path / "w", seed=1)
    surveys, bad, report = build_survey_table(spark, Layout(tmp_path / "w"), max_bad_fraction=0.1)
    df = surveys.toPandas().set_index("surveyId")
    train, test = df[df.split == "train"], df[df.split == "test"]
    assert set(train.index) == set(truth["labels"])
    assert sorted(test.index) == list(truth["test_ids"])
    for sid, sp in truth["labels"].items():
        assert list(train.loc[sid, "speciesIds"]) == sorted(set(sp.tolist()))
    assert test["speciesIds"].isna().all()
    # -inf and empty areaInM2 become null, never -inf
    assert np.isfinite(df["areaInM2"].dropna()).all() and df["areaInM2"].isna().sum() > 0
    # x/y are EPSG:3035, checked against pyproj directly
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", "EPSG:3035", always_xy=True)
    x, y = t.transform(df["lon"].to_numpy(), df["lat"].to_numpy())
    np.testing.assert_allclose(df["x"], x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(df["y"], y, rtol=0, atol=1e-6)
    # every bad row is counted with its reason and kept in the quarantine table
    want = Counter(reason for _, reason in BAD_ROWS)
    assert report["train_rows"]["by_reason"] == dict(want)
    assert report["train_rows"]["bad_rows"] == len(BAD_ROWS)
    assert report["test_rows"]["bad_rows"] == 0
    q = bad.toPandas()
    assert Counter(q["reason"]) == want
    assert q["raw"].str.contains("990001").any()


def test_too_many_bad_rows_fail_naming_the_file(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", n_train=5, seed=2)
    with pytest.raises(BadRowsError, match=r"GLC24_PA_metadata_train\.csv: 4 of \d+ rows are malformed"):
        build_survey_table(spark, Layout(tmp_path / "w"), max_bad_fraction=0.01)


def test_train_test_overlap_is_an_error(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", seed=3, bad_rows=False)
    train = pd.read_csv(tmp_path / "w" / "GLC24_PA_metadata_train.csv")
    test = pd.read_csv(tmp_path / "w" / "GLC24_PA_metadata_test.csv")
    test.loc[0, "surveyId"] = train.loc[0, "surveyId"]
    test.to_csv(tmp_path / "w" / "GLC24_PA_metadata_test.csv", index=False)
    with pytest.raises(ValueError, match="appear in both PA train and PA test"):
        build_survey_table(spark, Layout(tmp_path / "w"))


def test_written_artifact_is_sorted_and_flagged(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", seed=4)
    out = tmp_path / "surveys"
    write_survey_table(spark, Layout(tmp_path / "w"), out, max_bad_fraction=0.1)
    summary = json.loads((out / "_SUCCESS").read_text())
    df = pd.read_parquet(out / "surveys")
    assert summary["surveys"] == {"test": 30, "train": int((df.split == "train").sum())}
    assert df["surveyId"].is_monotonic_increasing and df["surveyId"].is_unique
    assert list(df.columns) == ["surveyId", "lon", "lat", "x", "y", "year", "region", "country", "areaInM2", "geoUncertaintyInM", "split", "speciesIds"]
