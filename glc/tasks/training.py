"""Training tasks: ``ModelInputs`` (Spark parquet for the trainers) and ``TrainModel`` (any trained model kind).

``ModelInputs`` depends only on what changes its bytes (validation split parameters, seed, the feature sets and the
shuffled controls), so experiments that differ only in model or training settings share it. Its feature sets'
artifacts come from the feature-set registry (:mod:`glc.features.sets`: each set names the task that makes it and
that task's parameters; :data:`ARTIFACT_TASKS` maps the names to classes). ``TrainModel`` runs the model kind's
runner (:mod:`glc.training.runners`) and keeps its working folder (checkpoints, W&B run files) at
``models/{name}-{hash}/training/``: a crashed or interrupted training run resumes from ``last.ckpt`` when rerun. Its
artifact ``models/{name}-{hash}/model/`` (the published files + summary) appears atomically when training has
finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import ExperimentTask, FlagTarget, GlcTask
from glc.tasks.features import CubeFeatures, EnvFeatures, PatchTiles, RasterTiles
from glc.tasks.neighbours import GraphFeatures
from glc.tasks.pretrain import Embeddings
from glc.tasks.surveys import SurveyTable

#: Luigi task class of each feature-set artifact name (``FeatureSet.artifact``).
ARTIFACT_TASKS: dict[str, type[GlcTask]] = {
    "SurveyTable": SurveyTable,
    "PatchTiles": PatchTiles,
    "RasterTiles": RasterTiles,
    "CubeFeatures": CubeFeatures,
    "EnvFeatures": EnvFeatures,
    "GraphFeatures": GraphFeatures,
    "Embeddings": Embeddings,
}


def holdout_params(
    block_km: float, val_fraction: float, seed: int, folds: int, scheme: str = "blocks"
) -> dict[str, Any]:
    """The parameters a ``holdout`` feature set's task gets (:data:`glc.features.sets.HOLDOUT_PARAMS`): the
    validation hold-out (``scheme``, :data:`glc.eval.split.VALIDATION_SCHEMES`) and the ``folds`` spatial folds of
    the training split, in ``block_km`` blocks seeded by ``seed`` (the k-fold trainer's folds,
    :func:`glc.eval.split.training_folds`)."""
    return {
        "holdout_block_km": float(block_km),
        "holdout_fraction": float(val_fraction),
        "holdout_seed": int(seed),
        "holdout_scheme": str(scheme),
        "n_folds": int(folds),
        "block_km": float(block_km),
        "seed": int(seed),
    }


def training_fold_count(cfg: dict[str, Any]) -> int:
    """Spatial folds of an experiment's training split: ``[train] kfold`` when > 1, else
    :data:`DEFAULT_FOLDS` (for out-of-fold features only)."""
    k = int(cfg["train"].get("kfold", 1))
    return k if k > 1 else DEFAULT_FOLDS


#: Folds of the out-of-fold features of a model trained without k-fold (Tighnari used 10; 5 keeps 80 % of the
#: training split as sources for each fold on the small demo world).
DEFAULT_FOLDS = 5


def feature_task(task: GlcTask, name: str, holdout: dict[str, Any] | None = None) -> GlcTask:
    """The task that makes feature set ``name``'s artifact, on ``task``'s data and out roots.

    Built from the registry's parameters only (not ``clone``: that would copy same-named parameters of ``task``,
    e.g. a hold-out's ``block_km``/``seed`` onto GraphFeatures' fold parameters), plus, for a ``holdout`` set, the
    model's hold-out and training folds (:func:`holdout_params`; required for such a set).
    """
    from glc.features.sets import feature_set

    fs = feature_set(name)
    if fs.artifact not in ARTIFACT_TASKS:
        raise KeyError(f"feature set {name!r}: no Luigi task for artifact {fs.artifact!r}; add it to ARTIFACT_TASKS")
    extra: dict[str, Any] = {}
    if fs.holdout:
        if holdout is None:
            raise ValueError(
                f"feature set {name!r} is computed out of fold: pass the model's hold-out (holdout_params(...))"
            )
        extra = dict(holdout)
    return ARTIFACT_TASKS[fs.artifact](data_root=task.data_root, out_root=task.out_root, **dict(fs.params), **extra)


class ModelInputs(GlcTask):
    """``model_inputs/v{block_km}km-f{val_fraction}-s{seed}[-testlike][-<sets>][-shuf-<sets>]/``: train/val/test
    parquet + meta.json.

    ``features`` are feature-set names (:mod:`glc.features.sets`) besides ``location`` and ``meta``, which every
    table holds; ``shuffle`` a subset of them whose rows are permuted within each split (controls).
    """

    block_km = luigi.FloatParameter(default=10.0, description="spatial block size of the validation hold-out (km)")
    val_fraction = luigi.FloatParameter(default=0.2, description="fraction of training surveys held out for validation")
    seed = luigi.IntParameter(default=0, description="seed of the hold-out and of the shuffles")
    val_scheme = luigi.ChoiceParameter(
        choices=["blocks", "test_like"],
        default="blocks",
        description="validation hold-out scheme (glc.eval.split.VALIDATION_SCHEMES)",
    )
    features = luigi.ListParameter(default=[], description="feature sets besides location/meta (glc.features.sets)")
    shuffle = luigi.ListParameter(default=[], description="feature sets to permute within splits (controls)")
    folds = luigi.IntParameter(
        default=DEFAULT_FOLDS,
        description="spatial folds of the training split of the out-of-fold "
        "feature sets (gfv); the k-fold trainer's k. Only significant with such a set",
    )
    files_per_split = luigi.IntParameter(default=4, significant=False, description="parquet part files per split")

    def _sets(self) -> tuple[str, ...]:
        from glc.features.sets import ALWAYS, resolve_feature_sets

        return tuple(s for s in resolve_feature_sets(self.features) if s not in ALWAYS)

    def requires(self) -> dict[str, luigi.Task]:
        """The survey table and the artifact of every requested feature set."""
        req: dict[str, luigi.Task] = {"surveys": self.clone(SurveyTable)}
        bad = [s for s in self.shuffle if s not in self._sets()]
        if bad:
            raise ValueError(
                f"ModelInputs: shuffle={list(self.shuffle)} names {bad}, not in features={list(self.features)}"
            )
        for name in self._sets():
            req[name] = feature_task(
                self, name, holdout_params(self.block_km, self.val_fraction, self.seed, self.folds, self.val_scheme)
            )
        return req

    def _has_holdout_set(self) -> bool:
        from glc.features.sets import feature_set

        return any(feature_set(s).holdout for s in self._sets())

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the inputs folder."""
        name = f"v{self.block_km:g}km-f{self.val_fraction:g}-s{self.seed}" + (
            "" if self.val_scheme == "blocks" else "-testlike"
        )
        sets = self._sets()
        if sets:
            name += "-" + "+".join(sets)
        if self.shuffle:
            name += "-shuf-" + "+".join(sorted(set(self.shuffle)))
        if self._has_holdout_set():
            name += f"-k{self.folds}"
        return FlagTarget(self.artifact_path("model_inputs", name))

    def run(self) -> None:
        """:func:`glc.etl.inputs.write_model_inputs` with the experiment pipeline's validation mask."""
        from glc.config import resolve
        from glc.etl.inputs import read_feature_source, write_model_inputs
        from glc.eval.split import validation_mask
        from glc.io import remove_stale_temps
        from glc.spark import get_spark
        from glc.tasks.surveys import read_surveys

        remove_stale_temps(self.output().dir.parent)
        surveys = read_surveys(self.input()["surveys"])
        train = surveys[surveys["split"] == "train"].reset_index(drop=True)
        cfg = resolve(
            {
                "seed": int(self.seed),
                "validation": {
                    "block_km": float(self.block_km),
                    "val_fraction": float(self.val_fraction),
                    "scheme": self.val_scheme,
                },
            }
        )
        val_ids = train.loc[validation_mask(train, cfg, surveys[surveys["split"] == "test"]), "surveyId"].to_numpy()
        spark = get_spark()
        sources = {name: read_feature_source(spark, name, self.input()[name].dir) for name in self._sets()}
        write_model_inputs(
            spark,
            self.input()["surveys"].dir,
            self.output().dir,
            val_ids,
            sources,
            shuffle=list(self.shuffle),
            seed=int(self.seed),
            files_per_split=self.files_per_split,
        )


