"""The writer every per-survey feature artifact shares, and the plumbing around it.

Every per-survey feature job (:mod:`glc.etl.raster_tiles`, :mod:`glc.etl.patches`, :mod:`glc.etl.cubes`) emits, per
survey, either one good row or one row per bad input (features null, ``file``/``reason`` set);
:func:`write_feature_artifact` splits them into ``data/`` and ``quarantine/`` (through :mod:`glc.etl.staging`),
applies the bad-input policy (fail naming the inputs, or count and quarantine under ``max_bad_fraction``) and writes
the artifact atomically with its ``_SUCCESS`` summary. Beside it: the survey-table reader, the locality partitioning
of the survey rows and the Arrow builders the jobs use.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from glc.data.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from glc.etl.staging import FeatureJob

log = logging.getLogger(__name__)

#: Sub-folders of every feature artifact.
DATA_DIR = "data"
QUARANTINE_DIR = "quarantine"
#: How many bad inputs are quoted in an error message / the summary.
MAX_EXAMPLES = 10


def check_surveys(surveys: DataFrame, need: Sequence[str] = ("surveyId", "split")) -> None:
    """Fail early, naming the missing columns, when ``surveys`` is not a SurveyTable-like frame.

    Raises:
        ValueError: if a column is missing.
    """
    missing = [c for c in need if c not in surveys.columns]
    if missing:
        raise ValueError(
            f"survey frame lacks column(s) {missing} (has {surveys.columns}); pass the SurveyTable artifact "
            "(glc.tasks.surveys.SurveyTable, surveys/ parquet)"
        )


def auto_partitions(spark: SparkSession, rows: DataFrame, rows_per_partition: int, requested: int = 0) -> int:
    """Number of partitions: ``requested`` if > 0, else enough for ``rows_per_partition`` and for every core.

    Args:
        spark: the session (its default parallelism is the number of cores in local mode).
        rows: the rows to process (counted only when ``requested`` is 0).
        rows_per_partition: target rows per partition.
        requested: an explicit count (``0`` = automatic).

    Returns:
        A positive partition count.
    """
    if requested < 0:
        raise ValueError(f"partitions must be >= 0 (0 = automatic), got {requested}")
    if requested:
        return int(requested)
    cores = max(1, int(spark.sparkContext.defaultParallelism))
    return max(cores, math.ceil(max(rows.count(), 1) / rows_per_partition))


def locality_partition(df: DataFrame, n_partitions: int, keys: Sequence[Any]) -> DataFrame:
    """Range-partition ``df`` on ``keys`` (columns or expressions) and sort each partition by them, then surveyId.

    Range partitioning keeps rows with close keys in the same partition (a spatial strip, a patch folder, an id
    range), and no round-robin shuffle is involved (its output is not deterministic on retries, SPARK-23243).
    Each output row depends only on its own inputs, so the written artifact is the same whatever the partitioning.
    """
    from pyspark.sql import functions as F

    cols = [F.col(k) if isinstance(k, str) else k for k in keys]
    return df.repartitionByRange(int(n_partitions), *cols).sortWithinPartitions(*cols, F.col("surveyId"))


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Merge Spark's Arrow batches into batches of about ``batch_size`` rows (larger batches group better)."""
    buf: list[pa.RecordBatch] = []
    n = 0
    for rb in batches:
        if rb.num_rows == 0:
            continue
        buf.append(rb)
        n += rb.num_rows
        if n >= batch_size:
            yield pa.Table.from_batches(buf).combine_chunks().to_batches()[0]
            buf, n = [], 0
    if buf:
        yield pa.Table.from_batches(buf).combine_chunks().to_batches()[0]


