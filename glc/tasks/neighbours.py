"""Neighbour artifacts: ``Neighbours``, ``GraphFeatures`` and ``POCorrection``.

Each task writes one folder below ``{out}/{dataset}/`` whose name is built from its significant parameters only:

* ``neighbours/{sources}-{queries}-r{radius_km}-k{k}-{method}[...]/``: for every query site its ``k`` nearest source
  sites within ``radius_km`` (:mod:`glc.etl.neighbours`, schema ``surveyId long, nbr_ids array<long>,
  nbr_dist_km array<double>``, one row per query, sorted by ``surveyId``; a query without neighbours keeps its row
  with empty arrays). ``sources``/``queries`` are ``+``-joined site kinds in the fixed order ``pa_train, pa_test,
  po`` (so ``po,pa_train`` and ``pa_train,po`` are the same task).
* ``features/graph/r{radius_km}-f{n_folds}-b{block_km}-seed{seed}-{degree}[...]/``: out-of-fold graph feature
  vectors of the PA train surveys and graph features of the PA test surveys against all of them
  (:mod:`glc.features.graph`; ``surveyId, split, fold, gfv_idx array<int>, gfv_val array<float>``).
* ``po_correction/{queries}-n{N}-l{L}-a{A}-m{M}-{po_unit}[...]/``: PO-neighbour correction lists
  (:mod:`glc.features.po_correction`; ``surveyId, split, species array<long>``).

Every folder holds ``data/`` (parquet written by Spark), ``report.json`` and ``_SUCCESS`` (the same JSON summary:
parameters, counts, seconds), written through :func:`glc.io.atomic_dir`, so a crash never leaves a folder that looks
complete. Optional suffixes: ``-keepsite`` (``exclude_same_site=False``), ``-ss{m}m`` (a ``same_site_m`` other than
1 m, only when the same-site rule is on), and for ``method=lsh`` ``-b{bucket_length_km}-t{num_hash_tables}-
seed{lsh_seed}``. Performance knobs (``cell_km``) and acceptance gates (``po_max_bad_fraction``) are insignificant:
they never change the bytes written.

**PO id space.** PO and PA-train ``surveyId`` s collide in GLC24 (3,845,533 distinct PO ids and 88,987 PA-train ids
cannot be disjoint within 1..3,919,662), while a neighbour table drops a source whose id equals the query's (self).
PO sites therefore enter every neighbour table as ``PO_ID_OFFSET + surveyId`` (:func:`glc.etl.po.decode_site_ids`
undoes it), so a PA survey and a PO survey that share a number are never mistaken for each other. PA ids are used as
they are.

The raw PO CSV is read with Spark by :func:`glc.etl.po.read_po_records` (columns by header name, every row checked,
bad rows counted per reason; the task fails when they exceed ``po_max_bad_fraction``). ``run()`` is thin glue over
library functions (:mod:`glc.etl.neighbours`, :mod:`glc.etl.po`, :mod:`glc.features.graph`,
:mod:`glc.features.po_correction`), which the tests call directly on the same inputs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import luigi
import numpy as np

from glc.etl.neighbours import SITE_KINDS, kind_counts, pa_frames, write_pandas, write_sorted
from glc.etl.po import PO_ID_OFFSET, po_sites, read_po_records
from glc.features.graph import graph_feature_table
from glc.features.neighbours import NEIGHBOUR_SCHEMA
from glc.tasks.base import FlagTarget, GlcTask
from glc.tasks.parameters import (
    FloatParameter,
    OptionalFloatParameter,
    SiteKindsParameter,
    check_choice,
    check_count,
    check_kinds,
    check_positive,
)
from glc.tasks.surveys import SurveyTable
from glc.tasks.tables import DATA_DIR

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from glc.data.layout import Layout

__all__ = ["GraphFeatures", "Neighbours", "POCorrection"]

log = logging.getLogger(__name__)

METHODS = ("exact", "lsh")
DEGREES = ("count", "weighted")
PO_UNITS = ("site", "record")
PA_KINDS = ("pa_train", "pa_test")
GRAPH_SCHEMA = "surveyId long, split string, fold int, gfv_idx array<int>, gfv_val array<float>"
CORRECTION_SCHEMA = "surveyId long, split string, species array<long>"


def _num(v: float) -> str:
    """Compact number for folder names: 50.0 -> '50', 2.5 -> '2.5'."""
    return f"{v:g}"


def _site_suffix(exclude_same_site: bool, same_site_m: float) -> str:
    if not exclude_same_site:
        return "-keepsite"
    return "" if same_site_m == 1.0 else f"-ss{_num(same_site_m)}m"


class HoldoutParams:
    """Mixin: an experiment's validation hold-out as task parameters (``holdout_block_km = 0``: none).

    Artifacts computed from neighbours' labels take the hold-out of the model that reads them, so a validation
    survey's labels never reach a training survey's value and a validation survey is featurised from the training
    split alone, as a test survey is from all training surveys (pitfall 15 in docs/contributing.md;
    :attr:`glc.features.sets.FeatureSet.holdout`).
    """

    holdout_block_km = FloatParameter(default=0.0, description="validation hold-out block size in km (0: no hold-out)")
    holdout_fraction = FloatParameter(default=0.2, description="validation hold-out fraction of the training surveys")
    holdout_seed = luigi.IntParameter(default=0, description="seed of the validation hold-out")
    holdout_scheme = luigi.ChoiceParameter(
        choices=["blocks", "test_like"],
        default="blocks",
        description="validation hold-out scheme (glc.eval.split.VALIDATION_SCHEMES)",
    )

    def _check_holdout(self) -> None:
        if not (math.isfinite(self.holdout_block_km) and self.holdout_block_km >= 0):
            raise ValueError(
                f"holdout_block_km={self.holdout_block_km!r}: expected 0 (no hold-out) or a positive number of km"
            )
        if self.holdout_block_km and not 0 < self.holdout_fraction < 1:
            raise ValueError(
                f"holdout_fraction={self.holdout_fraction!r}: expected a fraction strictly between 0 and 1"
            )

    def holdout_suffix(self) -> str:
        """``-h{block}km-f{fraction}-s{seed}`` when a hold-out is set, else ``""``."""
        if not self.holdout_block_km:
            return ""
        return f"-h{_num(self.holdout_block_km)}km-f{_num(self.holdout_fraction)}-s{self.holdout_seed}" + (
            "" if self.holdout_scheme == "blocks" else "-testlike"
        )

    def holdout_mask(self, train: pd.DataFrame, test: pd.DataFrame | None = None) -> np.ndarray | None:
        """The validation mask of ``train`` (:func:`glc.eval.split.validation_mask`, the one ``ModelInputs`` uses;
        ``test``: the test surveys a ``test_like`` hold-out is drawn toward), or None without a hold-out."""
        if not self.holdout_block_km:
            return None
        from glc.eval.split import validation_mask

        cfg = {
            "seed": int(self.holdout_seed),
            "validation": {
                "block_km": float(self.holdout_block_km),
                "val_fraction": float(self.holdout_fraction),
                "scheme": self.holdout_scheme,
            },
        }
        return validation_mask(train, cfg, test)

    def holdout_summary(self) -> dict[str, Any]:
        """The hold-out parameters for the artifact summary."""
        out = {
            "holdout_block_km": self.holdout_block_km or None,
            "holdout_fraction": self.holdout_fraction if self.holdout_block_km else None,
            "holdout_seed": self.holdout_seed if self.holdout_block_km else None,
        }
        if self.holdout_scheme != "blocks":
            out["holdout_scheme"] = self.holdout_scheme
        return out


# ================================================================================================================
# Tasks
# ================================================================================================================


class _SurveyInputTask(GlcTask):
    """Requires the survey table and the raw data root (the PO CSV, when used, is part of the raw root)."""

    def requires(self) -> dict[str, luigi.Task]:
        """The survey table (ids, x/y, year, region, split, species) and the raw data root."""
        return {"surveys": self.clone(SurveyTable), "raw": self.raw_data()}

    def _prepare(self) -> tuple[SparkSession, DataFrame]:
        """``(spark, surveys frame)`` after collecting stale temporary debris of crashed writers."""
        from glc.etl.artifact import read_surveys_frame
        from glc.io import remove_stale_temps
        from glc.spark import get_spark

        remove_stale_temps(self.output().dir.parent)
        spark = get_spark()
        return spark, read_surveys_frame(spark, self.input()["surveys"].dir)

    def raw_inputs(self) -> list[Path]:
        """The PO metadata CSV when the task reads presence-only sites."""
        kinds = {k for name in ("sources", "queries") for k in str(getattr(self, name, "")).split(",")}
        lay = self.layout_or_none()
        return [lay.po_metadata()] if lay and (isinstance(self, POCorrection) or "po" in kinds) else []

    def _layout(self) -> Layout:
        from glc.data.layout import detect_layout

        return detect_layout(self.local_data_root)


def _kinds_segment(kinds: Iterable[str]) -> str:
    return "+".join(kinds)


class Neighbours(_SurveyInputTask):
    """Neighbour table: each query site's ``k`` nearest source sites within ``radius_km`` (self excluded).

    Output: ``neighbours/{sources}-{queries}-r{radius_km}-k{k}-{method}[-keepsite][-ss{m}m][-b..-t..-seed..]/``
    (``k=0`` -> ``kall``: every source within the radius). See the module docstring for the PO id offset and
    :mod:`glc.etl.neighbours` for the distance, self and repeat-visit rules.
    """

    sources = SiteKindsParameter(
        default="pa_train", description="source site kinds: comma-separated pa_train, pa_test, po"
    )
    queries = SiteKindsParameter(
        default="pa_train,pa_test", description="query site kinds: comma-separated pa_train, pa_test, po"
    )
    radius_km = FloatParameter(default=50.0, description="neighbour cutoff in km (exact: d <= r; lsh: d < r)")
    k = luigi.IntParameter(default=10, description="nearest neighbours kept per query; 0: all within radius_km")
    method = luigi.Parameter(default="exact", description="exact (grid cells + cKDTree) or lsh (Spark ML, approximate)")
    exclude_same_site = luigi.BoolParameter(
        default=True,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="drop sources within same_site_m of the query (repeat visits)",
    )
    same_site_m = FloatParameter(default=1.0, description="same-site distance in metres")
    bucket_length_km = FloatParameter(default=20.0, description="lsh only: bucket length in km")
    num_hash_tables = luigi.IntParameter(default=5, description="lsh only: number of hash tables")
    lsh_seed = luigi.IntParameter(default=0, description="lsh only: seed of the random projections")
    cell_km = FloatParameter(
        default=0.0, significant=False, description="exact only: grid cell side in km (0: automatic)"
    )
    po_max_bad_fraction = FloatParameter(
        default=0.01, significant=False, description="fail when more malformed PO rows than this"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_kinds = check_kinds("sources", self.sources, SITE_KINDS)
        self.query_kinds = check_kinds("queries", self.queries, SITE_KINDS)
        check_positive("radius_km", self.radius_km, "kilometres")
        if int(self.k) != self.k or self.k < 0:
            raise ValueError(f"k={self.k!r}: expected an integer >= 1, or 0 for every source within radius_km")
        check_choice("method", self.method, METHODS)
        if not (math.isfinite(self.same_site_m) and self.same_site_m >= 0):
            raise ValueError(f"same_site_m={self.same_site_m!r}: expected a non-negative number of metres")
        if self.method == "lsh":
            check_positive("bucket_length_km", self.bucket_length_km, "kilometres")
            check_count("num_hash_tables", self.num_hash_tables, 1)
        if self.cell_km and not (math.isfinite(self.cell_km) and self.cell_km >= self.radius_km):
            raise ValueError(
                f"cell_km={self.cell_km!r}: expected 0 (automatic) or a number of km >= radius_km={self.radius_km}"
            )
        if not 0 <= self.po_max_bad_fraction <= 1:
            raise ValueError(f"po_max_bad_fraction={self.po_max_bad_fraction!r}: expected a fraction in [0, 1]")

    @property
    def uses_po(self) -> bool:
        """Whether PO sites are sources or queries."""
        return "po" in self.source_kinds or "po" in self.query_kinds

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        name = (
            f"{_kinds_segment(self.source_kinds)}-{_kinds_segment(self.query_kinds)}-r{_num(self.radius_km)}"
            f"-k{self.k or 'all'}-{self.method}" + _site_suffix(self.exclude_same_site, self.same_site_m)
        )
        if self.method == "lsh":
            name += f"-b{_num(self.bucket_length_km)}-t{self.num_hash_tables}-seed{self.lsh_seed}"
        return FlagTarget(self.artifact_path("neighbours", name))

    def run(self) -> None:
        """Spark job: :func:`glc.etl.neighbours.select_sites` + :func:`glc.etl.neighbours.neighbours`."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        from glc.etl.neighbours import neighbours, select_sites
        from glc.io import atomic_dir, write_json

        t0 = time.time()
        spark, surveys = self._prepare()
        po, po_report, table = None, None, None
        if self.uses_po:
            records, po_report = read_po_records(spark, self._layout(), self.po_max_bad_fraction)
            po = po_sites(records).distinct().persist(StorageLevel.DISK_ONLY)
        kw: dict[str, Any] = {"exclude_same_site": self.exclude_same_site, "same_site_m": self.same_site_m}
        if self.method == "exact":
            kw["cell_km"] = self.cell_km or None
        else:
            kw.update(bucket_length_km=self.bucket_length_km, num_hash_tables=self.num_hash_tables, seed=self.lsh_seed)
        summary: dict[str, Any] = {
            "artifact": "Neighbours",
            "params": {
                "sources": list(self.source_kinds),
                "queries": list(self.query_kinds),
                "radius_km": self.radius_km,
                "k": self.k or None,
                "method": self.method,
                "exclude_same_site": self.exclude_same_site,
                "same_site_m": self.same_site_m,
                **(
                    {
                        "bucket_length_km": self.bucket_length_km,
                        "num_hash_tables": self.num_hash_tables,
                        "lsh_seed": self.lsh_seed,
                    }
                    if self.method == "lsh"
                    else {}
                ),
            },
            "schema": NEIGHBOUR_SCHEMA,
            "po_id_offset": PO_ID_OFFSET if self.uses_po else None,
            **({"po_records": po_report} if po_report else {}),
        }
        try:
            queries = select_sites(surveys, po, self.query_kinds)
            sources = select_sites(surveys, po, self.source_kinds)
            table = neighbours(queries, sources, self.radius_km, self.k or None, method=self.method, **kw).persist(
                StorageLevel.DISK_ONLY
            )
            with atomic_dir(self.output().dir, summary=summary) as tmp:
                write_sorted(table, Path(tmp) / DATA_DIR)
                written = spark.read.parquet(str(Path(tmp) / DATA_DIR))
                n = F.size("nbr_ids")
                row = written.agg(
                    F.count(F.lit(1)).alias("n"),
                    F.sum((n == 0).cast("long")).alias("empty"),
                    F.sum(n).alias("pairs"),
                    F.max(F.array_max("nbr_dist_km")).alias("dmax"),
                    F.max(n).alias("nmax"),
                ).first()
                by_kind = kind_counts(surveys, po, {*self.query_kinds, *self.source_kinds})
                summary.update(
                    {
                        "n_queries": int(row["n"]),
                        "n_queries_by_kind": {k: by_kind[k] for k in self.query_kinds},
                        "n_sources_by_kind": {k: by_kind[k] for k in self.source_kinds},
                        "n_queries_without_neighbours": int(row["empty"] or 0),
                        "n_pairs": int(row["pairs"] or 0),
                        "mean_neighbours": (int(row["pairs"] or 0) / int(row["n"])) if row["n"] else 0.0,
                        "max_neighbours": int(row["nmax"] or 0),
                        "max_dist_km": None if row["dmax"] is None else float(row["dmax"]),
                        "seconds": round(time.time() - t0, 3),
                    }
                )
                summary["n_sources"] = int(sum(summary["n_sources_by_kind"].values()))
                if summary["n_queries_without_neighbours"]:
                    log.warning(
                        "Neighbours: %d of %d queries have no source within %g km (rows kept with empty arrays)",
                        summary["n_queries_without_neighbours"],
                        summary["n_queries"],
                        self.radius_km,
                    )
                write_json(Path(tmp) / "report.json", summary, atomic=False)
        finally:
            if table is not None:
                table.unpersist()
            if po is not None:
                po.unpersist()
        log.info("Neighbours: %s", {k: v for k, v in summary.items() if k.startswith("n_")})


