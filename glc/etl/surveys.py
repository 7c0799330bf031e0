"""``SurveyTable``: PA metadata CSVs -> one parquet row per survey (Spark).

GLC24's PA train CSV has one row per (survey, species); tiling or joining per row repeats work ~17 times
(pitfall 10), so everything downstream keys on this one-row-per-survey table::

    surveyId long, lon, lat double, x, y double (EPSG:3035 m), year int, region, country string,
    areaInM2 double (null when empty or +-inf), geoUncertaintyInM double (null when empty),
    split string ('train' | 'test'), speciesIds array<long> (sorted, unique; null for test surveys)

Bad rows (too few or too many fields, non-numeric lon/lat or lon/lat outside the GLC study area
(:data:`glc.data.layout.GLC_BBOX`), missing surveyId, non-integral or out-of-vocabulary speciesId, and every row of a
surveyId repeated with conflicting metadata) are never dropped silently: they are counted per reason, written with
their 1-based line number to a quarantine table beside the output, and the job fails when their fraction of a file
exceeds ``max_bad_fraction``.

**Empty speciesId.** A train row whose ``speciesId`` is empty (GLC25's train file has some) is not a bad row: it
is dropped, counted (``empty_species_rows`` in the report, and in the quarantine table with its line) and left out
of ``max_bad_fraction``; a survey whose every row is such a row is left out of the table (counted as
``surveys_without_species``).

**Test ids.** An edition may number its test surveys from a floor (GLC25: 5,000,000, :attr:`Edition.test_id_min`):
a test row whose ``surveyId`` is below it is a bad test row (the id belongs to the train range: the two files are
swapped or mixed), which fails the job naming the file, line and id.

**Test rows are never dropped.** A bad row of the PA *test* metadata is a survey the submission must still cover:
with ``bad_test_rows="error"`` (the default) the job fails naming the file, line and reason; with ``"fallback"`` the
row is quarantined and counted (``test_rows`` in the summary) and the ``Submission`` task predicts that survey with
the documented fallback (see :mod:`glc.tasks.experiment`). A UTF-8 byte-order mark is handled like the Python
readers do (ignored).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glc.data.layout import GLC_BBOX, NUM_CLASSES, Layout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

PA_COLUMNS = ("lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country", "surveyId")
SURVEY_COLUMNS = (
    "surveyId",
    "lon",
    "lat",
    "x",
    "y",
    "year",
    "region",
    "country",
    "areaInM2",
    "geoUncertaintyInM",
    "split",
    "speciesIds",
)
_EXTRA = "_extra_field"


class BadRowsError(ValueError):
    """Too many malformed metadata rows to trust the file."""


@dataclass
class BadRowReport:
    """Counts of rejected rows per file and reason."""

    total_rows: int = 0
    bad_rows: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "total_rows": self.total_rows,
            "bad_rows": self.bad_rows,
            "by_reason": dict(sorted(self.by_reason.items())),
        }


def csv_header(path: str | Path) -> list[str]:
    """Column names of a CSV file (first line), so Spark columns can be selected by name, not position."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"metadata CSV {p} not found; check --data-root (expected the GLC24 layout)")
    with open(p, newline="", encoding="utf-8-sig") as fh:  # a BOM is not part of the first column's name
        header = next(csv.reader(fh), None)
    if not header:
        raise ValueError(f"{p} is empty: expected a header line starting with {', '.join(PA_COLUMNS[:3])}")
    return [h.strip() for h in header]


def read_pa_csv(spark: SparkSession, path: str | Path, split: str) -> DataFrame:
    """Read one PA metadata CSV as strings, columns by header name, with one sentinel column catching long rows."""
    from pyspark.sql import types as T

    header = csv_header(path)
    need = list(PA_COLUMNS) + (["speciesId"] if split == "train" else [])
    missing = [c for c in need if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {header}. Is this a GLC24 PA {split} metadata file?"
        )
    fields = [T.StructField(h, T.StringType()) for h in header] + [T.StructField(_EXTRA, T.StringType())]
    return (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("enforceSchema", True)
        .schema(T.StructType(fields))
        .csv(str(path))
        .select(*need, _EXTRA)
    )


#: Reason given to a train row whose speciesId is empty (dropped and counted, not a bad row).
EMPTY_SPECIES_REASON = "speciesId empty (row dropped and counted; not a bad row)"


