"""Model inputs: the Spark-written parquet the trainers read (Petastorm / pyarrow / memory), ONE writer for all.

One folder per input set (``ModelInputs`` task, and a temporary one per fold in the CV benchmarks) with ``train/``,
``val/`` and ``test/`` parquet directories and ``meta.json`` (layout: :mod:`glc.loaders.tables`). ``train`` holds
the training surveys outside the spatial validation blocks (:func:`glc.eval.split.validation_mask`, the same hold-out
every classic model uses, so validation scores are comparable across models), ``val`` those blocks and ``test``
the test (or query) surveys.

Columns: ``surveyId`` and ``labels`` (species column indices into ``meta["vocab"]``, padded to a fixed width with
-1, because Petastorm's batch reader only collates equal-length lists; test rows all -1), then the columns of every
requested feature set (:mod:`glc.features.sets`; ``location`` and ``meta`` always): scalars as they are, arrays
flattened to fixed-length ``list<float>`` (C order of the declared shape), ``uint8`` arrays as ``binary``. Each
set's values come from its artifact's parquet, joined on ``surveyId``, through its transform
(:data:`TRANSFORMS`): ``copy``; ``standardize`` (the env vector, standardised with the mean and standard deviation
of the ``train`` rows only, so nothing about validation or test leaks in); ``dense_gfv`` (the sparse graph feature
vector made dense: value ``k`` is the survey's GFV entry for species ``meta["vocab"][k]``, 0 where it has none;
species outside the vocabulary are dropped and counted); ``plot`` (the survey table's area and location uncertainty
as ``[log1p(area), known, log1p(uncertainty), known]``; an unknown value is 0 with its flag 0, counted). A set
computed out of fold from labels (``gfv``) is built for the table's own hold-out and training folds
(:attr:`glc.features.sets.FeatureSet.holdout`).

Missing rows follow the set's policy: ``error`` raises naming the set, the artifact and the first surveys;
``fill`` uses the train-split mean of the column and adds ``<column>_mask`` (1 = real row, 0 = filled). Counts per
split are in ``meta.json`` either way (``feature_info[<set>]["n_missing"]``).

Statistics: for sets declared with ``stats``, the per-element train-split mean and standard deviation of the
written values are recorded in ``meta.json`` (``columns[<name>]["stats"]``); the stored values stay raw (DCT
planes can still be inverted and augmented exactly) and the networks standardise with these numbers.

Shuffled controls: ``shuffle=[<set>, ...]`` permutes that set's rows among the surveys of the same split (seeded),
keeping the values' distribution and destroying their link to the labels (a control for "does the model read the
imagery?"). It is recorded in ``meta.json`` and part of the ``ModelInputs`` folder name.

Determinism: rows are hash-partitioned on ``surveyId`` and sorted inside each part file, adaptive coalescing is off,
statistics are summed in float64 in file order: the same inputs give the same bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # module level: pyspark resolves the pandas UDF's (string) type hints in this namespace

from glc.features.sets import ALWAYS, FeatureSet, feature_set, resolve_feature_sets

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: Columns of the ``GraphFeatures`` artifact that the ``dense_gfv`` transform reads.
GFV_COLUMNS = ("surveyId", "gfv_idx", "gfv_val")
#: Columns of the ``SurveyTable`` artifact that the ``plot`` transform reads.
PLOT_SOURCES = ("areaInM2", "geoUncertaintyInM")
#: The artifact columns a transform reads when they are not its columns' ``source`` names.
TRANSFORM_SOURCES: dict[str, tuple[str, ...]] = {"dense_gfv": GFV_COLUMNS[1:], "plot": PLOT_SOURCES}
SPLITS = ("train", "val", "test")
#: Bytes per parquet row group (row groups are the shuffle and worker-sharding unit of the loaders).
ROW_GROUP_BYTES = 1 << 20
#: How many survey ids an error message quotes.
MAX_EXAMPLES = 5


@dataclass
class FeatureSource:
    """A feature set's artifact as the writer gets it: its parquet frame and its ``_SUCCESS`` summary.

    Attributes:
        frame: the artifact's ``data/`` parquet (``surveyId`` + the set's source columns).
        summary: the artifact's summary JSON (band names, env column names, ... are copied into ``meta.json``).
        where: a path or name for messages.
    """

    frame: DataFrame
    summary: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""


# ---------------------------------------------------------------------------------------------------------------
# Base table: ids, location, meta, labels, split
# ---------------------------------------------------------------------------------------------------------------
def _codes(surveys: DataFrame, column: str) -> list[str]:
    from pyspark.sql import functions as F

    return sorted(str(r[0]) for r in surveys.select(F.coalesce(F.col(column), F.lit("UNKNOWN"))).distinct().collect())


def _vocab(surveys: DataFrame) -> np.ndarray:
    from pyspark.sql import functions as F

    vocab = np.array(
        sorted(
            r[0] for r in surveys.where(F.col("split") == "train").select(F.explode("speciesIds")).distinct().collect()
        ),
        dtype=np.int64,
    )
    if len(vocab) == 0:
        raise ValueError(
            "the survey table has no species in its training surveys; rebuild SurveyTable from PA train metadata"
        )
    return vocab


def _base(
    spark: SparkSession,
    surveys: DataFrame,
    val_ids: np.ndarray,
    vocab: np.ndarray,
    regions: list[str],
    countries: list[str],
) -> tuple[DataFrame, int, float]:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    vocab_df = spark.createDataFrame([(int(s), i) for i, s in enumerate(vocab)], "speciesId long, col int")
    region_df = spark.createDataFrame([(r, i) for i, r in enumerate(regions)], "region_name string, region_code int")
    country_df = spark.createDataFrame(
        [(r, i) for i, r in enumerate(countries)], "country_name string, country_code int"
    )
    val_df = spark.createDataFrame(
        [(int(s),) for s in np.asarray(val_ids, np.int64)], T.StructType([T.StructField("surveyId", T.LongType())])
    )
    n_val_train = val_df.join(surveys.where(F.col("split") == "train"), "surveyId").count()
    if n_val_train != len(val_ids):
        raise ValueError(
            f"{len(val_ids) - n_val_train} validation surveyIds are not training surveys of the survey table"
        )
    labelled = (
        surveys.where(F.col("split") == "train")
        .select("surveyId", F.explode("speciesIds").alias("speciesId"))
        .join(F.broadcast(vocab_df), "speciesId")
        .groupBy("surveyId")
        .agg(F.array_sort(F.collect_set("col")).alias("labels"))
    )
    agg = labelled.select(F.max(F.size("labels")).alias("w"), F.avg(F.size("labels")).alias("m")).first()
    width, mean_richness = int(agg["w"] or 1), float(agg["m"] or 0.0)
    empty = F.array().cast("array<int>")
    base = (
        surveys.withColumn("region_name", F.coalesce(F.col("region"), F.lit("UNKNOWN")))
        .withColumn("country_name", F.coalesce(F.col("country"), F.lit("UNKNOWN")))
        .join(F.broadcast(region_df), "region_name")
        .join(F.broadcast(country_df), "country_name")
        .join(labelled, "surveyId", "left")
        .join(F.broadcast(val_df.withColumn("is_val", F.lit(True))), "surveyId", "left")
        .select(
            F.col("surveyId").cast("long"),
            F.col("x").cast("double"),
            F.col("y").cast("double"),
            F.col("lon").cast("double"),
            F.col("lat").cast("double"),
            F.coalesce(F.col("year"), F.lit(0)).cast("int").alias("year"),
            F.col("region_code").cast("int").alias("region"),
            F.col("country_code").cast("int").alias("country"),
            F.concat(  # size(null) is -1 in Spark, so pad the coalesced (possibly empty) array
                F.coalesce(F.col("labels"), empty),
                F.array_repeat(F.lit(-1), F.lit(width) - F.size(F.coalesce(F.col("labels"), empty))),
            )
            .cast("array<int>")
            .alias("labels"),
            F.when(F.col("split") == "test", "test").when(F.col("is_val"), "val").otherwise("train").alias("_part"),
        )
    )
    return base, width, mean_richness


# ---------------------------------------------------------------------------------------------------------------
# Feature sets
# ---------------------------------------------------------------------------------------------------------------
def _shuffle_map(spark: SparkSession, base: DataFrame, seed: int, name: str) -> DataFrame:
    """``surveyId -> donor`` where donors are a seeded permutation of the surveys of the same split."""
    ids = base.select("surveyId", "_part").toPandas().sort_values("surveyId", kind="stable")
    rows: list[tuple[int, int]] = []
    for i, part in enumerate(SPLITS):
        s = ids.loc[ids["_part"] == part, "surveyId"].to_numpy(np.int64)
        donors = np.random.default_rng([seed, i, sum(map(ord, name))]).permutation(s)
        rows += list(zip(s.tolist(), donors.tolist()))
    return spark.createDataFrame(rows, "surveyId long, _donor long")


def _resolve_shape(declared: tuple[int, ...], width: int, fs: FeatureSet, col: str) -> tuple[int, ...]:
    """The concrete shape of a column whose artifact rows hold ``width`` values."""
    if declared[:1] == (-1,):
        rest = math.prod(declared[1:])
        if width % rest:
            raise ValueError(
                f"feature set {fs.name!r}: column {col!r} rows hold {width} values, not a multiple of {declared[1:]}"
            )
        return (width // rest, *declared[1:])
    if math.prod(declared) != width:
        raise ValueError(
            f"feature set {fs.name!r}: artifact column {col!r} rows hold {width} values, expected "
            f"{math.prod(declared)} (shape {declared}); rebuild {fs.artifact} with the parameters {dict(fs.params)}"
        )
    return declared


def _row_width(df: DataFrame, col: str, dtype: str, fs: FeatureSet, where: str) -> int:
    """The common length of ``col`` over all rows (error if rows differ or hold nulls)."""
    from pyspark.sql import functions as F

    size = F.length(col) if dtype == "uint8" else F.size(col)
    r = df.select(
        F.min(size).alias("lo"), F.max(size).alias("hi"), F.sum(F.col(col).isNull().cast("int")).alias("nulls")
    ).first()
    if r["nulls"]:
        raise ValueError(
            f"feature set {fs.name!r}: {r['nulls']} row(s) of {where} have a null {col!r}; rebuild {fs.artifact}"
        )
    if r["lo"] is None:
        raise ValueError(f"feature set {fs.name!r}: {where} has no row; rebuild {fs.artifact}")
    if r["lo"] != r["hi"]:
        raise ValueError(
            f"feature set {fs.name!r}: {where} column {col!r} has rows "
            f"of {r['lo']} to {r['hi']} values; expected one fixed length"
        )
    return int(r["hi"])


def _train_mean(joined: DataFrame, col: str, width: int) -> list[float]:
    """Float64 mean of an array column over the ``train`` rows, summed in surveyId order (deterministic)."""
    acc = np.zeros(width, np.float64)
    n = 0
    for row in joined.where("_part = 'train'").select(col).orderBy("surveyId").toLocalIterator():
        acc += np.asarray(row[0], np.float64)
        n += 1
    if n == 0:
        raise ValueError(f"no training survey has a {col!r} value; cannot fill missing rows with the train mean")
    return (acc / n).tolist()


def _dense_gfv_column(vocab: np.ndarray) -> Callable[..., SparkColumn]:
    """A pandas UDF ``(gfv_idx, gfv_val) -> array<float>`` of width ``len(vocab)`` (:func:`dense_gfv` per row)."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def dense(idx: pd.Series, val: pd.Series) -> pd.Series:
        return pd.Series([dense_gfv(vocab, i, v) for i, v in zip(idx, val)], index=idx.index)

    return dense


