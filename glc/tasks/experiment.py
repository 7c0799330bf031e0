"""Experiment tasks: ``Predict`` -> ``Decoder`` -> ``Report`` and ``Submission``.

Every artifact lives under ``{out}/{dataset}/experiments/{name}-{config hash}/``, so editing ``tasks/<name>.toml``
reruns exactly the artifacts it affects and never overwrites an older run's results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import FlagTarget, GlcTask
from glc.tasks.surveys import SurveyTable, read_surveys


class ExperimentTask(GlcTask):
    """A task of one named experiment (``tasks/<experiment>.toml``)."""

    experiment = luigi.Parameter(default="frequency", description="experiment name in tasks/ or a path to a .toml")

    @property
    def cfg(self) -> dict[str, Any]:
        """The resolved experiment config (defaults + the file; unknown keys raise)."""
        if not hasattr(self, "_cfg"):
            from glc.config import load_experiment

            self._cfg = load_experiment(self.experiment)
        return self._cfg

    def exp_path(self, *parts: str) -> Path:
        """``{out}/{dataset}/experiments/{name}-{hash}/{parts}``."""
        from glc.config import config_hash

        return self.artifact_path("experiments", f"{self.cfg['name']}-{config_hash(self.cfg)}", *parts)


class Predict(ExperimentTask):
    """Scores of the validation surveys and of the test surveys (``val/``, ``test/`` score artifacts)."""

    def requires(self) -> dict[str, luigi.Task]:
        """The survey table; for trained models (:data:`glc.experiment.TRAINED_MODELS`) also the trained model and
        its inputs."""
        from glc.experiment import TRAINED_MODELS

        req: dict[str, luigi.Task] = {"surveys": self.clone(SurveyTable)}
        if self.cfg["model"]["kind"] in TRAINED_MODELS:
            from glc.tasks.training import TrainModel, model_inputs_for

            req["model"] = self.clone(TrainModel)
            req["inputs"] = model_inputs_for(self, self.cfg)
        return req

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the predictions folder."""
        return FlagTarget(self.exp_path("predictions"))

    def run(self) -> None:
        """Fit, score, write (:func:`glc.experiment.predict_experiment`), or score with the trained model
        (:func:`glc.training.geolocation.predict_splits`)."""
        from glc.experiment import TRAINED_MODELS, predict_experiment
        from glc.io import atomic_dir
        from glc.predict.scores import write_scores

        t0 = time.time()
        if self.cfg["model"]["kind"] in TRAINED_MODELS:
            from glc.training.geolocation import predict_splits

            ckpt = self.input()["model"].dir / "model.ckpt"
            val, test, info = predict_splits(self.input()["inputs"].dir, ckpt, self.cfg)
        else:
            val, test, info = predict_experiment(read_surveys(self.input()["surveys"]), self.cfg)
        info["seconds"] = round(time.time() - t0, 3)
        info["config"] = self.cfg
        with atomic_dir(self.output().dir, summary=info) as tmp:
            write_scores(tmp / "val", val)
            write_scores(tmp / "test", test)


class Decoder(ExperimentTask):
    """Set-decoder parameters fitted on the validation scores (``decoder.json``)."""

    def requires(self) -> dict[str, luigi.Task]:
        """Predictions and the survey table (for validation labels)."""
        return {"pred": self.clone(Predict), "surveys": self.clone(SurveyTable)}

    def output(self) -> luigi.LocalTarget:
        """``decoder.json``."""
        return luigi.LocalTarget(str(self.exp_path("decoder.json")))

    def run(self) -> None:
        """:func:`glc.experiment.fit_decoder` on validation scores."""
        from glc.experiment import fit_decoder
        from glc.io import write_json
        from glc.predict.scores import read_scores

        surveys = read_surveys(self.input()["surveys"])
        truth = dict(zip(surveys["surveyId"].astype(int), surveys["speciesIds"]))
        val = read_scores(self.input()["pred"].dir / "val")
        write_json(self.output().path, fit_decoder(val, truth, self.cfg))


class Report(ExperimentTask):
    """Validation report: ``report.md`` and ``report.json`` in ``report/``."""

    def requires(self) -> dict[str, luigi.Task]:
        """Predictions, decoder and survey table."""
        return {"pred": self.clone(Predict), "decoder": self.clone(Decoder), "surveys": self.clone(SurveyTable)}

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the report folder."""
        return FlagTarget(self.exp_path("report"))

    def run(self) -> None:
        """:func:`glc.eval.report.build_report` then render markdown."""
        from glc.eval.report import build_report, render_markdown
        from glc.io import atomic_dir, write_json

        surveys_flag = self.input()["surveys"]
        rep = build_report(
            surveys=read_surveys(surveys_flag),
            survey_summary=json.loads(Path(surveys_flag.path).read_text()),
            pred_dir=self.input()["pred"].dir,
            decoder=json.loads(Path(self.input()["decoder"].path).read_text()),
            cfg=self.cfg,
            data_root=str(self.data_root),
        )
        with atomic_dir(self.output().dir, summary={"val_sample_f1": rep["validation"]["sample_f1"]}) as tmp:
            write_json(tmp / "report.json", rep, atomic=False)
            (tmp / "report.md").write_text(render_markdown(rep))
        self._log_to_wandb(rep)

    def _log_to_wandb(self, rep: dict[str, Any]) -> None:
        """Trained models: add the final report to the training run's W&B run (same run id, offline by default)."""
        from glc.experiment import TRAINED_MODELS

        if self.cfg["model"]["kind"] not in TRAINED_MODELS:
            return
        from glc.training.fit import finish_logger, log_report, make_logger

        from glc.tasks.training import TrainModel

        model = self.clone(TrainModel)
        logger = make_logger(dict(self.cfg["wandb"]), model.model_path("training"), model.model_path().name, None)
        if logger is not None:
            try:
                log_report(logger, rep)
            finally:
                finish_logger(logger)


class Submission(ExperimentTask):
    """``submission.csv`` for the test surveys (validated before it appears)."""

    def requires(self) -> dict[str, luigi.Task]:
        """Predictions, decoder, survey table and the report (so a submission never comes without its report)."""
        return {"pred": self.clone(Predict), "decoder": self.clone(Decoder), "surveys": self.clone(SurveyTable), "report": self.clone(Report)}

    def output(self) -> luigi.LocalTarget:
        """``submission.csv``."""
        return luigi.LocalTarget(str(self.exp_path("submission.csv")))

    def run(self) -> None:
        """Decode test scores and write the validated CSV."""
        from glc.data.layout import NUM_CLASSES
        from glc.experiment import decode
        from glc.predict.scores import read_scores
        from glc.submission import write_submission

        surveys = read_surveys(self.input()["surveys"])
        test_ids = surveys.loc[surveys["split"] == "test", "surveyId"].to_numpy()
        params = json.loads(Path(self.input()["decoder"].path).read_text())
        sets = decode(read_scores(self.input()["pred"].dir / "test"), params)
        write_submission(self.output().path, sets, test_ids, NUM_CLASSES)
