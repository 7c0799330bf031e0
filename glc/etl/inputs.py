"""Model inputs: the Spark-written parquet that the Lightning trainers read through Petastorm.

One folder per experiment input set (``ModelInputs`` task) with ``train/``, ``val/`` and ``test/`` parquet
directories and ``meta.json`` (layout: :mod:`glc.loaders.tables`). ``train`` holds the training surveys outside the
spatial validation blocks (:func:`glc.experiment.validation_mask`, the same hold-out every classic model uses, so
validation scores are comparable across models), ``val`` those blocks and ``test`` the test surveys.

Columns: ``surveyId``, ``x``, ``y`` (EPSG:3035 m), ``lon``, ``lat``, ``year``, ``region`` (int code), ``labels``
(species column indices into ``meta["vocab"]``, padded to a fixed width with -1, because Petastorm's batch reader
only collates equal-length lists) and, when asked for, ``env`` (the :mod:`glc.etl.env` vector standardised with
the mean and standard deviation of the ``train`` rows only, so nothing about validation or test leaks in) and
``gfv`` (the graph feature vector of :mod:`glc.features.graph`, made dense: ``C = num_classes`` float32 values, value
``k`` the survey's GFV entry for species ``meta["vocab"][k]``, 0 where it has none; species outside the vocabulary
are dropped; values are kept as ``GraphFeatures`` scaled them, with its one global constant, not re-standardised).

Determinism: rows are hash-partitioned on ``surveyId`` and sorted inside each part file, so the same inputs give the
same files (Spark's part-file names carry a per-write id; readers order files by their partition index).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # module level: pyspark resolves the pandas UDF's (string) type hints in this namespace

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: Columns of the ``GraphFeatures`` artifact that :func:`build_model_inputs` reads.
GFV_COLUMNS = ("surveyId", "gfv_idx", "gfv_val")

SPLITS = ("train", "val", "test")
#: Rows per parquet row group (row groups are the shuffle and worker-sharding unit of the loaders).
ROW_GROUP_BYTES = 1 << 20


def _vocab_and_regions(surveys: "DataFrame") -> tuple[np.ndarray, list[str]]:
    from pyspark.sql import functions as F

    vocab = np.array(
        sorted(r[0] for r in surveys.where(F.col("split") == "train").select(F.explode("speciesIds")).distinct().collect()),
        dtype=np.int64,
    )
    regions = sorted(str(r[0]) for r in surveys.select(F.coalesce(F.col("region"), F.lit("UNKNOWN"))).distinct().collect())
    if len(vocab) == 0:
        raise ValueError("the survey table has no species in its training surveys; rebuild SurveyTable from PA train metadata")
    return vocab, regions


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


def _dense_gfv_column(vocab: np.ndarray):  # noqa: ANN202 - a pyspark pandas_udf
    """A pandas UDF ``(gfv_idx, gfv_val) -> array<float>`` of width ``len(vocab)`` (:func:`dense_gfv` per row)."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def dense(idx: pd.Series, val: pd.Series) -> pd.Series:
        return pd.Series([dense_gfv(vocab, i, v) for i, v in zip(idx, val)], index=idx.index)

    return dense


