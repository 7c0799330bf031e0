"""ModelInputs on the tiny synthetic world: splits equal the experiment pipeline's hold-out, labels decode back to
the survey table's species, env is standardised with train-only statistics, the dense gfv equals the GraphFeatures
artifact mapped to vocab columns, bytes are deterministic."""

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
from glc.tasks import EnvFeatures, GraphFeatures, ModelInputs, SurveyTable
from glc.tasks.features import read_features
from glc.tasks.neighbours import read_table
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
    # adaptive execution must not coalesce the hash partitions of a small split (the file layout is part of the bytes)
    assert len(list((task.output().dir / "test").glob("part-*.parquet"))) == task.files_per_split


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


# ---------------------------------------------------------------------------------------------------------------
# The dense graph feature vector (ModelInputs gfv=True)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_gfv(built):
    _, _, _, out = built
    task = ModelInputs(data_root=built[0].data_root, out_root=str(out), gfv=True, seed=3)
    assert task.output().dir.name.endswith("-s3-gfv")
    graph = task.requires()["gfv"]
    assert isinstance(graph, GraphFeatures) and graph.seed == 0 and graph.block_km == 10.0  # defaults, not the hold-out's
    res = luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return task, read_table(graph.output())


def test_gfv_rows_equal_the_graph_features_mapped_to_vocab_columns(built, built_gfv) -> None:
    task, graph = built_gfv
    meta = json.loads((task.output().dir / "meta.json").read_text())
    vocab = np.asarray(meta["vocab"])
    assert meta["gfv_dim"] == meta["num_classes"] == len(vocab) and meta["env_dim"] == 0
    assert meta["gfv_dropped_entries"] == 0  # GFVs come from training labels, all in the vocabulary
    assert json.loads((built[0].output().dir / "meta.json").read_text())["gfv_dim"] == 0
    assert "gfv" not in _split(built[0], "train").columns
    sparse_rows = {int(s): (np.asarray(i), np.asarray(v)) for s, i, v in zip(graph["surveyId"], graph["gfv_idx"], graph["gfv_val"])}
    n_dropped = n_nonzero = 0
    for name in ("train", "val", "test"):
        df = _split(task, name)
        got = np.stack(df["gfv"].to_numpy())
        assert got.dtype == np.float32 and got.shape == (len(df), len(vocab))
        for sid, row in zip(df["surveyId"], got):
            idx, val = sparse_rows[int(sid)]
            keep = np.isin(idx, vocab)
            n_dropped += int((~keep).sum())
            ref = np.zeros(len(vocab), np.float32)
            ref[np.searchsorted(vocab, idx[keep])] = val[keep]
            np.testing.assert_array_equal(row, ref)
            n_nonzero += int((row != 0).sum())
    assert n_nonzero > 0  # the tiny world has neighbours: not an all-zero column
    assert set(_split(task, "val")["surveyId"]) == set(_split(built[0], "val")["surveyId"])  # same hold-out


def test_dense_gfv_drops_species_outside_the_vocab() -> None:
    from glc.etl.inputs import dense_gfv

    vocab = np.array([3, 7, 10, 42])
    np.testing.assert_array_equal(dense_gfv(vocab, [1, 7, 42, 50], [0.5, 0.25, 1.0, 0.75]), np.array([0, 0.25, 0, 1.0], np.float32))
    np.testing.assert_array_equal(dense_gfv(vocab, [], []), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="2 gfv_idx but 1 gfv_val"):
        dense_gfv(vocab, [3, 7], [1.0])


def test_missing_gfv_rows_raise(built, built_gfv, spark) -> None:
    task, surveys, _, out = built
    _, graph = built_gfv
    from glc.etl.inputs import build_model_inputs

    sdf = spark.read.parquet(str(SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir / "surveys"))
    gdf = spark.createDataFrame(
        graph.iloc[2:][["surveyId", "gfv_idx", "gfv_val"]].assign(gfv_idx=lambda d: d["gfv_idx"].map(list), gfv_val=lambda d: d["gfv_val"].map(list)),
        "surveyId long, gfv_idx array<int>, gfv_val array<float>",
    )
    with pytest.raises(ValueError, match="2 surveys have no row .* in the GraphFeatures artifact"):
        build_model_inputs(spark, sdf, np.array([], np.int64), gfv=gdf)


def test_gfv_rebuild_writes_identical_bytes(built_gfv, tmp_path: Path) -> None:
    task, _ = built_gfv
    from glc.etl.inputs import write_model_inputs
    from glc.spark import get_spark

    surveys_dir = SurveyTable(data_root=task.data_root, out_root=task.out_root).output().dir
    train = read_surveys(SurveyTable(data_root=task.data_root, out_root=task.out_root).output())
    train = train[train["split"] == "train"].reset_index(drop=True)
    val_ids = train.loc[validation_mask(train, resolve({"seed": 3})), "surveyId"].to_numpy()
    meta = write_model_inputs(get_spark(), surveys_dir, tmp_path / "again", val_ids, gfv_dir=task.requires()["gfv"].output().dir)
    assert meta["gfv_dim"] == meta["num_classes"]

    def digests(root: Path) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for split in ("train", "val", "test") for p in sorted((root / split).glob("part-*.parquet"))]

    assert digests(task.output().dir) == digests(tmp_path / "again")


def test_experiment_extras_select_the_gfv_inputs(tmp_path: Path) -> None:
    from glc.tasks.training import model_inputs_for
    from glc.training.geolocation import extra_dims, frames_to_inputs, input_columns

    base = ModelInputs(data_root=str(tmp_path), out_root=str(tmp_path))
    cfg = resolve({"seed": 3, "model": {"kind": "geolocation", "extras": ["year", "gfv"]}})
    task = model_inputs_for(base, cfg)
    assert task.gfv and not task.env and task.output().dir.name == "v10km-f0.2-s3-gfv"
    assert not model_inputs_for(base, resolve({"seed": 3})).gfv
    assert input_columns(cfg)[-1] == "gfv"
    assert extra_dims({"n_regions": 2, "env_dim": 0, "gfv_dim": 9})["gfv"] == 9
    assert extra_dims({"n_regions": 2, "env_dim": 0})["gfv"] == 0  # tables written before gfv_dim existed
    with pytest.raises(ValueError, match="model.extras 'gfv' needs the GraphFeatures artifact"):
        frames_to_inputs(pd.DataFrame(), pd.DataFrame(), cfg, tmp_path / "mem")
