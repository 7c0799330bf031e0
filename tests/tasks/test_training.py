"""The trained-model path of the DAG on the tiny world: SurveyTable -> ModelInputs (Spark parquet) -> Petastorm ->
Lightning (TrainModel) -> Predict -> Decoder/Report -> Submission, with an offline W&B run, no work on rerun, a
training run resumed after an interruption, and byte-identical submissions for the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.tasks import Submission, TrainModel

EXPERIMENT = """
name = "geoloc-test"
seed = 0
[model]
kind = "geolocation"
encoder = "sinusoidal"
hidden = 32
[train]
max_epochs = 3
patience = 3
batch_size = 64
reader = "petastorm"
[train.loss]
kind = "asl"
[decoder]
kind = "topk"
compare = false
[wandb]
group = "tests"
tags = ["test"]
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = tmp_path_factory.mktemp("exp") / "geoloc-test.toml"
    p.write_text(EXPERIMENT)
    return str(p)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _build(task: luigi.Task):
    return luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)


@pytest.fixture(scope="module")
def first_run(spark, tiny_world: Path, experiment: str, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("train_out")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    try:
        task = Submission(data_root=str(tiny_world), out_root=str(out), experiment=experiment)
        res = _build(task)
    finally:
        mp.undo()
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return task, out


def test_submission_report_and_wandb_run(first_run, tiny_world: Path) -> None:
    task, _ = first_run
    sub = pd.read_csv(task.output().path)
    test_ids = pd.read_csv(tiny_world / "GLC24_PA_metadata_test.csv")["surveyId"].unique()
    assert sorted(sub["surveyId"]) == sorted(test_ids)
    assert sub["predictions"].str.len().gt(0).all()
    rep = json.loads((task.exp_path("report") / "report.json").read_text())
    assert 0.0 < rep["validation"]["sample_f1"] <= 1.0
    model = TrainModel(data_root=task.data_root, out_root=task.out_root, experiment=task.experiment)
    summary = json.loads(Path(model.output().path).read_text())
    assert summary["epoch"] >= 0 and summary["best_val_sample_f1_topk"] is not None
    assert (model.output().dir / "model.ckpt").stat().st_size > 0
    runs = list((model.model_path("training") / "wandb").glob("offline-run-*"))
    assert runs, "an offline W&B run directory must be created under the experiment's training folder"


def test_rerun_does_no_work(first_run) -> None:
    task, _ = first_run
    res = _build(task)
    assert res.status == LuigiStatusCode.SUCCESS
    assert "Did not run any tasks" in res.summary_text, res.summary_text


def test_same_seed_gives_identical_submission(first_run, tiny_world: Path, experiment: str, tmp_path: Path) -> None:
    task, _ = first_run
    again = Submission(data_root=str(tiny_world), out_root=str(tmp_path), experiment=experiment)
    res = _build(again)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    assert Path(again.output().path).read_bytes() == Path(task.output().path).read_bytes()


TILE_EXPERIMENT = """
name = "tile-test"
seed = 0
[model]
kind = "tile_cnn"
tiles = ["patch_dct"]
channels = [8]
reduce = 4
latent = 16
[model.location]
encoder = "xy"
latent = 8
[train]
max_epochs = 2
patience = 2
batch_size = 64
reader = "petastorm"
[train.loss]
kind = "bce"
[decoder]
kind = "topk"
compare = false
[wandb]
mode = "disabled"
"""


def test_tile_cnn_dag_reads_the_patch_planes(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A tile model through the same DAG: PatchTiles -> ModelInputs(features=[patch_dct]) -> TrainModel -> Predict ->
    Submission, one row per test survey; the trained model's summary names the feature sets it read."""
    exp = tmp_path_factory.mktemp("tile_exp") / "tile-test.toml"
    exp.write_text(TILE_EXPERIMENT)
    out = tmp_path_factory.mktemp("tile_out")
    task = Submission(data_root=str(tiny_world), out_root=str(out), experiment=str(exp))
    res = _build(task)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    sub = pd.read_csv(task.output().path)
    test_ids = pd.read_csv(tiny_world / "GLC24_PA_metadata_test.csv")["surveyId"].unique()
    assert sorted(sub["surveyId"]) == sorted(test_ids)
    model = TrainModel(data_root=task.data_root, out_root=task.out_root, experiment=task.experiment)
    summary = json.loads(Path(model.output().path).read_text())
    assert summary["feature_sets"] == ["location", "meta", "patch_dct"] and summary["monitor"] == "val/sample_f1"
    assert model.requires()["inputs"].output().dir.name == "v10km-f0.2-s0-patch_dct"
