"""The model-input table: a ``meta.json`` and three Spark-style parquet splits, checked (and, for fakes, written)
with pyarrow.

Layout (written by :mod:`glc.etl.inputs`, the one production writer)::

    root/
      meta.json          {"num_classes": C, "vocab": [...], "label_width": L, "n_regions": R, "regions": [...],
                          "splits": {"train": n, "val": n, "test": n}, "feature_sets": [...],
                          "columns": {name: {"dtype": ..., "shape": [...], "feature_set": ..., "stats": {...}}}, ...}
      train/ val/ test/  part-*.parquet (one or more row groups each) + _SUCCESS

``meta["columns"]`` describes every column but ``surveyId`` (int64): its element dtype (``float64``, ``float32``,
``int32`` or ``uint8``) and per-row shape (``[]`` for a scalar). Scalars are stored as such; arrays flattened (C
order) as fixed-length ``list<float32>`` / ``list<int32>``, ``uint8`` arrays as ``binary`` of fixed length.
``labels`` is ``list<int32>`` of length L holding species column indices 0..C-1 padded with -1 (test rows: all
-1). The columns come from the feature sets of :mod:`glc.features.sets`.

:func:`write_input_table` and :func:`write_meta` write the same layout with pyarrow for the fake tables of tests and
benchmarks (:mod:`glc.loaders.fake`). :func:`scan_split` is the reader-side check: it lists the part files and row
groups of a split and raises a :class:`DataError` naming the file (and column) for a corrupt file, a missing column,
a wrong type or a wrong length, so a bad table fails when a data module is set up instead of silently later.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
#: Parquet types of scalar columns by element dtype.
SCALAR_ARROW: dict[str, pa.DataType] = {"float64": pa.float64(), "float32": pa.float32(), "int32": pa.int32()}
#: Parquet list element types of array columns by element dtype (``uint8`` arrays are ``binary``).
LIST_ARROW: dict[str, pa.DataType] = {"float32": pa.float32(), "int32": pa.int32()}
#: Keys ``meta.json`` must have.
META_KEYS: tuple[str, ...] = ("num_classes", "vocab", "label_width", "n_regions", "regions", "splits", "columns")


@dataclass(frozen=True)
class ColumnSpec:
    """The type of one column (from ``meta.json``): element ``dtype`` and per-row ``shape`` (``()`` = scalar)."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()

    @property
    def width(self) -> int:
        """Stored values per row (1 for a scalar)."""
        return math.prod(self.shape) if self.shape else 1

    @property
    def is_array(self) -> bool:
        """Stored as a list (or binary) column."""
        return bool(self.shape)

    def arrow_type(self) -> pa.DataType:
        """The parquet type of the column."""
        if not self.shape:
            return SCALAR_ARROW[self.dtype]
        return pa.binary() if self.dtype == "uint8" else pa.list_(LIST_ARROW[self.dtype])

    def batch_dtype(self) -> type:
        """The numpy dtype of the column in a batch: scalars float32 / int64, arrays float32 / int32 / uint8."""
        if not self.shape:
            return np.int64 if self.dtype == "int32" else np.float32
        return {"float32": np.float32, "int32": np.int32, "uint8": np.uint8}[self.dtype]


def column_specs(meta: Mapping[str, Any]) -> dict[str, ColumnSpec]:
    """Every column of the table (``surveyId`` first) as :class:`ColumnSpec` s, from ``meta["columns"]``."""
    out = {"surveyId": ColumnSpec("surveyId", "int64")}
    for name, c in meta["columns"].items():
        out[name] = ColumnSpec(name, str(c["dtype"]), tuple(int(d) for d in c.get("shape", ())))
    return out


def column_shape(meta: Mapping[str, Any], name: str) -> tuple[int, ...]:
    """The per-row shape of column ``name`` (KeyError naming the table's columns when absent)."""
    cols = meta["columns"]
    if name not in cols:
        raise KeyError(
            f"the model-input table has no column {name!r} (columns: {sorted(cols)}); build ModelInputs with the "
            "feature set that provides it"
        )
    return tuple(int(d) for d in cols[name]["shape"])


