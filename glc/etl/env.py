"""``EnvFeatures``: the pre-extracted environmental CSVs -> one clean, NaN-free numeric vector per survey.

Artifact (one row per PA survey, train and test, sorted by ``surveyId``)::

    surveyId long, split string,
    env array<float>     # len(ENV_FEATURE_COLUMNS) = 46 values, in the order of ENV_FEATURE_COLUMNS
    n_imputed int        # how many of them were imputed (missing, non-finite or out of bounds, or survey not in a CSV)

plus ``report.json`` (also the ``_SUCCESS`` summary): the column names, the bounds, the train means and the count
of every correction per column.

**Column order** (:data:`ENV_FEATURE_COLUMNS`, 46): ``Bio1..Bio19`` (bioclimatic averages 1981-2010, CHELSA
integers), ``Elevation``, ``LandCover``, the 16 ``HumanFootprint-*`` columns of
:data:`glc.data.layout.HUMAN_FOOTPRINT_COLUMNS` (14 detailed pressures, then HFP1993, HFP2009), the 9
``Soilgrid-*`` columns of :data:`glc.data.layout.SOILGRID_COLUMNS`. Columns are selected by name.

**Cleaning rule**, per value (every correction counted per column in the report):

1. ``+-inf`` -> missing (``inf``); NaN or an empty cell -> missing (``missing_value``).
2. Outside the column's valid range :data:`ENV_BOUNDS` -> missing: ``below_min`` / ``above_max``. The bounds reject
   nodata codes, never plausible values:

   * human footprint: the Venter et al. (2016) pressures are scores ``0..10`` and the summarized HFP is ``0..50``
     (the real ``Lights2009``/``Built2009`` rasters hold 0..10 plus nodata 127 / 2147483647). Negatives and larger
     values are nodata-like codes (``-1``, ``127``, ``255``, ``65535``, ``2147483647``, float fill values) and are
     **nulled, not clipped**: clipping 2147483647 to 10 would call nodata "maximal pressure", clipping -1 to 0
     would call it "wilderness";
   * ``LandCover``: ``0..254`` (MODIS fill value 255); ``Elevation``: ``-500..9000`` m (rejects -9999/-32768);
   * ``Bio*``: ``-32767..65534`` (rejects the int16/uint16 nodata codes -32768 / 65535 and CHELSA's -99999);
   * ``Soilgrid-*``: ``0..32766`` (SoilGrids' int16 nodata -32768; all its quantities are non-negative).
3. A survey absent from a component's CSV keeps its row: all that component's values are missing
   (``missing_row``). Rows of a CSV whose survey is not in the survey table are ignored and counted
   (``extra_rows`` per component).
4. Every missing value is imputed with the column's **mean over the train surveys** (after steps 1-2), so test
   values never leak into the features (``imputed`` counts, per split). A column with no valid train value cannot
   be imputed and is an error.

Spark: the CSVs are parsed strictly on the driver (:func:`glc.data.env.read_env_csv`; a malformed row fails naming
file and line), then joined to the survey table; the flags, counts and train means are one aggregation, and the
vector is built column-wise.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glc.data.errors import DataError
from glc.data.layout import ENV_COLUMNS, HUMAN_FOOTPRINT_COLUMNS, SOILGRID_COLUMNS, Layout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: Components of the env vector, in order.
ENV_FEATURE_COMPONENTS: tuple[str, ...] = ("bioclimatic", "elevation", "landcover", "human_footprint", "soilgrids")
#: The env vector's column names, in order (46).
ENV_FEATURE_COLUMNS: tuple[str, ...] = tuple(c for comp in ENV_FEATURE_COMPONENTS for c in ENV_COLUMNS[comp])
#: Valid range ``[min, max]`` of each column (values outside are nodata codes -> missing).
ENV_BOUNDS: dict[str, tuple[float, float]] = {
    **{c: (-32767.0, 65534.0) for c in ENV_COLUMNS["bioclimatic"]},
    "Elevation": (-500.0, 9000.0),
    "LandCover": (0.0, 254.0),
    **{c: (0.0, 50.0 if c.endswith(("HFP1993", "HFP2009")) else 10.0) for c in HUMAN_FOOTPRINT_COLUMNS},
    **{c: (0.0, 32766.0) for c in SOILGRID_COLUMNS},
}
#: Correction counters reported per column.
CORRECTIONS: tuple[str, ...] = ("missing_row", "missing_value", "inf", "below_min", "above_max")

ENV_DDL = "surveyId long, split string, env array<float>, n_imputed int"


def _col_ref(name: str) -> str:
    return f"`{name}`"


def read_env_components(
    spark: SparkSession, layout: Layout, splits: tuple[str, ...] = ("train", "test")
) -> dict[str, DataFrame]:
    """Extract: each component's CSVs (both splits) as a Spark frame ``surveyId, split, <columns>``.

    Raises:
        DataFileNotFoundError: if a CSV is missing.
        DataError: on a malformed CSV (naming file, line and column).
    """
    import pandas as pd

    from glc.data.env import read_env_csv

    out = {}
    for comp in ENV_FEATURE_COMPONENTS:
        parts = []
        for split in splits:
            df = read_env_csv(layout, split, comp)  # type: ignore[arg-type]
            parts.append(df.reset_index().assign(split=split))
        pdf = pd.concat(parts, ignore_index=True)[["surveyId", "split", *ENV_COLUMNS[comp]]]
        schema = ", ".join(["surveyId long", "split string", *(f"{_col_ref(c)} double" for c in ENV_COLUMNS[comp])])
        out[comp] = spark.createDataFrame(pdf, schema)
    return out


def clean_env(surveys: DataFrame, components: dict[str, DataFrame]) -> tuple[DataFrame, dict[str, Any]]:
    """Transform: the env vector of every survey and the correction report (see the module docstring).

    The components are unpivoted to one row per (survey, column) and joined to the full survey x column grid, so
    the flags, counters and train means are a handful of expressions over a long table (a 46-column wide plan
    with hundreds of aggregate expressions is slow to plan), and the vector is reassembled in column order.

    Args:
        surveys: ``surveyId, split`` (the SurveyTable).
        components: ``{component: frame}`` from :func:`read_env_components` (all of :data:`ENV_FEATURE_COMPONENTS`).

    Returns:
        ``(frame, report)``: the frame has :data:`ENV_DDL` columns (lazy, unsorted); the report holds ``columns``,
        ``bounds``, ``corrections`` (per column: each counter, ``imputed`` per split, ``train_mean``),
        ``rows`` (per component: ``matched``, ``missing_rows``, ``extra_rows``).

    Raises:
        DataError: if a column has no valid value among the train surveys (it cannot be imputed).
        ValueError: if a component is missing.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    missing = [c for c in ENV_FEATURE_COMPONENTS if c not in components]
    if missing:
        raise ValueError(f"clean_env: component frame(s) {missing} missing; expected all of {ENV_FEATURE_COMPONENTS}")
    spark = surveys.sparkSession
    base = surveys.select("surveyId", "split")
    comp_of = {c: comp for comp in ENV_FEATURE_COMPONENTS for c in ENV_COLUMNS[comp]}
    longs = [
        components[comp].unpivot(["surveyId", "split"], [_col_ref(c) for c in ENV_COLUMNS[comp]], "column", "value")
        for comp in ENV_FEATURE_COMPONENTS
    ]
    long = reduce(lambda a, b: a.unionByName(b), longs).withColumn("_has", F.lit(True))
    keys = reduce(
        lambda a, b: a.unionByName(b),
        [
            components[comp].select("surveyId", "split").withColumn("component", F.lit(comp))
            for comp in ENV_FEATURE_COMPONENTS
        ],
    )
    orphans = keys.join(base, ["surveyId", "split"], "left_anti").groupBy("component").count()
    extra = {r["component"]: int(r["count"]) for r in orphans.collect()}
    meta = spark.createDataFrame(
        [(i, c, comp_of[c], *ENV_BOUNDS[c]) for i, c in enumerate(ENV_FEATURE_COLUMNS)],
        "idx int, column string, component string, lo double, hi double",
    )
    grid = base.crossJoin(F.broadcast(meta)).join(long, ["surveyId", "split", "column"], "left")
    v, has = F.col("value"), F.coalesce(F.col("_has"), F.lit(False))
    nan = v.isNull() | F.isnan(v)
    inf = ~nan & (F.abs(v) == float("inf"))
    finite = has & ~nan & ~inf
    flags = {
        "missing_row": ~has,
        "missing_value": has & nan,
        "inf": has & inf,
        "below_min": finite & (v < F.col("lo")),
        "above_max": finite & (v > F.col("hi")),
    }
    train = F.col("split") == "train"
    cells = grid.select(
        "surveyId",
        "split",
        "idx",
        "column",
        F.when(finite & (v >= F.col("lo")) & (v <= F.col("hi")), v).alias("clean"),
        *[cond.alias(k) for k, cond in flags.items()],
    )
    imputed = F.col("clean").isNull()
    stats = {
        r["column"]: r.asDict()
        for r in cells.groupBy("column")
        .agg(
            *[F.sum(F.col(k).cast("long")).alias(k) for k in CORRECTIONS],
            # exact decimal sum: a double sum merges partial aggregates in shuffle order, so its last bits (and the
            # imputed values) could differ between runs; the decimal mean is the same on every run
            F.avg(F.when(train, F.col("clean")).cast("decimal(38,12)")).cast("double").alias("train_mean"),
            F.sum((imputed & train).cast("long")).alias("imputed_train"),
            F.sum((imputed & ~train).cast("long")).alias("imputed_test"),
            F.sum(train.cast("long")).alias("n_train"),
            F.count(F.lit(1)).alias("n"),
        )
        .collect()
    }
    corrections: dict[str, dict[str, Any]] = {}
    for c in ENV_FEATURE_COLUMNS:
        st = stats.get(c, {})
        mean = st.get("train_mean")
        if mean is None or not math.isfinite(mean):
            raise DataError(
                f"env column {c!r}: no valid value among the {int(st.get('n_train') or 0)} train surveys (after "
                f"nulling inf/NaN and values outside {list(ENV_BOUNDS[c])}), so it cannot be imputed. Check the "
                f"{comp_of[c]} CSV (glc.data.layout.Layout.env_csv) and ENV_BOUNDS."
            )
        corrections[c] = {k: int(st[k] or 0) for k in CORRECTIONS}
        corrections[c]["imputed"] = {"train": int(st["imputed_train"] or 0), "test": int(st["imputed_test"] or 0)}
        corrections[c]["train_mean"] = float(mean)
    means = spark.createDataFrame(
        [(c, corrections[c]["train_mean"]) for c in ENV_FEATURE_COLUMNS], "column string, train_mean double"
    )
    frame = (
        cells.join(F.broadcast(means), "column")
        .groupBy("surveyId", "split")
        .agg(
            F.sort_array(F.collect_list(F.struct("idx", F.coalesce("clean", "train_mean").alias("v")))).alias("_cells"),
            F.sum(F.col("clean").isNull().cast("int")).alias("n_imputed"),
        )
        .select(
            "surveyId",
            "split",
            F.transform("_cells", lambda cell: cell["v"]).cast("array<float>").alias("env"),
            F.col("n_imputed").cast("int").alias("n_imputed"),
        )
    )
    n = int(stats[ENV_FEATURE_COLUMNS[0]]["n"]) if stats else 0
    rows = {}
    for comp in ENV_FEATURE_COMPONENTS:
        miss = corrections[ENV_COLUMNS[comp][0]]["missing_row"]
        rows[comp] = {"matched": n - miss, "missing_rows": miss, "extra_rows": extra.get(comp, 0)}
    report = {
        "columns": list(ENV_FEATURE_COLUMNS),
        "bounds": {c: list(ENV_BOUNDS[c]) for c in ENV_FEATURE_COLUMNS},
        "corrections": corrections,
        "rows": rows,
        "n_surveys": n,
        "n_train": int(stats[ENV_FEATURE_COLUMNS[0]]["n_train"] or 0) if stats else 0,
    }
    for c, d in corrections.items():
        fixed = {k: d[k] for k in CORRECTIONS if d[k]}
        if fixed:
            log.info("EnvFeatures %s: %s -> imputed with train mean %.6g", c, fixed, d["train_mean"])
    return frame, report


