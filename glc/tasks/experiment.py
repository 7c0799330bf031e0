"""Experiment tasks: ``Predict`` -> ``Decoder`` -> ``Report`` and ``Submission``.

Every artifact lives under ``{out}/{dataset}/experiments/{name}-{config hash}/``, so editing ``tasks/<name>.toml``
reruns exactly the artifacts it affects and never overwrites an older run's results.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import luigi

from glc.tasks.base import ExperimentTask, FlagTarget
from glc.tasks.surveys import SurveyTable, read_surveys
from glc.tasks.training import TrainModel, model_inputs_for

log = logging.getLogger(__name__)


class Predict(ExperimentTask):
    """Scores of the validation surveys and of the test surveys (``val/``, ``test/`` score artifacts)."""

    def requires(self) -> dict[str, luigi.Task]:
        """The survey table; for model kinds trained from model inputs (model registry) also the trained model and
        its inputs."""
        from glc.models.registry import get_model
        from glc.tasks.training import feature_task, holdout_params, training_fold_count

        req: dict[str, luigi.Task] = {"surveys": self.clone(SurveyTable)}
        spec = get_model(self.cfg["model"]["kind"])
        if spec.needs_inputs:
            req["model"] = self.clone(TrainModel)
            req["inputs"] = model_inputs_for(self, self.cfg)
        else:  # in-memory kinds read their feature sets' artifacts directly (glc.features.tabular.join_feature_sets)
            v = self.cfg["validation"]
            hold = holdout_params(
                v["block_km"], v["val_fraction"], self.cfg["seed"], training_fold_count(self.cfg), v["scheme"]
            )
            req.update({f"feature:{s}": feature_task(self, s, hold) for s in spec.features(self.cfg["model"])})
        for name in spec.members(self.cfg["model"]):  # late fusion: the member experiments' predictions
            if name == self.experiment or name == self.cfg["name"]:
                raise ValueError(f"experiment {self.cfg['name']!r} lists itself among its members")
            req[f"member:{name}"] = Predict(experiment=name, data_root=self.data_root, out_root=self.out_root)
        return req

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the predictions folder."""
        return FlagTarget(self.exp_path("predictions"))

    def run(self) -> None:
        """In-memory kinds: fit and score (:func:`glc.experiment.predict_experiment`); trained kinds: their runner's
        ``predict`` with the published model (:mod:`glc.training.runners`)."""
        from glc.experiment import predict_experiment
        from glc.io import atomic_dir
        from glc.predict.scores import write_scores
        from glc.training.runners import runner_of

        t0 = time.time()
        spec, runner = runner_of(self.cfg)
        members = {k.split(":", 1)[1]: v.dir for k, v in self.input().items() if k.startswith("member:")}
        if members:
            from glc.predict.scores import read_scores

            assert spec.combine is not None, f"model kind {spec.kind!r} lists members but has no combine"
            surveys = read_surveys(self.input()["surveys"])
            truth = dict(zip(surveys["surveyId"].astype(int), surveys["speciesIds"]))
            tables = {n: (read_scores(Path(d) / "val"), read_scores(Path(d) / "test")) for n, d in members.items()}
            feats = {k.split(":", 1)[1]: v.dir for k, v in self.input().items() if k.startswith("feature:")}
            if feats:  # a combiner reading survey features (the stack's context) gets them as frame columns
                from glc.features.tabular import join_feature_sets

                surveys = join_feature_sets(surveys, feats)
            val, test, info = spec.combine(tables, truth, self.cfg["model"], surveys=surveys, seed=self.cfg["seed"])
        elif runner.predict is not None:
            val, test, info = runner.predict(self.input()["inputs"].dir, self.input()["model"].dir, self.cfg)
        else:
            feats = {k.split(":", 1)[1]: v.dir for k, v in self.input().items() if k.startswith("feature:")}
            val, test, info = predict_experiment(read_surveys(self.input()["surveys"]), self.cfg, feats)
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
        n_hat = None
        if self.cfg["decoder"]["kind"] == "count":  # the species-count model, fitted without the validation blocks
            from glc.eval.split import validation_mask
            from glc.experiment import count_estimates

            train = surveys[surveys["split"] == "train"].reset_index(drop=True)
            vm = validation_mask(train, self.cfg, surveys[surveys["split"] == "test"])
            n_hat = count_estimates(train[~vm], train[vm], val, self.cfg)
        write_json(self.output().path, fit_decoder(val, truth, self.cfg, n_hat=n_hat))