class GraphFeatures(HoldoutParams, _SurveyInputTask):
    """Graph feature vectors (Tighnari's GFV): out-of-fold for PA train, against all of PA train for PA test.

    Output: ``features/graph/r{radius_km}-f{n_folds}-b{block_km}-seed{seed}-{degree}[-keepsite][-ss{m}m]
    [-h{km}km-f{fraction}-s{seed}]/`` with ``data/`` = ``surveyId, split, fold, gfv_idx array<int>, gfv_val
    array<float>`` (one row per PA survey, sorted by ``surveyId``; ``fold`` is -1 for test surveys and -2 for the
    hold-out's validation surveys; values divided by the training features' global maximum, stored as ``scale`` in
    the summary). With a hold-out (``holdout_block_km > 0``, what ``ModelInputs`` asks for) the folds are those of the
    model's training split and validation rows come from the training split only. See
    :func:`glc.features.graph.graph_feature_table`.
    """

    radius_km = FloatParameter(default=10.0, description="edge cutoff in km (weight radius_km - d)")
    n_folds = luigi.IntParameter(default=5, description="spatial folds of the out-of-fold training features")
    block_km = FloatParameter(default=10.0, description="block side of the spatial folds in km")
    seed = luigi.IntParameter(default=0, description="seed of the fold assignment")
    degree = luigi.Parameter(default="count", description="count (number of edges) or weighted (sum of weights)")
    exclude_same_site = luigi.BoolParameter(
        default=True,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="drop sources within same_site_m of the query (repeat visits)",
    )
    same_site_m = FloatParameter(default=1.0, description="same-site distance in metres")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_positive("radius_km", self.radius_km, "kilometres")
        check_count("n_folds", self.n_folds, 2)
        check_positive("block_km", self.block_km, "kilometres")
        check_choice("degree", self.degree, DEGREES)
        if not (math.isfinite(self.same_site_m) and self.same_site_m >= 0):
            raise ValueError(f"same_site_m={self.same_site_m!r}: expected a non-negative number of metres")
        self._check_holdout()

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        name = (
            f"r{_num(self.radius_km)}-f{self.n_folds}-b{_num(self.block_km)}-seed{self.seed}-{self.degree}"
            + _site_suffix(self.exclude_same_site, self.same_site_m)
            + self.holdout_suffix()
        )
        return FlagTarget(self.artifact_path("features", "graph", name))

    def run(self) -> None:
        """Collect the PA surveys, :func:`graph_feature_table`, write through Spark."""
        from glc.io import atomic_dir, write_json

        t0 = time.time()
        spark, surveys = self._prepare()
        train, test = pa_frames(surveys)
        rows, stats = graph_feature_table(
            train,
            test,
            radius_km=self.radius_km,
            n_folds=self.n_folds,
            block_km=self.block_km,
            seed=self.seed,
            degree=self.degree,
            exclude_same_site=self.exclude_same_site,
            same_site_m=self.same_site_m,
            holdout=self.holdout_mask(train, test),
        )
        summary: dict[str, Any] = {
            "artifact": "GraphFeatures",
            "params": {
                "radius_km": self.radius_km,
                "n_folds": self.n_folds,
                "block_km": self.block_km,
                "seed": self.seed,
                "degree": self.degree,
                "exclude_same_site": self.exclude_same_site,
                "same_site_m": self.same_site_m,
                **self.holdout_summary(),
            },
            "schema": GRAPH_SCHEMA,
            "columns": {"gfv_idx": "species ids (0..11254), ascending", "gfv_val": "GFV / scale, float32"},
            "n_written": len(rows),
            "by_split": {"test": len(test), "train": len(train)},
            **stats,
        }
        with atomic_dir(self.output().dir, summary=summary) as tmp:
            write_pandas(spark, rows, GRAPH_SCHEMA, Path(tmp) / DATA_DIR)
            summary["seconds"] = round(time.time() - t0, 3)
            write_json(Path(tmp) / "report.json", summary, atomic=False)
        log.info(
            "GraphFeatures: %d rows, scale %.4g, empty vectors %s", len(rows), stats["scale"], stats["n_empty_vectors"]
        )


