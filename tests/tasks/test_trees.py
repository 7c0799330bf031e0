"""Tree models and late fusion in the DAG on the tiny world: gbm reading the env feature set (EnvFeatures artifact),
the count decoder with the species-count model, and a blend of two experiments' Predict artifacts (no retraining)."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.submission import validate_submission_file
from glc.tasks import Decoder, Predict, Report, Submission

GBM = """
name = "gbm-test"
seed = 0
[model]
kind = "gbm"
features = ["env"]
n_candidates = 30
n_estimators = 30
inner_folds = 2
threads = 1
[decoder]
kind = "count"
[wandb]
mode = "disabled"
"""

BLEND = """
name = "blend-test"
seed = 0
[model]
kind = "blend"
experiments = ["{gbm}", "knn"]
weight_step = 0.25
[decoder]
kind = "expected_f1"
compare = false
[wandb]
mode = "disabled"
"""


@pytest.fixture(scope="module")
def built(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("exp")
    gbm = d / "gbm-test.toml"
    gbm.write_text(GBM)
    blend = d / "blend-test.toml"
    blend.write_text(BLEND.format(gbm=gbm))
    out = tmp_path_factory.mktemp("trees_out")
    task = Submission(experiment=str(blend), data_root=str(tiny_world), out_root=str(out))
    res = luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return task, str(gbm), str(blend), out


def test_gbm_reads_env_and_decodes_with_the_count_model(built, tiny_world: Path) -> None:
    _, gbm, _, out = built
    sub = Submission(experiment=gbm, data_root=str(tiny_world), out_root=str(out))
    assert luigi.build([sub], local_scheduler=True)
    test_ids = pd.read_csv(tiny_world / "GLC24_PA_metadata_test.csv")["surveyId"]
    assert validate_submission_file(sub.output().path, test_ids, 11255) == test_ids.nunique()
    pred = Predict(experiment=gbm, data_root=str(tiny_world), out_root=str(out))
    assert any(k.startswith("feature:env") for k in pred.requires())
    dec = json.loads(
        Path(Decoder(experiment=gbm, data_root=str(tiny_world), out_root=str(out)).output().path).read_text()
    )
    assert dec["kind"] == "count" and "offset" in dec
    rep = json.loads(
        (Report(experiment=gbm, data_root=str(tiny_world), out_root=str(out)).output().dir / "report.json").read_text()
    )
    assert "count" in rep["decoders"] and 0 < rep["validation"]["sample_f1"] <= 1
    assert 0 < rep["ranking"]["adaptive_top30_accuracy"] <= 1 and 0 < rep["ranking"]["top30_accuracy"] <= 1


def test_blend_reads_member_predictions_and_reports_weights(built, tiny_world: Path) -> None:
    task, gbm, blend, out = built
    pred = Predict(experiment=blend, data_root=str(tiny_world), out_root=str(out))
    assert {k for k in pred.requires() if k.startswith("member:")} == {f"member:{gbm}", "member:knn"}
    info = json.loads((pred.output().dir / "_SUCCESS").read_text())
    assert sum(info["weights"]) == pytest.approx(1.0) and len(info["members"]) == 2
    assert info["val_f1"] >= max(info["member_val_f1"]) - 1e-9
    test_ids = pd.read_csv(tiny_world / "GLC24_PA_metadata_test.csv")["surveyId"]
    assert validate_submission_file(task.output().path, test_ids, 11255) == test_ids.nunique()


def test_blend_listing_itself_is_refused(tmp_path: Path, tiny_world: Path) -> None:
    p = tmp_path / "selfish.toml"
    p.write_text(BLEND.replace('name = "blend-test"', 'name = "selfish"').format(gbm="selfish"))
    with pytest.raises(ValueError, match="lists itself"):
        Predict(experiment=str(p), data_root=str(tiny_world), out_root=str(tmp_path)).requires()
