"""Benchmark tasks: ``RealCV`` — the spatial-CV table of every model x decoder on the real labelled GLC24 surveys.

``make bench-real`` (``python -m bench.real_cv``) runs this task and copies its result into ``bench/results/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import luigi

from glc.eval.real import REAL_RASTERS, real_data_dir
from glc.tasks.base import FlagTarget

DEFAULT_REAL_DIR = str(real_data_dir() / "glc24-real")


class RealLabels(luigi.ExternalTask):
    """The real GLC24 PA-test metadata and released solution file (``glc.eval.real``)."""

    real_dir = luigi.Parameter(
        default=DEFAULT_REAL_DIR, description="folder with the PA test metadata and solution CSVs"
    )

    def output(self) -> dict[str, luigi.LocalTarget]:
        """The two CSVs."""
        from glc.eval.real import METADATA, SOLUTION

        return {
            k: luigi.LocalTarget(str(Path(self.real_dir) / f))
            for k, f in (("metadata", METADATA), ("solution", SOLUTION))
        }


class RealCV(luigi.Task):
    """``{out_root}/benchmarks/real_cv-f{folds}-b{block_km}-s{seed}-{models}/``: ``result.json`` + ``table.md``."""

    real_dir = luigi.Parameter(
        default=DEFAULT_REAL_DIR, description="folder with the PA test metadata and solution CSVs"
    )
    out_root = luigi.Parameter(default="out", description="artifact root")
    folds = luigi.IntParameter(default=5)
    block_km = luigi.FloatParameter(default=10.0)
    seed = luigi.IntParameter(default=0)
    models = luigi.Parameter(
        default="", description="comma-separated subset of glc.eval.benchmark.bench_models() ('' = all)"
    )
    rasters = luigi.ListParameter(
        default=[str(real_data_dir() / "glc24-samples" / "rasters" / f) for f in REAL_RASTERS],
        description="GeoTIFFs sampled at the surveys as feat_<stem> columns (tree models read them)",
    )

    def requires(self) -> RealLabels:
        """The real labelled files."""
        return RealLabels(real_dir=self.real_dir)

    def model_table(self) -> dict:
        """The selected models (unknown names raise)."""
        from glc.eval.benchmark import bench_models

        known = bench_models()  # the real surveys have location and metadata only: no artifact feature set
        names = [n.strip() for n in self.models.split(",") if n.strip()]
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"RealCV --models: unknown {bad}; valid: {sorted(known)}")
        return {n: known[n] for n in names} if names else dict(known)

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the result folder."""
        import hashlib

        from glc.storage import is_url

        if is_url(self.out_root):
            raise ValueError(
                f"RealCV --out-root {self.out_root}: the real-data benchmark writes to a local folder only; "
                "pass a local path (the URL out-root is for the DAG's artifacts)"
            )
        key = hashlib.sha256(
            json.dumps([self.model_table(), [Path(r).name for r in self.rasters]], sort_keys=True).encode()
        ).hexdigest()[:8]
        return FlagTarget(
            Path(self.out_root) / "benchmarks" / f"real_cv-f{self.folds}-b{self.block_km:g}-s{self.seed}-{key}"
        )

    def run(self) -> None:
        """:func:`glc.eval.benchmark.cv_benchmark` on :func:`glc.eval.real.load_real_surveys`."""
        from glc.eval.benchmark import cv_benchmark, markdown_table
        from glc.eval.real import add_raster_features, load_real_surveys
        from glc.io import atomic_dir, write_json

        surveys, raster_counts = add_raster_features(load_real_surveys(self.real_dir), list(self.rasters))
        res = cv_benchmark(
            surveys, models=self.model_table(), n_folds=self.folds, block_km=self.block_km, seed=self.seed
        )
        res["protocol"]["dataset"] = f"GLC24 PA test metadata + released labels ({self.real_dir})"
        res["protocol"]["raster_features"] = raster_counts
        with atomic_dir(self.output().dir, summary={"best": res["models"][0]}) as tmp:
            write_json(tmp / "result.json", res, atomic=False)
            (tmp / "table.md").write_text(
                markdown_table(res, "Real-data benchmark: GLC24 PA test surveys (released labels)")
            )
