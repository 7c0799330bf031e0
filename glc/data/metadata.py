"""Species observation metadata (PA and PO), survey tables, and species-list files (solution / submission).

Formats: glc24-format.md §2 (metadata) and §9 (submission, solution). The readers

* select columns **by name** (column order does not matter; extra columns such as malpolon's ``subset`` or the PO
  ``publisher`` are ignored);
* parse every cell themselves, so that a malformed row is reported with its file and 1-based physical line number
  (line 1 is the header) instead of silently becoming NaN: short or long rows, non-numeric or out-of-range
  ``lon``/``lat``, missing or non-integer ``surveyId``/``year``, non-numeric ``geoUncertaintyInM``/``areaInM2`` and
  non-integer ``speciesId``;
* raise :class:`~glc.data.errors.DataError` on the first bad rows by default (``on_bad_rows="raise"``), or drop and
  count them (``on_bad_rows="skip"``): the count is in ``df.attrs["bad_rows"]`` and the reasons in
  ``df.attrs["bad_row_reasons"]`` (a list of ``(line, reason)``);
* drop rows whose ``speciesId`` is empty (not an error: the format allows it) and log the count, also stored in
  ``df.attrs["dropped_missing_species"]``.

Line numbers assume one record per physical line, which holds for every GLC24 CSV (no quoted newlines).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from glc.data.errors import DataError, DataFileNotFoundError, require_file

logger = logging.getLogger(__name__)

Split = Literal["train", "test"]
BadRowPolicy = Literal["raise", "skip"]

#: Columns returned by :func:`read_pa_metadata` (``speciesId`` only for the train split), in this order.
PA_COLUMNS: tuple[str, ...] = ("lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country", "surveyId")
#: Columns :func:`read_po_metadata` always returns, in this order (``month``/``day`` follow ``year`` when present).
PO_COLUMNS: tuple[str, ...] = ("surveyId", "lon", "lat", "year", "geoUncertaintyInM", "speciesId")
_PO_OPTIONAL: tuple[str, ...] = ("month", "day")
#: Accepted headers of the species-list column in solution / submission files.
SPECIES_LIST_COLUMNS: tuple[str, ...] = ("target_species_ids", "predictions")

#: Largest integer a float64 holds exactly; ids/years beyond it cannot be read reliably.
_MAX_EXACT_INT = 2**53
#: Cell texts that mean "missing" in a numeric column (besides the empty string).
_MISSING_TEXT = frozenset({"", "nan", "NaN", "NAN"})
#: Cell texts of areaInM2 that the format uses for "unknown area" (glc24-format.md §2.1).
_AREA_MISSING_TEXT = _MISSING_TEXT | {"-inf", "inf", "+inf", "-Inf", "Inf", "+Inf", "-INF", "INF"}
#: How many bad rows a DataError message lists.
_MAX_LISTED = 5


# ---------------------------------------------------------------------------------------------------------- raw CSV
def _read_header(path: Path, what: str) -> list[str]:
    """Return the header names of a comma-separated file (first line)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        try:
            header = next(csv.reader(f), None)
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{what} {path}: cannot parse the header line ({e}); expected a comma-separated UTF-8 CSV") from e
    if not header:
        raise DataError(f"{what} {path}: the file is empty; expected a header line followed by data rows")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{what} {path}: duplicate header column(s) {dupes}; each column name must appear once")
    return header


