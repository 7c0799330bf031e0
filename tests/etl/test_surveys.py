"""SurveyTable: one row per survey, typed and projected; bad rows counted and quarantined, never silently dropped."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from glc.data.layout import Layout
from glc.etl.surveys import BadRowsError, build_survey_table, write_survey_table
from tests.fakes import BAD_ROWS, QUARANTINED_ROWS, make_fake_metadata


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
    assert report["empty_species_rows"] == 1 and report["surveys_without_species"] == 1
    q = bad.toPandas()
    assert Counter(q["reason"]) == Counter(reason for _, reason in QUARANTINED_ROWS)
    assert q["raw"].str.contains("990001").any()


def test_too_many_bad_rows_fail_naming_the_file(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", n_train=5, seed=2)
    with pytest.raises(BadRowsError, match=r"GLC24_PA_metadata_train\.csv: 3 of \d+ rows are malformed"):
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
    assert list(df.columns) == [
        "surveyId",
        "lon",
        "lat",
        "x",
        "y",
        "year",
        "region",
        "country",
        "areaInM2",
        "geoUncertaintyInM",
        "split",
        "speciesIds",
    ]


# ---------------------------------------------------------------------------------------------------------------
# No silent loss: line numbers, test rows, conflicting duplicates, the study area, BOM
# ---------------------------------------------------------------------------------------------------------------
def _append(path, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line)


def test_quarantine_rows_carry_their_line_numbers(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", seed=5)
    _, bad, report = build_survey_table(spark, Layout(tmp_path / "w"), max_bad_fraction=0.1)
    q = bad.toPandas().sort_values("line")
    assert list(q["line"]) == [6, 7, 8, 9]  # the fake writes its 4 bad rows after the 4th data line
    lines = (tmp_path / "w" / "GLC24_PA_metadata_train.csv").read_text().splitlines()
    assert all(lines[ln - 1].rstrip() == expected.rstrip() for ln, (expected, _) in zip(q["line"], QUARANTINED_ROWS))
    assert report["train_rows"]["examples"][0].startswith("line 6: ")


def test_bad_test_row_never_drops_a_survey(spark, tmp_path):
    """A malformed PA-test row is an error naming file, line and reason by default (never a smaller submission);
    with the fallback policy it is quarantined with its line and counted, for Submission to predict."""
    make_fake_metadata(tmp_path / "w", seed=6, bad_rows=False)
    test_csv = tmp_path / "w" / "GLC24_PA_metadata_test.csv"
    _append(test_csv, "2.5,north,2019,10.0,100.0,ATLANTIC,France,990777\n")  # line 32
    with pytest.raises(
        BadRowsError,
        match=(
            r"GLC24_PA_metadata_test\.csv: 1 test metadata row\(s\) are unusable "
            r"\(line 32: lon/lat not numeric\)\. A test survey is never dropped"
        ),
    ):
        build_survey_table(spark, Layout(tmp_path / "w"))
    surveys, bad, report = build_survey_table(
        spark, Layout(tmp_path / "w"), max_bad_fraction=0.1, bad_test_rows="fallback"
    )
    assert report["test_rows"]["bad_rows"] == 1 and report["bad_test_rows_policy"] == "fallback"
    q = bad.toPandas()
    assert list(q["line"]) == [32] and q["file"].str.endswith("GLC24_PA_metadata_test.csv").all()
    assert 990777 not in set(surveys.toPandas()["surveyId"])


def test_conflicting_duplicate_survey_rows_are_counted_and_quarantined(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", seed=7, bad_rows=False)
    train_csv = tmp_path / "w" / "GLC24_PA_metadata_train.csv"
    df = pd.read_csv(train_csv)
    sid = int(df["surveyId"].iloc[0])
    n_rows = int((df["surveyId"] == sid).sum())
    _append(train_csv, f"10.0,50.0,2018,1.0,10.0,ALPINE,Germany,17.0,{sid}\n")  # same id, another place and year
    surveys, bad, report = build_survey_table(spark, Layout(tmp_path / "w"), max_bad_fraction=0.5)
    reason = "surveyId repeated with conflicting metadata (lon/lat/year/region/country/area/uncertainty)"
    assert report["train_rows"]["by_reason"] == {reason: n_rows + 1}
    assert sid not in set(surveys.toPandas()["surveyId"])  # which place is right is unknowable: the survey is out
    assert (bad.toPandas()["reason"] == reason).sum() == n_rows + 1
    with pytest.raises(BadRowsError, match="conflicting metadata"):
        build_survey_table(spark, Layout(tmp_path / "w"), max_bad_fraction=0.0)


def test_coordinates_outside_the_study_area_are_rejected(spark, tmp_path):
    make_fake_metadata(tmp_path / "w", seed=8, bad_rows=False)
    _append(tmp_path / "w" / "GLC24_PA_metadata_train.csv", "170.0,45.0,2019,1.0,10.0,ALPINE,France,17.0,990888\n")
    surveys, bad, report = build_survey_table(spark, Layout(tmp_path / "w"), max_bad_fraction=0.5)
    assert list(report["train_rows"]["by_reason"]) == [
        "lon/lat outside the GLC study area (lon -32.26344..35.58677, lat 26.63842..72.18392)"
    ]
    assert 990888 not in set(surveys.toPandas()["surveyId"])


def test_bom_is_read_like_the_python_readers(spark, tmp_path):
    from glc.data.metadata import read_pa_metadata

    make_fake_metadata(tmp_path / "w", seed=9, bad_rows=False)
    test_csv = tmp_path / "w" / "GLC24_PA_metadata_test.csv"
    test_csv.write_bytes(b"\xef\xbb\xbf" + test_csv.read_bytes())
    surveys, _, report = build_survey_table(spark, Layout(tmp_path / "w"))
    spark_ids = set(surveys.toPandas().query("split == 'test'")["surveyId"])
    assert spark_ids == set(read_pa_metadata(test_csv, "test")["surveyId"]) and len(spark_ids) == 30


def test_glc25_test_id_in_the_train_range_is_a_bad_test_row(spark, tmp_path):
    """GLC25 numbers its test surveys from 5,000,000: a test row below that fails naming the file, line and floor."""
    root = tmp_path / "g"
    make_fake_metadata(root, seed=7, bad_rows=False)
    test = pd.read_csv(root / "GLC24_PA_metadata_test.csv")
    test["surveyId"] = 5_000_000 + np.arange(len(test))
    test.loc[3, "surveyId"] = 4_999_999
    test.to_csv(root / "GLC25_PA_metadata_test.csv", index=False)
    (root / "GLC24_PA_metadata_train.csv").rename(root / "GLC25_PA_metadata_train.csv")
    (root / "GLC24_PA_metadata_test.csv").unlink()
    layout = Layout(root, "glc25")
    with pytest.raises(
        BadRowsError,
        match=r"GLC25_PA_metadata_test\.csv: 1 test metadata row\(s\) are unusable \(line 5: "
        r"surveyId below 5,000,000, the first test id of this edition",
    ):
        build_survey_table(spark, layout)
    test.loc[3, "surveyId"] = 5_000_003
    test.to_csv(root / "GLC25_PA_metadata_test.csv", index=False)
    surveys, _, report = build_survey_table(spark, layout)
    assert report["test_rows"]["bad_rows"] == 0 and surveys.where("split = 'test'").count() == len(test)
