"""The load step of the per-survey feature jobs, written by the executors themselves: staged buckets -> sorted files.

Profiling ``RasterTiles`` (``make bench-etl``, 400,000 sites on 2 cores) showed the Spark glue around the
Arrow-batched partition functions costing as much as the work: caching the staged rows (``persist``: +3.8 s),
the global ``orderBy`` (sample + shuffle: +1.9 s) and Spark's row-by-row parquet encoding of array columns
(+3.5 s) against 9.5 s of tiling per core. The rows already are Arrow batches in the executors' Python, where
pyarrow writes them column-wise, so the load step is done there, in two Spark jobs:

1. **Compute + spill** (one action): the job's partition function runs under :func:`spill_fn`. Every good row goes
   to the bucket of its ``surveyId`` (``B`` id ranges fixed *before* the job from the input's id quantiles, see
   :func:`bucket_bounds`), appended to ``staging/b<bucket>/p<partition>.arrow`` (Arrow IPC, LZ4: the cheapest
   write and read there is); bad-input rows go to ``staging/bad/p<partition>.parquet`` (read back by Spark). Each file
   is written under a temporary name and renamed when the partition is done, so a retried (or speculative) attempt
   rewrites the same name with the same rows. The only rows that reach the JVM are a manifest: one row per (file, split)
   with its row count.
2. **Merge** (one task per bucket): read the bucket's files (in file-name order), sort by ``surveyId`` (a stable
   sort), write ``data/part-<bucket>.parquet`` with the session's parquet codec. Buckets are disjoint increasing id
   ranges, so ``data/`` read in file-name order is sorted by ``surveyId``, as every feature artifact promises.

The driver checks that the merged row counts equal the manifest's (a lost staging file is an error, never a smaller
artifact). Counts per split and bad inputs come from the manifest (an action's results, so each partition counts
once); the bad rows themselves are read back with Spark only when there are any.

Staging, ``data/`` and the executors must share a filesystem (a local disk in ``local[*]``, NFS or a mounted
bucket on a cluster), as the driver-side ``_SUCCESS``/rename of :func:`glc.io.atomic_dir` already requires.

Why by hand: Spark has no writer that takes Arrow batches from Python workers, and its own sort+write path is the
cost being removed; pyarrow provides every file operation (``ParquetWriter``, ``sort_by``, ``read_table``).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Target size of one ``data/`` file (and of one merge task's rows in memory).
TARGET_FILE_BYTES = 128 * 2**20
#: Target size of one parquet row group of ``data/``.
TARGET_ROW_GROUP_BYTES = 32 * 2**20
#: Fewest rows per bucket when splitting for parallelism alone (small artifacts stay one file).
MIN_ROWS_PER_BUCKET = 10_000
#: Codec of the staging files (read once, deleted after the merge: speed over size).
STAGING_CODEC = "lz4"
#: Compression of the Arrow IPC staging files of good rows.
STAGING_IPC_CODEC = "lz4"
#: Columns of a bad-input row (the quarantine table, plus ``split`` for the counts).
BAD_COLUMNS = ("surveyId", "split", "file", "reason")
#: The manifest each compute task returns.
MANIFEST_DDL = "kind string, bucket int, file string, split string, rows long"

_PARQUET_CODECS = {
    "uncompressed": "none",
    "none": "none",
    "snappy": "snappy",
    "gzip": "gzip",
    "zstd": "zstd",
    "lz4": "lz4",
    "lz4raw": "lz4",
    "brotli": "brotli",
}


@dataclass(frozen=True)
class FeatureJob:
    """What :func:`glc.etl.artifact.write_feature_artifact` runs: the partitioned input rows and the Arrow function.

    Attributes:
        rows: the input frame, already locality-partitioned (the function sees one partition at a time).
        fn: the ``mapInArrow`` function (batches of ``rows`` -> staged batches of ``schema``).
        ddl: the staged DDL (:func:`glc.etl.artifact.staged_schema`).
        schema: its Arrow schema.
        row_bytes: estimated bytes of one good row (sizes the ``data/`` files and row groups).
        surveys: the survey frame the ids come from (for the bucket bounds).
    """

    rows: DataFrame
    fn: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
    ddl: str
    schema: pa.Schema
    row_bytes: int
    surveys: DataFrame

    def frame(self) -> DataFrame:
        """The staged rows as a lazy Spark frame (every row through the JVM: for inspection and tests)."""
        return self.rows.mapInArrow(self.fn, self.ddl)


def n_buckets(n_rows: int, row_bytes: int, cores: int) -> int:
    """Buckets (= ``data/`` files): enough for :data:`TARGET_FILE_BYTES` each, and one per core when large enough."""
    by_size = math.ceil(max(n_rows, 1) * max(row_bytes, 1) / TARGET_FILE_BYTES)
    by_cores = min(max(cores, 1), max(1, n_rows // MIN_ROWS_PER_BUCKET))
    return int(max(1, by_size, by_cores))


#: Resolution of the id quantiles computed with the count (more buckets than this take a second pass).
QUANTILE_GRID = 64


def bucket_bounds(surveys: DataFrame, row_bytes: int, cores: int) -> np.ndarray:
    """Increasing surveyId bounds of the buckets (:func:`n_buckets` of them).

    One Spark aggregation computes the count and a grid of :data:`QUANTILE_GRID` approximate id quantiles; the
    bounds are the grid quantiles nearest to ``i / buckets`` (a second pass computes exact probabilities when there
    are more buckets than grid points). Row ``r`` goes to bucket ``searchsorted(bounds, id, "right")``.
    Approximate bounds only change how rows are spread over files, never their order or values; duplicate bounds
    (skewed ids) are merged.
    """
    from pyspark.sql import functions as F

    probs = [i / QUANTILE_GRID for i in range(1, QUANTILE_GRID)]
    row = surveys.agg(
        F.count(F.lit(1)).alias("n"), F.percentile_approx("surveyId", probs, 100 * QUANTILE_GRID).alias("q")
    ).collect()[0]
    buckets = n_buckets(int(row["n"]), row_bytes, cores)
    if buckets <= 1 or row["q"] is None:
        return np.zeros(0, np.int64)
    if buckets > QUANTILE_GRID:
        q = surveys.approxQuantile("surveyId", [i / buckets for i in range(1, buckets)], 1.0 / (8 * buckets))
        return np.unique(np.asarray(q, dtype=np.float64).astype(np.int64))
    grid = np.asarray(row["q"], dtype=np.int64)
    picks = [round(i * QUANTILE_GRID / buckets) - 1 for i in range(1, buckets)]
    return np.unique(grid[np.clip(picks, 0, len(grid) - 1)])


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


class _Spill:
    """The open staging writers of one partition (temporary names until :meth:`commit`)."""

    def __init__(self, staging: Path, partition: int, good_schema: pa.Schema, bad_schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._pq = pq
        self.staging, self.partition = staging, partition
        self.good_schema, self.bad_schema = good_schema, bad_schema
        self.writers: dict[str, Any] = {}
        self.counts: dict[tuple[str, int, str], int] = {}  # (kind, bucket, split) -> rows
        self.paths: dict[str, tuple[Path, Path, str, int]] = {}  # key -> (tmp, final, kind, bucket)

    def _writer(self, kind: str, bucket: int) -> Any:
        key = f"{kind}/{bucket}"
        if key not in self.writers:
            folder = self.staging / ("bad" if kind == "bad" else f"b{bucket:05d}")
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"p{self.partition:05d}.{'parquet' if kind == 'bad' else 'arrow'}"
            tmp = _tmp_name(final)
            if kind == "bad":
                self.writers[key] = self._pq.ParquetWriter(tmp, self.bad_schema, compression=STAGING_CODEC)
            else:
                options = pa.ipc.IpcWriteOptions(compression=STAGING_IPC_CODEC)
                self.writers[key] = pa.ipc.new_file(str(tmp), self.good_schema, options=options)
            self.paths[key] = (tmp, final, kind, bucket)
        return self.writers[key]

    def write(self, kind: str, bucket: int, table: pa.Table) -> None:
        self._writer(kind, bucket).write_table(table)
        import pyarrow.compute as pc

        for vc in pc.value_counts(table.column("split")).to_pylist():
            key = (kind, bucket, str(vc["values"]))
            self.counts[key] = self.counts.get(key, 0) + int(vc["counts"])

    def commit(self) -> pa.RecordBatch:
        """Close and rename every file; the manifest rows (kind, bucket, file, split, rows)."""
        for w in self.writers.values():
            w.close()
        for tmp, final, _, _ in self.paths.values():
            os.replace(tmp, final)
        rows = [(kind, b, str(self.paths[f"{kind}/{b}"][1]), s, n) for (kind, b, s), n in sorted(self.counts.items())]
        return pa.RecordBatch.from_arrays(
            [
                pa.array([r[i] for r in rows], t)
                for i, t in enumerate((pa.string(), pa.int32(), pa.string(), pa.string(), pa.int64()))
            ],
            names=["kind", "bucket", "file", "split", "rows"],
        )

    def abort(self) -> None:
        for w in self.writers.values():
            try:
                w.close()
            except Exception:
                pass
        for tmp, _, _, _ in self.paths.values():
            tmp.unlink(missing_ok=True)


def spill_fn(job: FeatureJob, bounds: np.ndarray, staging: str | Path, acc: Any = None) -> Callable:
    """The ``mapInArrow`` function of the compute job: ``job.fn``'s batches spilled to staging; yields the manifest.

    Args:
        job: the feature job.
        bounds: from :func:`bucket_bounds`.
        staging: the staging folder (shared with the driver).
        acc: the job's phase accumulator (:mod:`glc.etl.profile`); the spill's time is charged to ``spill``.
    """
    staging = Path(staging)
    good_names = [f.name for f in job.schema if f.name not in ("file", "reason")]
    good_schema = pa.schema([job.schema.field(n) for n in good_names])
    bad_schema = pa.schema([job.schema.field(n) for n in BAD_COLUMNS])
    bounds = np.asarray(bounds, np.int64)
    fn = job.fn

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc
        from pyspark import TaskContext
        from threadpoolctl import threadpool_limits

        from glc.etl.profile import PhaseClock

        ctx = TaskContext.get()
        spill = _Spill(staging, ctx.partitionId() if ctx is not None else 0, good_schema, bad_schema)
        clock = PhaseClock(acc)
        # One BLAS thread per task: Spark already runs one task per core, and BLAS threads on top of that
        # oversubscribe the cores (the DCT matrix products ran ~2x slower in the profile).
        limits = threadpool_limits(1)
        try:
            for rb in fn(batches):
                clock.lap("_job")  # the job's own clock has timed this part
                if rb.num_rows == 0:
                    continue
                table = pa.Table.from_batches([rb])
                reason = table.column("reason")
                any_bad = reason.null_count < table.num_rows
                bad = reason.is_valid() if any_bad else None
                good = (table.filter(pc.invert(bad)) if any_bad else table).select(good_names)
                if good.num_rows:
                    ids = good.column("surveyId").to_numpy()
                    buckets = np.searchsorted(bounds, ids, side="right")
                    if len(bounds) == 0 or (buckets[0] == buckets).all():
                        spill.write("good", int(buckets[0]), good)
                    else:
                        order = np.argsort(buckets, kind="stable")
                        sorted_b = buckets[order]
                        starts = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1]])
                        for s, e in zip(starts, np.r_[starts[1:], len(order)]):
                            spill.write("good", int(sorted_b[s]), good.take(pa.array(order[s:e])))
                if any_bad:
                    spill.write("bad", 0, table.filter(bad).select(list(BAD_COLUMNS)))
                clock.lap("spill")
            manifest = spill.commit()
            clock.lap("spill")
        except BaseException:
            spill.abort()
            raise
        finally:
            limits.restore_original_limits()
        clock.seconds.pop("_job", None)
        clock.flush()
        yield manifest

    return run


@dataclass(frozen=True)
class Staged:
    """What the compute job left: files per bucket, the bad-input files, and the counts."""

    good_files: dict[int, list[str]]
    bad_files: list[str]
    good_by_split: dict[str, int]
    bad_by_split: dict[str, int]

    @property
    def n_good(self) -> int:
        """Good rows staged."""
        return int(sum(self.good_by_split.values()))

    @property
    def n_bad(self) -> int:
        """Bad-input rows staged."""
        return int(sum(self.bad_by_split.values()))


def run_compute(spark: SparkSession, job: FeatureJob, bounds: np.ndarray, staging: Path, acc: Any = None) -> Staged:
    """Run the compute job (one action) and read its manifest."""
    staging.mkdir(parents=True, exist_ok=True)
    rows = job.rows.mapInArrow(spill_fn(job, bounds, staging, acc), MANIFEST_DDL).collect()
    good: dict[int, set[str]] = {}
    bad: set[str] = set()
    good_by_split: dict[str, int] = {}
    bad_by_split: dict[str, int] = {}
    for r in rows:
        if r["kind"] == "good":
            good.setdefault(int(r["bucket"]), set()).add(r["file"])
            good_by_split[r["split"]] = good_by_split.get(r["split"], 0) + int(r["rows"])
        else:
            bad.add(r["file"])
            bad_by_split[r["split"]] = bad_by_split.get(r["split"], 0) + int(r["rows"])
    return Staged({b: sorted(f) for b, f in sorted(good.items())}, sorted(bad), good_by_split, bad_by_split)


def parquet_codec(spark: SparkSession) -> str:
    """The pyarrow name of the session's ``spark.sql.parquet.compression.codec`` (zstd in glc's conf)."""
    name = (spark.conf.get("spark.sql.parquet.compression.codec", "snappy") or "snappy").lower()
    if name not in _PARQUET_CODECS:
        raise ValueError(
            f"spark.sql.parquet.compression.codec={name!r} has no "
            f"pyarrow equivalent; use one of {sorted(_PARQUET_CODECS)}"
        )
    return _PARQUET_CODECS[name]


def _take_column(col: pa.ChunkedArray, order: np.ndarray) -> pa.Array:
    """``col.take(order)``; for null-free fixed-width ``list`` / ``binary`` rows a numpy gather of the values buffer.

    pyarrow's ``take`` on list arrays walks the offsets row by row (4x slower than a gather of a ``(n, width)``
    block measured on 400,000 rows of 64 floats); the feature columns are fixed width, so they take the fast path.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if n and arr.null_count == 0 and pa.types.is_list(arr.type):
        offsets = arr.offsets.to_numpy()
        width = int(offsets[1] - offsets[0])
        flat = arr.values.slice(int(offsets[0]), n * width)
        numeric = pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type) or pa.types.is_boolean(flat.type)
        if numeric and flat.null_count == 0 and (np.diff(offsets) == width).all():
            block = flat.to_numpy(zero_copy_only=False).reshape(n, width)[order]
            new_offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
            return pa.ListArray.from_arrays(new_offsets, pa.array(block.reshape(-1), type=flat.type), type=arr.type)
    if n and arr.null_count == 0 and pa.types.is_binary(arr.type):
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + n + 1]
        width = int(offsets[1] - offsets[0])
        if (np.diff(offsets) == width).all():
            data = np.frombuffer(arr.buffers()[2], np.uint8)[int(offsets[0]) : int(offsets[0]) + n * width]
            block = np.ascontiguousarray(data.reshape(n, width)[order])
            new_offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
            return pa.Array.from_buffers(
                arr.type, n, [None, pa.py_buffer(new_offsets), pa.py_buffer(block.reshape(-1))]
            )
    return arr.take(pa.array(order))