def _read_string_columns(
    path: Path, what: str, required: Sequence[str], optional: Sequence[str] = ()
) -> tuple[dict[str, pa.ChunkedArray], np.ndarray, list[tuple[int, str]], list[str]]:
    """Read the named columns of a CSV as text, with the physical line number of every row.

    Args:
        path: the CSV file.
        what: description for messages.
        required: columns that must be in the header.
        optional: columns read when present.

    Returns:
        ``(columns, lines, structural_bad, present_optional)``: ``columns`` maps each read column to a pyarrow string
        array (no nulls: empty cells are ``""``), ``lines`` the 1-based line number of each returned row,
        ``structural_bad`` the ``(line, reason)`` of rows with the wrong number of fields (already removed), and
        ``present_optional`` the optional columns that were found.
    """
    header = _read_header(path, what)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{what} {path}: missing column(s) {missing}; found header {header}. "
            f"Expected at least {list(required)} (selected by name, any order); is this the right file?"
        )
    present_optional = [c for c in optional if c in header]
    wanted = list(required) + present_optional
    structural: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        line = -1 if row.number is None else int(row.number)
        structural.append((line, f"expected {row.expected_columns} comma-separated fields, found {row.actual_columns}"))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # Single-threaded parsing is what makes pyarrow report physical line numbers of invalid rows.
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in wanted},
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise DataError(f"{what} {path}: cannot parse the CSV ({e}); expected a comma-separated UTF-8 file") from e
    if any(line < 0 for line, _ in structural):
        raise DataError(f"{what} {path}: malformed rows whose line numbers pyarrow could not report: {structural[:_MAX_LISTED]}")
    skipped = np.array(sorted(line for line, _ in structural), dtype=np.int64)
    all_lines = np.arange(2, 2 + table.num_rows + len(skipped), dtype=np.int64)
    lines = np.setdiff1d(all_lines, skipped, assume_unique=True)
    if len(lines) != table.num_rows:  # pragma: no cover - guards the line bookkeeping itself
        raise DataError(f"{what} {path}: internal line-number bookkeeping failed ({len(lines)} != {table.num_rows})")
    columns = {c: table.column(c) for c in wanted}
    return columns, lines, structural, present_optional


