"""The fusion experiment through the whole DAG on the tiny world: PatchTiles / CubeFeatures / EnvFeatures / the plot
metadata / GraphFeatures (with the model's hold-out and its k folds) -> ModelInputs -> k-fold TrainModel -> Predict ->
Decoder -> Report (with the PO correction's before/after) -> Submission (corrected), and no work on rerun."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.tasks import Submission, TrainModel

EXPERIMENT = """
name = "fusion-test"
seed = 0
[model]
kind = "fusion"
fusion = "hcam"
image = "dct8"
backbone = "resnet18"
image_size = 32
latent = 16
dim = 16
heads = 4
[model.swin]
embed_dim = 24
depths = [1, 1]
heads = [4, 8]
[model.tabular]
hidden = 32
[model.graph]
tokens = 2
width = 8
[train]
max_epochs = 2
patience = 2
batch_size = 64
mixup_alpha = 0.2
kfold = 2
kfold_epochs = 1
reader = "petastorm"
[train.loss]
kind = "bce"
[decoder]
kind = "threshold_topk"
compare = false
[decoder.po_correction]
enabled = true
n_train = 3
min_train_count = 1
n_po = 5
min_po_count = 2
[wandb]
mode = "disabled"
"""


@pytest.fixture(scope="module")
def run(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory):
    exp = tmp_path_factory.mktemp("fusion_exp") / "fusion-test.toml"
    exp.write_text(EXPERIMENT)
    out = tmp_path_factory.mktemp("fusion_out")
    task = Submission(data_root=str(tiny_world), out_root=str(out), experiment=str(exp))
    res = luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return task


def test_the_dag_trains_the_folds_and_writes_a_corrected_submission(run: Submission, tiny_world: Path) -> None:
    from glc.tasks.experiment import po_correction_task, read_corrections

    sub = pd.read_csv(run.output().path)
    test_ids = pd.read_csv(tiny_world / "GLC24_PA_metadata_test.csv")["surveyId"].unique()
    assert sorted(sub["surveyId"]) == sorted(test_ids)
    model = TrainModel(data_root=run.data_root, out_root=run.out_root, experiment=run.experiment)
    summary = json.loads(Path(model.output().path).read_text())
    assert summary["kfold"] == 2 and [f["fold"] for f in summary["folds"]] == [0, 1]
    assert summary["folds"][1]["init"] == summary["folds"][0]["best_checkpoint"]
    assert summary["feature_sets"] == [
        "bioclim_cube",
        "env",
        "gfv",
        "landsat_cube",
        "location",
        "meta",
        "patch_dct",
        "plot",
    ]
    inputs = model.requires()["inputs"]
    assert inputs.output().dir.name.endswith("-k2") and inputs.requires()["gfv"].n_folds == 2
    # the PO correction is the last step: every test survey's predicted set holds its whole correction list
    lists = read_corrections(po_correction_task(run, "test").output())
    assert sum(len(v) for v in lists.values()) > 0
    predicted = {int(s): set(map(int, str(p).split())) for s, p in zip(sub["surveyId"], sub["predictions"])}
    for sid, species in lists.items():
        assert set(np.asarray(species).tolist()) <= predicted[sid]
    info = json.loads(run.exp_path("submission.json").read_text())["po_correction"]
    assert info["species_added"] > 0 and info["n_surveys"] == len(test_ids)
    rep = json.loads((run.exp_path("report") / "report.json").read_text())
    po = rep["po_correction"]
    assert po["params"]["n_train"] == 3 and rep["validation"]["sample_f1"] == pytest.approx(po["sample_f1_with"])
    assert "PO output correction" in (run.exp_path("report") / "report.html").read_text()
    assert f"{po['sample_f1_with']:.4f}" in (run.exp_path("report") / "report.md").read_text()
    val_task = po_correction_task(run, "val")
    assert val_task.holdout_block_km == 10.0 and val_task.output().dir.name.endswith("-h10km-f0.2-s0")


def test_rerun_does_no_work(run: Submission) -> None:
    res = luigi.build([run], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS and "Did not run any tasks" in res.summary_text, res.summary_text
