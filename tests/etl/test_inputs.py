"""ModelInputs on the tiny synthetic world: splits equal the experiment pipeline's hold-out, labels decode back to
the survey table's species, env is standardised with train-only statistics, bytes are deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.config import resolve
from glc.experiment import validation_mask
from glc.tasks import EnvFeatures, ModelInputs, SurveyTable
from glc.tasks.features import read_features
from glc.tasks.surveys import read_surveys


@pytest.fixture(scope="module")
def built(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("inputs_out")
    task = ModelInputs(data_root=str(tiny_world), out_root=str(out), env=True, seed=3)
    res = luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    surveys = read_surveys(SurveyTable(data_root=str(tiny_world), out_root=str(out)).output())
    env = read_features(EnvFeatures(data_root=str(tiny_world), out_root=str(out)).output())
    return task, surveys, env, out


def _split(task: ModelInputs, name: str) -> pd.DataFrame:
    return pd.read_parquet(task.output().dir / name).sort_values("surveyId").reset_index(drop=True)


def test_splits_match_the_experiment_holdout(built) -> None:
    task, surveys, _, _ = built
    train = surveys[surveys["split"] == "train"].reset_index(drop=True)
    cfg = resolve({"seed": 3})
    val_ids = set(train.loc[validation_mask(train, cfg), "surveyId"])
    assert set(_split(task, "val")["surveyId"]) == val_ids
    assert set(_split(task, "train")["surveyId"]) == set(train["surveyId"]) - val_ids
    assert set(_split(task, "test")["surveyId"]) == set(surveys.loc[surveys["split"] == "test", "surveyId"])
    meta = json.loads((task.output().dir / "meta.json").read_text())
    assert meta["splits"] == {"train": len(train) - len(val_ids), "val": len(val_ids), "test": int((surveys["split"] == "test").sum())}


def test_labels_decode_to_the_species_lists(built) -> None:
    task, surveys, _, _ = built
    meta = json.loads((task.output().dir / "meta.json").read_text())
    vocab = np.asarray(meta["vocab"])
    assert np.all(np.diff(vocab) > 0)
    truth = dict(zip(surveys["surveyId"], surveys["speciesIds"]))
    for name in ("train", "val"):
        df = _split(task, name)
        lab = np.stack(df["labels"].to_numpy())
        assert lab.shape[1] == meta["label_width"]
        for sid, row in zip(df["surveyId"], lab):
            kept = row[row >= 0]
            assert np.all(row[len(kept):] == -1), "padding must be trailing -1"
            assert np.array_equal(vocab[kept], np.unique(truth[sid]))
    test = np.stack(_split(task, "test")["labels"].to_numpy())
    assert test.shape[1] == meta["label_width"] and (test == -1).all()
    widths = [len(np.unique(s)) for s in surveys.loc[surveys["split"] == "train", "speciesIds"]]
    assert meta["label_width"] == max(widths)
    assert meta["mean_richness"] == pytest.approx(np.mean(widths))


def test_env_is_standardised_with_train_statistics_only(built) -> None:
    task, _, env, _ = built
    raw = dict(zip(env["surveyId"], env["env"]))
    tr = _split(task, "train")
    x_raw = np.stack([raw[s] for s in tr["surveyId"]]).astype(np.float64)
    mean, std = x_raw.mean(0), x_raw.std(0)
    std[std < 1e-12] = 1.0
    for name in ("train", "val", "test"):
        df = _split(task, name)
        got = np.stack(df["env"].to_numpy())
        ref = (np.stack([raw[s] for s in df["surveyId"]]) - mean) / std
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_rebuild_writes_identical_bytes(built, tmp_path: Path) -> None:
    task, _, _, out = built
    from glc.etl.inputs import write_model_inputs
    from glc.spark import get_spark

    train = read_surveys(SurveyTable(data_root=task.data_root, out_root=str(out)).output())
    train = train[train["split"] == "train"].reset_index(drop=True)
    val_ids = train.loc[validation_mask(train, resolve({"seed": 3})), "surveyId"].to_numpy()
    env_dir = EnvFeatures(data_root=task.data_root, out_root=str(out)).output().dir
    write_model_inputs(get_spark(), SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir, tmp_path / "again", val_ids, env_dir)

    def digests(root: Path) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for split in ("train", "val", "test") for p in sorted((root / split).glob("part-*.parquet"))]

    assert digests(task.output().dir) == digests(tmp_path / "again")


def test_missing_env_rows_raise(built, spark) -> None:
    task, surveys, env, out = built
    from glc.etl.inputs import build_model_inputs

    sdf = spark.read.parquet(str(SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir / "surveys"))
    edf = spark.createDataFrame(env.iloc[1:][["surveyId", "env"]].assign(env=lambda d: d["env"].map(list)))
    with pytest.raises(ValueError, match="1 surveys have no row in the EnvFeatures artifact"):
        build_model_inputs(spark, sdf, np.array([], np.int64), edf)
    with pytest.raises(ValueError, match="validation surveyIds are not training surveys"):
        test_id = int(surveys.loc[surveys["split"] == "test", "surveyId"].iloc[0])
        build_model_inputs(spark, sdf, np.array([test_id]), None)
