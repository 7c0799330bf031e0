"""Landsat CSV reader: CSVs written from the real cube must read back as that cube, under both layouts.

The real per-band CSVs are not in ``shared/data``; the test writes them from the real Landsat cube of survey
1322301 with column names built explicitly from ``cube[b, q, y] -> f"{2000 + y}_{q + 1}"`` (the format's rule),
in shuffled column and row order, so only a reader that selects columns by name passes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from glc.data.cubes import read_landsat_cube
from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import LANDSAT_BANDS, Layout
from glc.data.timeseries import read_landsat_csvs

from .conftest import SAMPLE_SURVEY


def _fmt(v: float) -> str:
    return "" if np.isnan(v) else f"{v:.1f}"


def _write_band_csvs(layout: Layout, split: str, cubes: dict[int, np.ndarray], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for b, band in enumerate(LANDSAT_BANDS):
        names = [f"{2000 + y}_{q + 1}" for y in range(21) for q in range(4)]
        order = rng.permutation(len(names))
        header = ["surveyId", *[names[i] for i in order]]
        rows = []
        for sid in rng.permutation(list(cubes)):
            cube = cubes[int(sid)]
            cells = {f"{2000 + y}_{q + 1}": _fmt(cube[b, q, y]) for y in range(21) for q in range(4)}
            rows.append([str(sid), *[cells[names[i]] for i in order]])
        path = layout.landsat_csv(split, band)  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)


@pytest.fixture
def cubes(kaggle_samples: Layout) -> dict[int, np.ndarray]:
    real = read_landsat_cube(kaggle_samples, "train", SAMPLE_SURVEY)
    later = real.copy()
    later[:, :, 18:] = np.nan  # a 2017 survey: quarters after the survey year are empty
    return {SAMPLE_SURVEY: real, 642: np.flip(real, axis=2).copy(), 7: later}


@pytest.mark.parametrize("flavour", ["kaggle", "seafile"])
def test_csvs_read_back_as_the_real_cube(flavour: str, cubes: dict[int, np.ndarray], tmp_path: Path) -> None:
    layout = Layout(tmp_path, flavour)  # type: ignore[arg-type]
    _write_band_csvs(layout, "test", cubes)
    ids, values = read_landsat_csvs(layout, "test")
    assert ids.dtype == np.int64 and ids.tolist() == [7, 642, SAMPLE_SURVEY]
    assert values.shape == (3, 6, 4, 21) and values.dtype == np.float32
    for i, sid in enumerate(ids):
        np.testing.assert_array_equal(values[i], cubes[int(sid)])  # NaN positions included
    assert np.isnan(values[0, :, :, 18:]).all() and not np.isnan(values[0, :, :, :18]).any()
    assert values[2, :, 0, 0].tolist() == [17.0, 18.0, 9.0, 69.0, 53.0, 27.0]


def test_band_files_must_hold_the_same_surveys(cubes: dict[int, np.ndarray], tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    _write_band_csvs(layout, "train", cubes)
    nir = layout.landsat_csv("train", "nir")
    lines = nir.read_text().splitlines()
    nir.write_text("\n".join(line for line in lines if not line.startswith("642,")) + "\n")
    with pytest.raises(DataError, match=r"disagree on surveys: .*red\.csv has 3 surveys, .*nir\.csv has 2; e\.g\. only in the first \[642\]"):
        read_landsat_csvs(layout, "train")


def test_missing_column_and_file(cubes: dict[int, np.ndarray], tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    _write_band_csvs(layout, "train", cubes)
    blue = layout.landsat_csv("train", "blue")
    blue.write_text(blue.read_text().replace("2013_3", "2013_x", 1))
    with pytest.raises(DataError, match=r"Landsat blue CSV .*blue\.csv: missing column\(s\) \['2013_3'\]"):
        read_landsat_csvs(layout, "train")
    blue.unlink()
    with pytest.raises(DataFileNotFoundError, match=r"Landsat blue CSV not found: .*GLC24-PA-train-landsat_time_series-blue\.csv"):
        read_landsat_csvs(layout, "train")


def test_non_numeric_cell(cubes: dict[int, np.ndarray], tmp_path: Path) -> None:
    layout = Layout(tmp_path, "kaggle")
    _write_band_csvs(layout, "train", cubes)
    red = layout.landsat_csv("train", "red")
    lines = red.read_text().splitlines()
    cells = lines[2].split(",")
    cells[5] = "n/a"
    lines[2] = ",".join(cells)
    red.write_text("\n".join(lines) + "\n")
    header = lines[0].split(",")
    with pytest.raises(DataError, match=rf"red\.csv: line 3 column '{header[5]}': .*invalid value 'n/a'"):
        read_landsat_csvs(layout, "train")
