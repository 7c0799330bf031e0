"""Presence-only artifacts: ``POSites``, the PO records as one labelled row per site (pretraining input)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import luigi

from glc.tasks.base import FlagTarget, GlcTask

log = logging.getLogger(__name__)

__all__ = ["POSites"]

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