def build_model_inputs(
    spark: "SparkSession",
    surveys: "DataFrame",
    val_ids: np.ndarray,
    env: "DataFrame | None" = None,
    env_columns: list[str] | None = None,
    gfv: "DataFrame | None" = None,
) -> tuple[dict[str, "DataFrame"], dict[str, Any]]:
    """Transform the survey table (+ optional env and graph features) into the three model-input frames and meta.

    Args:
        spark: the session.
        surveys: the ``SurveyTable`` frame (surveyId, lon, lat, year, region, split, speciesIds, x, y).
        val_ids: surveyIds of the training surveys held out for validation.
        env: the ``EnvFeatures`` frame (surveyId, env array) or None.
        env_columns: names of the env vector's components (for meta).
        gfv: the ``GraphFeatures`` frame (surveyId, gfv_idx array of species ids, gfv_val array) or None; written
            as the dense ``gfv`` column of width ``num_classes`` (see the module docstring).

    Returns:
        ``({"train": df, "val": df, "test": df}, meta)``; meta ``gfv_dim`` is ``num_classes`` with gfv, else 0.

    Raises:
        ValueError: if a survey has no env vector (no graph feature row) while env (gfv) is asked for, or val ids
            are not training surveys.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    vocab, regions = _vocab_and_regions(surveys)
    vocab_df = spark.createDataFrame([(int(s), i) for i, s in enumerate(vocab)], "speciesId long, col int")
    region_df = spark.createDataFrame([(r, i) for i, r in enumerate(regions)], "region_name string, region_code int")
    val_df = spark.createDataFrame([(int(s),) for s in np.asarray(val_ids, np.int64)], T.StructType([T.StructField("surveyId", T.LongType())]))
    n_val_train = val_df.join(surveys.where(F.col("split") == "train"), "surveyId").count()
    if n_val_train != len(val_ids):
        raise ValueError(f"{len(val_ids) - n_val_train} validation surveyIds are not training surveys of the survey table")

    labelled = (
        surveys.where(F.col("split") == "train")
        .select("surveyId", F.explode("speciesIds").alias("speciesId"))
        .join(F.broadcast(vocab_df), "speciesId")
        .groupBy("surveyId")
        .agg(F.array_sort(F.collect_list("col")).alias("labels"))
    )
    agg = labelled.select(F.max(F.size("labels")).alias("w"), F.avg(F.size("labels")).alias("m")).first()
    width, mean_richness = int(agg["w"] or 1), float(agg["m"] or 0.0)
    base = (
        surveys.withColumn("region_name", F.coalesce(F.col("region"), F.lit("UNKNOWN")))
        .join(F.broadcast(region_df), "region_name")
        .join(labelled, "surveyId", "left")
        .join(F.broadcast(val_df.withColumn("is_val", F.lit(True))), "surveyId", "left")
        .select(
            F.col("surveyId").cast("long"),
            F.col("x").cast("double"), F.col("y").cast("double"),
            F.col("lon").cast("double"), F.col("lat").cast("double"),
            F.coalesce(F.col("year"), F.lit(0)).cast("int").alias("year"),
            F.col("region_code").cast("int").alias("region"),
            F.concat(  # size(null) is -1 in Spark, so pad the coalesced (possibly empty) array
                F.coalesce(F.col("labels"), F.array().cast("array<int>")),
                F.array_repeat(F.lit(-1), F.lit(width) - F.size(F.coalesce(F.col("labels"), F.array().cast("array<int>")))),
            ).cast("array<int>").alias("labels"),
            F.when(F.col("split") == "test", "test").when(F.col("is_val"), "val").otherwise("train").alias("_part"),
        )
    )
    env_dim = 0
    if env is not None:
        e = env.select("surveyId", "env")
        missing = base.join(e, "surveyId", "left_anti").count()
        if missing:
            raise ValueError(f"{missing} surveys have no row in the EnvFeatures artifact; rebuild EnvFeatures for this survey table")
        env_dim = int(e.select(F.max(F.size("env"))).first()[0])
        # Train-split statistics on the driver, in surveyId order: a Spark aggregate merges partial sums in shuffle
        # fetch order, which changes the last bits between runs and would break byte-identical outputs.
        train_env = (
            base.where(F.col("_part") == "train").select("surveyId").join(e, "surveyId").orderBy("surveyId").toPandas()
        )
        X = np.stack(train_env["env"].to_numpy()).astype(np.float64) if len(train_env) else np.zeros((0, env_dim))
        if len(X) == 0:
            raise ValueError("no training survey has an env vector; cannot standardise the env features")
        mean = [float(v) for v in X.mean(axis=0)]
        std = [float(v) if v > 1e-12 else 1.0 for v in X.std(axis=0)]
        m_arr = F.array(*[F.lit(v) for v in mean])
        s_arr = F.array(*[F.lit(v) for v in std])
        base = base.join(e, "surveyId").withColumn(
            "env", F.transform("env", lambda v, i: ((v - F.element_at(m_arr, i + 1)) / F.element_at(s_arr, i + 1))).cast("array<float>")
        )
    gfv_dim = 0
    gfv_dropped = 0
    if gfv is not None:
        g = gfv.select(*GFV_COLUMNS).where(F.col("gfv_idx").isNotNull() & F.col("gfv_val").isNotNull())
        missing = base.join(g, "surveyId", "left_anti").count()
        if missing:
            raise ValueError(
                f"{missing} surveys have no row (or a null vector) in the GraphFeatures artifact; rebuild GraphFeatures "
                "for this survey table"
            )
        gfv_dim = len(vocab)
        # species outside the vocabulary have no class column and are dropped by dense_gfv: count them, never silently
        gfv_dropped = (
            base.select("surveyId").join(g, "surveyId").select(F.explode("gfv_idx").alias("speciesId"))
            .join(F.broadcast(vocab_df), "speciesId", "left_anti").count()
        )
        if gfv_dropped:
            log.warning("ModelInputs: %d GFV entries name species outside the training vocabulary; dropped", gfv_dropped)
        base = base.join(g, "surveyId").withColumn("gfv", _dense_gfv_column(vocab)("gfv_idx", "gfv_val")).drop("gfv_idx", "gfv_val")
    frames = {p: base.where(F.col("_part") == p).drop("_part") for p in SPLITS}
    counts = {r["_part"]: int(r["count"]) for r in base.groupBy("_part").count().collect()}
    meta = {
        "num_classes": len(vocab),
        "vocab": [int(v) for v in vocab],
        "label_width": width,
        "mean_richness": mean_richness,
        "env_dim": env_dim,
        "env_columns": list(env_columns or [])[:env_dim] if env_dim else [],
        "gfv_dim": gfv_dim,
        "gfv_dropped_entries": gfv_dropped,
        "n_regions": len(regions),
        "regions": regions,
        "splits": {p: counts.get(p, 0) for p in SPLITS},
    }
    if env_dim:
        meta["env_standardisation"] = {"mean": mean, "std": std, "fitted_on": "train split (validation blocks excluded)"}
    return frames, meta


def write_model_inputs(
    spark: "SparkSession",
    surveys_dir: str | Path,
    out_dir: str | Path,
    val_ids: np.ndarray,
    env_dir: str | Path | None = None,
    env_columns: list[str] | None = None,
    files_per_split: int = 4,
    gfv_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Read the survey table (and env / graph features), build the inputs and write them atomically under ``out_dir``.

    Args:
        spark: the session.
        surveys_dir: the ``SurveyTable`` artifact folder.
        out_dir: the model-input folder to write.
        val_ids: surveyIds of the training surveys held out for validation.
        env_dir: the ``EnvFeatures`` artifact folder, or None.
        env_columns: names of the env vector's components (for meta).
        files_per_split: parquet part files per split.
        gfv_dir: the ``GraphFeatures`` artifact folder (its ``data/`` parquet), or None.

    Returns:
        The meta dict (also ``meta.json`` and the ``_SUCCESS`` summary).
    """
    surveys = spark.read.parquet(str(Path(surveys_dir) / "surveys"))
    env = spark.read.parquet(str(Path(env_dir) / "data")) if env_dir is not None else None
    gfv = spark.read.parquet(str(Path(gfv_dir) / "data")) if gfv_dir is not None else None
    frames, meta = build_model_inputs(spark, surveys, val_ids, env, env_columns, gfv)
    # Adaptive execution may coalesce the hash partitions of small splits into fewer files, and whether it does can
    # change between runs; the file layout (and so the loaders' shuffle units and the bytes) must not.
    prev = spark.conf.get("spark.sql.adaptive.coalescePartitions.enabled", "true")
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    try:
        _write(frames, meta, out_dir, files_per_split)
    finally:
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", prev)
    log.info(
        "ModelInputs: %s surveys, %d classes, label width %d, env dim %d, gfv dim %d",
        meta["splits"], meta["num_classes"], meta["label_width"], meta["env_dim"], meta["gfv_dim"],
    )
    return meta


def _write(frames: dict[str, "DataFrame"], meta: dict[str, Any], out_dir: str | Path, files_per_split: int) -> None:
    from pyspark.sql import functions as F

    from glc.io import atomic_dir, write_json

    with atomic_dir(out_dir, summary={k: v for k, v in meta.items() if k != "vocab"}) as tmp:
        for part, df in frames.items():
            (
                df.repartition(files_per_split, F.col("surveyId"))
                .sortWithinPartitions("surveyId")
                .write.mode("overwrite")
                .option("parquet.block.size", ROW_GROUP_BYTES)
                .parquet(str(Path(tmp) / part))
            )
        write_json(Path(tmp) / "meta.json", meta, atomic=False)