class POCorrection(HoldoutParams, _SurveyInputTask):
    """PO-neighbour correction lists (Tighnari) for PA test (or train) surveys.

    Output: ``po_correction/{queries}-n{n_train}-l{min_train_count}-a{n_po}-m{min_po_count}-{po_unit}
    [-keepsite][-ss{m}m][-max{km}][-h{km}km-f{fraction}-s{seed}]/`` with ``data/`` = ``surveyId, split, species
    array<long>`` (one row per query survey, sorted by ``surveyId``; an empty list when nothing qualifies). Sources:
    every PA training survey (a query's own id is dropped) and every PO record. With a hold-out the PA sources are
    the training split only, so a validation survey's list comes from labels a model may see, as a test survey's
    does. See :mod:`glc.features.po_correction`.
    """

    queries = SiteKindsParameter(default="pa_test", description="query surveys: comma-separated pa_train, pa_test")
    n_train = luigi.IntParameter(default=5, description="N: nearest training surveys considered")
    min_train_count = luigi.IntParameter(default=4, description="L: a species must be held by more than L of them")
    n_po = luigi.IntParameter(default=10, description="A: nearest PO sites (or records) considered")
    min_po_count = luigi.IntParameter(default=8, description="M: a species must be recorded at more than M of them")
    po_unit = luigi.Parameter(default="site", description="site (PO records grouped by surveyId) or record")
    exclude_same_site = luigi.BoolParameter(
        default=True,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="ignore neighbours within same_site_m of the query",
    )
    same_site_m = FloatParameter(default=1.0, description="same-site distance in metres")
    max_km = OptionalFloatParameter(default=None, description="ignore neighbours farther than this (empty: no limit)")
    po_max_bad_fraction = FloatParameter(
        default=0.01, significant=False, description="fail when more malformed PO rows than this"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.query_kinds = check_kinds("queries", self.queries, PA_KINDS)
        for name, n, m in (
            ("n_train/min_train_count", self.n_train, self.min_train_count),
            ("n_po/min_po_count", self.n_po, self.min_po_count),
        ):
            if int(n) != n or n < 1 or int(m) != m or m < 0 or m >= n:
                raise ValueError(
                    f"{name}={n}/{m}: expected a positive count and a non-negative threshold below it (else no "
                    "species can qualify)"
                )
        check_choice("po_unit", self.po_unit, PO_UNITS)
        if not (math.isfinite(self.same_site_m) and self.same_site_m >= 0):
            raise ValueError(f"same_site_m={self.same_site_m!r}: expected a non-negative number of metres")
        if self.max_km is not None:
            check_positive("max_km", self.max_km, "kilometres")
        if not 0 <= self.po_max_bad_fraction <= 1:
            raise ValueError(f"po_max_bad_fraction={self.po_max_bad_fraction!r}: expected a fraction in [0, 1]")
        self._check_holdout()

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        name = (
            f"{_kinds_segment(self.query_kinds)}-n{self.n_train}-l{self.min_train_count}-a{self.n_po}-m{self.min_po_count}"
            f"-{self.po_unit}"
            + _site_suffix(self.exclude_same_site, self.same_site_m)
            + ("" if self.max_km is None else f"-max{_num(self.max_km)}")
            + self.holdout_suffix()
        )
        return FlagTarget(self.artifact_path("po_correction", name))

    def run(self) -> None:
        """Read surveys and PO records with Spark, :func:`glc.features.po_correction.po_correction_lists`, write."""
        import pandas as pd

        from glc.features.po_correction import po_correction_lists
        from glc.io import atomic_dir, write_json

        t0 = time.time()
        spark, surveys = self._prepare()
        records, po_report = read_po_records(spark, self._layout(), self.po_max_bad_fraction)
        po = records.select("surveyId", "x", "y", "speciesId").toPandas()
        train, test = pa_frames(surveys)
        splits = [k.split("_")[1] for k in self.query_kinds]
        q = pd.concat([train, test], ignore_index=True)
        q = q[q["split"].isin(splits)].sort_values("surveyId", ignore_index=True)
        hold = self.holdout_mask(train, test)
        src = train if hold is None else train[~hold].reset_index(drop=True)
        lists = po_correction_lists(
            q["surveyId"],
            q["x"],
            q["y"],
            src["surveyId"],
            src["x"],
            src["y"],
            list(src["speciesIds"]),
            po["surveyId"],
            po["x"],
            po["y"],
            po["speciesId"],
            n_train=self.n_train,
            min_train_count=self.min_train_count,
            n_po=self.n_po,
            min_po_count=self.min_po_count,
            po_unit=self.po_unit,
            exclude_same_site=self.exclude_same_site,
            same_site_m=self.same_site_m,
            max_km=self.max_km,
        )
        species = [np.asarray(lists[int(s)], dtype=np.int64) for s in q["surveyId"]]
        rows = pd.DataFrame(
            {
                "surveyId": q["surveyId"].to_numpy(np.int64),
                "split": q["split"].to_numpy(),
                "species": pd.Series(species, dtype=object),
            }
        )
        lens = np.array([len(s) for s in species], dtype=np.int64)
        summary: dict[str, Any] = {
            "artifact": "POCorrection",
            "params": {
                "queries": list(self.query_kinds),
                "n_train": self.n_train,
                "min_train_count": self.min_train_count,
                "n_po": self.n_po,
                "min_po_count": self.min_po_count,
                "po_unit": self.po_unit,
                "exclude_same_site": self.exclude_same_site,
                "same_site_m": self.same_site_m,
                "max_km": self.max_km,
                **self.holdout_summary(),
            },
            "schema": CORRECTION_SCHEMA,
            "po_records": po_report,
            "n_written": len(rows),
            "by_split": {str(k): int(v) for k, v in rows["split"].value_counts().sort_index().items()},
            "n_sources": {"pa_train": len(src), "po_records": len(po)},
            "n_empty_lists": int((lens == 0).sum()),
            "mean_list_length": float(lens.mean()) if len(lens) else 0.0,
        }
        with atomic_dir(self.output().dir, summary=summary) as tmp:
            write_pandas(spark, rows, CORRECTION_SCHEMA, Path(tmp) / DATA_DIR)
            summary["seconds"] = round(time.time() - t0, 3)
            write_json(Path(tmp) / "report.json", summary, atomic=False)
        log.info("POCorrection: %d surveys, %d with an empty list", len(rows), summary["n_empty_lists"])