def column_stats(meta: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Train-split ``(mean, std)`` of an array column as float32 arrays of its shape, or None if not recorded."""
    st = meta["columns"].get(name, {}).get("stats")
    if not st:
        return None
    return np.asarray(st["mean"], np.float32), np.asarray(st["std"], np.float32)


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
    for key in ("num_classes", "label_width", "n_regions"):
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
    cols = meta["columns"]
    if not isinstance(cols, dict) or "labels" not in cols:
        raise DataError(f"{where}: meta['columns'] must describe every column incl. 'labels', found {cols!r:.200}.")
    for name, c in cols.items():
        dtype, shape = c.get("dtype"), c.get("shape")
        ok = isinstance(shape, list) and all(isinstance(d, int) and d >= 1 for d in shape)
        ok = ok and (dtype in SCALAR_ARROW if not shape else dtype in (*LIST_ARROW, "uint8"))
        if not ok:
            raise DataError(f"{where}: meta['columns'][{name!r}] = {c!r:.200} is not a valid column (dtype + shape).")
    if cols["labels"]["dtype"] != "int32" or cols["labels"]["shape"] != [meta["label_width"]]:
        raise DataError(
            f"{where}: meta['columns']['labels'] must be int32 of shape [label_width={meta['label_width']}]."
        )


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


def set_train_stats(meta: dict[str, Any], train: Mapping[str, Sequence[np.ndarray] | np.ndarray]) -> dict[str, Any]:
    """Record in ``meta`` the per-element train mean/std of every float32 column whose feature set keeps statistics.

    The in-memory writers' copy of the Spark writer's rule (``glc.etl.inputs._stats``): a constant
    element gets scale 1, never a division by ~0. ``train``: column name -> the train split's cells (arrays), or one
    array ``[n, *shape]``.
    Returns ``meta`` (changed in place).
    """
    from glc.features.sets import feature_set

    for name, c in meta["columns"].items():
        fs = c.get("feature_set")
        if name in train and len(train[name]) and fs and feature_set(fs).stats and c["dtype"] == "float32":
            cells = train[name]
            whole = isinstance(cells, np.ndarray) and cells.dtype != object  # one [n, *shape] array, not cells
            X = np.asarray(cells, np.float64) if whole else np.stack(list(cells)).astype(np.float64)
            mean, std = X.mean(axis=0), X.std(axis=0)
            std[std < 1e-6 * np.maximum(1.0, np.abs(mean))] = 1.0
            c["stats"] = {"mean": mean.tolist(), "std": std.tolist()}
    return meta


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
# Writer (fakes, tests, benchmarks)
# ---------------------------------------------------------------------------------------------------------------
def input_schema(specs: Mapping[str, ColumnSpec]) -> pa.Schema:
    """The parquet schema of a split with the columns of ``specs`` (``surveyId`` first)."""
    fields = [pa.field("surveyId", pa.int64())]
    fields += [pa.field(n, s.arrow_type()) for n, s in specs.items() if n != "surveyId"]
    return pa.schema(fields)


def _matrix(values: pd.Series | np.ndarray, spec: ColumnSpec) -> np.ndarray:
    """Stack a column of per-row arrays into ``(n, width)`` in the column's element dtype, or raise naming it.

    ``values`` is a column of per-row arrays, or one array ``[n, *shape]`` (taken as it is, no per-row copies)."""
    dtype = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8}[spec.dtype]
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim >= 2:
        if int(np.prod(values.shape[1:])) != spec.width:
            raise DataError(
                f"column {spec.name!r}: every row must hold {spec.width} values (shape {list(spec.shape)}); the "
                f"array given has rows of shape {list(values.shape[1:])}. Reshape or pad {spec.name!r} to that shape."
            )
        return np.ascontiguousarray(values.reshape(len(values), spec.width), dtype=dtype)
    cells = values.to_numpy() if isinstance(values, pd.Series) else values
    if len(cells) == 0:
        return np.zeros((0, spec.width), dtype=dtype)
    lengths = np.fromiter((np.size(c) for c in cells), dtype=np.int64, count=len(cells))
    bad = np.flatnonzero(lengths != spec.width)
    if len(bad):
        raise DataError(
            f"column {spec.name!r}: every row must hold {spec.width} values (shape {list(spec.shape)}); row "
            f"{int(bad[0])} has {int(lengths[bad[0]])}. Pad {spec.name!r} to a fixed width (labels with {PAD})."
        )
    return np.stack([np.asarray(c, dtype=dtype).reshape(-1) for c in cells])


def _list_array(matrix: np.ndarray, typ: pa.DataType) -> pa.ListArray:
    n, width = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=typ))


def _binary_array(matrix: np.ndarray) -> pa.BinaryArray:
    n, width = matrix.shape
    offsets = pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int32).tobytes())
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(matrix).tobytes())]
    )


def input_arrow_table(df: pd.DataFrame | Mapping[str, Any], specs: Mapping[str, ColumnSpec]) -> pa.Table:
    """Convert a frame with the columns of ``specs`` to an Arrow table with the exact parquet types.

    Array columns hold one array (any shape with the right number of values) per row. ``df`` may also be a mapping
    of column name to values, an array column then one array ``[n, *shape]`` (no per-row arrays built or stacked).

    Raises:
        DataError: naming the column, for a missing column, a null, or a wrong number of values.
    """
    missing = [c for c in specs if c not in df]  # a frame's `in` looks at its columns, as a mapping's at its keys
    if missing:
        raise DataError(f"write_input_table: frame lacks column(s) {missing}; expected {list(specs)}.")
    arrays: list[pa.Array] = []
    for name, spec in ({"surveyId": ColumnSpec("surveyId", "int64"), **specs}).items():
        if not spec.is_array:
            values = np.asarray(df[name])
            nulls = int(pd.isna(values).sum())
            if nulls:
                raise DataError(f"write_input_table: column {name!r} has {nulls} null value(s).")
            arrays.append(pa.array(values, type=pa.int64() if name == "surveyId" else SCALAR_ARROW[spec.dtype]))
        elif spec.dtype == "uint8":
            arrays.append(_binary_array(_matrix(df[name], spec)))
        else:
            arrays.append(_list_array(_matrix(df[name], spec), LIST_ARROW[spec.dtype]))
    return pa.Table.from_arrays(arrays, schema=input_schema(specs))


def write_input_table(
    df: pd.DataFrame,
    path: str | Path,
    specs: Mapping[str, ColumnSpec],
    rows_per_file: int = 100_000,
    row_group_size: int = 20_000,
    threads: int = 1,
) -> list[Path]:
    """Write one split of the model-input table like Spark does: ``part-*.parquet`` files and ``_SUCCESS``.

    The folder is built in a temporary sibling and renamed into place (:func:`glc.io.atomic_dir`), so a crash
    never leaves a half-written split that looks complete.

    Args:
        df: one row per survey with ``surveyId`` and the columns of ``specs``. Rows are written in the given order.
        path: the split folder, e.g. ``root / "train"`` (replaced if it exists).
        specs: the columns (``column_specs(meta)`` without ``surveyId``, or a subset).
        rows_per_file: rows per part file (the last file takes the remainder).
        row_group_size: rows per parquet row group inside a file.
        threads: part files written at once (pyarrow encodes outside the GIL: with several files, one per core
            shortens the write; the files and their row groups are the same).

    Returns:
        The part files, in name order.

    Raises:
        ValueError: if ``rows_per_file`` or ``row_group_size`` is < 1.
        DataError: if a column is missing, null, or an array column has the wrong number of values.
    """
    if rows_per_file < 1 or row_group_size < 1:
        raise ValueError(
            f"write_input_table: rows_per_file and row_group_size must be >= 1, got {rows_per_file}, {row_group_size}."
        )
    specs = {k: v for k, v in specs.items() if k != "surveyId"}
    table = input_arrow_table(df, specs)
    n_files = max(1, -(-table.num_rows // rows_per_file))
    names = [f"part-{i:05d}.parquet" for i in range(n_files)]

    with atomic_dir(path, summary={"rows": table.num_rows, "files": n_files}) as tmp:

        def write(i: int) -> None:
            part = table.slice(i * rows_per_file, rows_per_file)
            pq.write_table(part, tmp / names[i], row_group_size=row_group_size, compression="snappy")

        with ThreadPoolExecutor(max(1, min(threads, n_files))) as pool:
            list(pool.map(write, range(n_files)))  # list(): a file's error is raised here
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
    """What :func:`scan_split` found in a split folder: its files, row groups and the specs of the loaded columns."""

    split: str
    directory: Path
    files: list[Path]
    pieces: list[Piece]
    columns: tuple[str, ...]
    specs: dict[str, ColumnSpec]
    num_classes: int
    num_rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_rows = sum(p.num_rows for p in self.pieces)

    @property
    def label_width(self) -> int:
        """L, the fixed length of ``labels``."""
        return self.specs["labels"].width

    def width(self, name: str) -> int:
        """Stored values per row of array column ``name``.

        Raises:
            KeyError: if ``name`` is not an array column of this split's loaded columns.
        """
        spec = self.specs.get(name)
        if spec is None or not spec.is_array:
            arrays = [n for n, sp in self.specs.items() if sp.is_array]
            raise KeyError(
                f"{name!r} is not a loaded array column of the model-input table; array columns are {arrays}."
            )
        return spec.width

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


def _check_schema(path: Path, schema: pa.Schema, info: SplitInfo) -> None:
    for name in info.columns:
        if name not in schema.names:
            raise DataError(
                f"{path}: column {name!r} is missing (found {schema.names}). "
                "Rebuild the model-input table or drop the column from the data module's `columns`."
            )
        typ = schema.field(name).type
        spec = info.specs[name]
        if name == "surveyId":
            ok, want = pa.types.is_integer(typ), "an integer (int64)"
        elif not spec.is_array:
            ok = (
                pa.types.is_integer(typ)
                if spec.dtype == "int32"
                else (pa.types.is_integer(typ) or pa.types.is_floating(typ))
            )
            want = f"a number ({spec.dtype})"
        elif spec.dtype == "uint8":
            ok, want = pa.types.is_binary(typ) or pa.types.is_large_binary(typ), f"binary ({spec.width} bytes per row)"
        else:
            element_ok = pa.types.is_integer if spec.dtype == "int32" else pa.types.is_floating
            ok = (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and element_ok(typ.value_type)
            want = f"list<{spec.dtype}>"
        if not ok:
            raise DataError(f"{path}: column {name!r} has type {typ}, expected {want} (meta.json).")


def check_list_width(values: pa.Array | pa.ChunkedArray, column: str, width: int, where: str) -> None:
    """Raise unless every row of list (or binary) column ``column`` has exactly ``width`` non-null entries.

    Args:
        values: the list or binary column (Arrow).
        column: its name (for the message).
        width: the expected length (from the column's shape in meta.json).
        where: the file (and row group) the column was read from (for the message).

    Raises:
        DataError: naming the column and ``where``, with the first offending row and its length.
    """
    typ = values.type
    binary = pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
    lengths = pc.fill_null(pc.binary_length(values) if binary else pc.list_value_length(values), -1).to_numpy(
        zero_copy_only=False
    )
    bad = np.flatnonzero(lengths != width)
    if len(bad):
        row = int(bad[0])
        found = "a null" if lengths[row] < 0 else f"{int(lengths[row])} values"
        raise DataError(
            f"{where}: column {column!r} must hold {'byte strings of' if binary else 'lists of'} exactly {width} "
            f"values (meta.json), but row {row} has "
            f"{found} ({len(bad)} bad row(s)). Rebuild the model-input table with a fixed width."
        )
    if not binary and pc.any(pc.is_null(pc.list_flatten(values))).as_py():
        raise DataError(f"{where}: column {column!r} has null list elements; expected {width} numbers per row.")


def check_batch(table: pa.Table, info: SplitInfo, where: str) -> None:
    """Value checks on one decoded row group: nulls/NaN in numeric columns, array lengths, label range.

    Raises:
        DataError: naming the column and ``where``.
    """
    for name in info.columns:
        col = table.column(name)
        spec = info.specs[name]
        if name == "labels":
            check_list_width(col, name, spec.width, where)
            flat = pc.list_flatten(col)
            if len(flat):
                lo, hi = pc.min_max(flat).values()
                if lo.as_py() < PAD or hi.as_py() >= info.num_classes:
                    raise DataError(
                        f"{where}: column 'labels' holds {lo.as_py()}..{hi.as_py()}, expected class indices "
                        f"0..{info.num_classes - 1} (num_classes in meta.json) or the pad {PAD}."
                    )
        elif spec.is_array:
            check_list_width(col, name, spec.width, where)
            if spec.dtype != "uint8":
                flat = pc.list_flatten(col)
                if len(flat) and pa.types.is_floating(flat.type) and not pc.all(pc.is_finite(flat)).as_py():
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
    specs = column_specs(meta)
    unknown = [c for c in cols if c not in specs]
    if unknown:
        raise DataError(
            f"{d}: column(s) {unknown} are not in the table (meta.json columns: {sorted(specs)}); build ModelInputs "
            "with the feature sets that provide them."
        )
    info_files = part_files(d)
    pieces: list[Piece] = []
    ids: list[np.ndarray] = []
    info = SplitInfo(d.name, d, info_files, [], cols, {c: specs[c] for c in cols}, int(meta["num_classes"]))
    for path in info_files:
        pf = _open(path)
        _check_schema(path, pf.schema_arrow, info)
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