class _RowChecker:
    """Turn text columns (pyarrow string arrays) into typed numpy arrays while collecting per-row problems."""

    def __init__(self, n: int, lines: np.ndarray) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.lines = lines
        self.reasons: list[tuple[int, str]] = []

    def blank_lines(self, raw: dict[str, pa.ChunkedArray]) -> None:
        """Mark rows whose every read cell is empty (blank lines or rows of bare commas)."""
        empty = np.ones(len(self.bad), dtype=bool)
        for values in raw.values():
            empty &= _as_bool(pc.equal(values, ""))
        for i in np.flatnonzero(empty & ~self.bad):
            self.reasons.append((int(self.lines[i]), "is a blank line (every selected cell is empty)"))
        self.bad |= empty

    def flag(self, mask: np.ndarray, column: str, raw: pa.ChunkedArray, why: str) -> None:
        """Mark rows in ``mask`` bad, with a reason quoting the offending cell."""
        new = np.flatnonzero(mask & ~self.bad)
        if len(new):
            cells = raw.take(pa.array(new)).to_pylist()
            self.reasons.extend((int(self.lines[i]), f"{column} {cell!r} {why}") for i, cell in zip(new, cells))
        self.bad |= mask

    def number(
        self, raw: pa.ChunkedArray, column: str, *, required: bool, missing_text: frozenset[str] = _MISSING_TEXT
    ) -> np.ndarray:
        """Parse a float column; empty cells are NaN (or bad rows if ``required``)."""
        missing_arrow = pc.is_in(raw, value_set=pa.array(sorted(missing_text), pa.string()))
        missing = _as_bool(missing_arrow)
        try:  # fast path: every non-missing cell is a number
            values = pc.cast(pc.if_else(missing_arrow, None, raw), pa.float64()).to_numpy(zero_copy_only=False)
            values = np.array(values, dtype=np.float64)
        except pa.ArrowInvalid:  # slow path: find the cells that are not numbers
            text = pd.Series(raw.to_numpy(zero_copy_only=False), dtype=object)
            values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64, copy=True)
            self.flag(~missing & np.isnan(values), column, raw, "is not a number")
        if required:
            self.flag(missing, column, raw, "is missing; a value is required")
        values[missing] = np.nan
        return values

    def integer(
        self, raw: pa.ChunkedArray, column: str, *, required: bool, minimum: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Parse an integer column written as int or integer-valued float text (``6310.0``).

        Returns:
            ``(values as int64 with 0 at missing/bad rows, missing mask)``.
        """
        values = self.number(raw, column, required=required)
        missing = np.isnan(values) & ~self.bad
        finite = np.isfinite(values)
        self.flag(~finite & ~missing, column, raw, "is not finite; expected an integer")
        self.flag(finite & (np.floor(values) != values), column, raw, "is not an integer")
        self.flag(finite & (np.abs(values) >= _MAX_EXACT_INT), column, raw, f"is out of range (|value| < {_MAX_EXACT_INT})")
        if minimum is not None:
            self.flag(finite & (values < minimum), column, raw, f"is below {minimum}")
        ok = finite & (np.abs(values) < _MAX_EXACT_INT)
        out = np.where(ok, values, 0).astype(np.int64)
        return out, missing

    def coordinate(self, raw: pa.ChunkedArray, column: str, limit: float) -> np.ndarray:
        """Parse a required lon/lat column and check ``|value| <= limit``."""
        values = self.number(raw, column, required=True)
        with np.errstate(invalid="ignore"):
            out_of_range = ~np.isnan(values) & ~(np.abs(values) <= limit)
        self.flag(out_of_range, column, raw, f"is outside [-{limit:g}, {limit:g}]")
        return values


def _as_bool(values: pa.ChunkedArray) -> np.ndarray:
    """A boolean pyarrow array (no nulls) as a numpy bool array."""
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _finish(
    path: Path,
    what: str,
    df: pd.DataFrame,
    checker: _RowChecker,
    structural: list[tuple[int, str]],
    on_bad_rows: BadRowPolicy,
    species_missing: np.ndarray | None,
) -> pd.DataFrame:
    """Apply the bad-row policy, drop empty-species rows, and attach the counts to ``df.attrs``."""
    reasons = sorted(structural + checker.reasons)
    if reasons and on_bad_rows == "raise":
        listed = "; ".join(f"line {line}: {why}" for line, why in reasons[:_MAX_LISTED])
        more = f" (and {len(reasons) - _MAX_LISTED} more)" if len(reasons) > _MAX_LISTED else ""
        raise DataError(
            f"{what} {path}: {len(reasons)} bad row(s): {listed}{more}. Fix the file, or pass on_bad_rows='skip' "
            "to drop such rows and count them in df.attrs['bad_rows']."
        )
    keep = ~checker.bad
    n_bad = len(reasons)
    if n_bad:
        logger.warning("%s %s: dropped %d bad row(s), first: %s", what, path, n_bad, reasons[:_MAX_LISTED])
    n_missing_species = 0
    if species_missing is not None:
        drop_species = species_missing & keep
        n_missing_species = int(drop_species.sum())
        if n_missing_species:
            logger.info("%s %s: dropped %d row(s) with an empty speciesId", what, path, n_missing_species)
        keep &= ~species_missing
    out = df.loc[keep].reset_index(drop=True)
    out.attrs["source"] = str(path)
    out.attrs["bad_rows"] = n_bad
    out.attrs["bad_row_reasons"] = reasons
    out.attrs["dropped_missing_species"] = n_missing_species
    return out


def _check_policy(on_bad_rows: str) -> None:
    if on_bad_rows not in ("raise", "skip"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'skip', got {on_bad_rows!r}")


# ---------------------------------------------------------------------------------------------------------- PA / PO
def read_pa_metadata(path: str | Path, split: Split, on_bad_rows: BadRowPolicy = "raise") -> pd.DataFrame:
    """Read a presence-absence metadata CSV (``GLC24_PA_metadata_{train,test}.csv`` or the Seafile name).

    Args:
        path: the CSV file (usually ``Layout.pa_metadata(split)``).
        split: ``"train"`` (one row per survey x species, needs ``speciesId``) or ``"test"`` (one row per survey;
            a ``speciesId`` column, if any, is ignored).
        on_bad_rows: ``"raise"`` (default) raises on malformed rows; ``"skip"`` drops and counts them.

    Returns:
        A frame with columns ``lon, lat`` (float64), ``year`` (int64), ``geoUncertaintyInM`` (float64, NaN when
        empty), ``areaInM2`` (float64; empty, ``-inf`` and ``inf`` become NaN), ``region, country`` (str),
        ``surveyId`` (int64) and, for train, ``speciesId`` (int64), in file order. ``attrs`` holds ``bad_rows``,
        ``bad_row_reasons``, ``dropped_missing_species`` and ``source``.

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: on a missing column, or on bad rows when ``on_bad_rows="raise"`` (message names the file and
            the 1-based line numbers).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    _check_policy(on_bad_rows)
    what = f"PA {split} metadata CSV"
    p = require_file(path, what)
    required = PA_COLUMNS + (("speciesId",) if split == "train" else ())
    raw, lines, structural, _ = _read_string_columns(p, what, required)
    chk = _RowChecker(len(lines), lines)
    chk.blank_lines(raw)
    cols: dict[str, np.ndarray] = {
        "lon": chk.coordinate(raw["lon"], "lon", 180.0),
        "lat": chk.coordinate(raw["lat"], "lat", 90.0),
    }
    cols["year"], _ = chk.integer(raw["year"], "year", required=True)
    cols["geoUncertaintyInM"] = chk.number(raw["geoUncertaintyInM"], "geoUncertaintyInM", required=False)
    area = chk.number(raw["areaInM2"], "areaInM2", required=False, missing_text=_AREA_MISSING_TEXT)
    area[~np.isfinite(area)] = np.nan
    cols["areaInM2"] = area
    cols["region"] = raw["region"].to_numpy(zero_copy_only=False).astype(object)
    cols["country"] = raw["country"].to_numpy(zero_copy_only=False).astype(object)
    cols["surveyId"], _ = chk.integer(raw["surveyId"], "surveyId", required=True, minimum=0)
    species_missing = None
    if split == "train":
        cols["speciesId"], species_missing = chk.integer(raw["speciesId"], "speciesId", required=False, minimum=0)
    df = pd.DataFrame(cols)
    return _finish(p, what, df, chk, structural, on_bad_rows, species_missing)


def read_po_metadata(path: str | Path, on_bad_rows: BadRowPolicy = "raise") -> pd.DataFrame:
    """Read the presence-only metadata CSV (Kaggle ``GLC24_P0_metadata_train.csv``, Seafile ``GLC24-PO-...``).

    PO files put ``lat`` before ``lon`` and carry ``year, month, day, ..., taxonRank, date, dayOfYear`` and maybe a
    ``publisher`` column; columns are selected by name, so none of that matters here.

    Args:
        path: the CSV file (usually ``Layout.po_metadata()``).
        on_bad_rows: ``"raise"`` (default) or ``"skip"``, as in :func:`read_pa_metadata`.

    Returns:
        A frame with columns ``surveyId`` (int64), ``lon, lat`` (float64), ``year`` (int64), ``month, day``
        (float64, NaN when empty; only when present in the file), ``geoUncertaintyInM`` (float64) and ``speciesId``
        (int64), in file order; rows with an empty ``speciesId`` are dropped and counted. ``attrs`` as in
        :func:`read_pa_metadata`.

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: on a missing column, or on bad rows when ``on_bad_rows="raise"``.
    """
    _check_policy(on_bad_rows)
    what = "PO metadata CSV"
    p = require_file(path, what)
    raw, lines, structural, optional = _read_string_columns(p, what, PO_COLUMNS, _PO_OPTIONAL)
    chk = _RowChecker(len(lines), lines)
    chk.blank_lines(raw)
    cols: dict[str, np.ndarray] = {}
    cols["surveyId"], _ = chk.integer(raw["surveyId"], "surveyId", required=True, minimum=0)
    cols["lon"] = chk.coordinate(raw["lon"], "lon", 180.0)
    cols["lat"] = chk.coordinate(raw["lat"], "lat", 90.0)
    cols["year"], _ = chk.integer(raw["year"], "year", required=True)
    for c in optional:
        cols[c] = chk.number(raw[c], c, required=False)
    cols["geoUncertaintyInM"] = chk.number(raw["geoUncertaintyInM"], "geoUncertaintyInM", required=False)
    cols["speciesId"], species_missing = chk.integer(raw["speciesId"], "speciesId", required=False, minimum=0)
    df = pd.DataFrame(cols)
    return _finish(p, what, df, chk, structural, on_bad_rows, species_missing)


def survey_table(df: pd.DataFrame) -> pd.DataFrame:
    """Collapse occurrence rows to one row per survey.

    Args:
        df: a frame from :func:`read_pa_metadata` or :func:`read_po_metadata` (needs ``surveyId``).

    Returns:
        One row per ``surveyId``, sorted by it, holding the metadata columns of the survey's first row in ``df``
        and, when ``df`` has ``speciesId``, a ``speciesIds`` column with a sorted, de-duplicated
        ``np.ndarray[int64]`` per survey (test metadata has no ``speciesId``, so no ``speciesIds``).
        ``attrs["duplicate_species_rows"]`` counts repeated (surveyId, speciesId) rows that were merged.

    Raises:
        DataError: if ``surveyId`` is missing.
    """
    if "surveyId" not in df.columns:
        raise DataError(
            f"survey_table: the frame has no 'surveyId' column (columns {list(df.columns)}); "
            "pass the output of read_pa_metadata/read_po_metadata"
        )
    first = df.drop_duplicates("surveyId", keep="first")
    has_species = "speciesId" in df.columns
    if has_species:
        first = first.drop(columns="speciesId")
    out = first.sort_values("surveyId", kind="stable").reset_index(drop=True)
    out.attrs = {k: v for k, v in df.attrs.items() if k == "source"}
    if not has_species:
        return out
    sid = df["surveyId"].to_numpy(np.int64)
    sp = df["speciesId"].to_numpy(np.int64)
    order = np.lexsort((sp, sid))
    sid, sp = sid[order], sp[order]
    new = np.ones(len(sid), dtype=bool)
    new[1:] = (sid[1:] != sid[:-1]) | (sp[1:] != sp[:-1])
    out.attrs["duplicate_species_rows"] = int((~new).sum())
    sid, sp = sid[new], sp[new]
    _, starts = np.unique(sid, return_index=True)
    lists = np.empty(len(out), dtype=object)
    for i, ids in enumerate(np.split(sp, starts[1:]) if len(sid) else []):
        lists[i] = ids
    out["speciesIds"] = lists
    return out


# ---------------------------------------------------------------------------------------------------------- lists
@dataclass
class SpeciesLists:
    """A parsed ``surveyId,<species list>`` file: ``lists`` (surveyId -> ids, file order), the species-list
    ``column`` and the 1-based ``lines`` each survey was on."""

    column: str
    lists: dict[int, np.ndarray]
    lines: dict[int, int]
    source: str


def read_text_source(path: str | Path, what: str) -> str:
    """The text of ``path`` — any readable path, including pipes and process substitution (``/dev/fd/N``), or ``-``
    for standard input — decoded as UTF-8 (a byte-order mark is dropped).

    Raises:
        DataFileNotFoundError: naming the path when it cannot be opened (missing, a folder, unreadable).
        DataError: if it is not UTF-8 text.
    """
    import sys

    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except IsADirectoryError:
            raise DataFileNotFoundError(f"{what} {path}: is a folder, expected a CSV file") from None
        except OSError as e:
            raise DataFileNotFoundError(f"{what} {path}: cannot be read ({e.strerror or e}); check the path") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{what} {path}: not UTF-8 text ({e}); expected a CSV file") from None


def parse_species_lists(text: str, source: str = "<text>", column: str | None = None) -> SpeciesLists:
    """Parse ``surveyId,<space-separated species ids>`` CSV text: THE parser of solutions and submissions (the CLI's
    ``score`` and ``validate-submission`` and :func:`read_species_lists` all use it, so they agree on every rule).

    Rules: a UTF-8 byte-order mark is ignored; fields are stripped of surrounding whitespace; ids are separated by
    any run of whitespace (``"1  2"`` is ``[1, 2]``); an empty list cell is an empty list (``validate-submission``
    rejects it, scoring counts it as predicting nothing); blank lines are skipped; a ``surveyId`` that repeats is an
    error naming both lines. The header must have ``surveyId`` and exactly one of :data:`SPECIES_LIST_COLUMNS`
    (``target_species_ids`` of the released solution, ``predictions`` of a submission) unless ``column`` names it.

    Raises:
        DataError: naming ``source`` and the line, for a bad header, a wrong number of fields, a non-integer
            ``surveyId`` or species id, or a repeated ``surveyId``.
    """
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in (next(reader, None) or [])]
    if "surveyId" not in header:
        raise DataError(f"{source}:1: header {header} has no 'surveyId'; expected 'surveyId,target_species_ids' or 'surveyId,predictions'")
    if column is None:
        found = [c for c in SPECIES_LIST_COLUMNS if c in header]
        if len(found) != 1:
            raise DataError(f"{source}:1: header {header} must have exactly one of {list(SPECIES_LIST_COLUMNS)}")
        column = found[0]
    elif column not in header:
        raise DataError(f"{source}:1: column {column!r} not in header {header}")
    i_sid, i_list = header.index("surveyId"), header.index(column)
    lists: dict[int, np.ndarray] = {}
    lines: dict[int, int] = {}
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{source}:{line}: expected {len(header)} comma-separated fields ({','.join(header)}), found {len(row)}: {row!r:.120}")
        sid_txt = row[i_sid].strip()
        if not sid_txt.isdigit():
            raise DataError(f"{source}:{line}: surveyId {sid_txt!r} is not a non-negative integer")
        sid = int(sid_txt)
        try:
            ids = np.array([int(t) for t in row[i_list].split()], dtype=np.int64)
        except ValueError:
            raise DataError(f"{source}:{line} (surveyId {sid}): {column} {row[i_list][:80]!r} is not a list of space-separated integers") from None
        if sid in lists:
            raise DataError(f"{source}:{line}: surveyId {sid} appears twice (first on line {lines[sid]}); expected one row per survey")
        lists[sid], lines[sid] = ids, line
    return SpeciesLists(column, lists, lines, source)


