"""The model-input table: a ``meta.json`` and three Spark-style parquet splits, written and checked with pyarrow.

Layout (contract of issue 7, section A)::

    root/
      meta.json          {"num_classes": C, "vocab": [...], "label_width": L, "env_dim": E, "gfv_dim": G,
                          "n_regions": R, "regions": [...], "splits": {"train": n, "val": n, "test": n}}
      train/ val/ test/  part-*.parquet (one or more row groups each) + _SUCCESS

Columns of every split: ``surveyId`` int64; ``x``, ``y`` (EPSG:3035 metres), ``lon``, ``lat`` float64; ``year``,
``region`` int32; ``env`` list<float32> of fixed length E (absent when E == 0); ``gfv`` list<float32> of fixed
length G (the dense graph feature vector over the C species columns, so G == C; absent when G == 0; ``gfv_dim`` is
optional in ``meta.json`` and taken as 0 when missing, for tables written before it existed); ``labels``
list<int32> of fixed length L holding species column indices 0..C-1 padded with -1 (test rows: all -1).

The production table is written by the Spark task ``ModelInputs``; :func:`write_input_table` and
:func:`write_meta` write the same layout with pyarrow for tests, fakes and benchmarks. :func:`scan_split` is the
reader-side check: it lists the part files and row groups of a split and raises a :class:`DataError` naming the
file (and column) for a corrupt file, a missing column, a wrong type or a wrong list width, so a bad table fails
when a data module is set up instead of silently later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from glc.data.errors import DataError, DataFileNotFoundError
from glc.io import SUCCESS, atomic_dir, write_json

log = logging.getLogger(__name__)

#: The three splits of a model-input table.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Name of the metadata file at the table root.
META_FILE = "meta.json"
#: Padding value of the ``labels`` lists.
PAD = -1
#: Scalar columns and their parquet types (every split has all of them).
SCALAR_TYPES: dict[str, pa.DataType] = {
    "surveyId": pa.int64(),
    "x": pa.float64(),
    "y": pa.float64(),
    "lon": pa.float64(),
    "lat": pa.float64(),
    "year": pa.int32(),
    "region": pa.int32(),
}
#: Fixed-length list columns and their element types (``labels`` is the only integer one).
LIST_TYPES: dict[str, pa.DataType] = {"env": pa.float32(), "gfv": pa.float32(), "labels": pa.int32()}
#: Float list (feature vector) columns and the ``meta.json`` key holding each one's width.
FEATURE_WIDTH_KEYS: dict[str, str] = {"env": "env_dim", "gfv": "gfv_dim"}
#: Keys ``meta.json`` must have.
META_KEYS: tuple[str, ...] = ("num_classes", "vocab", "label_width", "env_dim", "n_regions", "regions", "splits")
#: Keys ``meta.json`` may have, with the value assumed when absent (tables written before the key existed).
OPTIONAL_META_KEYS: dict[str, Any] = {"gfv_dim": 0}


def feature_width(meta: dict[str, Any], column: str) -> int:
    """Width of the float list column ``column`` (``"env"`` or ``"gfv"``) according to ``meta``.

    Raises:
        KeyError: if ``column`` is not a feature vector column.
    """
    key = FEATURE_WIDTH_KEYS[column]
    return int(meta.get(key, OPTIONAL_META_KEYS.get(key, 0)))


# ---------------------------------------------------------------------------------------------------------------
# meta.json
# ---------------------------------------------------------------------------------------------------------------
def _check_meta(meta: dict[str, Any], where: str) -> None:
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise DataError(
            f"{where}: meta is missing key(s) {missing}; expected all of {list(META_KEYS)}. "
            "Rebuild the model-input table (ModelInputs task) or pass a complete dict to write_meta."
        )
    for key in ("num_classes", "label_width", "env_dim", "n_regions", *(k for k in OPTIONAL_META_KEYS if k in meta)):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise DataError(f"{where}: meta[{key!r}] must be a non-negative integer, found {value!r}.")
    if meta["num_classes"] < 1 or meta["label_width"] < 1:
        raise DataError(
            f"{where}: num_classes and label_width must be >= 1, found {meta['num_classes']} and {meta['label_width']}."
        )
    if len(meta["vocab"]) != meta["num_classes"]:
        raise DataError(
            f"{where}: meta['vocab'] has {len(meta['vocab'])} entries but num_classes is {meta['num_classes']}; "
            "vocab must list the speciesId of every class column 0..C-1."
        )
    if len(meta["regions"]) != meta["n_regions"]:
        raise DataError(
            f"{where}: meta['regions'] has {len(meta['regions'])} names but n_regions is {meta['n_regions']}."
        )
    splits = meta["splits"]
    if not isinstance(splits, dict) or sorted(splits) != sorted(SPLITS):
        raise DataError(f"{where}: meta['splits'] must map each of {list(SPLITS)} to its row count, found {splits!r}.")


def write_meta(root: str | Path, meta: dict[str, Any]) -> Path:
    """Validate ``meta`` and write it atomically as ``root/meta.json``.

    Args:
        root: the table root folder (created if absent).
        meta: the metadata dict with every key of :data:`META_KEYS`.

    Returns:
        The path of the written file.

    Raises:
        DataError: if a key is missing or a value is inconsistent (vocab length != num_classes, ...).
    """
    path = Path(root) / META_FILE
    _check_meta(meta, str(path))
    write_json(path, meta)
    return path


def read_meta(root: str | Path) -> dict[str, Any]:
    """Read and validate ``root/meta.json``.

    Args:
        root: the table root folder.

    Returns:
        The metadata dict.

    Raises:
        DataFileNotFoundError: if ``root/meta.json`` does not exist.
        DataError: if it is not valid JSON or lacks a key / has an inconsistent value.
    """
    path = Path(root) / META_FILE
    if not path.is_file():
        raise DataFileNotFoundError(
            f"model-input metadata not found: {path}. Expected a table root with meta.json and train/, val/, test/ "
            "(written by the ModelInputs task or glc.loaders.tables.write_meta)."
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); rebuild the model-input table.") from err
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(meta).__name__}.")
    _check_meta(meta, str(path))
    return meta


# ---------------------------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------------------------
def input_schema(env_dim: int, gfv_dim: int = 0) -> pa.Schema:
    """The parquet schema of a split (``env`` only when ``env_dim > 0``, ``gfv`` only when ``gfv_dim > 0``)."""
    fields = [pa.field(name, typ) for name, typ in SCALAR_TYPES.items()]
    for name, width in (("env", env_dim), ("gfv", gfv_dim)):
        if width > 0:
            fields.append(pa.field(name, pa.list_(LIST_TYPES[name])))
    fields.append(pa.field("labels", pa.list_(LIST_TYPES["labels"])))
    return pa.schema(fields)


def _matrix(values: pd.Series, column: str, dtype: type) -> np.ndarray:
    """Stack a column of equal-length sequences into a 2-D array, or raise naming the column."""
    cells = values.to_numpy()
    if len(cells) == 0:
        return np.zeros((0, 0), dtype=dtype)
    lengths = np.fromiter((len(c) for c in cells), dtype=np.int64, count=len(cells))
    if (lengths != lengths[0]).any():
        bad = int(np.flatnonzero(lengths != lengths[0])[0])
        raise DataError(
            f"column {column!r}: every row must hold a list of the same length (the table is read by Petastorm, "
            f"which only collates equal-length lists); row 0 has {lengths[0]}, row {bad} has {lengths[bad]}. "
            f"Pad {column!r} to a fixed width (labels with {PAD})."
        )
    return np.stack([np.asarray(c, dtype=dtype) for c in cells]).reshape(len(cells), int(lengths[0]))


def _list_array(matrix: np.ndarray, typ: pa.DataType) -> pa.ListArray:
    n, width = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=typ))


def input_arrow_table(df: pd.DataFrame) -> pa.Table:
    """Convert a frame with the model-input columns to an Arrow table with the exact parquet types.

    ``labels`` (and ``env`` / ``gfv`` when present) hold one sequence per row (list or 1-D array), all of one
    length per column.

    Raises:
        DataError: naming the column, for a missing column, a null, or unequal list lengths.
    """
    missing = [c for c in (*SCALAR_TYPES, "labels") if c not in df.columns]
    if missing:
        raise DataError(
            f"write_input_table: frame lacks column(s) {missing}; expected {list(SCALAR_TYPES)} + optional "
            "['env', 'gfv'] + ['labels']."
        )
    arrays: dict[str, pa.Array] = {}
    for name, typ in SCALAR_TYPES.items():
        if df[name].isna().any():
            raise DataError(f"write_input_table: column {name!r} has {int(df[name].isna().sum())} null value(s).")
        arrays[name] = pa.array(df[name].to_numpy(), type=typ)
    widths = {"env": 0, "gfv": 0}
    for name in widths:
        if name in df.columns:
            matrix = _matrix(df[name], name, np.float32)
            widths[name] = matrix.shape[1]
            if widths[name] > 0:
                arrays[name] = _list_array(matrix, LIST_TYPES[name])
    arrays["labels"] = _list_array(_matrix(df["labels"], "labels", np.int32), LIST_TYPES["labels"])
    return pa.Table.from_arrays(list(arrays.values()), schema=input_schema(widths["env"], widths["gfv"]))


def write_input_table(
    df: pd.DataFrame,
    path: str | Path,
    rows_per_file: int = 100_000,
    row_group_size: int = 20_000,
) -> list[Path]:
    """Write one split of the model-input table like Spark does: ``part-*.parquet`` files and ``_SUCCESS``.

    The folder is built in a temporary sibling and renamed into place (:func:`glc.io.atomic_dir`), so a crash
    never leaves a half-written split that looks complete.

    Args:
        df: one row per survey with the columns of :data:`SCALAR_TYPES`, ``labels`` and optionally ``env`` and
            ``gfv`` (sequences of one fixed length per column). Rows are written in the given order.
        path: the split folder, e.g. ``root / "train"`` (replaced if it exists).
        rows_per_file: rows per part file (the last file takes the remainder).
        row_group_size: rows per parquet row group inside a file.

    Returns:
        The part files, in name order.

    Raises:
        ValueError: if ``rows_per_file`` or ``row_group_size`` is < 1.
        DataError: if a column is missing, null, or a list column has unequal lengths.
    """
    if rows_per_file < 1 or row_group_size < 1:
        raise ValueError(
            f"write_input_table: rows_per_file and row_group_size must be >= 1, got {rows_per_file}, {row_group_size}."
        )
    table = input_arrow_table(df)
    n_files = max(1, -(-table.num_rows // rows_per_file))
    names = [f"part-{i:05d}.parquet" for i in range(n_files)]
    with atomic_dir(path, summary={"rows": table.num_rows, "files": n_files}) as tmp:
        for i, name in enumerate(names):
            part = table.slice(i * rows_per_file, rows_per_file)
            pq.write_table(part, tmp / name, row_group_size=row_group_size, compression="snappy")
    return [Path(path) / n for n in names]


# ---------------------------------------------------------------------------------------------------------------
# Reader-side scan and checks
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One parquet row group: the unit that readers load, order and shard."""

    path: Path
    row_group: int
    num_rows: int
    first_id: int  # surveyId of its first row (identifies the row group among the split's pieces); -1 if empty