def dense_gfv(vocab: np.ndarray, idx: Any, val: Any) -> np.ndarray:
    """One sparse graph feature vector (species ids ``idx``, values ``val``) as a dense float32 vector over ``vocab``.

    Args:
        vocab: the sorted species ids of the class columns (``meta["vocab"]``).
        idx: species ids of the vector's non-zero entries (unique).
        val: their values.

    Returns:
        ``(len(vocab),)`` float32: ``val`` at the columns of the species in ``vocab``, 0 elsewhere (species outside
        the vocabulary are dropped).

    Raises:
        ValueError: if ``idx`` and ``val`` differ in length.
    """
    i = np.asarray(idx if idx is not None else [], dtype=np.int64)
    v = np.asarray(val if val is not None else [], dtype=np.float32)
    if len(i) != len(v):
        raise ValueError(f"GraphFeatures row with {len(i)} gfv_idx but {len(v)} gfv_val entries; rebuild GraphFeatures")
    out = np.zeros(len(vocab), np.float32)
    pos = np.searchsorted(vocab, i)
    ok = pos < len(vocab)
    ok[ok] = vocab[pos[ok]] == i[ok]
    out[pos[ok]] = v[ok]
    return out


@dataclass
class _Ctx:
    spark: SparkSession
    base: DataFrame
    vocab: np.ndarray
    vocab_df: DataFrame


