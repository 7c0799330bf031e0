"""Presence-only artifacts: ``POSites``, the PO records as one labelled row per site (pretraining input), and the
inputs a tile net reads at those sites: ``POPatchTiles`` (their satellite patches as DCT tiles) and ``PORasterTiles``
(the environmental rasters' DCT tiles there). Time series, env vectors and graph features do not exist at PO sites."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import FlagTarget, GlcTask
from glc.tasks.features import PatchTiles, RasterTiles

log = logging.getLogger(__name__)

__all__ = ["POPatchTiles", "PORasterTiles", "POSites", "po_input_task"]

#: The parquet folder of the sites inside the artifact.
DATA_DIR = "data"


class POSites(GlcTask):
    """``{out}/{dataset}/po/sites/``: one row per PO site (:data:`glc.etl.po.PO_SITE_COLUMNS`) and ``report.json``
    (records read, bad rows by reason, sites, species); the PO metadata CSV of the data root is its raw input."""

    po_max_bad_fraction = luigi.FloatParameter(
        default=0.01, significant=False, description="largest tolerated fraction of bad PO rows"
    )

    def requires(self) -> dict[str, luigi.Task]:
        """The raw data root."""
        return {"raw": self.raw_data()}

    def raw_inputs(self) -> list[Path]:
        """The PO metadata CSV."""
        lay = self.layout_or_none()
        return [lay.po_metadata()] if lay else []

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(self.artifact_path("po", "sites"))

    def run(self) -> None:
        """Spark job: :func:`glc.etl.po.read_po_records` -> :func:`glc.etl.po.po_site_labels`, sorted by site."""
        from pyspark.sql import functions as F

        from glc.data.layout import detect_layout
        from glc.etl.neighbours import write_sorted
        from glc.etl.po import po_site_labels, read_po_records
        from glc.io import atomic_dir, remove_stale_temps, write_json
        from glc.spark import get_spark

        t0 = time.time()
        remove_stale_temps(self.output().dir.parent)
        spark = get_spark()
        records, report = read_po_records(spark, detect_layout(self.local_data_root), self.po_max_bad_fraction)
        summary = {"artifact": "POSites", "po_records": report}
        with atomic_dir(self.output().dir, summary=summary) as tmp:
            write_sorted(po_site_labels(records), Path(tmp) / DATA_DIR)
            written = spark.read.parquet(str(Path(tmp) / DATA_DIR))
            row = written.agg(F.count(F.lit(1)).alias("sites"), F.sum("n_records").alias("records")).first()
            species = written.select(F.explode("speciesIds")).distinct().count()
            summary.update(
                n_sites=int(row["sites"]),
                n_records=int(row["records"] or 0),
                n_species=int(species),
                seconds=round(time.time() - t0, 3),
            )
            write_json(Path(tmp) / "report.json", summary, atomic=False)
        log.info("POSites: %d sites, %d records, %d species", summary["n_sites"], summary["n_records"], species)


class POPatchTiles(PatchTiles):
    """``{out}/{dataset}/po/patches/k{k}[-raw][-skipbad]/``: the PO sites' satellite patches as ``PatchTiles`` rows
    (``surveyId`` = the PO ``surveyId``, ``split`` = ``"po"``, ``dct``), for the image nets' presence-only term
    (:mod:`glc.training.po_pretrain`); the parameters are ``PatchTiles``'.

    The sites are those of ``POSites``; their patches live at the Seafile path under the data root
    (``SatellitePatches/PO-Train-SatellitePatches-*``; Kaggle ships none; a synthetic world renders them on first use:
    ``glc.tasks.synth.SyntheticPOPatches``). A site without a patch file is skipped and counted (``report.json``:
    ``n_sites``, ``n_with_patch``, ``n_without_patch``, up to 5 ``without_patch_examples``); the task fails when no
    site has one, or when more than ``max_missing_fraction`` of the sites lack one.
    """

    max_missing_fraction = luigi.FloatParameter(
        default=0.5, significant=False, description="fail when more than this fraction of the PO sites has no patch"
    )

    def requires(self) -> dict[str, luigi.Task]:
        """The PO sites and the raw data root (a synthetic world with its PO patches rendered)."""
        from glc.tasks.synth import po_patches_task

        return {
            "sites": POSites(data_root=self.data_root, out_root=self.out_root),
            "raw": po_patches_task(self.raw_data()),
        }

    def raw_inputs(self) -> list[Path]:
        """The PO patch folders."""
        lay = self.layout_or_none()
        return [lay.patch_root("po", kind) for kind in lay.edition.patch_kinds] if lay else []

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(self.artifact_path("po", "patches", self.artifact_name()))

    def run(self) -> None:
        """The sites with a patch (:func:`sites_with_patches`) through the PatchTiles ETL."""
        import pandas as pd

        spark, layout = _po_prepare(self)
        ids = pd.read_parquet(self.input()["sites"].dir / DATA_DIR, columns=["surveyId"])["surveyId"].to_numpy()
        have, counts = sites_with_patches(layout, ids, self.max_missing_fraction)
        self.write(spark, layout, spark.createDataFrame(pd.DataFrame({"surveyId": have, "split": "po"})), counts)
        log.info("POPatchTiles(k=%d): %s", self.k, counts)


def sites_with_patches(layout: Any, ids: Any, max_missing_fraction: float) -> tuple[Any, dict[str, Any]]:
    """The PO site ids (sorted) whose every patch file (the edition's kinds) exists, and the counts.

    Each patch folder is listed once (not one ``stat`` per site and kind).

    Raises:
        FileNotFoundError: no site has a patch (naming the folders and how to get the patches).
        ValueError: more than ``max_missing_fraction`` of the sites lack one.
    """
    import os

    import numpy as np

    ids = np.unique(np.asarray(ids, np.int64))
    have = np.ones(len(ids), bool)
    roots = [layout.patch_root("po", kind) for kind in layout.edition.patch_kinds]
    for root in roots:
        found: list[int] = []
        for _, _, files in os.walk(root):
            found.extend(int(f.split(".", 1)[0]) for f in files if f.split(".", 1)[0].isdigit())
        have &= np.isin(ids, np.asarray(found, np.int64))
    n_without = int((~have).sum())
    counts = {
        "n_sites": int(len(ids)),
        "n_with_patch": int(have.sum()),
        "n_without_patch": n_without,
        "without_patch_examples": [int(i) for i in ids[~have][:5]],
    }
    if len(ids) and not have.any():
        raise FileNotFoundError(
            f"none of the {len(ids)} presence-only sites has a patch under {[str(r) for r in roots]}. "
            "GLC24's PO patches ship in the organizers' Seafile share (SatellitePatches/PO-Train-SatellitePatches-"
            "{RGB,NIR}.zip; Kaggle has none): unzip them there. A synthetic world renders them with "
            "'glc synth --po-patches N' (or 'glc synth --add-po-patches --out <world>' for an existing one). "
            "Or read no patches in the PO term (a location-only net)."
        )
    if len(ids) and n_without / len(ids) > max_missing_fraction:
        raise ValueError(
            f"{n_without} of {len(ids)} presence-only sites have no patch under {[str(r) for r in roots]} "
            f"(e.g. {counts['without_patch_examples']}), more than max_missing_fraction={max_missing_fraction}. "
            "Complete the PO patches, or raise --max-missing-fraction to train on the sites that have one."
        )
    if n_without:
        log.warning("POPatchTiles: %d of %d PO sites have no patch (skipped, counted)", n_without, len(ids))
    return ids[have], counts


class PORasterTiles(RasterTiles):
    """``{out}/{dataset}/po/rasters/{raster_group}-k{k}-t{tile_size}-{fill}[-skipbad]/``: the ``RasterTiles`` rows of
    every PO site (``surveyId`` = the PO ``surveyId``, ``split`` = ``"po"``), read from the full-extent GeoTIFFs at
    the sites' locations (:func:`glc.etl.raster_tiles.write_raster_tiles`: the same tiles, fill rule and outside
    flags as the PA surveys'); the parameters are ``RasterTiles``'."""

    def requires(self) -> dict[str, luigi.Task]:
        """The PO sites and the raw data root."""
        return {"sites": POSites(data_root=self.data_root, out_root=self.out_root), "raw": self.raw_data()}

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the artifact folder."""
        return FlagTarget(self.artifact_path("po", "rasters", self.artifact_name()))

    def _prepare(self) -> tuple[Any, Any, Any]:
        """``(spark, layout, the sites as surveyId, split = "po", lon, lat)``."""
        from pyspark.sql import functions as F

        spark, layout = _po_prepare(self)
        sites = spark.read.parquet(str(self.input()["sites"].dir / DATA_DIR)).select(
            "surveyId", F.lit("po").alias("split"), "lon", "lat"
        )
        return spark, layout, sites


def _po_prepare(task: GlcTask) -> tuple[Any, Any]:
    """``(spark, layout)`` for a PO feature task, after collecting stale temporary debris of crashed writers."""
    from glc.data.layout import detect_layout
    from glc.io import remove_stale_temps
    from glc.spark import get_spark

    remove_stale_temps(task.output().dir.parent)
    return get_spark(), detect_layout(task.local_data_root)


def po_input_task(task: GlcTask, set_name: str) -> GlcTask | None:
    """The task that makes feature set ``set_name`` at the PO sites, or None when PO sites cannot have it. The
    satellite patch sets (``PatchTiles``: :class:`POPatchTiles`, on the PO patches) and the environmental raster sets
    (``RasterTiles``: :class:`PORasterTiles`, from the full-extent GeoTIFFs) can, with their sets' parameters."""
    from glc.features.sets import feature_set, po_capable

    if not po_capable(set_name):
        return None
    fs = feature_set(set_name)
    params = dict(fs.params)
    common = {"data_root": task.data_root, "out_root": task.out_root}
    if fs.artifact == "PatchTiles":
        return POPatchTiles(**common, k=int(params.get("k", 8)))
    return PORasterTiles(**common, **params)