@dataclass
class SplitInfo:
    """What :func:`scan_split` found in a split folder."""

    split: str
    directory: Path
    files: list[Path]
    pieces: list[Piece]
    columns: tuple[str, ...]
    label_width: int
    env_dim: int
    num_classes: int
    gfv_dim: int = 0
    num_rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_rows = sum(p.num_rows for p in self.pieces)

    def width(self, name: str) -> int:
        """The fixed length of list column ``name`` (``labels``: label_width, ``env``: env_dim, ``gfv``: gfv_dim).

        Raises:
            KeyError: if ``name`` is not a list column.
        """
        widths = {"labels": self.label_width, "env": self.env_dim, "gfv": self.gfv_dim}
        if name not in widths:
            raise KeyError(f"{name!r} is not a list column of the model-input table; list columns are {list(widths)}.")
        return widths[name]

    def pieces_of(self, path: Path) -> list[Piece]:
        """The row groups of one part file, in stored order."""
        return [p for p in self.pieces if p.path == path]


def part_files(directory: str | Path) -> list[Path]:
    """The ``*.parquet`` files of a split folder in name order (hidden and ``_``-prefixed files are skipped).

    Raises:
        DataFileNotFoundError: if the folder does not exist, lacks ``_SUCCESS`` or holds no parquet file.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataFileNotFoundError(
            f"model-input split not found: {d}. Build the table (ModelInputs task) or check the root path."
        )
    if not (d / SUCCESS).exists():
        raise DataFileNotFoundError(
            f"{d} has no {SUCCESS} flag: the split was not written completely. Rebuild it (ModelInputs task)."
        )
    files = sorted(p for p in d.glob("*.parquet") if not p.name.startswith(("_", ".")))
    if not files:
        raise DataFileNotFoundError(f"{d} holds no *.parquet file; rebuild the split (ModelInputs task).")
    return files


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(
            f"corrupt parquet file {path}: cannot read its footer ({type(err).__name__}: {err}). "
            "Delete the split and rebuild it (ModelInputs task)."
        ) from err


def _check_schema(path: Path, schema: pa.Schema, columns: Sequence[str], info: SplitInfo) -> None:
    for name in columns:
        if name not in schema.names:
            raise DataError(
                f"{path}: column {name!r} is missing (found {schema.names}). "
                "Rebuild the model-input table or drop the column from the data module's `columns`."
            )
        typ = schema.field(name).type
        if name in LIST_TYPES:
            element_ok = pa.types.is_integer if name == "labels" else pa.types.is_floating
            ok = (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and element_ok(typ.value_type)
            want = f"list<{LIST_TYPES[name]}>"
        elif name == "surveyId":
            ok, want = pa.types.is_integer(typ), "an integer (int64)"
        else:
            ok = pa.types.is_integer(typ) or pa.types.is_floating(typ)
            want = f"a number ({SCALAR_TYPES.get(name, 'float32')})"
        if not ok:
            raise DataError(f"{path}: column {name!r} has type {typ}, expected {want}.")
    for name, key in FEATURE_WIDTH_KEYS.items():
        if name in columns and info.width(name) == 0:
            raise DataError(f"{path}: column {name!r} requested but meta.json says {key} == 0 (or has no {key}).")


def check_list_width(values: pa.Array | pa.ChunkedArray, column: str, width: int, where: str) -> None:
    """Raise unless every row of list column ``column`` has exactly ``width`` non-null entries.

    Args:
        values: the list column (Arrow).
        column: its name (for the message).
        width: the expected length (``label_width``, ``env_dim`` or ``gfv_dim`` from meta.json).
        where: the file (and row group) the column was read from (for the message).

    Raises:
        DataError: naming the column and ``where``, with the first offending row and its length.
    """
    lengths = pc.fill_null(pc.list_value_length(values), -1).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != width)
    if len(bad):
        row = int(bad[0])
        found = "a null list" if lengths[row] < 0 else f"{int(lengths[row])} values"
        raise DataError(
            f"{where}: column {column!r} must hold lists of exactly {width} values (meta.json), but row {row} has "
            f"{found} ({len(bad)} bad row(s)). Rebuild the model-input table with a fixed width."
        )
    if pc.any(pc.is_null(pc.list_flatten(values))).as_py():
        raise DataError(f"{where}: column {column!r} has null list elements; expected {width} numbers per row.")


def check_batch(table: pa.Table, info: SplitInfo, where: str) -> None:
    """Value checks on one decoded row group: nulls/NaN in numeric columns, list widths, label range.

    Raises:
        DataError: naming the column and ``where``.
    """
    for name in info.columns:
        col = table.column(name)
        if name == "labels":
            check_list_width(col, name, info.label_width, where)
            flat = pc.list_flatten(col)
            if len(flat):
                lo, hi = pc.min_max(flat).values()
                if lo.as_py() < PAD or hi.as_py() >= info.num_classes:
                    raise DataError(
                        f"{where}: column 'labels' holds {lo.as_py()}..{hi.as_py()}, expected class indices "
                        f"0..{info.num_classes - 1} (num_classes in meta.json) or the pad {PAD}."
                    )
        elif name in FEATURE_WIDTH_KEYS:
            check_list_width(col, name, info.width(name), where)
            flat = pc.list_flatten(col)
            if len(flat) and not pc.all(pc.is_finite(flat)).as_py():
                raise DataError(f"{where}: column {name!r} holds NaN or inf; the ETL must fill or drop them first.")
        else:
            if col.null_count:
                raise DataError(f"{where}: column {name!r} has {col.null_count} null value(s).")
            if pa.types.is_floating(col.type) and len(col) and not pc.all(pc.is_finite(col)).as_py():
                raise DataError(f"{where}: column {name!r} holds NaN or inf.")


def read_piece(piece: Piece, columns: Iterable[str]) -> pa.Table:
    """Read one row group, turning any Arrow/IO failure into a :class:`DataError` naming the file."""
    try:
        return pq.ParquetFile(piece.path).read_row_group(piece.row_group, columns=list(columns))
    except (OSError, pa.ArrowException) as err:
        raise DataError(
            f"corrupt parquet file {piece.path}: row group {piece.row_group} cannot be decoded "
            f"({type(err).__name__}: {err}). Delete the split and rebuild it (ModelInputs task)."
        ) from err


def scan_split(
    directory: str | Path,
    meta: dict[str, Any],
    columns: Sequence[str],
    verify: bool = True,
) -> SplitInfo:
    """List and check the row groups of one split folder.

    Every part file's footer and schema are read, and its ``surveyId`` column is decoded (to check that ids are
    unique and to know each row group's first id). With ``verify`` every requested column of every row group is
    decoded and checked too (:func:`check_batch`): that costs one extra read of the split, and turns a corrupt
    data page into an error here rather than mid-epoch.

    Args:
        directory: the split folder (``root/train`` ...); its name is used as the split name.
        meta: the table's ``meta.json`` dict.
        columns: the columns the reader will load (``surveyId`` is always checked).
        verify: decode and check all requested columns now.

    Returns:
        The :class:`SplitInfo` (files in name order, row groups in stored order).

    Raises:
        DataFileNotFoundError: if the folder, its ``_SUCCESS`` or its parquet files are missing.
        DataError: naming the file (and column) for a corrupt file, a missing column, a wrong type or list width,
            a null/NaN value, a label outside 0..C-1, or a repeated ``surveyId``.
    """
    d = Path(directory)
    cols = tuple(dict.fromkeys(["surveyId", *columns]))
    info_files = part_files(d)
    pieces: list[Piece] = []
    ids: list[np.ndarray] = []
    info = SplitInfo(d.name, d, info_files, [], cols, int(meta["label_width"]), feature_width(meta, "env"),
                     int(meta["num_classes"]), feature_width(meta, "gfv"))
    for path in info_files:
        pf = _open(path)
        _check_schema(path, pf.schema_arrow, cols, info)
        for rg in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            if n == 0:  # kept (Petastorm counts it when sharding), never read
                pieces.append(Piece(path, rg, 0, -1))
                continue
            probe = Piece(path, rg, n, -1)
            table = read_piece(probe, cols if verify else ["surveyId"])
            if verify:
                check_batch(table, info, f"{path} (row group {rg})")
            sid = table.column("surveyId").to_numpy()
            ids.append(sid)
            pieces.append(Piece(path, rg, n, int(sid[0])))
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    uniq, counts = np.unique(all_ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise DataError(
            f"{d}: {len(dup)} surveyId value(s) occur more than once (e.g. {dup[:5].tolist()}); each survey must be "
            "one row. Rebuild the model-input table."
        )
    info.pieces = pieces
    info.num_rows = sum(p.num_rows for p in pieces)
    expected = meta["splits"].get(d.name)
    if expected is not None and expected != info.num_rows:
        raise DataError(
            f"{d}: holds {info.num_rows} rows but meta.json says splits[{d.name!r}] = {expected}. "
            "The split and meta.json come from different builds; rebuild the model-input table."
        )
    log.debug("scanned %s: %d files, %d row groups, %d rows", d, len(info_files), len(pieces), info.num_rows)
    return info