def _copy(
    ctx: _Ctx, fs: FeatureSet, src: FeatureSource, frame: DataFrame
) -> tuple[DataFrame, dict[str, Any], dict[str, Any]]:
    """``copy``: each column cast to its element type (``binary`` for uint8); shapes resolved from the data."""
    from pyspark.sql import functions as F

    out = frame
    shapes: dict[str, Any] = {}
    for c in fs.columns:
        if c.shape == ():
            out = out.withColumn(
                c.name,
                F.col(c.artifact_column).cast({"float64": "double", "float32": "float", "int32": "int"}[c.dtype]),
            )
            shapes[c.name] = []
            continue
        width = _row_width(frame, c.artifact_column, c.dtype, fs, src.where)
        shapes[c.name] = list(_resolve_shape(c.shape, width, fs, c.artifact_column))
        cast = "binary" if c.dtype == "uint8" else "array<float>"
        out = out.withColumn(c.name, F.col(c.artifact_column).cast(cast))
    return out.select("surveyId", *fs.column_names), shapes, {}


def _standardize(
    ctx: _Ctx, fs: FeatureSet, src: FeatureSource, frame: DataFrame
) -> tuple[DataFrame, dict[str, Any], dict[str, Any]]:
    """``standardize``: one float vector column, standardised with the train rows' mean and std (population)."""
    from pyspark.sql import functions as F

    (c,) = fs.columns
    width = _row_width(frame, c.artifact_column, c.dtype, fs, src.where)
    # Train-split statistics on the driver, in surveyId order: a Spark aggregate merges partial sums in shuffle
    # fetch order, which changes the last bits between runs and would break byte-identical outputs.
    train = (
        ctx.base.where(F.col("_part") == "train")
        .select("surveyId")
        .join(frame.select("surveyId", c.artifact_column), "surveyId")
        .orderBy("surveyId")
        .toPandas()
    )
    if len(train) == 0:
        raise ValueError(f"no training survey has a {fs.name!r} vector; cannot standardise it")
    X = np.stack(train[c.artifact_column].to_numpy()).astype(np.float64)
    mean = [float(v) for v in X.mean(axis=0)]
    std = [float(v) if v > 1e-12 else 1.0 for v in X.std(axis=0)]
    m_arr, s_arr = F.array(*[F.lit(v) for v in mean]), F.array(*[F.lit(v) for v in std])
    out = frame.select(
        "surveyId",
        F.transform(c.artifact_column, lambda v, i: (v - F.element_at(m_arr, i + 1)) / F.element_at(s_arr, i + 1))
        .cast("array<float>")
        .alias(c.name),
    )
    info = {"standardisation": {"mean": mean, "std": std, "fitted_on": "train split (validation blocks excluded)"}}
    if src.summary.get("columns") and isinstance(src.summary["columns"], list):
        info["names"] = list(src.summary["columns"])[:width]
    return out, {c.name: [width]}, info