def validate_pa_rows(df: DataFrame, split: str, test_id_min: int = 0) -> DataFrame:
    """Add typed columns and a ``_bad`` reason column (null for good rows). Pure transform, unit-tested.

    ``test_id_min``: the edition's smallest test ``surveyId`` (0 = none); a test row below it is bad.
    """
    from pyspark.sql import functions as F

    num = lambda c: F.col(c).cast("double")  # noqa: E731
    lon, lat = num("lon"), num("lat")
    sid = F.col("surveyId").cast("double")
    required = ["lon", "lat", "year", "region", "country", "surveyId"]
    reasons = [
        (F.col(_EXTRA).isNotNull(), "too many fields"),
        (F.greatest(*[F.col(c).isNull() for c in required]), "required field empty (short row?)"),
        ((sid != F.floor(sid)) | (sid < 0), "surveyId not a non-negative integer"),
        (lon.isNull() | lat.isNull() | F.isnan(lon) | F.isnan(lat), "lon/lat not numeric"),
        ((F.abs(lon) > 180) | (F.abs(lat) > 90), "lon/lat out of range"),
        (
            (lon < GLC_BBOX[0]) | (lat < GLC_BBOX[1]) | (lon > GLC_BBOX[2]) | (lat > GLC_BBOX[3]),
            f"lon/lat outside the GLC study area (lon {GLC_BBOX[0]}..{GLC_BBOX[2]}, lat {GLC_BBOX[1]}..{GLC_BBOX[3]})",
        ),
        (num("year").isNull(), "year not numeric"),
    ]
    if split == "test" and test_id_min:
        reasons.append(
            (
                sid < test_id_min,
                f"surveyId below {test_id_min:,}, the first test id of this edition (a train id in the test file?)",
            )
        )
    if split == "train":
        sp = num("speciesId")
        reasons += [
            (F.col("speciesId").isNull() & F.col(_EXTRA).isNull(), EMPTY_SPECIES_REASON),
            (sp.isNull() | F.isnan(sp), "speciesId not numeric"),
            ((sp != F.floor(sp)) | (sp < 0) | (sp >= NUM_CLASSES), f"speciesId not an integer in 0..{NUM_CLASSES - 1}"),
        ]
    # The first matching reason wins; a condition that is null (a null input) counts as a match.
    bad = F.lit(None).cast("string")
    for cond, why in reversed(reasons):
        bad = F.when(F.coalesce(cond, F.lit(True)), F.lit(why)).otherwise(bad)

    def finite_or_null(c: str) -> Any:
        v = num(c)
        return F.when(v.isNull() | F.isnan(v) | (F.abs(v) == float("inf")), None).otherwise(v)

    out = df.select(
        F.col("surveyId").cast("double").cast("long").alias("surveyId"),
        lon.alias("lon"),
        lat.alias("lat"),
        num("year").cast("int").alias("year"),
        finite_or_null("geoUncertaintyInM").alias("geoUncertaintyInM"),
        finite_or_null("areaInM2").alias("areaInM2"),
        F.col("region"),
        F.col("country"),
        *([num("speciesId").cast("long").alias("speciesId")] if split == "train" else []),
        bad.alias("_bad"),
        F.to_json(F.struct(*[F.col(c) for c in df.columns])).alias("_raw"),
    )
    return out


def aggregate_surveys(rows: DataFrame, split: str) -> DataFrame:
    """One row per survey: metadata from the survey's smallest (lon, lat, ...) tuple, sorted unique species ids."""
    from pyspark.sql import functions as F

    meta = F.min(F.struct("lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country")).alias("m")
    aggs = [meta]
    if split == "train":
        aggs.append(F.array_sort(F.collect_set("speciesId")).alias("speciesIds"))
    g = rows.groupBy("surveyId").agg(*aggs)
    cols = [F.col("surveyId")] + [
        F.col(f"m.{c}").alias(c) for c in ("lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country")
    ]
    cols.append(F.lit(split).alias("split"))
    cols.append(F.col("speciesIds") if split == "train" else F.lit(None).cast("array<long>").alias("speciesIds"))
    return g.select(*cols)


def add_laea(df: DataFrame) -> DataFrame:
    """Add EPSG:3035 ``x``, ``y`` (metres) with pyproj, vectorised per Arrow batch."""
    from pyspark.sql import types as T

    schema = T.StructType(
        list(df.schema.fields) + [T.StructField("x", T.DoubleType()), T.StructField("y", T.DoubleType())]
    )

    def project(batches):
        from glc.geo import to_laea

        for pdf in batches:
            x, y = to_laea(pdf["lon"].to_numpy(), pdf["lat"].to_numpy())
            yield pdf.assign(x=x, y=y)

    return df.mapInPandas(project, schema)


