"""Pre-extracted environmental values (one CSV per component and split, one row per survey).

Format (glc24-format.md §6): comma-separated, ``surveyId`` plus the component's columns
(:data:`glc.data.layout.ENV_COLUMNS`), selected here by name. Values are returned **raw** as float64: ``inf``,
negatives and nodata-like outliers (human footprint) are kept, and the integer ``Bio1..Bio19`` become float64 too;
cleaning is the ETL's job. Empty cells (and ``nan``/``NaN`` text) are NaN; any other non-numeric text is an error.

Parsing is strict: a row with the wrong number of fields, a non-numeric cell, a missing or repeated ``surveyId``
raise :class:`~glc.data.errors.DataError` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from glc.data.errors import DataError, require_file
from glc.data.layout import ENV_COLUMNS, ENV_COMPONENTS, Layout, Split

#: Cell texts read as missing (NaN); pyarrow's longer default list ('n/a', 'NULL', '#N/A', ...) would hide errors.
NULL_TEXT: tuple[str, ...] = ("", "nan", "NaN")
_COLUMN_IN_ARROW_MESSAGE = re.compile(r"column #(\d+)")
_ROW_IN_ARROW_MESSAGE = re.compile(r"Row #(\d+)")


def _header(path: Path, what: str) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{what} {path}: cannot parse the header line ({e}); expected a comma-separated UTF-8 CSV") from e
    if not header:
        raise DataError(f"{what} {path}: the file is empty; expected a header line starting with 'surveyId'")
    return header


def read_numeric_csv(path: str | Path, what: str, columns: Sequence[str], dtype: type[np.floating] = np.float64) -> pd.DataFrame:
    """Strictly read ``surveyId`` and the named numeric columns of a one-row-per-survey CSV.

    Args:
        path: the CSV file.
        what: a description of the file for messages (e.g. ``"landcover CSV"``).
        columns: the value columns to read, by name (any order in the file; other columns are ignored).
        dtype: ``np.float64`` or ``np.float32``.

    Returns:
        A frame indexed by ``surveyId`` (int64, unique, file order) with ``columns`` in the requested order.

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: on a missing column, a row with the wrong number of fields, a non-numeric cell, or a missing,
            non-integer or repeated ``surveyId`` (message names file, line and column).
    """
    p = require_file(path, what)
    columns = list(columns)
    header = _header(p, what)
    missing = [c for c in ["surveyId", *columns] if c not in header]
    if missing:
        shown = missing[:10] + (["..."] if len(missing) > 10 else [])
        raise DataError(
            f"{what} {p}: missing column(s) {shown} ({len(missing)} in all); found {len(header)} columns starting "
            f"{header[:6]}. Columns are selected by name: check the file is the right component and split."
        )
    arrow_type = pa.float32() if np.dtype(dtype) == np.float32 else pa.float64()
    structural: list[tuple[int, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        structural.append((-1 if row.number is None else row.number, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            p,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={"surveyId": pa.int64(), **{c: arrow_type for c in columns}},
                include_columns=["surveyId", *columns],
                # only these mean "missing": anything else non-numeric ('n/a', 'NULL', ...) is an error
                null_values=list(NULL_TEXT),
            ),
        )
    except pa.ArrowInvalid as e:
        msg = str(e)
        m = _COLUMN_IN_ARROW_MESSAGE.search(msg)
        col = f" column {header[int(m.group(1))]!r}" if m and int(m.group(1)) < len(header) else ""
        r = _ROW_IN_ARROW_MESSAGE.search(msg)
        line = f" line {r.group(1)}" if r else ""
        raise DataError(
            f"{what} {p}:{line}{col}: {msg}. Expected integer surveyId and numeric values (empty for missing); "
            "fix or re-extract the file."
        ) from e
    if structural:
        line, expected, found = structural[0]
        raise DataError(
            f"{what} {p}: line {line}: expected {expected} comma-separated fields, found {found} "
            f"({len(structural)} such row(s)); the file is truncated or malformed, re-extract it."
        )
    sid = table.column("surveyId")
    if sid.null_count:
        i = int(np.flatnonzero(np.asarray(sid.is_null().to_numpy(zero_copy_only=False)))[0])
        raise DataError(
            f"{what} {p}: line {i + 2}: surveyId is missing (or the line is blank); every row needs an integer surveyId"
        )
    ids = sid.to_numpy().astype(np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][:5].tolist()
        raise DataError(f"{what} {p}: surveyId(s) {dup} appear more than once; expected one row per survey")
    data = {c: np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=dtype) for c in columns}
    return pd.DataFrame(data, index=pd.Index(ids, name="surveyId"), columns=columns)


def read_env_csv(layout: Layout, split: Split, component: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one pre-extracted environmental CSV, raw.

    Args:
        layout: the data root (Kaggle or Seafile names).
        split: ``"train"`` or ``"test"``.
        component: one of :data:`glc.data.layout.ENV_COMPONENTS`.
        columns: the columns to read, by name; default :data:`glc.data.layout.ENV_COLUMNS` ``[component]``.

    Returns:
        A float64 frame indexed by ``surveyId`` (int64) with ``columns`` in the requested order; values raw
        (``inf``, negatives and outliers kept; empty cells NaN).

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: on a missing column or a malformed row (see :func:`read_numeric_csv`).
    """
    if component not in ENV_COMPONENTS:
        raise ValueError(f"environmental component must be one of {ENV_COMPONENTS}, got {component!r}")
    cols = ENV_COLUMNS[component] if columns is None else tuple(columns)
    if not cols:
        raise ValueError("columns must name at least one column (or be None for the component's default columns)")
    return read_numeric_csv(layout.env_csv(split, component), f"{component} CSV ({split})", cols, np.float64)