def po_correction_task(task: ExperimentTask, split: str) -> luigi.Task | None:
    """The ``POCorrection`` artifact the experiment's decoder step needs for ``split`` (``"val"``: the validation
    surveys, their PA neighbours from the training split only — the experiment's hold-out; ``"test"``: the test
    surveys against every training survey), or None when ``[decoder.po_correction]`` is off."""
    from glc.tasks.neighbours import POCorrection

    po = task.cfg["decoder"]["po_correction"]
    if not po["enabled"]:
        return None
    kw: dict[str, Any] = {k: po[k] for k in ("n_train", "min_train_count", "n_po", "min_po_count", "po_unit")}
    if split == "val":
        v = task.cfg["validation"]
        kw.update(
            queries="pa_train",
            holdout_block_km=float(v["block_km"]),
            holdout_fraction=float(v["val_fraction"]),
            holdout_seed=int(task.cfg["seed"]),
            holdout_scheme=v["scheme"],
        )
    else:
        kw.update(queries="pa_test")
    return POCorrection(data_root=task.data_root, out_root=task.out_root, **kw)


def read_corrections(target: FlagTarget) -> dict[int, Any]:
    """``{surveyId: species ids}`` of a ``POCorrection`` artifact."""
    from glc.tasks.tables import read_table

    t = read_table(target, ["surveyId", "species"])
    return {int(s): sp for s, sp in zip(t["surveyId"], t["species"])}


#: Cell size of the richness map in the report (km).
REPORT_MAP_KM = 25.0