#: Reason given to every row of a surveyId whose rows disagree on its metadata.
CONFLICT_REASON = "surveyId repeated with conflicting metadata (lon/lat/year/region/country/area/uncertainty)"
BAD_TEST_POLICIES = ("error", "fallback")


def flag_conflicts(rows: DataFrame) -> DataFrame:
    """Mark every good row of a surveyId whose good rows carry more than one metadata tuple (a PA-train survey has
    one row per species, all with the same metadata; two places or years for one id is a corrupted file)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    meta = F.struct("lon", "lat", "year", "region", "country", "areaInM2", "geoUncertaintyInM")
    good = F.col("_bad").isNull()
    w = Window.partitionBy("surveyId")
    n_meta = F.size(F.collect_set(F.when(good, F.to_json(meta))).over(w))
    return rows.withColumn("_bad", F.when(good & (n_meta > 1), F.lit(CONFLICT_REASON)).otherwise(F.col("_bad")))


def line_numbers(path: str | Path, raws: list[str], columns: list[str]) -> list[int | None]:
    """1-based line numbers of quarantined rows, found by re-reading the file on the driver (only bad rows are
    looked up; Spark's CSV reader keeps no line numbers). Identical rows get their lines in file order."""
    import json
    from collections import defaultdict, deque

    def key(values: list[str | None]) -> tuple[str, ...]:
        return tuple((v or "").strip() for v in values)

    wanted: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, r in enumerate(raws):
        d = json.loads(r)
        wanted[key([d.get(c) for c in columns])].append(i)
    out: list[int | None] = [None] * len(raws)
    if not raws:
        return out
    header = csv_header(path)
    idx = [header.index(c) for c in columns]
    queues = {k: deque(v) for k, v in wanted.items()}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for line, row in enumerate(reader, start=2):
            k = key([row[j] if j < len(row) else None for j in idx])
            q = queues.get(k)
            if q:
                out[q.popleft()] = line
    return out


def build_survey_table(
    spark: SparkSession,
    layout: Layout,
    max_bad_fraction: float = 0.01,
    bad_test_rows: str = "error",
    cached: list[DataFrame] | None = None,
) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """Extract + transform: returns (surveys, quarantined bad rows with line numbers, report).

    The parsed rows of each file are cached while the table is built; pass ``cached`` (a list) to receive them and
    ``unpersist()`` them once the result is written (:func:`write_survey_table` does). Any cache of an earlier read
    of the same path is dropped first (``refreshByPath``): Spark would otherwise serve the rows of a CSV as it was
    when first cached, and an edited file would silently keep its old content.

    Raises:
        BadRowsError: if a file's bad-row fraction exceeds ``max_bad_fraction``, or (``bad_test_rows="error"``) the
            test metadata has any bad row — naming the file, the lines and the reasons.
        ValueError: if the same surveyId appears in both train and test, or ``bad_test_rows`` is unknown.
    """
    from pyspark.sql import functions as F

    if bad_test_rows not in BAD_TEST_POLICIES:
        raise ValueError(f"bad_test_rows={bad_test_rows!r}: expected one of {BAD_TEST_POLICIES}")
    parts, bads, report = [], [], {}
    for split in ("train", "test"):
        path = layout.pa_metadata(split)
        spark.catalog.refreshByPath(str(path))
        rows = flag_conflicts(
            validate_pa_rows(read_pa_csv(spark, path, split), split, layout.edition.test_id_min)
        ).cache()
        if cached is not None:
            cached.append(rows)
        counts = {r["_bad"]: r["count"] for r in rows.groupBy("_bad").count().collect()}
        n_empty = int(counts.pop(EMPTY_SPECIES_REASON, 0))
        total = int(sum(counts.values()))
        rep = BadRowReport(
            total,
            int(sum(v for k, v in counts.items() if k is not None)),
            {k: int(v) for k, v in counts.items() if k is not None},
        )
        report[f"{split}_rows"] = rep.as_dict()
        if split == "train":
            report["empty_species_rows"] = n_empty
            if n_empty:
                log.warning(
                    "%s: %d row(s) with an empty speciesId dropped (counted, listed in the quarantine table)",
                    path,
                    n_empty,
                )
        bad_df = (
            rows.where(F.col("_bad").isNotNull())
            .select(F.col("_bad").alias("reason"), F.col("_raw").alias("raw"))
            .toPandas()
        )
        bad_df.insert(0, "file", str(path))
        key_cols = [
            c
            for c in ("lon", "lat", "year", "region", "country", "surveyId")
            + (("speciesId",) if split == "train" else ())
        ]
        bad_df.insert(1, "line", line_numbers(path, list(bad_df["raw"]), key_cols))
        real_bad = (bad_df["reason"] != EMPTY_SPECIES_REASON).to_numpy()
        examples = [
            f"line {ln}: {why}" for ln, why in zip(bad_df["line"][real_bad][:5], bad_df["reason"][real_bad][:5])
        ]
        report[f"{split}_rows"]["examples"] = examples
        if rep.bad_rows:
            log.warning(
                "%s: %d of %d rows rejected: %s (%s; see the quarantine table)",
                path,
                rep.bad_rows,
                total,
                rep.by_reason,
                examples,
            )
        if split == "test" and rep.bad_rows and bad_test_rows == "error":
            raise BadRowsError(
                f"{path}: {rep.bad_rows} test metadata row(s) are unusable ({'; '.join(examples)}). A test survey is "
                "never dropped from the submission: fix the row(s), or run with --SurveyTable-bad-test-rows fallback "
                "([SurveyTable] bad_test_rows = fallback in luigi.cfg) to predict them with the documented fallback."
            )
        if total and rep.bad_rows / total > max_bad_fraction:
            raise BadRowsError(
                f"{path}: {rep.bad_rows} of {total} rows are malformed ({rep.by_reason}; {'; '.join(examples)}), more "
                f"than max_bad_fraction={max_bad_fraction}. Fix the file or raise the limit "
                "(SurveyTable --max-bad-fraction)."
            )
        bads.append(bad_df)
        part = aggregate_surveys(rows.where(F.col("_bad").isNull()), split)
        if split == "train" and n_empty:
            kept = rows.where(F.col("_bad").isNull()).select("surveyId").distinct()
            lost = (
                rows.where(F.col("_bad") == EMPTY_SPECIES_REASON)
                .select("surveyId")
                .distinct()
                .join(kept, "surveyId", "left_anti")
                .count()
            )
            report["surveys_without_species"] = int(lost)
        parts.append(part)
    surveys = parts[0].unionByName(parts[1])
    dup = surveys.groupBy("surveyId").count().where("count > 1").limit(5).collect()
    if dup:
        raise ValueError(
            f"surveyId(s) {[r['surveyId'] for r in dup]} appear in both "
            "PA train and PA test metadata; the splits must be disjoint"
        )
    surveys = add_laea(surveys).select(*SURVEY_COLUMNS)
    import pandas as pd

    quarantine = pd.concat(bads, ignore_index=True)
    rows_q = [
        (str(f), None if ln is None or pd.isna(ln) else int(ln), str(r), str(w))
        for f, ln, r, w in zip(quarantine["file"], quarantine["line"], quarantine["reason"], quarantine["raw"])
    ]
    bad = spark.createDataFrame(rows_q, "file string, line long, reason string, raw string")
    report["bad_test_rows_policy"] = bad_test_rows
    return surveys, bad, report


def write_survey_table(
    spark: SparkSession,
    layout: Layout,
    out_dir: str | Path,
    max_bad_fraction: float = 0.01,
    bad_test_rows: str = "error",
) -> dict[str, Any]:
    """Load step: write surveys (sorted by surveyId) and the quarantine table atomically under ``out_dir``."""
    from glc.io import atomic_dir

    cached: list[DataFrame] = []
    try:
        surveys, bad, report = build_survey_table(spark, layout, max_bad_fraction, bad_test_rows, cached)
        counts = {r["split"]: r["count"] for r in surveys.groupBy("split").count().collect()}
        report["surveys"] = {k: int(v) for k, v in sorted(counts.items())}
        with atomic_dir(out_dir, summary=report) as tmp:
            surveys.orderBy("surveyId").write.mode("overwrite").parquet(str(Path(tmp) / "surveys"))
            bad.orderBy("file", "line", "raw").write.mode("overwrite").parquet(str(Path(tmp) / "quarantine"))
    finally:
        for df in cached:
            df.unpersist()
    log.info("SurveyTable: %s", report)
    return report