def take_rows(table: pa.Table, order: np.ndarray) -> pa.Table:
    """The rows ``order`` of ``table`` (see :func:`_take_column` for the fast path)."""
    return pa.Table.from_arrays([_take_column(c, order) for c in table.columns], schema=table.schema)


def sum_counts(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Key-by-key sum of nested ``{name: int | {name: int}}`` count dicts (partial counts of the buckets)."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            if isinstance(v, dict):
                out[k] = sum_counts([out.get(k, {}), v])
            else:
                out[k] = out.get(k, 0) + v
    return out


def merge_bucket(
    files: Sequence[str],
    out: str | Path,
    codec: str,
    row_group_rows: int,
    counts: Callable[[pa.Table], dict[str, Any]] | None = None,
) -> tuple[int, dict[str, Any], dict[str, float]]:
    """Read a bucket's staging files (in order), sort by ``surveyId`` (stable), write ``out`` atomically.

    Args:
        files: the bucket's staging files.
        out: the ``data/`` file.
        codec: parquet compression.
        row_group_rows: rows per parquet row group.
        counts: the job's additive counts over the bucket's rows (see :func:`sum_counts`).

    Returns:
        ``(rows written, counts, seconds per phase)``.
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    tables = []
    for f in files:
        with pa.OSFile(str(f), "rb") as src:
            tables.append(pa.ipc.open_file(src).read_all())
    table = pa.concat_tables(tables)
    t1 = time.perf_counter()
    order = np.argsort(table.column("surveyId").to_numpy(), kind="stable")
    if not (order[1:] > order[:-1]).all():  # already sorted: no copy
        table = take_rows(table, order)
    part = counts(table) if counts is not None else {}
    t2 = time.perf_counter()
    final = Path(out)
    tmp = _tmp_name(final)
    try:
        pq.write_table(table, tmp, compression=codec, row_group_size=max(1, int(row_group_rows)))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    t3 = time.perf_counter()
    return table.num_rows, part, {"merge_read": t1 - t0, "merge_sort": t2 - t1, "merge_write": t3 - t2}


def run_merge(
    spark: SparkSession,
    staged: Staged,
    schema: pa.Schema,
    data_dir: Path,
    row_bytes: int,
    acc: Any = None,
    counts: Callable[[pa.Table], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One Spark task per bucket: :func:`merge_bucket` into ``data_dir/part-<bucket>.parquet``.

    An empty artifact gets one empty file with the schema (readers need one).

    Returns:
        The summed ``counts`` of every bucket (``{}`` without ``counts``).

    Raises:
        RuntimeError: if the rows merged differ from the rows the compute job reported (a lost staging file).
    """
    import pyarrow.parquet as pq

    data_dir.mkdir(parents=True, exist_ok=True)
    good_schema = pa.schema([f for f in schema if f.name not in ("file", "reason")])
    if not staged.good_files:
        pq.write_table(good_schema.empty_table(), data_dir / "part-00000.parquet", compression=parquet_codec(spark))
        return counts(good_schema.empty_table()) if counts is not None else {}
    codec = parquet_codec(spark)
    rg = max(1, TARGET_ROW_GROUP_BYTES // max(int(row_bytes), 1))
    tasks = [(b, files, str(data_dir / f"part-{b:05d}.parquet")) for b, files in staged.good_files.items()]

    def merge(items: Iterator[tuple[int, list[str], str]]) -> Iterator[tuple[int, int, dict[str, Any]]]:
        from glc.etl.profile import PhaseClock

        for b, files, out in items:
            n, part, seconds = merge_bucket(files, out, codec, rg, counts)
            clock = PhaseClock(acc)
            clock.seconds.update(seconds)
            clock.flush()
            yield b, n, part

    merged = spark.sparkContext.parallelize(tasks, len(tasks)).mapPartitions(merge).collect()
    total = int(sum(n for _, n, _ in merged))
    if total != staged.n_good or len(merged) != len(tasks):
        raise RuntimeError(
            f"merging the staged rows into {data_dir} gave {total} rows in {len(merged)} file(s), but the compute job "
            f"staged {staged.n_good} rows in {len(tasks)} bucket(s): a staging file was lost or rewritten meanwhile "
            "(two runs writing the same out-root?). Rerun the task."
        )
    return sum_counts([part for _, _, part in sorted(merged, key=lambda m: m[0])])
