"""Metadata, survey-table and species-list readers on the real GLC24 files, plus malformed inputs."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import Layout
from glc.data.metadata import (
    read_pa_metadata,
    read_po_metadata,
    read_solution,
    read_species_lists,
    read_submission,
    survey_table,
)

PA_TEST_COLUMNS = ["lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country", "surveyId"]


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV with the standard library, independently of the readers."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


# ----------------------------------------------------------------------------------------------- real PA test
def test_real_pa_test_metadata(real: Path) -> None:
    path = real / "GLC24_PA_metadata_test.csv"
    df = read_pa_metadata(path, "test")
    header, rows = _rows(path)
    col = {c: header.index(c) for c in header}

    assert len(df) == 4716 == len(rows)
    assert list(df.columns) == PA_TEST_COLUMNS
    assert df.dtypes.to_dict() == {
        "lon": np.float64, "lat": np.float64, "year": np.int64, "geoUncertaintyInM": np.float64,
        "areaInM2": np.float64, "region": object, "country": object, "surveyId": np.int64,
    }
    assert df.attrs["bad_rows"] == 0 and df.attrs["bad_row_reasons"] == []
    assert df["surveyId"].is_unique
    ids = np.sort(df["surveyId"].to_numpy())
    assert ids[:4].tolist() == [642, 1792, 3256, 3855] and ids[-2:].tolist() == [3918865, 3919234]

    # areaInM2: exactly the rows written '-inf' or empty are NaN (138 + 553 in the real file), others parse
    raw_area = [r[col["areaInM2"]] for r in rows]
    nan_expected = np.array([a in ("", "-inf", "inf") for a in raw_area])
    assert sum(a == "-inf" for a in raw_area) == 138 and sum(a == "" for a in raw_area) == 553
    np.testing.assert_array_equal(df["areaInM2"].isna().to_numpy(), nan_expected)
    np.testing.assert_array_equal(
        df["areaInM2"].to_numpy()[~nan_expected], [float(a) for a, m in zip(raw_area, nan_expected) if not m]
    )
    raw_geo = [r[col["geoUncertaintyInM"]] for r in rows]
    np.testing.assert_array_equal(df["geoUncertaintyInM"].isna().to_numpy(), [g == "" for g in raw_geo])
    np.testing.assert_array_equal(df["lon"].to_numpy(), [float(r[col["lon"]]) for r in rows])
    np.testing.assert_array_equal(df["lat"].to_numpy(), [float(r[col["lat"]]) for r in rows])
    assert df["region"].tolist() == [r[col["region"]] for r in rows]

    first = df.iloc[0]
    assert (first.lon, first.lat, first.year, first.geoUncertaintyInM, first.areaInM2) == (10.03355, 57.12081, 2019, 10.0, 707.0)
    assert (first.region, first.country, first.surveyId) == ("CONTINENTAL", "Denmark", 642)
    by_id = df.set_index("surveyId")
    assert math.isnan(by_id.loc[3256, "areaInM2"])  # written '-inf'
    assert math.isnan(by_id.loc[1792, "geoUncertaintyInM"])  # written empty

    table = survey_table(df)
    assert len(table) == 4716 and "speciesIds" not in table.columns
    assert table["surveyId"].is_monotonic_increasing


def test_column_order_does_not_matter(real: Path, tmp_path: Path) -> None:
    path = real / "GLC24_PA_metadata_test.csv"
    header, rows = _rows(path)
    perm = [7, 3, 0, 6, 1, 5, 4, 2]
    shuffled = _write(tmp_path / "shuffled.csv", [header[i] for i in perm], [[r[i] for i in perm] for r in rows[:300]])
    pd.testing.assert_frame_equal(read_pa_metadata(shuffled, "test"), read_pa_metadata(path, "test").iloc[:300])


# ----------------------------------------------------------------------------------------------- real PA train excerpts
def test_malpolon_fixture_train_metadata(samples: Path) -> None:
    path = samples / "malpolon_fixture_metadata.csv"
    df = read_pa_metadata(path, "train")
    header, rows = _rows(path)
    assert header[2] == "subset" and "subset" not in df.columns  # extra column ignored
    assert len(df) == 100 and list(df.columns) == [*PA_TEST_COLUMNS, "speciesId"]
    assert df["speciesId"].dtype == np.int64 and df["surveyId"].dtype == np.int64
    np.testing.assert_array_equal(df["speciesId"], [int(float(r[header.index("speciesId")])) for r in rows])
    assert df.iloc[0][["surveyId", "speciesId", "areaInM2"]].tolist() == [1167600, 6310, 79.0]

    i_area, i_sid = header.index("areaInM2"), header.index("surveyId")
    inf_surveys = {int(r[i_sid]) for r in rows if r[i_area] == "-inf"}
    empty_surveys = {int(r[i_sid]) for r in rows if r[i_area] == ""}
    assert inf_surveys == {1322301, 663200}
    assert len(empty_surveys) == 18  # 18 rows written with an empty areaInM2
    assert set(df.loc[df["areaInM2"].isna(), "surveyId"]) == inf_surveys | empty_surveys
    assert math.isnan(df.set_index("surveyId").loc[3242671, "geoUncertaintyInM"])  # the one empty value

    table = survey_table(df)
    assert len(table) == 99 and table["surveyId"].is_monotonic_increasing
    assert table["speciesIds"].map(len).sum() == 100
    two = table.set_index("surveyId").loc[2357522, "speciesIds"]
    assert two.dtype == np.int64 and two.tolist() == [8858, 9816]


def test_jrc_subset_species_lists(samples: Path) -> None:
    path = samples / "jrc_GLC24-PA-data_subset.csv"
    df = read_pa_metadata(path, "train")
    header, rows = _rows(path)
    assert len(df) == 334
    table = survey_table(df).set_index("surveyId")
    assert len(table) == 17
    i_sid, i_sp = header.index("surveyId"), header.index("speciesId")
    for sid in (80000, 1010100, 3510100):
        expected = sorted({int(float(r[i_sp])) for r in rows if int(r[i_sid]) == sid})
        assert table.loc[sid, "speciesIds"].tolist() == expected
    assert table.loc[80000, ["lon", "lat", "year", "region", "country"]].tolist() == [20.476806, 48.130972, 2017, "PANNONIAN", "Hungary"]


def test_survey_table_deduplicates_and_sorts() -> None:
    df = pd.DataFrame({"surveyId": [5, 3, 5, 5, 3], "speciesId": [9, 1, 2, 9, 1], "lon": [1.0, 2.0, 1.5, 1.0, 2.0]})
    table = survey_table(df)
    assert table["surveyId"].tolist() == [3, 5]
    assert [a.tolist() for a in table["speciesIds"]] == [[1], [2, 9]]
    assert table["lon"].tolist() == [2.0, 1.0]  # first row of each survey
    assert table.attrs["duplicate_species_rows"] == 2


def test_seafile_name_is_read(real: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path, "seafile")
    dest = layout.pa_metadata("test")
    dest.parent.mkdir(parents=True)
    dest.write_bytes((real / "GLC24_PA_metadata_test.csv").read_bytes())
    assert dest.name == "GLC24-PA-metadata-test.csv"
    assert len(read_pa_metadata(layout.pa_metadata("test"), "test")) == 4716


# ----------------------------------------------------------------------------------------------- PO
PO_HEADER = ["year", "month", "day", "lat", "lon", "geoUncertaintyInM", "taxonRank", "date", "dayOfYear", "speciesId", "surveyId", "publisher"]


def test_po_metadata_selects_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        ["2019", "5.0", "5.0", "43.5", "3.9", "6.0", "SPECIES", "2019-05-05", "125", "1234.0", "1", "iNaturalist"],
        ["2020", "", "", "48.1", "-1.2", "", "SPECIES", "2020-01-01", "1", "77.0", "2", "x"],
        ["2021", "6.0", "1.0", "50.0", "4.0", "24.9", "SPECIES", "2021-06-01", "152", "", "3", "y"],
    ]
    path = _write(tmp_path / "GLC24_P0_metadata_train.csv", PO_HEADER, rows)
    with caplog.at_level(logging.INFO, logger="glc.data.metadata"):
        df = read_po_metadata(Layout(tmp_path, "kaggle").po_metadata())
    assert Layout(tmp_path, "kaggle").po_metadata() == path
    assert df["surveyId"].tolist() == [1, 2] and df.attrs["dropped_missing_species"] == 1
    assert "dropped 1 row(s) with an empty speciesId" in caplog.text
    assert df["lat"].tolist() == [43.5, 48.1] and df["lon"].tolist() == [3.9, -1.2]  # lat comes first in PO files
    assert df["speciesId"].dtype == np.int64 and df["speciesId"].tolist() == [1234, 77]
    assert math.isnan(df["month"].iloc[1]) and math.isnan(df["geoUncertaintyInM"].iloc[1])
    assert "publisher" not in df.columns and "taxonRank" not in df.columns


# ----------------------------------------------------------------------------------------------- bad input
HEADER = ["lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country", "speciesId", "surveyId"]
GOOD = ["9.67188", "56.18192", "2020", "10.0", "79.0", "CONTINENTAL", "Denmark", "6310.0", "1167600"]


def _bad_file(tmp_path: Path, bad_row: list[str]) -> Path:
    return _write(tmp_path / "bad.csv", HEADER, [GOOD, bad_row, GOOD])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match=r"PA train metadata CSV not found: .*nope\.csv") as info:
        read_pa_metadata(tmp_path / "nope.csv", "train")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DataError)


def test_short_row_names_file_and_line(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, GOOD[:5])
    with pytest.raises(DataError, match=r"bad\.csv: 1 bad row\(s\): line 3: expected 9 comma-separated fields, found 5"):
        read_pa_metadata(path, "train")


def test_long_row(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, [*GOOD, "extra"])
    with pytest.raises(DataError, match=r"line 3: expected 9 comma-separated fields, found 10"):
        read_pa_metadata(path, "train")


def test_non_numeric_lat(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, [GOOD[0], "north", *GOOD[2:]])
    with pytest.raises(DataError, match=r"bad\.csv: .*line 3: lat 'north' is not a number.*on_bad_rows='skip'"):
        read_pa_metadata(path, "train")


def test_out_of_range_lon_and_missing_survey(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 3: lon '200\.5' is outside \[-180, 180\]"):
        read_pa_metadata(_bad_file(tmp_path, ["200.5", *GOOD[1:]]), "train")
    with pytest.raises(DataError, match=r"line 3: surveyId '' is missing"):
        read_pa_metadata(_bad_file(tmp_path, [*GOOD[:-1], ""]), "train")
    with pytest.raises(DataError, match=r"line 3: speciesId '6310\.5' is not an integer"):
        read_pa_metadata(_bad_file(tmp_path, [*GOOD[:7], "6310.5", GOOD[8]]), "train")
    with pytest.raises(DataError, match=r"line 3: areaInM2 'big' is not a number"):
        read_pa_metadata(_bad_file(tmp_path, [*GOOD[:4], "big", *GOOD[5:]]), "train")


def test_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "nospecies.csv", HEADER[:7] + HEADER[8:], [GOOD[:7] + GOOD[8:]])
    with pytest.raises(DataError, match=r"nospecies\.csv: missing column\(s\) \['speciesId'\]"):
        read_pa_metadata(path, "train")
    assert len(read_pa_metadata(path, "test")) == 1


def test_skip_mode_counts_bad_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        GOOD,                                   # line 2
        GOOD[:4],                               # line 3: short
        [GOOD[0], "abc", *GOOD[2:]],            # line 4: non-numeric lat
        [*GOOD, "x"],                           # line 5: long
        [*GOOD[:7], "", "99"],                  # line 6: empty speciesId -> dropped, not bad
        ["1.0", "95.0", *GOOD[2:8], "7"],       # line 7: lat out of range
        [*GOOD[:8], "8"],                       # line 8
    ]
    path = _write(tmp_path / "mixed.csv", HEADER, rows)
    with caplog.at_level(logging.INFO, logger="glc.data.metadata"):
        df = read_pa_metadata(path, "train", on_bad_rows="skip")
    assert df["surveyId"].tolist() == [1167600, 8]
    assert df.attrs["bad_rows"] == 4
    assert [line for line, _ in df.attrs["bad_row_reasons"]] == [3, 4, 5, 7]
    assert "found 4" in df.attrs["bad_row_reasons"][0][1] and "lat '95.0' is outside" in df.attrs["bad_row_reasons"][3][1]
    assert df.attrs["dropped_missing_species"] == 1
    assert "dropped 4 bad row(s)" in caplog.text
    with pytest.raises(DataError, match=r"4 bad row\(s\): line 3: .*line 4: .*line 5: .*line 7: "):
        read_pa_metadata(path, "train")


def test_blank_line_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text(",".join(HEADER) + "\n" + ",".join(GOOD) + "\n\n" + ",".join(GOOD) + "\n")
    with pytest.raises(DataError, match=r"line 3: is a blank line"):
        read_pa_metadata(path, "train")


def test_bad_policy_argument(real: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_rows must be 'raise' or 'skip', got 'ignore'"):
        read_pa_metadata(real / "GLC24_PA_metadata_test.csv", "test", on_bad_rows="ignore")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- species lists
def test_real_solution_file(real: Path) -> None:
    path = real / "GLC24_SOLUTION_FILE.csv"
    sol = read_solution(path)
    _, rows = _rows(path)
    assert len(sol) == 4716
    assert list(sol) == [int(r[0]) for r in rows]  # file order
    test_ids = set(read_pa_metadata(real / "GLC24_PA_metadata_test.csv", "test")["surveyId"])
    assert set(sol) == test_ids
    assert sol[642].dtype == np.int64 and sol[642].tolist() == [int(t) for t in rows[0][1].split()]
    assert sol[642].tolist()[:3] == [6962, 963, 8807]
    assert (sol[1792] == 6689).sum() == 2  # repeats kept as written
    distinct = np.mean([len(set(v.tolist())) for v in sol.values()])
    assert round(distinct, 1) == 17.9
    all_ids = np.unique(np.concatenate(list(sol.values())))
    assert len(all_ids) == 2846 and (all_ids > 11254).sum() == 5  # out-of-vocabulary ids kept


def test_submission_header_and_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub.csv", ["surveyId", "predictions"], [["642", "6962 963 10073"], ["1792", ""]])
    sub = read_submission(path)
    assert sub[642].tolist() == [6962, 963, 10073] and sub[1792].size == 0
    assert read_species_lists(path).keys() == sub.keys()
    bad = _write(tmp_path / "bad.csv", ["surveyId", "predictions"], [["642", "1 2"], ["7", "1 x 3"]])
    with pytest.raises(DataError, match=r"bad\.csv:3 \(surveyId 7\): predictions '1 x 3' is not a list"):
        read_submission(bad)
    dup = _write(tmp_path / "dup.csv", ["surveyId", "target_species_ids"], [["642", "1"], ["642", "2"]])
    with pytest.raises(DataError, match=r"dup\.csv:3: surveyId 642 appears twice"):
        read_solution(dup)
    other = _write(tmp_path / "other.csv", ["surveyId", "species"], [["642", "1"]])
    with pytest.raises(DataError, match=r"must have exactly one of \['target_species_ids', 'predictions'\]"):
        read_species_lists(other)
    with pytest.raises(DataFileNotFoundError, match="species-list CSV .*missing\.csv: cannot be read"):
        read_solution(tmp_path / "missing.csv")
