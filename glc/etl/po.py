"""Presence-only (PO) records for the neighbour and correction tables: the Spark reader and the site-id codec.

PO survey ids collide with PA-train ids in GLC24, so PO sites carry ``PO_ID_OFFSET + surveyId`` wherever they share a
table with PA surveys (neighbour tables); :func:`decode_site_ids` undoes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from glc.data.layout import NUM_CLASSES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from glc.data.layout import Layout

__all__ = ["PO_ID_OFFSET", "PO_SITE_COLUMNS", "decode_site_ids", "po_site_labels", "po_sites", "read_po_records"]

log = logging.getLogger(__name__)

#: PO sites carry ``PO_ID_OFFSET + surveyId`` in neighbour tables (GLC24 ids are below 4e6).
PO_ID_OFFSET = 1_000_000_000
_EXTRA = "_extra_field"
_MAX_EXAMPLES = 5


def decode_site_ids(ids: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(is_po, surveyId)`` of neighbour-table ids: PO sites carry ``PO_ID_OFFSET + surveyId``."""
    a = np.asarray(ids, dtype=np.int64)
    is_po = a >= PO_ID_OFFSET
    return is_po, np.where(is_po, a - PO_ID_OFFSET, a)


def read_po_records(
    spark: SparkSession, layout: Layout, max_bad_fraction: float = 0.01
) -> tuple[DataFrame, dict[str, Any]]:
    """The raw PO metadata CSV as typed records ``surveyId long, lon, lat, x, y double, speciesId long`` (Spark).

    Columns are selected by header name (PO puts ``lat`` before ``lon``; extra columns such as ``publisher`` are
    ignored). Each row is checked: a row with too many fields, an empty or non-integer ``surveyId`` (or one at or
    above :data:`PO_ID_OFFSET`), non-numeric or out-of-range ``lon``/``lat``, or a ``speciesId`` outside
    ``0..NUM_CLASSES-1`` is bad; bad rows are counted per reason and dropped, and the read fails when they exceed
    ``max_bad_fraction``. Rows with an empty ``speciesId`` are dropped and counted apart (the format allows them,
    as :func:`glc.data.metadata.read_po_metadata`). ``x``, ``y`` are EPSG:3035 metres.

    Args:
        spark: The session.
        layout: The data root's layout (its ``po_metadata()`` file is read).
        max_bad_fraction: Largest tolerated fraction of bad rows.

    Returns:
        ``(records, report)``; ``report`` holds ``file``, ``total_rows``, ``bad_rows``, ``by_reason``,
        ``dropped_missing_species`` and up to 5 ``bad_examples`` (the raw fields as JSON).

    Raises:
        FileNotFoundError: if the PO CSV is missing.
        ValueError: on a missing column or too many bad rows (naming the file, the counts and the reasons).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from glc.etl.surveys import add_laea, csv_header

    path = layout.po_metadata()
    if not path.exists():
        raise FileNotFoundError(
            f"PO metadata CSV {path} not found: 'po' sites need the presence-only file of the data root "
            "(Kaggle: GLC24_P0_metadata_train.csv). Check --data-root, or drop 'po' from the task's site kinds."
        )
    header = csv_header(path)
    need = ["surveyId", "lon", "lat", "speciesId"]
    missing = [c for c in need if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {header}. Is this a GLC24 PO metadata file?")
    schema = T.StructType([T.StructField(h, T.StringType()) for h in header] + [T.StructField(_EXTRA, T.StringType())])
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("enforceSchema", True)
        .schema(schema)
        .csv(str(path))
    )
    num = lambda c: F.col(c).cast("double")  # noqa: E731
    sid, lon, lat, sp = num("surveyId"), num("lon"), num("lat"), num("speciesId")
    reasons = [
        (F.col(_EXTRA).isNotNull(), "too many fields"),
        (
            F.col("surveyId").isNull() | F.col("lon").isNull() | F.col("lat").isNull(),
            "required field empty (short row?)",
        ),
        (sid.isNull() | F.isnan(sid) | (sid != F.floor(sid)) | (sid < 0), "surveyId not a non-negative integer"),
        (sid >= PO_ID_OFFSET, f"surveyId >= PO_ID_OFFSET ({PO_ID_OFFSET})"),
        (lon.isNull() | lat.isNull() | F.isnan(lon) | F.isnan(lat), "lon/lat not numeric"),
        ((F.abs(lon) > 180) | (F.abs(lat) > 90), "lon/lat out of range"),
        (
            F.col("speciesId").isNotNull()
            & (sp.isNull() | F.isnan(sp) | (sp != F.floor(sp)) | (sp < 0) | (sp >= NUM_CLASSES)),
            f"speciesId not an integer in 0..{NUM_CLASSES - 1}",
        ),
    ]
    bad = F.lit(None).cast("string")
    for cond, why in reversed(reasons):  # the first matching reason wins; a null condition counts as a match
        bad = F.when(F.coalesce(cond, F.lit(True)), F.lit(why)).otherwise(bad)
    rows = raw.select(
        sid.cast("long").alias("surveyId"),
        lon.alias("lon"),
        lat.alias("lat"),
        sp.cast("long").alias("speciesId"),
        bad.alias("_bad"),
        F.to_json(F.struct(*[F.col(h) for h in header])).alias("_raw"),
    )
    no_species = F.col("speciesId").isNull().alias("no_species")
    counts = rows.groupBy("_bad", no_species).count().collect()  # one pass over the file for every count
    total = int(sum(r["count"] for r in counts))
    by_reason: dict[str, int] = {}
    for r in counts:
        if r["_bad"] is not None:
            by_reason[r["_bad"]] = by_reason.get(r["_bad"], 0) + int(r["count"])
    by_reason = dict(sorted(by_reason.items()))
    n_bad = int(sum(by_reason.values()))
    n_missing_species = int(sum(r["count"] for r in counts if r["_bad"] is None and r["no_species"]))
    examples = (
        [r["_raw"] for r in rows.where(F.col("_bad").isNotNull()).limit(_MAX_EXAMPLES).collect()] if n_bad else []
    )
    if total and n_bad / total > max_bad_fraction:
        raise ValueError(
            f"{path}: {n_bad} of {total} PO rows are malformed ({by_reason}; e.g. {examples[:2]}), more than "
            f"po_max_bad_fraction={max_bad_fraction}. Fix the file or raise the limit (--po-max-bad-fraction)."
        )
    good = rows.where(F.col("_bad").isNull())
    if n_bad:
        log.warning("%s: %d of %d PO rows rejected and dropped: %s", path, n_bad, total, by_reason)
    if n_missing_species:
        log.info("%s: %d PO rows without speciesId dropped", path, n_missing_species)
    records = add_laea(good.where(F.col("speciesId").isNotNull()).select("surveyId", "lon", "lat", "speciesId"))
    report = {
        "file": str(path),
        "total_rows": total,
        "bad_rows": n_bad,
        "by_reason": by_reason,
        "dropped_missing_species": n_missing_species,
        "bad_examples": examples,
    }
    return records.select("surveyId", "lon", "lat", "x", "y", "speciesId"), report


def po_sites(records: DataFrame) -> DataFrame:
    """PO records -> the ``surveyId, x, y`` frame :func:`glc.etl.neighbours.select_sites` expects, ids offset by
    :data:`PO_ID_OFFSET` (one row per record; ``select_sites`` deduplicates)."""
    from pyspark.sql import functions as F

    return records.select((F.col("surveyId") + F.lit(PO_ID_OFFSET)).alias("surveyId"), "x", "y")


#: Columns of the ``POSites`` artifact (one row per PO site).
PO_SITE_COLUMNS: tuple[str, ...] = ("surveyId", "lon", "lat", "x", "y", "speciesIds", "n_records")


def po_site_labels(records: DataFrame) -> DataFrame:
    """PO records -> one row per site (the PO ``surveyId``): its location (the first record's, by lowest species id,
    so the result is deterministic), the sorted distinct ``speciesIds`` recorded there and ``n_records``: the
    positive labels of presence-only pretraining (:mod:`glc.training.po_pretrain`)."""
    from pyspark.sql import functions as F

    first = F.min(F.struct("speciesId", "lon", "lat", "x", "y"))
    return (
        records.groupBy("surveyId")
        .agg(
            first.alias("_first"),
            F.array_sort(F.collect_set("speciesId")).alias("speciesIds"),
            F.count(F.lit(1)).alias("n_records"),
        )
        .select(
            "surveyId", *(F.col(f"_first.{c}").alias(c) for c in ("lon", "lat", "x", "y")), "speciesIds", "n_records"
        )
    )