def list_matrix(column: pa.ChunkedArray | pa.Array, width: int, dtype: Any = np.float32) -> np.ndarray:
    """The ``(n, width)`` numpy block of a null-free ``list`` column whose rows all have ``width`` values."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    if arr.null_count or flat.size != len(arr) * width:
        raise ValueError(
            f"expected {len(arr)} rows of {width} values without nulls, got {flat.size} values, {arr.null_count} nulls"
        )
    return flat.reshape(len(arr), width)


_FLOAT32 = pa.float32()


def list_array(values: np.ndarray, value_type: pa.DataType = _FLOAT32) -> pa.Array:
    """A ``list<value_type>`` Arrow array from a 2D numpy array (one row per list)."""
    v = np.ascontiguousarray(values)
    n, w = v.shape
    offsets = pa.array(np.arange(0, (n + 1) * w, w, dtype=np.int32) if n else np.zeros(1, np.int32))
    flat = pa.array(v.reshape(-1), type=value_type)
    return pa.ListArray.from_arrays(offsets, flat)


def binary_array(values: np.ndarray) -> pa.Array:
    """A ``binary`` Arrow array whose row ``i`` holds the C-order bytes of ``values[i]`` (no per-row copy)."""
    v = np.ascontiguousarray(values)
    n = v.shape[0]
    width = int(v[0].nbytes) if n else 0
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if n * width >= 2**31:
        raise ValueError(f"binary batch of {n * width} bytes exceeds 2 GiB; lower the batch size")
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(v.reshape(-1).view(np.uint8))]
    )


def bad_batch(
    schema: pa.Schema, bad: Sequence[tuple[int, str, str]], ids: np.ndarray, splits: Sequence[str]
) -> pa.RecordBatch:
    """Rows for bad inputs: ``(row index, file, reason)`` -> surveyId/split set, features null, file/reason set."""
    cols = []
    for field in schema:
        if field.name == "surveyId":
            cols.append(pa.array([int(ids[i]) for i, _, _ in bad], type=pa.int64()))
        elif field.name == "split":
            cols.append(pa.array([splits[i] for i, _, _ in bad], type=pa.string()))
        elif field.name == "file":
            cols.append(pa.array([f for _, f, _ in bad], type=pa.string()))
        elif field.name == "reason":
            cols.append(pa.array([r for _, _, r in bad], type=pa.string()))
        else:
            cols.append(pa.nulls(len(bad), type=field.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def good_batch(schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    """Rows for good inputs: the given columns, ``file``/``reason`` null."""
    n = len(next(iter(columns.values())))
    cols = [columns[f.name] if f.name in columns else pa.nulls(n, type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def arrow_schema(spark: SparkSession, ddl: str) -> pa.Schema:
    """The Arrow schema Spark expects from ``mapInArrow`` for a DDL schema string (parsed on the driver's JVM)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark.createDataFrame([], ddl).schema)


def staged_schema(feature_ddl: str) -> str:
    """DDL of a staged feature frame: ``surveyId, split``, the features, then ``file, reason`` (null when good)."""
    return f"surveyId long, split string, {feature_ddl}, file string, reason string"


def write_feature_artifact(
    spark: SparkSession,
    job: FeatureJob,
    out_dir: str | Path,
    *,
    what: str,
    skip_bad_inputs: bool,
    summary: dict[str, Any],
    extra_summary: Callable[[pa.Table], dict[str, Any]] | None = None,
    max_bad_fraction: float = 0.01,
    profile: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Load step shared by the per-survey feature jobs: ``data/`` + ``quarantine/`` + ``_SUCCESS``, atomically.

    The job runs **once** (:mod:`glc.etl.staging`): its executors spill good rows to ``surveyId``-range buckets and
    bad-input rows to a bad folder, then one task per bucket sorts and writes ``data/part-<bucket>.parquet``
    (``data/`` read in file order is sorted by ``surveyId``). Bad inputs are sorted by ``surveyId, file, reason``
    into ``quarantine/`` (always written, possibly empty).

    Args:
        spark: the session.
        job: the feature job (:class:`glc.etl.staging.FeatureJob`).
        out_dir: the artifact folder (written through :func:`glc.io.atomic_dir`).
        what: the artifact name, for messages.
        skip_bad_inputs: quarantine bad inputs (``True``) or fail (``False``).
        summary: the ``_SUCCESS`` summary; counts are added to it (it is also returned).
        extra_summary: artifact-specific *additive* counts (``{name: int | {name: int}}``) of a table of good
            rows; called on every ``data/`` file's rows in the merge tasks, summed, and added to the summary.
        max_bad_fraction: with ``skip_bad_inputs``, the largest fraction of surveys that may be skipped; above it
            the job fails (a dead raster or an empty patch folder must never give a "successful" empty artifact).
        profile: ``(DriverPhases, accumulator)`` of :mod:`glc.etl.profile`: the driver phases are timed into the
            first, and both (with the executors' Python laps summed in the accumulator) go to ``summary["profile"]``.

    Returns:
        The summary (with ``n_surveys``, ``n_written``, ``by_split``, ``n_bad_inputs``, ``n_skipped``,
        ``bad_examples``, ``seconds``, ``profile``).

    Raises:
        DataError: if there are bad inputs and ``skip_bad_inputs`` is false, or more than ``max_bad_fraction`` of
            the surveys would be skipped; names the count, the first surveys, their files and reasons, and what to do.
    """
    import shutil

    import pyarrow.parquet as pq

    from glc.etl.profile import DriverPhases, phase_accumulator, python_profile
    from glc.etl.staging import bucket_bounds, run_compute, run_merge
    from glc.io import atomic_dir, write_json

    phases, acc = profile if profile is not None else (DriverPhases(), phase_accumulator(spark))
    t0 = time.time()
    with atomic_dir(out_dir, summary=summary) as tmp:
        staging = Path(tmp) / "_staging"
        try:
            with phases.phase("bounds"):
                bounds = bucket_bounds(job.surveys, job.row_bytes, int(spark.sparkContext.defaultParallelism))
            with phases.phase("compute"):
                staged = run_compute(spark, job, bounds, staging, acc)
            n_bad = staged.n_bad
            examples: list[dict[str, Any]] = []
            n_skipped = 0
            bad = None
            if n_bad:
                with phases.phase("bad_inputs"):
                    bad = spark.read.parquet(*staged.bad_files).select("surveyId", "file", "reason")
                    n_skipped = bad.select("surveyId").distinct().count()
                    examples = [
                        r.asDict() for r in bad.orderBy("surveyId", "file", "reason").limit(MAX_EXAMPLES).collect()
                    ]
            if n_bad and not skip_bad_inputs:
                shown = "; ".join(f"surveyId {e['surveyId']}: {e['reason']}" for e in examples[:3])
                raise DataError(
                    f"{what}: {n_bad} bad input(s) for {n_skipped} survey(s), e.g. {shown}. Fix or re-extract those "
                    "files, or rerun with skip_bad_inputs=True (luigi: --skip-bad-inputs) to leave those surveys "
                    "out, counted and listed in the artifact's quarantine/ table."
                )
            n_total = staged.n_good + n_skipped
            if n_skipped and n_skipped > max_bad_fraction * n_total:
                shown = "; ".join(f"surveyId {e['surveyId']}: {e['reason']}" for e in examples[:3])
                raise DataError(
                    f"{what}: {n_skipped} of {n_total} surveys have bad inputs ({n_skipped / max(n_total, 1):.1%}), "
                    f"more than max_bad_fraction={max_bad_fraction} allows even with skip_bad_inputs (e.g. {shown}). "
                    "The input is broken as a whole: fix it, or raise the ceiling (luigi: --max-bad-fraction)."
                )
            if n_bad:
                log.warning(
                    "%s: skipped %d survey(s) with %d bad input(s) (quarantine/ of %s), e.g. %s",
                    what,
                    n_skipped,
                    n_bad,
                    out_dir,
                    examples[:3],
                )
            with phases.phase("merge"):
                extra = run_merge(spark, staged, job.schema, Path(tmp) / DATA_DIR, job.row_bytes, acc, extra_summary)
            with phases.phase("quarantine"):
                if bad is not None:
                    # few rows: one sorted file, no sampling pass
                    bad.coalesce(1).sortWithinPartitions("surveyId", "file", "reason").write.mode("overwrite").parquet(
                        str(Path(tmp) / QUARANTINE_DIR)
                    )
                else:
                    (Path(tmp) / QUARANTINE_DIR).mkdir()
                    empty = pa.schema([job.schema.field(c) for c in ("surveyId", "file", "reason")]).empty_table()
                    pq.write_table(empty, Path(tmp) / QUARANTINE_DIR / "part-00000.parquet")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        by_split = {s: n for s, n in sorted(staged.good_by_split.items()) if n}
        summary.update(
            {
                "artifact": what,
                "n_surveys": int(sum(by_split.values())) + n_skipped,
                "n_written": int(sum(by_split.values())),
                "by_split": by_split,
                "n_bad_inputs": n_bad,
                "n_skipped": n_skipped,
                "bad_examples": examples,
                "skip_bad_inputs": bool(skip_bad_inputs),
                "max_bad_fraction": float(max_bad_fraction),
            }
        )
        summary.update(extra)
        summary["seconds"] = round(time.time() - t0, 3)
        summary["profile"] = {"driver_seconds": phases.rounded(), "python_seconds": python_profile(acc)}
        write_json(Path(tmp) / "report.json", summary, atomic=False)
    log.info("%s: wrote %d rows to %s (%d skipped)", what, summary["n_written"], out_dir, summary["n_skipped"])
    return summary


def read_surveys_frame(spark: SparkSession, survey_dir: str | Path) -> DataFrame:
    """The ``surveys/`` parquet of a complete SurveyTable artifact folder as a Spark frame.

    Raises:
        FileNotFoundError: if the artifact has no ``_SUCCESS`` flag.
    """
    from glc.io import is_complete

    if not is_complete(survey_dir):
        raise FileNotFoundError(f"survey table {survey_dir} is incomplete (no _SUCCESS); rerun SurveyTable")
    return spark.read.parquet(str(Path(survey_dir) / "surveys"))
