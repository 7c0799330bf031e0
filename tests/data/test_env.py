"""Environmental CSV reader on small format-faithful files (the real env CSVs are not in ``shared/data``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from glc.data.env import read_env_csv
from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import ENV_COLUMNS, ENV_COMPONENTS, Layout


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def _bioclim_rows() -> tuple[list[str], list[list[str]]]:
    cols = list(ENV_COLUMNS["bioclimatic"])
    shuffled = cols[::-1]  # column order in the file must not matter
    rows = [[str(sid), *[str(1000 * sid + int(c[3:])) for c in shuffled]] for sid in (642, 1792, 3256)]
    return ["surveyId", *shuffled], rows


@pytest.mark.parametrize("flavour", ["kaggle", "seafile"])
def test_bioclim_average_by_name(flavour: str, tmp_path: Path) -> None:
    layout = Layout(tmp_path, flavour)  # type: ignore[arg-type]
    header, rows = _bioclim_rows()
    _write(layout.env_csv("test", "bioclimatic"), header, rows)
    df = read_env_csv(layout, "test", "bioclimatic")
    assert list(df.columns) == list(ENV_COLUMNS["bioclimatic"])
    assert df.index.name == "surveyId" and df.index.dtype == np.int64 and df.index.tolist() == [642, 1792, 3256]
    assert (df.dtypes == np.float64).all()  # Bio ints become float64
    assert df.loc[1792, "Bio1"] == 1792001.0 and df.loc[3256, "Bio19"] == 3256019.0
    sub = read_env_csv(layout, "test", "bioclimatic", columns=["Bio12", "Bio1"])
    assert list(sub.columns) == ["Bio12", "Bio1"] and sub.loc[642].tolist() == [642012.0, 642001.0]


def test_human_footprint_values_are_raw(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    cols = list(ENV_COLUMNS["human_footprint"])
    dirty = ["inf", "-inf", "-5.0", "255.0", "", "nan"] + ["1.5"] * (len(cols) - 6)
    path = _write(layout.env_csv("train", "human_footprint"), ["surveyId", *cols], [["10", *dirty], ["11", *["0"] * len(cols)]])
    assert "Human Footprint" in path.as_posix()
    df = read_env_csv(layout, "train", "human_footprint")
    row = df.loc[10]
    assert row[cols[0]] == math.inf and row[cols[1]] == -math.inf  # inf kept
    assert row[cols[2]] == -5.0 and row[cols[3]] == 255.0  # negatives and outliers kept
    assert math.isnan(row[cols[4]]) and math.isnan(row[cols[5]])  # empty / 'nan' -> NaN
    assert df.loc[11].tolist() == [0.0] * len(cols)


def test_single_column_components(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "seafile")
    _write(layout.env_csv("train", "landcover"), ["surveyId", "LandCover"], [["1", "12.0"], ["2", "17.0"]])
    _write(layout.env_csv("train", "elevation"), ["Elevation", "surveyId"], [["184.0", "1"], ["", "2"]])
    assert read_env_csv(layout, "train", "landcover")["LandCover"].tolist() == [12.0, 17.0]
    elev = read_env_csv(layout, "train", "elevation")
    assert elev.loc[1, "Elevation"] == 184.0 and math.isnan(elev.loc[2, "Elevation"])


def test_every_component_has_default_columns(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    for component in ENV_COMPONENTS:
        cols = list(ENV_COLUMNS[component])
        _write(layout.env_csv("test", component), ["surveyId", *cols], [["5", *["1"] * len(cols)]])
        df = read_env_csv(layout, "test", component)
        assert df.shape == (1, len(cols)), component
    assert read_env_csv(layout, "test", "bioclimatic_monthly").shape == (1, 912)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    cols = [c for c in ENV_COLUMNS["soilgrids"] if c != "Soilgrid-phh2o"]
    _write(layout.env_csv("train", "soilgrids"), ["surveyId", *cols], [["1", *["3"] * len(cols)]])
    with pytest.raises(DataError, match=r"soilgrids CSV \(train\) .*GLC24-PA-train-soilgrids\.csv: missing column\(s\) \['Soilgrid-phh2o'\]"):
        read_env_csv(layout, "train", "soilgrids")


def test_bad_rows(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    path = layout.env_csv("train", "landcover")
    _write(path, ["surveyId", "LandCover"], [["1", "12.0"], ["2", "n/a"]])
    with pytest.raises(DataError, match=r"landcover\.csv: line 3 column 'LandCover': .*invalid value 'n/a'"):
        read_env_csv(layout, "train", "landcover")
    _write(path, ["surveyId", "LandCover"], [["1", "12.0"], ["2"]])
    with pytest.raises(DataError, match=r"landcover\.csv: line 3: expected 2 comma-separated fields, found 1"):
        read_env_csv(layout, "train", "landcover")
    _write(path, ["surveyId", "LandCover"], [["1", "12.0"], ["1", "9.0"]])
    with pytest.raises(DataError, match=r"surveyId\(s\) \[1\] appear more than once"):
        read_env_csv(layout, "train", "landcover")
    _write(path, ["surveyId", "LandCover"], [["1", "12.0"], ["", "9.0"]])
    with pytest.raises(DataError, match=r"line 3: surveyId is missing"):
        read_env_csv(layout, "train", "landcover")
    path.unlink()
    with pytest.raises(DataFileNotFoundError, match=r"landcover CSV \(train\) not found"):
        read_env_csv(layout, "train", "landcover")
    with pytest.raises(ValueError, match="environmental component must be one of"):
        read_env_csv(layout, "train", "rivers")
