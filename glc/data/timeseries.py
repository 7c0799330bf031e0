"""Landsat time-series CSVs (one file per band) -> arrays in cube order.

Format (glc24-format.md §4.1): six files per split, one per band of :data:`glc.data.layout.LANDSAT_BANDS`, each with
``surveyId`` and 84 quarter columns ``YYYY_Q`` (2000_1 .. 2020_4), float-formatted integers 0..255 with empty cells
(NaN) for quarters after the survey year. Columns are selected by name, so that
``values[i, b, q, y] == CSV_b[f"{2000 + y}_{q + 1}"]`` for the survey ``ids[i]``, the layout of the ``.pt`` cubes.
NaN is kept (imputation is the ETL's job).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from glc.data.env import read_numeric_csv
from glc.data.errors import DataError
from glc.data.layout import LANDSAT_BANDS, LANDSAT_CSV_COLUMNS, LANDSAT_YEARS, Layout, Split


def read_landsat_band_csv(path: str | Path, band: str) -> pd.DataFrame:
    """Read one per-band Landsat CSV: float32 quarter columns in cube year-major order, indexed by ``surveyId``.

    Args:
        path: the CSV file.
        band: the band name (for messages).

    Returns:
        A frame indexed by ``surveyId`` (int64, unique) with the 84 columns of
        :data:`glc.data.layout.LANDSAT_CSV_COLUMNS` as float32.
    """
    return read_numeric_csv(path, f"Landsat {band} CSV", LANDSAT_CSV_COLUMNS, np.float32)


def read_landsat_csvs(layout: Layout, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Read the six per-band Landsat CSVs of a split into cube-ordered values.

    Args:
        layout: the data root (Kaggle or Seafile names).
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(ids, values)``: ``ids`` the surveyIds (int64, ascending) and ``values`` float32 of shape
        ``(len(ids), 6, 4, 21)`` with ``values[i, b, q, y] == CSV_b[f"{2000 + y}_{q + 1}"]``.

    Raises:
        DataFileNotFoundError: if a band file is missing.
        DataError: on a missing column, a non-numeric cell, a repeated surveyId, or band files that do not hold the
            same surveys (message names both files and example ids).
    """
    n_years = len(LANDSAT_YEARS)
    ids: np.ndarray | None = None
    first_path = None
    values: np.ndarray | None = None
    for b, band in enumerate(LANDSAT_BANDS):
        path = layout.landsat_csv(split, band)
        df = read_landsat_band_csv(path, band).sort_index()
        band_ids = df.index.to_numpy(np.int64)
        if ids is None:
            ids, first_path = band_ids, path
            values = np.empty((len(ids), len(LANDSAT_BANDS), 4, n_years), dtype=np.float32)
        elif not np.array_equal(ids, band_ids):
            only_first = np.setdiff1d(ids, band_ids)[:5].tolist()
            only_this = np.setdiff1d(band_ids, ids)[:5].tolist()
            raise DataError(
                f"Landsat CSVs of split {split!r} disagree on surveys: {first_path} has {len(ids)} surveys, {path} has "
                f"{len(band_ids)}; e.g. only in the first {only_first}, only in {band} {only_this}. Every band file "
                "must hold the same surveys; re-extract the time series."
            )
        assert values is not None
        # columns are year-major (2000_1, 2000_2, ...): (n, year, quarter) -> (n, quarter, year)
        values[:, b] = df.to_numpy(np.float32).reshape(len(band_ids), n_years, 4).transpose(0, 2, 1)
    assert ids is not None and values is not None
    return ids, values