def read_species_lists(path: str | Path, column: str | None = None) -> dict[int, np.ndarray]:
    """Read a ``surveyId,<space-separated species ids>`` file (solution or submission; ``-`` = standard input).

    Accepts the header ``surveyId,target_species_ids`` (malpolon's solution file) and ``surveyId,predictions``
    (Kaggle submission). Ids are kept exactly as written (order, repeats, ids outside the class range): scoring
    decides what to do with them. Parsing rules: :func:`parse_species_lists`.

    Returns:
        ``{surveyId: np.ndarray[int64]}`` in file order (an empty list gives an empty array).

    Raises:
        DataFileNotFoundError: if the file cannot be opened.
        DataError: on a missing column, a short/long row, a non-integer id, or a repeated ``surveyId``
            (message names the file and line).
    """
    return parse_species_lists(read_text_source(path, "species-list CSV"), str(path), column).lists


def read_test_survey_ids(path: str | Path) -> np.ndarray:
    """The ``surveyId`` of every row of a PA-test metadata CSV, tolerating bad *other* fields (``-`` = stdin).

    A test survey whose lon/lat or year is broken is still a test survey that a submission must cover, so only the
    ``surveyId`` column is read here. Rows are de-duplicated (sorted result).

    Raises:
        DataFileNotFoundError: if the file cannot be opened.
        DataError: naming the line, when a row's surveyId is missing or not a non-negative integer (such a row
            cannot be matched to any submission row: fix it).
    """
    text = read_text_source(path, "PA test metadata CSV").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in (next(reader, None) or [])]
    if "surveyId" not in header:
        raise DataError(f"{path}:1: header {header} has no 'surveyId'; is this a GLC24 PA test metadata file?")
    i = header.index("surveyId")
    ids = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        v = row[i].strip() if len(row) > i else ""
        try:
            f = float(v)
        except ValueError:
            f = float("nan")
        if not (np.isfinite(f) and f >= 0 and f == int(f)):
            raise DataError(f"{path}:{line}: surveyId {v!r} is not a non-negative integer; the test survey of this row cannot be identified. Fix the row.")
        ids.append(int(f))
    return np.unique(np.asarray(ids, np.int64))


def read_solution(path: str | Path) -> dict[int, np.ndarray]:
    """Read a solution file ``surveyId,target_species_ids`` (also accepts ``surveyId,predictions``).

    See :func:`read_species_lists`.
    """
    return read_species_lists(path)


def read_submission(path: str | Path) -> dict[int, np.ndarray]:
    """Read a submission file ``surveyId,predictions`` (also accepts ``surveyId,target_species_ids``).

    See :func:`read_species_lists`.
    """
    return read_species_lists(path)