class Report(ExperimentTask):
    """Validation report in ``report/``: ``report.json``, ``report.md`` and ``report.html`` (self-contained, with the
    figures of :func:`glc.eval.report.report_figures`)."""

    def requires(self) -> dict[str, luigi.Task]:
        """Predictions, decoder and survey table; for models that can score any point also a coarse richness map."""
        from glc.predict.points import PointInputError, check_point_capable
        from glc.tasks.maps import SpeciesMap
        from glc.tasks.pretrain import experiment_encoders

        req = {"pred": self.clone(Predict), "decoder": self.clone(Decoder), "surveys": self.clone(SurveyTable)}
        req.update({f"encoder:{name}": t for name, t in experiment_encoders(self).items()})
        po = po_correction_task(self, "val")
        if po is not None:
            req["po_correction"] = po
        try:
            check_point_capable(self.cfg)
        except PointInputError:
            return req
        req["map"] = self.clone(SpeciesMap, species=[], richness=True, resolution_km=REPORT_MAP_KM)
        return req

    def _training_csv(self) -> Path | None:
        from glc.models.registry import get_model

        if not get_model(self.cfg["model"]["kind"]).needs_inputs:
            return None
        work = self.clone(TrainModel).model_path("training")
        if int(self.cfg["train"].get("kfold", 1)) > 1:  # k-fold: the curve of fold 1 (trained from scratch)
            work = work / "fold0"
        runs = sorted(work.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
        return runs[-1] if runs else None

    def _patch_image(self, surveys: Any) -> Any:
        """RGB of the first training survey's patch, when the model reads satellite patches."""
        from glc.data.layout import detect_layout
        from glc.data.patches import patch_rgb
        from glc.features.sets import resolve_feature_sets
        from glc.models.registry import get_model

        sets = resolve_feature_sets(get_model(self.cfg["model"]["kind"]).features(self.cfg["model"]))
        if not any(s.startswith("patch_") for s in sets):
            return None
        sid = int(surveys.loc[surveys["split"] == "train", "surveyId"].min())
        return patch_rgb(detect_layout(self.local_data_root), "train", sid)

    def output(self) -> FlagTarget:
        """``_SUCCESS`` of the report folder."""
        return FlagTarget(self.exp_path("report"))

    def run(self) -> None:
        """:func:`glc.eval.report.build_report`, then the markdown and the HTML report with its figures."""
        from glc.eval.report import build_report, render_html, render_markdown, report_figures
        from glc.io import atomic_dir, write_json

        surveys_flag = self.input()["surveys"]
        surveys = read_surveys(surveys_flag)
        extras: dict[str, Any] = {}
        rep = build_report(
            surveys=surveys,
            survey_summary=json.loads(Path(surveys_flag.path).read_text()),
            pred_dir=self.input()["pred"].dir,
            decoder=json.loads(Path(self.input()["decoder"].path).read_text()),
            cfg=self.cfg,
            data_root=str(self.data_root),
            extras=extras,
            corrections=read_corrections(self.input()["po_correction"]) if "po_correction" in self.input() else None,
        )
        map_png = self.input()["map"].dir / "richness.png" if "map" in self.input() else None
        encoders = {k.split(":", 1)[1]: v.dir for k, v in self.input().items() if k.startswith("encoder:")}
        figures, notes = report_figures(
            rep, extras, self._training_csv(), self._patch_image(surveys), map_png, encoders
        )
        if encoders:
            rep["encoders"] = {
                n: json.loads((Path(d) / "summary.json").read_text()).get("evaluation") for n, d in encoders.items()
            }
        rep["figures"] = [f.title for f in figures]
        if map_png is not None:
            rep["richness_map"] = str(self.input()["map"].dir / "map.tif")
        with atomic_dir(self.output().dir, summary={"val_sample_f1": rep["validation"]["sample_f1"]}) as tmp:
            write_json(tmp / "report.json", rep, atomic=False)
            (tmp / "report.md").write_text(render_markdown(rep))
            (tmp / "report.html").write_text(render_html(rep, figures, notes))
        self._log_to_wandb(rep)

    def _log_to_wandb(self, rep: dict[str, Any]) -> None:
        """The report into the experiment's W&B run (grouped per experiment; trained models: the training run,
        same id; in-memory models: a run kept in ``wandb-run/`` of the experiment folder) with the report files
        and the richness map as an artifact. Offline by default."""
        log_to_wandb(
            self,
            rep,
            "report",
            {f"report/{p.name}": p for p in sorted(self.output().dir.glob("report.*"))}
            | (
                {
                    "map/map.tif": Path(rep["richness_map"]),
                    "map/richness.png": Path(rep["richness_map"]).parent / "richness.png",
                }
                if rep.get("richness_map")
                else {}
            ),
        )


def log_to_wandb(task: ExperimentTask, summary: dict[str, Any] | None, kind: str, files: dict[str, Path]) -> None:
    """Add ``summary`` and an artifact of ``files`` to the experiment's W&B run (see ``Report._log_to_wandb``)."""
    from glc.models.registry import get_model
    from glc.training.tracking import finish_logger, log_artifact, log_report, make_logger, wandb_settings

    settings = wandb_settings(task.cfg)
    if settings.get("mode") == "disabled":
        return
    if get_model(task.cfg["model"]["kind"]).needs_inputs:
        model = task.clone(TrainModel)
        save_dir, name = model.model_path("training"), model.model_path().name
    else:
        save_dir, name = task.exp_path("wandb-run"), task.exp_path().name
    logger = make_logger(settings, save_dir, name, task.cfg if kind == "report" else None)
    if logger is None:
        return
    try:
        if summary is not None:
            log_report(logger, summary)
        log_artifact(logger, f"{task.cfg['name']}-{kind}", kind, files)
    finally:
        finish_logger(logger)


class Submission(ExperimentTask):
    """``submission.csv`` for the test surveys (validated before it appears)."""

    def requires(self) -> dict[str, luigi.Task]:
        """Predictions, decoder, survey table and the report (so a submission never comes without its report)."""
        req = {
            "pred": self.clone(Predict),
            "decoder": self.clone(Decoder),
            "surveys": self.clone(SurveyTable),
            "report": self.clone(Report),
        }
        po = po_correction_task(self, "test")
        if po is not None:
            req["po_correction"] = po
        return req

    def output(self) -> luigi.LocalTarget:
        """``submission.csv``."""
        return luigi.LocalTarget(str(self.exp_path("submission.csv")))

    def run(self) -> None:
        """Decode test scores and write the validated CSV: exactly one row per test survey of the **original** test
        metadata. A test survey the survey table does not hold (its row was quarantined under
        ``SurveyTable --bad-test-rows fallback``) gets the fallback prediction (:func:`glc.experiment.fallback_sets`),
        counted in ``submission.json``; any other missing survey is an error."""
        from glc.data.layout import NUM_CLASSES, detect_layout
        from glc.data.metadata import read_test_survey_ids
        from glc.experiment import decode, fallback_sets
        from glc.io import write_json
        from glc.predict.scores import read_scores
        from glc.submission import write_submission

        test_csv = detect_layout(self.local_data_root).pa_metadata("test")
        test_ids = read_test_survey_ids(test_csv)
        surveys = read_surveys(self.input()["surveys"])
        params = json.loads(Path(self.input()["decoder"].path).read_text())
        test_scores = read_scores(self.input()["pred"].dir / "test")
        n_hat = None
        if params["kind"] == "count":  # the species-count model, fitted on every training survey
            from glc.experiment import count_estimates

            n_hat = count_estimates(
                surveys[surveys["split"] == "train"], surveys[surveys["split"] == "test"], test_scores, self.cfg
            )
        sets = decode(test_scores, params, n_hat)
        correction = None
        if "po_correction" in self.input():  # Tighnari's PO output correction, the last step of decoding
            from glc.experiment import correct_sets

            sets, correction = correct_sets(sets, read_corrections(self.input()["po_correction"]))
            correction["artifact"] = str(self.input()["po_correction"].dir)
        missing = sorted(set(int(i) for i in test_ids) - set(sets))
        survey_summary = json.loads(Path(self.input()["surveys"].path).read_text())
        if missing and survey_summary.get("bad_test_rows_policy") != "fallback":
            raise ValueError(
                f"{len(missing)} test survey(s) of {test_csv} have no prediction (e.g. {missing[:5]}); "
                f"the survey table {self.input()['surveys'].dir} does not match the test metadata. "
                "Rebuild SurveyTable (delete it)."
            )
        if missing:
            train = surveys[surveys["split"] == "train"]
            sets.update(fallback_sets(list(train["speciesIds"]), missing, int(self.cfg["decoder"]["k_max"])))
            log.warning(
                "Submission: %d test survey(s) with an unusable metadata row predicted by the fallback: %s",
                len(missing),
                missing[:20],
            )
        n = write_submission(self.output().path, sets, test_ids, NUM_CLASSES)
        write_json(
            self.exp_path("submission.json"),
            {
                "rows": n,
                "test_metadata": str(test_csv),
                "n_fallback": len(missing),
                "fallback_surveys": missing[:100],
                "fallback": "global species frequency of the training surveys, expected-F1 decoding"
                if missing
                else None,
                "po_correction": correction,
            },
        )
        log_to_wandb(
            self,
            None,
            "submission",
            {"submission.csv": Path(self.output().path), "submission.json": self.exp_path("submission.json")},
        )