def _plot(
    ctx: _Ctx, fs: FeatureSet, src: FeatureSource, frame: DataFrame
) -> tuple[DataFrame, dict[str, Any], dict[str, Any]]:
    """``plot``: ``[log1p(area), area known, log1p(uncertainty), uncertainty known]`` per survey (float32 (4,)).

    The survey table stores an empty, negative or infinite ``areaInM2`` / ``geoUncertaintyInM`` as null (real GLC24
    has empty and ``-inf`` areas); such a value becomes 0 with its flag 0 — an explicit "unknown" the network can
    read, never a NaN and never a silent 0 passed off as a measurement. Unknown counts per column are in
    ``meta.json``."""
    from pyspark.sql import functions as F

    (c,) = fs.columns
    parts = []
    for col in PLOT_SOURCES:
        ok = F.col(col).isNotNull() & (F.col(col) >= 0) & ~F.isnan(F.col(col))
        parts += [F.when(ok, F.log1p(F.col(col))).otherwise(F.lit(0.0)), ok.cast("double")]
    out = frame.select("surveyId", F.array(*parts).cast("array<float>").alias(c.name))
    unknown = frame.select(
        *[
            F.sum((F.col(col).isNull() | (F.col(col) < 0) | F.isnan(F.col(col))).cast("long")).alias(col)
            for col in PLOT_SOURCES
        ]
    ).first()
    return (
        out,
        {c.name: [4]},
        {
            "names": ["log1p_area_m2", "area_known", "log1p_uncertainty_m", "uncertainty_known"],
            "n_unknown": {col: int(unknown[col] or 0) for col in PLOT_SOURCES},
        },
    )