def model_inputs_for(task: GlcTask, cfg: dict[str, Any]) -> ModelInputs:
    """The ``ModelInputs`` task an experiment config needs (feature sets from its model kind)."""
    from glc.models.registry import get_model

    v = cfg["validation"]
    sets = sorted(set(get_model(cfg["model"]["kind"]).features(cfg["model"])))
    return ModelInputs(
        data_root=task.data_root,
        out_root=task.out_root,
        block_km=float(v["block_km"]),
        val_fraction=float(v["val_fraction"]),
        seed=int(cfg["seed"]),
        val_scheme=v["scheme"],
        features=sets,
        shuffle=sorted(cfg["inputs"]["shuffle"]),
        folds=training_fold_count(cfg),
    )


class TrainModel(ExperimentTask):
    """``models/{name}-{hash}/model/``: the files a trained model kind publishes (``model.ckpt``) and its summary."""

    def requires(self) -> dict[str, GlcTask]:
        """The model inputs, and the pretrained encoders whose weights initialise the net (``ModelSpec.encoders``)."""
        from glc.models.registry import get_model
        from glc.tasks.pretrain import PretrainEncoder

        req: dict[str, GlcTask] = {"inputs": model_inputs_for(self, self.cfg)}
        for name in get_model(self.cfg["model"]["kind"]).encoders(self.cfg["model"]):
            req[f"encoder:{name}"] = PretrainEncoder(encoder=name, data_root=self.data_root, out_root=self.out_root)
        if self.cfg["train"]["pretrain_po"]["enabled"]:  # the PO sites the net learns from, and their patch tiles
            from glc.tasks.po import POSites, po_input_task

            req["po_sites"] = POSites(data_root=self.data_root, out_root=self.out_root)
            for name in get_model(self.cfg["model"]["kind"]).features(self.cfg["model"]):
                task = po_input_task(self, name)
                if task is not None:
                    req[f"po_input:{name}"] = task
        return req

    def model_path(self, *parts: str) -> Path:
        """``{out}/{dataset}/models/{name}-{hash of seed, validation, inputs, model, train}/{parts}``: decoder or W&B
        edits do not retrain."""
        from glc.config import model_key

        return self.artifact_path("models", f"{self.cfg['name']}-{model_key(self.cfg)}", *parts)

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the model folder."""
        return FlagTarget(self.model_path("model"))

    def run(self) -> None:
        """The model kind's runner (:data:`glc.training.runners.RUNNERS`) in ``{model}/training/``, then publish."""
        import shutil

        from glc.io import atomic_dir
        from glc.training.runners import runner_of

        spec, runner = runner_of(self.cfg)
        if runner.train is None:
            raise ValueError(f"model.kind={spec.kind!r} (runner {spec.runner!r}) has no training step; Predict fits it")
        work = self.model_path("training")
        work.mkdir(parents=True, exist_ok=True)
        from glc.training.pretrain import ENCODER_FILE

        pretrained = {
            k.split(":", 1)[1]: str(v.dir / ENCODER_FILE) for k, v in self.input().items() if k.startswith("encoder:")
        }
        extra: dict[str, Any] = {"po_sites": self.input()["po_sites"].dir} if "po_sites" in self.input() else {}
        po_inputs = {k.split(":", 1)[1]: v.dir for k, v in self.input().items() if k.startswith("po_input:")}
        if po_inputs:
            extra["po_inputs"] = po_inputs
        summary = runner.train(
            self.input()["inputs"].dir, work, self.cfg, run_name=self.model_path().name, pretrained=pretrained, **extra
        )
        with atomic_dir(self.output().dir, summary=summary) as tmp:
            for name, src in summary["publish"].items():
                shutil.copy2(src, tmp / name)
