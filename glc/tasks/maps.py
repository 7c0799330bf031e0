"""Map tasks: ``SpeciesMap`` (an experiment's species/richness GeoTIFF + PNG previews) and the point-model loader
behind ``python -m glc predict`` / ``map``.

``SpeciesMap`` lives at ``experiments/{name}-{hash}/maps/{crs}-{res}km-{bands}[-bbox]/``: ``map.tif``, one
``<band>.png`` per band and ``map.json`` (grid, counts, timing). Its prerequisites are those of the experiment's model
(the survey table; for a trained kind the published model and its model-input table), so a map of an experiment that
was already run trains nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import ExperimentTask, FlagTarget, GlcTask
from glc.tasks.surveys import SurveyTable, read_surveys
from glc.tasks.training import TrainModel, model_inputs_for


def model_requires(task: ExperimentTask) -> dict[str, luigi.Task]:
    """What an experiment's model needs to score new points: the survey table, and for trained kinds the model
    artifact and its model inputs (for ``meta.json``)."""
    from glc.models.registry import get_model

    req: dict[str, luigi.Task] = {"surveys": task.clone(SurveyTable)}
    if get_model(task.cfg["model"]["kind"]).needs_inputs:
        req["model"] = task.clone(TrainModel)
        req["inputs"] = model_inputs_for(task, task.cfg)
    return req


def load_point_model(task: ExperimentTask, inputs: dict[str, Any]) -> Any:
    """The :class:`glc.predict.points.PointModel` of ``task``'s experiment from its completed requirements."""
    from glc.data.extent import data_extent
    from glc.loaders.tables import read_meta
    from glc.predict.points import PointModel
    from glc.training.runners import CHECKPOINT

    surveys = read_surveys(inputs["surveys"])
    train = surveys[surveys["split"] == "train"].reset_index(drop=True)
    kw: dict[str, Any] = {}
    if "model" in inputs:
        kw = {"checkpoint": inputs["model"].dir / CHECKPOINT, "meta": read_meta(inputs["inputs"].dir)}
    return PointModel(task.cfg, train, extent=data_extent(task.local_data_root), **kw)


def build_point_model(experiment: str, data_root: str, out_root: str) -> Any:
    """Run (or reuse) the experiment's model prerequisites and return its point model.

    Raises:
        glc.predict.points.PointInputError: the model reads inputs a new point lacks (before anything runs).
        RuntimeError: a prerequisite failed (see the Luigi log).
    """
    from glc.predict.points import check_point_capable

    probe = SpeciesMap(experiment=experiment, data_root=data_root, out_root=out_root)
    check_point_capable(probe.cfg)
    req = model_requires(probe)
    if not luigi.build(list(req.values()), local_scheduler=True, log_level="WARNING"):
        raise RuntimeError(f"the prerequisites of experiment {experiment!r} failed; see the log above")
    return load_point_model(probe, {k: t.output() for k, t in req.items()})


class SpeciesMap(ExperimentTask):
    """A species / richness map of the experiment (see the module docstring)."""

    species = luigi.ListParameter(default=[], description="species ids, one band each")
    richness = luigi.BoolParameter(default=True, description="add a richness band (sum of all species' probabilities)")
    resolution_km = luigi.FloatParameter(default=25.0, description="cell size in km")
    bbox = luigi.ListParameter(default=[], description="west,south,east,north in degrees (empty: the data extent)")
    crs = luigi.Parameter(default="EPSG:3035", description="projected CRS of the map")
    tile = luigi.IntParameter(default=256, significant=False, description="cells per window side")
    memory_mb = luigi.FloatParameter(default=256.0, significant=False, description="bound on one batch of dense scores")

    def requires(self) -> dict[str, luigi.Task]:
        """The model's prerequisites (:func:`model_requires`)."""
        from glc.predict.points import check_point_capable

        check_point_capable(self.cfg)
        return model_requires(self)

    def raw_inputs(self) -> list[Path]:
        """The land-mask raster (a changed mask redraws the map; the other rasters do not concern it)."""
        from glc.data.extent import mask_raster

        if self.layout_or_none() is None:  # the data root is not there yet (a world to generate, a URL to mirror)
            return []
        picked = mask_raster(self.local_data_root)
        return [picked] if picked is not None else []

    def map_name(self) -> str:
        """``{crs}-{res}km-{bands}[-b{hash of bbox}]`` (``/`` and ``:`` of the CRS made file-safe)."""
        bands = "+".join([f"s{int(s)}" for s in self.species] + (["richness"] if self.richness else []))
        if len(bands) > 80:
            bands = f"{len(self.species)}species-{hashlib.sha256(bands.encode()).hexdigest()[:8]}"
        name = f"{str(self.crs).replace(':', '').replace('/', '_')}-{self.resolution_km:g}km-{bands}"
        if self.bbox:
            name += "-b" + hashlib.sha256(json.dumps([float(v) for v in self.bbox]).encode()).hexdigest()[:8]
        return name

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the map folder."""
        return FlagTarget(self.exp_path("maps", self.map_name()))

    def run(self) -> None:
        """:func:`glc.predict.maps.write_species_map` then a PNG per band."""
        from glc.io import atomic_dir, write_json
        from glc.predict.maps import map_grid, preview_png, write_species_map

        model = load_point_model(self, self.input())
        grid = map_grid(model.extent, list(self.bbox) or None, float(self.resolution_km), str(self.crs))
        with atomic_dir(self.output().dir) as tmp:
            summary = write_species_map(
                model, grid, tmp / "map.tif", list(self.species), bool(self.richness), self.tile, self.memory_mb
            )
            summary["path"] = str(self.output().dir / "map.tif")
            summary["experiment"] = self.cfg["name"]
            pngs = []
            for k, band in enumerate(summary["bands"], start=1):
                png = tmp / f"{band.replace(' ', '_')}.png"
                preview_png(tmp / "map.tif", k, png, title=f"{self.cfg['name']}: {band} ({self.resolution_km:g} km)")
                pngs.append(str(self.output().dir / png.name))
            summary["previews"] = pngs
            write_json(tmp / "map.json", summary, atomic=False)


def map_task(task: GlcTask, experiment: str, **kw: Any) -> SpeciesMap:
    """The ``SpeciesMap`` of ``experiment`` on ``task``'s roots."""
    return SpeciesMap(experiment=experiment, data_root=task.data_root, out_root=task.out_root, **kw)