def write_env_features(spark: SparkSession, layout: Layout, surveys: DataFrame, out_dir: str | Path) -> dict[str, Any]:
    """Extract + transform + load of ``EnvFeatures``: ``data/`` (sorted by surveyId), ``report.json``, ``_SUCCESS``.

    Returns:
        The report (also the ``_SUCCESS`` summary).
    """
    from pyspark.sql import functions as F

    from glc.etl.artifact import DATA_DIR, check_surveys
    from glc.io import atomic_dir, write_json

    t0 = time.time()
    check_surveys(surveys)
    splits = tuple(sorted({r["split"] for r in surveys.select("split").distinct().collect()})) or ("train", "test")
    frame, report = clean_env(surveys, read_env_components(spark, layout, splits))
    report["artifact"] = "EnvFeatures"
    with atomic_dir(out_dir, summary=report) as tmp:
        frame.orderBy("surveyId").write.mode("overwrite").parquet(str(Path(tmp) / DATA_DIR))
        written = spark.read.parquet(str(Path(tmp) / DATA_DIR))
        report["by_split"] = {
            r["split"]: int(r["count"]) for r in written.groupBy("split").count().orderBy("split").collect()
        }
        report["n_written"] = int(sum(report["by_split"].values()))
        report["surveys_with_imputed_values"] = int(written.where(F.col("n_imputed") > 0).count())
        report["seconds"] = round(time.time() - t0, 3)
        write_json(Path(tmp) / "report.json", report, atomic=False)
    log.info(
        "EnvFeatures: %d surveys, %d with imputed values; per-component rows %s",
        report["n_written"],
        report["surveys_with_imputed_values"],
        report["rows"],
    )
    return report