def _dense_gfv(
    ctx: _Ctx, fs: FeatureSet, src: FeatureSource, frame: DataFrame
) -> tuple[DataFrame, dict[str, Any], dict[str, Any]]:
    """``dense_gfv``: the sparse (gfv_idx, gfv_val) vector dense over the vocabulary; out-of-vocabulary entries
    counted."""
    from pyspark.sql import functions as F

    (c,) = fs.columns
    g = frame.select(*GFV_COLUMNS).where(F.col("gfv_idx").isNotNull() & F.col("gfv_val").isNotNull())
    # species outside the vocabulary have no class column and are dropped by dense_gfv: count them, never silently
    dropped = (
        ctx.base.select("surveyId")
        .join(g, "surveyId")
        .select(F.explode("gfv_idx").alias("speciesId"))
        .join(F.broadcast(ctx.vocab_df), "speciesId", "left_anti")
        .count()
    )
    if dropped:
        log.warning("ModelInputs: %d GFV entries name species outside the training vocabulary; dropped", dropped)
    out = g.select("surveyId", _dense_gfv_column(ctx.vocab)("gfv_idx", "gfv_val").alias(c.name))
    return out, {c.name: [len(ctx.vocab)]}, {"dropped_entries": int(dropped)}


#: How a feature set's artifact values become table values (``FeatureSet.transform``).
TRANSFORMS: dict[str, Callable[..., tuple[DataFrame, dict[str, Any], dict[str, Any]]]] = {
    "copy": _copy,
    "standardize": _standardize,
    "dense_gfv": _dense_gfv,
    "plot": _plot,
}

#: Summary keys of an artifact copied into ``meta.json`` (``feature_info[<set>]["artifact_info"]``).
SUMMARY_KEYS = ("bands", "channels", "rasters", "params", "artifact")


def _add_feature_set(
    ctx: _Ctx, table: DataFrame, fs: FeatureSet, src: FeatureSource, shuffle: bool, seed: int
) -> tuple[DataFrame, dict[str, Any], dict[str, Any]]:
    """Join one set's columns onto ``table``; returns the table, its column entries and its ``feature_info``."""
    from pyspark.sql import functions as F

    need = ["surveyId", *dict.fromkeys(TRANSFORM_SOURCES.get(fs.transform) or [c.artifact_column for c in fs.columns])]
    missing_cols = [c for c in need if c not in src.frame.columns]
    if missing_cols:
        raise ValueError(
            f"feature set {fs.name!r}: the {fs.artifact} artifact {src.where} lacks column(s) {missing_cols} "
            f"(has {src.frame.columns}); rebuild it"
        )
    frame = src.frame.select(*need)
    dup = frame.groupBy("surveyId").count().where(F.col("count") > 1).count()
    if dup:
        raise ValueError(
            f"feature set {fs.name!r}: {dup} surveyId(s) occur more than once in {src.where}; rebuild {fs.artifact}"
        )
    values, shapes, info = TRANSFORMS[fs.transform](ctx, fs, src, frame)
    # A feature set has one row per survey, as many as the table: never let Spark broadcast it, in the shuffle's
    # donor join nor in the joins onto the table. Its size estimate comes from the artifact's compressed parquet, not
    # from what the transform makes of it (the dense GFV of the full world is 93k x 7,820 floats, 2.9 GB, from 13 MB
    # of sparse lists), and a broadcast that outgrows the driver kills the task ("Not enough memory to build and
    # broadcast the table"). A sort-merge join spills. (A hint does not pass through a join: set again after it.)
    values = values.hint("merge")
    if shuffle:
        donors = _shuffle_map(ctx.spark, ctx.base, seed, fs.name)
        values = donors.join(values.withColumnRenamed("surveyId", "_donor"), "_donor").drop("_donor").hint("merge")
    parts = {
        r["_part"]: int(r["count"])
        for r in table.join(values, "surveyId", "left_anti").groupBy("_part").count().collect()
    }
    n_missing = {p: parts.get(p, 0) for p in SPLITS}
    columns: dict[str, Any] = {}
    if sum(n_missing.values()) and fs.missing == "error":
        ex = [
            int(r[0])
            for r in table.join(values, "surveyId", "left_anti")
            .select("surveyId")
            .orderBy("surveyId")
            .limit(MAX_EXAMPLES)
            .collect()
        ]
        raise ValueError(
            f"{sum(n_missing.values())} surveys have no row in the {fs.artifact} artifact of feature set {fs.name!r} "
            f"({src.where}; by split {n_missing}), e.g. surveyId {ex}; its missing-row policy is 'error'. Rebuild "
            f"{fs.artifact} for this survey table (quarantined inputs are listed in its quarantine/ folder)."
        )
    if fs.missing == "fill":
        joined = table.join(values, "surveyId", "left")
        mask = fs.mask_column()
        assert mask is not None
        joined = joined.withColumn(mask, F.col(fs.columns[0].name).isNotNull().cast("int"))
        for c in fs.columns:
            if c.dtype == "uint8" or c.shape == ():
                raise ValueError(
                    f"feature set {fs.name!r}: the 'fill' policy needs float array columns ({c.name!r} is not)"
                )
            fill = _train_mean(joined, c.name, math.prod(shapes[c.name]))
            joined = joined.withColumn(
                c.name, F.coalesce(F.col(c.name), F.array(*[F.lit(v) for v in fill]).cast("array<float>"))
            )
        table = joined
        columns[mask] = {"dtype": "int32", "shape": [], "feature_set": fs.name}
        if sum(n_missing.values()):
            log.warning(
                "ModelInputs: feature set %r: %s surveys without a row filled with the train mean (mask %r)",
                fs.name,
                n_missing,
                mask,
            )
    else:
        table = table.join(values, "surveyId")
    for c in fs.columns:
        columns[c.name] = {"dtype": c.dtype, "shape": shapes[c.name], "feature_set": fs.name}
    summary_info = {k: src.summary[k] for k in SUMMARY_KEYS if k in src.summary}
    info = {
        "description": fs.description,
        "artifact": fs.artifact,
        "params": dict(fs.params),
        "where": src.where,
        "missing_policy": fs.missing,
        "n_missing": n_missing,
        "shuffled": bool(shuffle),
        **info,
        **({"artifact_info": summary_info} if summary_info else {}),
    }
    return table, columns, info


