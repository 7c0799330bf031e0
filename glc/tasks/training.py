"""Training tasks: ``ModelInputs`` (Spark parquet for the trainers) and ``TrainModel`` (Lightning).

``ModelInputs`` depends only on what changes its bytes (validation split parameters, seed, whether the env vector
and the graph feature vector are included), so experiments that differ only in model or training settings share it. ``TrainModel`` keeps its
working folder (checkpoints, W&B run files) at ``models/{name}-{hash}/training/``: a crashed or interrupted training run
resumes from ``last.ckpt`` when rerun. Its artifact ``models/{name}-{hash}/model/`` (best checkpoint + summary) appears
atomically when training has finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import FlagTarget, GlcTask
from glc.tasks.experiment import ExperimentTask
from glc.tasks.features import EnvFeatures
from glc.tasks.neighbours import GraphFeatures
from glc.tasks.surveys import SurveyTable


class ModelInputs(GlcTask):
    """``model_inputs/v{block_km}km-f{val_fraction}-s{seed}[-env][-gfv]/``: train/val/test parquet + meta.json.

    With ``gfv`` the inputs carry the dense graph feature vector of :class:`~glc.tasks.neighbours.GraphFeatures` at
    its default parameters (its own folds and seed: ``block_km`` and ``seed`` here are the validation hold-out's, not
    passed on).
    """

    block_km = luigi.FloatParameter(default=10.0, description="spatial block size of the validation hold-out (km)")
    val_fraction = luigi.FloatParameter(default=0.2, description="fraction of training surveys held out for validation")
    seed = luigi.IntParameter(default=0, description="seed of the hold-out")
    env = luigi.BoolParameter(default=False, description="include the standardised EnvFeatures vector")
    gfv = luigi.BoolParameter(default=False, description="include the dense GraphFeatures vector (default GraphFeatures)")
    files_per_split = luigi.IntParameter(default=4, significant=False, description="parquet part files per split")

    def requires(self) -> dict[str, luigi.Task]:
        """The survey table (and EnvFeatures when ``env``, GraphFeatures at its defaults when ``gfv``)."""
        req: dict[str, luigi.Task] = {"surveys": self.clone(SurveyTable)}
        if self.env:
            req["env"] = self.clone(EnvFeatures)
        if self.gfv:
            # Not self.clone(GraphFeatures): clone would copy this task's block_km and seed (the validation
            # hold-out's) onto GraphFeatures' fold parameters of the same names.
            req["gfv"] = GraphFeatures(data_root=self.data_root, out_root=self.out_root)
        return req

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the inputs folder."""
        name = f"v{self.block_km:g}km-f{self.val_fraction:g}-s{self.seed}" + ("-env" if self.env else "") + ("-gfv" if self.gfv else "")
        return FlagTarget(self.artifact_path("model_inputs", name))

    def run(self) -> None:
        """:func:`glc.etl.inputs.write_model_inputs` with the experiment pipeline's validation mask."""
        from glc.config import resolve
        from glc.etl.inputs import write_model_inputs
        from glc.experiment import validation_mask
        from glc.io import remove_stale_temps
        from glc.spark import get_spark
        from glc.tasks.surveys import read_surveys

        remove_stale_temps(self.output().dir.parent)
        surveys = read_surveys(self.input()["surveys"])
        train = surveys[surveys["split"] == "train"].reset_index(drop=True)
        cfg = resolve({"seed": int(self.seed), "validation": {"block_km": float(self.block_km), "val_fraction": float(self.val_fraction)}})
        val_ids = train.loc[validation_mask(train, cfg), "surveyId"].to_numpy()
        env_dir = env_cols = None
        if self.env:
            env_dir = self.input()["env"].dir
            env_cols = json.loads(Path(self.input()["env"].path).read_text()).get("columns")
        gfv_dir = self.input()["gfv"].dir if self.gfv else None
        write_model_inputs(
            get_spark(), self.input()["surveys"].dir, self.output().dir, val_ids, env_dir, env_cols, self.files_per_split,
            gfv_dir=gfv_dir,
        )


def model_inputs_for(task: GlcTask, cfg: dict[str, Any]) -> ModelInputs:
    """The ``ModelInputs`` task an experiment config needs."""
    v = cfg["validation"]
    extras = cfg["model"]["extras"]
    return task.clone(
        ModelInputs, block_km=float(v["block_km"]), val_fraction=float(v["val_fraction"]), seed=int(cfg["seed"]),
        env="env" in extras, gfv="gfv" in extras,
    )


class TrainModel(ExperimentTask):
    """``models/{name}-{hash}/model/``: the best checkpoint (``model.ckpt``) of a Lightning training run and its summary."""

    def requires(self) -> ModelInputs:
        """The model inputs."""
        return model_inputs_for(self, self.cfg)

    def model_path(self, *parts: str) -> Path:
        """``{out}/{dataset}/models/{name}-{hash of seed, validation, model, train}/{parts}``: decoder or W&B edits
        do not retrain."""
        from glc.config import config_hash

        c = self.cfg
        key = config_hash({k: c[k] for k in ("seed", "validation", "model", "train")})
        return self.artifact_path("models", f"{c['name']}-{key}", *parts)

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the model folder."""
        return FlagTarget(self.model_path("model"))

    def run(self) -> None:
        """:func:`glc.training.geolocation.train_model` in ``{experiment}/training/`` then publish the best checkpoint."""
        import shutil

        from glc.io import atomic_dir
        from glc.training.geolocation import train_model

        work = self.model_path("training")
        work.mkdir(parents=True, exist_ok=True)
        summary = train_model(self.input().dir, work, self.cfg, run_name=self.model_path().name)
        with atomic_dir(self.output().dir, summary=summary) as tmp:
            shutil.copy2(summary["best_checkpoint"], tmp / "model.ckpt")
