"""Feature artifacts: ``PatchTiles``, ``CubeFeatures``, ``EnvFeatures``, ``RasterTiles``.

Each task writes ``{out}/{dataset}/features/<artifact>/<significant params>/`` with

* ``data/``: parquet, one row per PA survey (train and test) with ``surveyId`` and ``split``, sorted by ``surveyId``;
* ``quarantine/`` (per-survey file inputs): ``surveyId, file, reason`` of the bad inputs skipped under
  ``--skip-bad-inputs`` (empty otherwise: without it a bad input fails the task naming file and survey);
* ``report.json`` and ``_SUCCESS`` (the same JSON summary: parameters, counts, column layout), ``_SUCCESS`` last.

The artifact is built in a temporary sibling folder and renamed into place (:func:`glc.io.atomic_dir`), so a crash
never leaves a folder that looks complete. ``run()`` is glue over :mod:`glc.etl.patches`, :mod:`glc.etl.cubes`,
:mod:`glc.etl.env` and :mod:`glc.etl.raster_tiles`, whose functions the tests call directly. ``partitions`` and
``batch_size`` are insignificant (they never change the bytes written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from glc.data.layout import RASTER_GROUPS
from glc.tasks.base import FlagTarget, GlcTask
from glc.tasks.surveys import SurveyTable


class FeatureTask(GlcTask):
    """Base of the feature tasks: requires the survey table and the raw data root."""

    max_bad_fraction = luigi.FloatParameter(
        default=0.01,
        significant=False,
        description="with --skip-bad-inputs, fail when more than this fraction of the surveys would be skipped",
    )

    def requires(self) -> dict[str, luigi.Task]:
        """The survey table (ids, lon/lat, split) and the raw data root."""
        return {"surveys": self.clone(SurveyTable), "raw": self.raw_data()}

    def _prepare(self) -> tuple[Any, Any, Any]:
        """``(spark, layout, surveys frame)`` after collecting stale temporary debris of crashed writers."""
        from glc.data.layout import detect_layout
        from glc.etl.artifact import read_surveys_frame
        from glc.io import remove_stale_temps
        from glc.spark import get_spark

        remove_stale_temps(self.output().dir.parent)
        spark = get_spark()
        return spark, detect_layout(self.local_data_root), read_surveys_frame(spark, self.input()["surveys"].dir)


def _skip_suffix(skip: bool) -> str:
    return "-skipbad" if skip else ""


class PatchTiles(FeatureTask):
    """Satellite patches (GLC24 RGB + NIR JPEGs, GLC25 4-band GeoTIFFs) -> ``dct`` (4*k*k, channel-major), optionally
    ``raw`` bytes (GLC24) and the ``nodata`` count (GLC25).

    Output: ``features/patches/k{k}[-raw][-skipbad]/`` (see :mod:`glc.etl.patches`).
    """

    k = luigi.IntParameter(default=8, description="DCT block kept per channel (k x k)")
    keep_raw = luigi.BoolParameter(default=False, description="also store the raw (4,128,128) uint8 patch bytes")
    skip_bad_inputs = luigi.BoolParameter(default=False, description="quarantine unreadable patches instead of failing")
    partitions = luigi.IntParameter(default=0, significant=False, description="Spark partitions (0 = automatic)")
    batch_size = luigi.IntParameter(default=256, significant=False, description="patches per batch")

    def artifact_name(self) -> str:
        """The folder name from the significant parameters."""
        return f"k{self.k}" + ("-raw" if self.keep_raw else "") + _skip_suffix(self.skip_bad_inputs)

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(self.artifact_path("features", "patches", self.artifact_name()))

    def raw_inputs(self) -> list[Path]:
        """The patch folders of both splits (GLC24: RGB and NIR; GLC25: the GeoTIFFs)."""
        lay = self.layout_or_none()
        return [lay.patch_root(s, k) for s in ("train", "test") for k in lay.edition.patch_kinds] if lay else []

    def run(self) -> None:
        """:func:`glc.etl.patches.write_patch_tiles`."""
        self.write(*self._prepare())

    def write(self, spark: Any, layout: Any, surveys: Any, report: dict[str, Any] | None = None) -> None:
        """:func:`glc.etl.patches.write_patch_tiles` of ``surveys`` (``report``: more summary fields)."""
        from glc.etl.patches import write_patch_tiles

        write_patch_tiles(
            spark,
            layout,
            surveys,
            self.output().dir,
            k=self.k,
            keep_raw=self.keep_raw,
            skip_bad_inputs=self.skip_bad_inputs,
            partitions=self.partitions,
            batch_size=self.batch_size,
            max_bad_fraction=self.max_bad_fraction,
            report=report,
        )


class CubeFeatures(FeatureTask):
    """Landsat + bioclim cubes (or their CSVs) -> filled, DCT'd (n per channel) and trimmed cube features.

    Output: ``features/cubes/n{n}-{cube_source}[-skipbad]/`` (see :mod:`glc.etl.cubes`).
    """

    n = luigi.IntParameter(default=64, description="1D DCT coefficients kept per channel")
    cube_source = luigi.ChoiceParameter(
        choices=["auto", "cubes", "csv"], default="auto", description="auto: the .pt cubes if present, else the CSVs"
    )
    skip_bad_inputs = luigi.BoolParameter(default=False, description="quarantine bad cubes instead of failing")
    partitions = luigi.IntParameter(default=0, significant=False, description="Spark partitions (0 = automatic)")
    batch_size = luigi.IntParameter(default=2000, significant=False, description="surveys per batch")

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        name = f"n{self.n}-{self.cube_source}" + _skip_suffix(self.skip_bad_inputs)
        return FlagTarget(self.artifact_path("features", "cubes", name))

    def raw_inputs(self) -> list[Path]:
        """The cube folders and the Landsat / monthly bioclim CSVs of both splits (whichever exist)."""
        from glc.data.layout import LANDSAT_BANDS

        lay = self.layout_or_none()
        if not lay:
            return []
        out = []
        for s in ("train", "test"):
            out += [lay.cube_dir(s, "landsat"), lay.cube_dir(s, "bioclim"), lay.env_csv(s, "bioclimatic_monthly")]
            out += [lay.landsat_csv(s, b) for b in LANDSAT_BANDS]
        return out

    def run(self) -> None:
        """:func:`glc.etl.cubes.write_cube_features`."""
        from glc.etl.cubes import write_cube_features

        spark, layout, surveys = self._prepare()
        write_cube_features(
            spark,
            layout,
            surveys,
            self.output().dir,
            n=self.n,
            cube_source=self.cube_source,  # type: ignore[arg-type]
            skip_bad_inputs=self.skip_bad_inputs,
            partitions=self.partitions,
            batch_size=self.batch_size,
            max_bad_fraction=self.max_bad_fraction,
        )


class EnvFeatures(FeatureTask):
    """Environmental CSVs -> ``env`` (46 cleaned, train-mean-imputed values) + ``n_imputed`` + report.

    Output: ``features/env/`` (see :mod:`glc.etl.env`; the column names are in ``_SUCCESS``/``report.json``).
    """

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(self.artifact_path("features", "env"))

    def raw_inputs(self) -> list[Path]:
        """The environmental CSVs of both splits."""
        from glc.data.layout import ENV_COMPONENTS

        lay = self.layout_or_none()
        return [lay.env_csv(s, c) for s in ("train", "test") for c in ENV_COMPONENTS] if lay else []

    def run(self) -> None:
        """:func:`glc.etl.env.write_env_features`."""
        from glc.etl.env import write_env_features

        spark, layout, surveys = self._prepare()
        write_env_features(spark, layout, surveys, self.output().dir)


class RasterTiles(FeatureTask):
    """Every GeoTIFF of a raster group -> ``dct`` (raster bands x k*k), ``valid_fraction``, ``inside``.

    Output: ``features/rasters/{raster_group}-k{k}-t{tile_size}-{fill}[-skipbad]/`` (see :mod:`glc.etl.raster_tiles`).
    """

    raster_group = luigi.ChoiceParameter(
        choices=sorted(RASTER_GROUPS), description="raster group (glc.data.layout.RASTER_GROUPS)"
    )
    k = luigi.IntParameter(default=8, description="DCT block kept per band (k x k)")
    tile_size = luigi.IntParameter(default=128, description="tile side in pixels")
    fill = luigi.ChoiceParameter(
        choices=["tile_mean", "global_mean"], default="tile_mean", description="nodata fill rule"
    )
    skip_bad_inputs = luigi.BoolParameter(default=False, description="quarantine unreadable windows instead of failing")
    partitions = luigi.IntParameter(default=0, significant=False, description="Spark partitions (0 = automatic)")
    batch_size = luigi.IntParameter(default=50000, significant=False, description="sites per extraction call")

    def artifact_name(self) -> str:
        """The folder name from the significant parameters."""
        return f"{self.raster_group}-k{self.k}-t{self.tile_size}-{self.fill}" + _skip_suffix(self.skip_bad_inputs)

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(self.artifact_path("features", "rasters", self.artifact_name()))

    def raw_inputs(self) -> list[Path]:
        """The GeoTIFFs of the raster group."""
        from glc.data.layout import LayoutError

        lay = self.layout_or_none()
        try:
            return list(lay.raster_paths(self.raster_group)) if lay else []
        except LayoutError:
            return []

    def run(self) -> None:
        """:func:`glc.etl.raster_tiles.write_raster_tiles`."""
        from glc.etl.raster_tiles import write_raster_tiles

        spark, layout, surveys = self._prepare()
        write_raster_tiles(
            spark,
            layout,
            surveys,
            self.output().dir,
            self.raster_group,
            k=self.k,
            tile_size=self.tile_size,
            fill=self.fill,
            skip_bad_inputs=self.skip_bad_inputs,
            partitions=self.partitions,
            batch_size=self.batch_size,
            max_bad_fraction=self.max_bad_fraction,
        )


def read_features(flag: FlagTarget, columns: list[str] | None = None):
    """Load a feature artifact's ``data/`` into pandas (one row per survey, sorted by ``surveyId``).

    Raises:
        FileNotFoundError: if the artifact is incomplete (no ``_SUCCESS``).
    """
    import pandas as pd

    from glc.etl.artifact import DATA_DIR
    from glc.io import is_complete

    if not is_complete(flag.dir):
        raise FileNotFoundError(f"feature artifact {flag.dir} is incomplete (no _SUCCESS); rerun its task")
    return pd.read_parquet(Path(flag.dir) / DATA_DIR, columns=columns)


def read_summary(flag: FlagTarget) -> dict[str, Any]:
    """The ``_SUCCESS`` JSON summary of a complete feature artifact."""
    import json

    from glc.io import is_complete

    if not is_complete(flag.dir):
        raise FileNotFoundError(f"feature artifact {flag.dir} is incomplete (no _SUCCESS); rerun its task")
    return json.loads(Path(flag.path).read_text())