def build_model_inputs(
    spark: SparkSession,
    surveys: DataFrame,
    val_ids: np.ndarray,
    features: Mapping[str, FeatureSource] | None = None,
    shuffle: Iterable[str] = (),
    seed: int = 0,
) -> tuple[dict[str, DataFrame], dict[str, Any]]:
    """Transform the survey table and the feature-set artifacts into the three model-input frames and meta.

    Args:
        spark: the session.
        surveys: the ``SurveyTable`` frame (surveyId, lon, lat, x, y, year, region, country, split, speciesIds).
        val_ids: surveyIds of the training surveys held out for validation.
        features: feature-set name -> its artifact (every set except ``location``/``meta``, which come from
            ``surveys``).
        shuffle: sets whose rows are permuted among the surveys of each split (controls; see the module docstring).
        seed: seed of the shuffles.

    Returns:
        ``({"train": df, "val": df, "test": df}, meta)`` (``meta`` without the statistics, which
        :func:`write_model_inputs` adds from the written ``train`` split).

    Raises:
        ValueError: unknown feature set, a missing row under the ``error`` policy, val ids that are not training
            surveys, inconsistent artifact rows.
        KeyError: unknown feature-set name.
    """
    features = dict(features or {})
    shuffle = tuple(sorted(set(shuffle)))
    names = resolve_feature_sets(features)
    bad_shuffle = [s for s in shuffle if s not in names or s in ALWAYS]
    if bad_shuffle:
        raise ValueError(
            f"shuffle names {bad_shuffle}, which are not requested artifact feature sets {sorted(features)}"
        )
    need = ["surveyId", "lon", "lat", "x", "y", "year", "region", "country", "split", "speciesIds"]
    lacking = [c for c in need if c not in surveys.columns]
    if lacking:
        raise ValueError(f"the survey frame lacks column(s) {lacking}; rebuild SurveyTable")
    vocab = _vocab(surveys)
    regions, countries = _codes(surveys, "region"), _codes(surveys, "country")
    base, width, mean_richness = _base(spark, surveys, val_ids, vocab, regions, countries)
    vocab_df = spark.createDataFrame([(int(s), i) for i, s in enumerate(vocab)], "speciesId long, col int")
    ctx = _Ctx(spark, base, vocab, vocab_df)
    columns: dict[str, Any] = {}
    for fs_name in ALWAYS:
        for c in feature_set(fs_name).columns:
            columns[c.name] = {"dtype": c.dtype, "shape": [], "feature_set": fs_name}
    info: dict[str, Any] = {n: {"description": feature_set(n).description, "artifact": "SurveyTable"} for n in ALWAYS}
    table = base
    for name in names:
        if name in ALWAYS:
            continue
        table, cols, info[name] = _add_feature_set(ctx, table, feature_set(name), features[name], name in shuffle, seed)
        columns.update(cols)
    columns["labels"] = {"dtype": "int32", "shape": [width], "feature_set": None}
    order = ["surveyId", *columns]
    frames = {p: table.where(table["_part"] == p).select(*order) for p in SPLITS}
    counts = {r["_part"]: int(r["count"]) for r in base.groupBy("_part").count().collect()}
    meta = {
        "num_classes": len(vocab),
        "vocab": [int(v) for v in vocab],
        "label_width": width,
        "mean_richness": mean_richness,
        "n_regions": len(regions),
        "regions": regions,
        "n_countries": len(countries),
        "countries": countries,
        "splits": {p: counts.get(p, 0) for p in SPLITS},
        "feature_sets": list(names),
        "shuffled": list(shuffle),
        "seed": int(seed),
        "columns": columns,
        "feature_info": info,
    }
    return frames, meta


def surveys_frame(spark: SparkSession, train: pd.DataFrame, query: pd.DataFrame) -> DataFrame:
    """A ``SurveyTable``-like Spark frame from in-memory surveys: ``train`` rows labelled, ``query`` rows as test
    (the CV benchmarks' folds). Frames need surveyId, lon, lat, x, y, year, region, speciesIds (train); country is
    optional."""
    from pyspark.sql import types as T

    def rows(df: pd.DataFrame, split: str) -> list[tuple[Any, ...]]:
        country = df["country"] if "country" in df.columns else pd.Series([None] * len(df), index=df.index)
        year = df["year"] if "year" in df.columns else pd.Series([None] * len(df), index=df.index)
        out = []
        for sid, lon, lat, x, y, yr, reg, ctry, sp in zip(
            df["surveyId"],
            df["lon"],
            df["lat"],
            df["x"],
            df["y"],
            year,
            df["region"],
            country,
            df["speciesIds"] if split == "train" else [None] * len(df),
        ):
            out.append(
                (
                    int(sid),
                    float(lon),
                    float(lat),
                    float(x),
                    float(y),
                    None if pd.isna(yr) else int(yr),
                    None if pd.isna(reg) else str(reg),
                    None if ctry is None or pd.isna(ctry) else str(ctry),
                    split,
                    None if sp is None else [int(s) for s in np.unique(np.asarray(sp, np.int64))],
                )
            )
        return out

    schema = T.StructType(
        [
            T.StructField("surveyId", T.LongType()),
            T.StructField("lon", T.DoubleType()),
            T.StructField("lat", T.DoubleType()),
            T.StructField("x", T.DoubleType()),
            T.StructField("y", T.DoubleType()),
            T.StructField("year", T.IntegerType()),
            T.StructField("region", T.StringType()),
            T.StructField("country", T.StringType()),
            T.StructField("split", T.StringType()),
            T.StructField("speciesIds", T.ArrayType(T.LongType())),
        ]
    )
    return spark.createDataFrame(rows(train, "train") + rows(query, "test"), schema)


def write_model_inputs(
    spark: SparkSession,
    surveys: DataFrame | str | Path,
    out_dir: str | Path,
    val_ids: np.ndarray,
    features: Mapping[str, FeatureSource] | None = None,
    shuffle: Sequence[str] = (),
    seed: int = 0,
    files_per_split: int = 4,
) -> dict[str, Any]:
    """Build the inputs (:func:`build_model_inputs`) and write them atomically under ``out_dir``.

    Args:
        spark: the session.
        surveys: the ``SurveyTable`` artifact folder (its ``surveys/`` parquet) or a frame (:func:`surveys_frame`).
        out_dir: the model-input folder to write.
        val_ids: surveyIds of the training surveys held out for validation.
        features: feature-set name -> artifact (see :func:`read_feature_source`).
        shuffle: sets to permute within splits (controls).
        seed: seed of the shuffles.
        files_per_split: parquet part files per split.

    Returns:
        The meta dict (also ``meta.json``; the ``_SUCCESS`` summary holds it without vocab and statistics).
    """
    if not isinstance(surveys, (str, Path)):
        sdf = surveys
    else:
        sdf = spark.read.parquet(str(Path(surveys) / "surveys"))
    frames, meta = build_model_inputs(spark, sdf, val_ids, features, shuffle, seed)
    # Adaptive execution may coalesce the hash partitions of small splits into fewer files, and whether it does can
    # change between runs; the file layout (and so the loaders' shuffle units and the bytes) must not.
    prev = spark.conf.get("spark.sql.adaptive.coalescePartitions.enabled", "true")
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    try:
        _write(frames, meta, out_dir, files_per_split)
    finally:
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", prev)
    log.info(
        "ModelInputs: %s surveys, %d classes, label width %d, feature sets %s%s",
        meta["splits"],
        meta["num_classes"],
        meta["label_width"],
        meta["feature_sets"],
        f", shuffled {meta['shuffled']}" if meta["shuffled"] else "",
    )
    return meta


def read_feature_source(spark: SparkSession, name: str, artifact_dir: str | Path) -> FeatureSource:
    """The artifact of feature set ``name`` at ``artifact_dir`` (its ``_SUCCESS`` summary and parquet)."""
    import json

    from glc.io import SUCCESS, is_complete

    fs = feature_set(name)
    d = Path(artifact_dir)
    if not is_complete(d):
        raise FileNotFoundError(f"feature set {name!r}: artifact {d} is incomplete (no {SUCCESS}); rerun {fs.artifact}")
    text = (d / SUCCESS).read_text().strip()
    summary = json.loads(text) if text.startswith("{") else {}
    return FeatureSource(spark.read.parquet(str(d / fs.data_dir)), summary, str(d))


def _stats(split_dir: Path, columns: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """Per-element float64 mean and std (population) of array columns over a written split, in file order."""
    import pyarrow.parquet as pq

    names = list(columns)
    if not names:
        return {}
    acc = {n: [0, 0.0, 0.0] for n in names}
    for path in sorted(p for p in split_dir.glob("*.parquet")):
        pf = pq.ParquetFile(path)
        for rg in range(pf.metadata.num_row_groups):
            t = pf.read_row_group(rg, columns=names)
            for n in names:
                width = math.prod(columns[n]["shape"])
                X = (
                    t.column(n)
                    .combine_chunks()
                    .flatten()
                    .to_numpy(zero_copy_only=False)
                    .astype(np.float64)
                    .reshape(t.num_rows, width)
                )
                a = acc[n]
                a[0] += t.num_rows
                a[1] = a[1] + X.sum(axis=0)
                a[2] = a[2] + (X * X).sum(axis=0)
    out = {}
    for n, (cnt, s, ss) in acc.items():
        if cnt == 0:
            raise ValueError(f"the train split has no row: cannot compute statistics of {n!r}")
        mean = np.asarray(s) / cnt
        std = np.sqrt(np.maximum(np.asarray(ss) / cnt - mean * mean, 0.0))
        std[std < 1e-6 * np.maximum(1.0, np.abs(mean))] = 1.0  # constant elements: scale 1, never divide by ~0
        shape = columns[n]["shape"]
        out[n] = {"mean": mean.reshape(shape).tolist(), "std": std.reshape(shape).tolist()}
    return out


def _write(frames: dict[str, DataFrame], meta: dict[str, Any], out_dir: str | Path, files_per_split: int) -> None:
    from pyspark.sql import functions as F

    from glc.io import atomic_dir, write_json

    summary = {k: v for k, v in meta.items() if k not in ("vocab", "columns", "feature_info")}
    summary["columns"] = {k: {kk: vv for kk, vv in v.items() if kk != "stats"} for k, v in meta["columns"].items()}
    with atomic_dir(out_dir, summary=summary) as tmp:
        for part, df in frames.items():
            (
                df.repartition(files_per_split, F.col("surveyId"))
                .sortWithinPartitions("surveyId")
                .write.mode("overwrite")
                .option("parquet.block.size", ROW_GROUP_BYTES)
                .parquet(str(Path(tmp) / part))
            )
        stat_cols = {
            c: spec
            for c, spec in meta["columns"].items()
            if spec.get("feature_set")
            and feature_set(spec["feature_set"]).stats
            and c in feature_set(spec["feature_set"]).column_names
        }
        for c, st in _stats(Path(tmp) / "train", stat_cols).items():
            meta["columns"][c]["stats"] = st
        write_json(Path(tmp) / "meta.json", meta, atomic=False)
