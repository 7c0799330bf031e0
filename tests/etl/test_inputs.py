"""ModelInputs on the tiny synthetic world: splits equal the experiment pipeline's hold-out, labels decode back to
the survey table's species, env is standardised with train-only statistics, the dense gfv equals the GraphFeatures
artifact mapped to vocab columns, the patch DCT planes equal the PatchTiles artifact with train statistics in
meta.json, shuffled controls permute within splits, missing rows follow the feature set's policy, bytes are
deterministic."""

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
from glc.eval.split import validation_mask
from glc.tasks import EnvFeatures, GraphFeatures, ModelInputs, PatchTiles, SurveyTable
from glc.tasks.features import read_features
from glc.tasks.surveys import read_surveys
from glc.tasks.tables import read_table


@pytest.fixture(scope="module")
def built(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("inputs_out")
    task = ModelInputs(data_root=str(tiny_world), out_root=str(out), features=["env"], seed=3)
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
    assert meta["splits"] == {
        "train": len(train) - len(val_ids),
        "val": len(val_ids),
        "test": int((surveys["split"] == "test").sum()),
    }


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
            assert np.all(row[len(kept) :] == -1), "padding must be trailing -1"
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
    from glc.etl.inputs import read_feature_source, write_model_inputs
    from glc.spark import get_spark

    train = read_surveys(SurveyTable(data_root=task.data_root, out_root=str(out)).output())
    train = train[train["split"] == "train"].reset_index(drop=True)
    val_ids = train.loc[validation_mask(train, resolve({"seed": 3})), "surveyId"].to_numpy()
    env_dir = EnvFeatures(data_root=task.data_root, out_root=str(out)).output().dir
    spark = get_spark()
    write_model_inputs(
        spark,
        SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir,
        tmp_path / "again",
        val_ids,
        {"env": read_feature_source(spark, "env", env_dir)},
    )

    def digests(root: Path) -> list[str]:
        return [
            hashlib.sha256(p.read_bytes()).hexdigest()
            for split in ("train", "val", "test")
            for p in sorted((root / split).glob("part-*.parquet"))
        ]

    assert digests(task.output().dir) == digests(tmp_path / "again")
    # adaptive execution must not coalesce the hash partitions of a small split (the file layout is part of the bytes)
    assert len(list((task.output().dir / "test").glob("part-*.parquet"))) == task.files_per_split


def test_missing_env_rows_raise(built, spark) -> None:
    task, surveys, env, out = built
    from glc.etl.inputs import FeatureSource, build_model_inputs

    sdf = spark.read.parquet(str(SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir / "surveys"))
    edf = spark.createDataFrame(env.iloc[1:][["surveyId", "env"]].assign(env=lambda d: d["env"].map(list)))
    first = int(env["surveyId"].iloc[0])
    with pytest.raises(
        ValueError,
        match=(
            r"1 surveys have no row in the EnvFeatures artifact of "
            rf"feature set 'env' .*surveyId \[{first}\].*policy is 'error'"
        ),
    ):
        build_model_inputs(spark, sdf, np.array([], np.int64), {"env": FeatureSource(edf, where="env-test")})
    with pytest.raises(ValueError, match="validation surveyIds are not training surveys"):
        test_id = int(surveys.loc[surveys["split"] == "test", "surveyId"].iloc[0])
        build_model_inputs(spark, sdf, np.array([test_id]), None)


# ---------------------------------------------------------------------------------------------------------------
# The dense graph feature vector (ModelInputs gfv=True)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_gfv(built):
    _, _, _, out = built
    task = ModelInputs(data_root=built[0].data_root, out_root=str(out), features=["gfv"], seed=3)
    assert task.output().dir.name.endswith("-s3-gfv-k5")
    graph = task.requires()["gfv"]
    # the GFV follows the table's own splits (pitfall 15 in docs/contributing.md): its hold-out and the folds of its
    # training split
    assert isinstance(graph, GraphFeatures) and (
        graph.holdout_block_km,
        graph.holdout_fraction,
        graph.holdout_seed,
    ) == (10.0, 0.2, 3)
    assert (graph.n_folds, graph.block_km, graph.seed) == (5, 10.0, 3)
    res = luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return task, read_table(graph.output())


def test_gfv_rows_equal_the_graph_features_mapped_to_vocab_columns(built, built_gfv) -> None:
    task, graph = built_gfv
    meta = json.loads((task.output().dir / "meta.json").read_text())
    vocab = np.asarray(meta["vocab"])
    assert meta["columns"]["gfv"]["shape"] == [meta["num_classes"]] and len(vocab) == meta["num_classes"]
    assert "env" not in meta["columns"]
    assert meta["feature_info"]["gfv"]["dropped_entries"] == 0  # GFVs come from training labels, all in the vocabulary
    assert "gfv" not in json.loads((built[0].output().dir / "meta.json").read_text())["columns"]
    assert "gfv" not in _split(built[0], "train").columns
    sparse_rows = {
        int(s): (np.asarray(i), np.asarray(v)) for s, i, v in zip(graph["surveyId"], graph["gfv_idx"], graph["gfv_val"])
    }
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


def test_gfv_folds_match_the_tables_hold_out_and_the_kfold_trainers_folds(built_gfv) -> None:
    """Validation rows of the table are the GFV artifact's hold-out (fold -2), and its training rows carry exactly the
    folds the k-fold trainer cuts the training split into (glc.training.kfold.fold_assignment)."""
    from glc.config import resolve
    from glc.training.kfold import fold_assignment

    task, graph = built_gfv
    fold = dict(zip(graph["surveyId"].astype(int), graph["fold"].astype(int)))
    assert {fold[int(s)] for s in _split(task, "val")["surveyId"]} == {-2}
    assert {fold[int(s)] for s in _split(task, "test")["surveyId"]} == {-1}
    cfg = resolve({"seed": 3, "train": {"kfold": 5}})
    ids, folds = fold_assignment(task.output().dir, cfg)
    assert len(set(folds.tolist())) == 5
    assert [fold[int(s)] for s in ids] == folds.tolist()


def test_dense_gfv_drops_species_outside_the_vocab() -> None:
    from glc.etl.inputs import dense_gfv

    vocab = np.array([3, 7, 10, 42])
    np.testing.assert_array_equal(
        dense_gfv(vocab, [1, 7, 42, 50], [0.5, 0.25, 1.0, 0.75]), np.array([0, 0.25, 0, 1.0], np.float32)
    )
    np.testing.assert_array_equal(dense_gfv(vocab, [], []), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="2 gfv_idx but 1 gfv_val"):
        dense_gfv(vocab, [3, 7], [1.0])


def test_missing_gfv_rows_raise(built, built_gfv, spark) -> None:
    task, surveys, _, out = built
    _, graph = built_gfv
    from glc.etl.inputs import FeatureSource, build_model_inputs

    sdf = spark.read.parquet(str(SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir / "surveys"))
    gdf = spark.createDataFrame(
        graph.iloc[2:][["surveyId", "gfv_idx", "gfv_val"]].assign(
            gfv_idx=lambda d: d["gfv_idx"].map(list), gfv_val=lambda d: d["gfv_val"].map(list)
        ),
        "surveyId long, gfv_idx array<int>, gfv_val array<float>",
    )
    with pytest.raises(ValueError, match="2 surveys have no row in the GraphFeatures artifact"):
        build_model_inputs(spark, sdf, np.array([], np.int64), {"gfv": FeatureSource(gdf)})


def test_gfv_rebuild_writes_identical_bytes(built_gfv, tmp_path: Path) -> None:
    task, _ = built_gfv
    from glc.etl.inputs import read_feature_source, write_model_inputs
    from glc.spark import get_spark

    surveys_dir = SurveyTable(data_root=task.data_root, out_root=task.out_root).output().dir
    train = read_surveys(SurveyTable(data_root=task.data_root, out_root=task.out_root).output())
    train = train[train["split"] == "train"].reset_index(drop=True)
    val_ids = train.loc[validation_mask(train, resolve({"seed": 3})), "surveyId"].to_numpy()
    spark = get_spark()
    meta = write_model_inputs(
        spark,
        surveys_dir,
        tmp_path / "again",
        val_ids,
        {"gfv": read_feature_source(spark, "gfv", task.requires()["gfv"].output().dir)},
    )
    assert meta["columns"]["gfv"]["shape"] == [meta["num_classes"]]

    def digests(root: Path) -> list[str]:
        return [
            hashlib.sha256(p.read_bytes()).hexdigest()
            for split in ("train", "val", "test")
            for p in sorted((root / split).glob("part-*.parquet"))
        ]

    assert digests(task.output().dir) == digests(tmp_path / "again")


def _broadcast_subtrees(plan: str) -> list[str]:
    """The text of every ``BroadcastExchange`` subtree of a Spark plan's tree string."""
    import re

    lines = plan.splitlines()

    def col(line: str) -> int:
        m = re.search(r"[:+]- ", line)
        return m.start() if m else -1

    out = []
    for i, line in enumerate(lines):
        if "BroadcastExchange" in line:
            j = i + 1
            while j < len(lines) and col(lines[j]) > col(line):
                j += 1
            out.append("\n".join(lines[i:j]))
    return out


def test_feature_sets_are_never_broadcast(built_gfv, spark) -> None:
    """Each feature set joins the table by a shuffle (sort-merge) join, never a broadcast: its parquet is a few MB
    here, so Spark would broadcast it by size, and at full scale the dense GFV (93k x 7,820 floats) outgrew the 4 GB
    driver ("Not enough memory to build and broadcast the table"). Lookups (vocabulary, regions) may be broadcast."""
    from glc.etl.inputs import build_model_inputs, read_feature_source

    task, _ = built_gfv
    sdf = spark.read.parquet(
        str(SurveyTable(data_root=task.data_root, out_root=task.out_root).output().dir / "surveys")
    )
    sources = {"gfv": read_feature_source(spark, "gfv", task.requires()["gfv"].output().dir)}
    assert sources["gfv"].frame.inputFiles()  # a parquet artifact: Spark sizes it from its files, as in a real run
    for shuffle in ([], ["gfv"]):  # a shuffled control joins the values to their donors first
        frames, _ = build_model_inputs(spark, sdf, np.array([], np.int64), sources, shuffle=shuffle)
        plan = frames["train"]._jdf.queryExecution().executedPlan().toString()
        assert "SortMergeJoin" in plan
        subtrees = _broadcast_subtrees(plan)
        assert subtrees, "expected the vocabulary/region lookups to stay broadcast"
        leaked = [t for t in subtrees if "gfv" in t]
        assert not leaked, f"a feature set is broadcast (shuffle={shuffle}):\n{leaked[0]}"


def test_experiment_selects_the_feature_sets_of_its_model(tmp_path: Path) -> None:
    from glc.tasks.training import model_inputs_for
    from glc.training.trainer import input_columns

    base = ModelInputs(data_root=str(tmp_path), out_root=str(tmp_path))
    cfg = resolve({"seed": 3, "model": {"kind": "geolocation", "extras": ["year", "gfv"]}})
    task = model_inputs_for(base, cfg)
    assert list(task.features) == ["gfv"] and task.output().dir.name == "v10km-f0.2-s3-gfv-k5"
    k3 = model_inputs_for(
        base, resolve({"seed": 3, "model": {"kind": "geolocation", "extras": ["gfv"]}, "train": {"kfold": 3}})
    )
    assert k3.folds == 3 and k3.output().dir.name == "v10km-f0.2-s3-gfv-k3"  # the GFV folds are the k-fold trainer's
    assert list(model_inputs_for(base, resolve({"seed": 3})).features) == []
    plain = model_inputs_for(base, resolve({"seed": 3, "model": {"kind": "tile_cnn"}, "train": {"kfold": 3}}))
    assert plain.output().dir.name == "v10km-f0.2-s3-patch_dct"  # folds matter only to out-of-fold sets
    meta = {
        "feature_sets": ["gfv", "location", "meta"],
        "columns": {
            "x": {"feature_set": "location"},
            "year": {"feature_set": "meta"},
            "gfv": {"feature_set": "gfv"},
            "env": {"feature_set": "env"},
            "labels": {"feature_set": None},
        },
    }
    assert input_columns(cfg, meta) == ["x", "year", "gfv"]
    with pytest.raises(KeyError, match=r"reads feature set\(s\) \['env'\], which the model-input table does not hold"):
        input_columns(resolve({"model": {"kind": "geolocation", "extras": ["env"]}}), meta)


# ---------------------------------------------------------------------------------------------------------------
# Image planes (patch_dct), statistics, shuffled controls, missing-row policies
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_patches(built):
    task0, surveys, _, out = built
    task = ModelInputs(data_root=task0.data_root, out_root=str(out), features=["patch_dct"], seed=3)
    shuf = ModelInputs(
        data_root=task0.data_root, out_root=str(out), features=["patch_dct"], shuffle=["patch_dct"], seed=3
    )
    assert shuf.output().dir.name == "v10km-f0.2-s3-patch_dct-shuf-patch_dct"
    res = luigi.build([task, shuf], local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    patches = read_features(PatchTiles(data_root=task0.data_root, out_root=str(out), k=8).output())
    return task, shuf, dict(zip(patches["surveyId"], patches["dct"]))


def test_patch_planes_equal_the_patch_tiles_artifact(built_patches) -> None:
    task, _, dct = built_patches
    meta = json.loads((task.output().dir / "meta.json").read_text())
    col = meta["columns"]["patch_dct"]
    assert col["dtype"] == "float32" and col["shape"] == [4, 8, 8] and col["feature_set"] == "patch_dct"
    assert meta["feature_info"]["patch_dct"]["n_missing"] == {"train": 0, "val": 0, "test": 0}
    assert meta["feature_info"]["patch_dct"]["artifact_info"]["channels"] == ["red", "green", "blue", "nir"]
    for name in ("train", "val", "test"):
        df = _split(task, name)
        got = np.stack(df["patch_dct"].to_numpy())
        np.testing.assert_array_equal(got, np.stack([dct[s] for s in df["surveyId"]]))
    # per-element train statistics (float64 over the written train rows), used by the networks to standardise
    tr = np.stack(_split(task, "train")["patch_dct"].to_numpy()).astype(np.float64).reshape(-1, 4, 8, 8)
    np.testing.assert_allclose(np.asarray(col["stats"]["mean"]), tr.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(col["stats"]["std"]), tr.std(0), rtol=1e-5, atol=1e-5)


def test_shuffled_control_permutes_within_each_split(built_patches) -> None:
    task, shuf, dct = built_patches
    meta = json.loads((shuf.output().dir / "meta.json").read_text())
    assert meta["shuffled"] == ["patch_dct"] and meta["feature_info"]["patch_dct"]["shuffled"] is True
    moved = total = 0
    for name in ("train", "val", "test"):
        a, b = _split(task, name), _split(shuf, name)
        assert list(a["surveyId"]) == list(b["surveyId"])
        np.testing.assert_array_equal(np.stack(a["labels"].to_numpy()), np.stack(b["labels"].to_numpy()))  # labels stay
        key = lambda v: v.tobytes()  # noqa: E731
        assert sorted(map(key, a["patch_dct"])) == sorted(map(key, b["patch_dct"]))  # same values within the split
        moved += sum(not np.array_equal(x, y) for x, y in zip(a["patch_dct"], b["patch_dct"]))
        total += len(a)
    assert moved > 0.9 * total  # the link to the survey is gone


def test_missing_row_policies(built, spark, monkeypatch) -> None:
    """A survey without a row is an error naming it (policy 'error'), or a counted fill with a mask ('fill');
    never a silent drop or zero tile."""
    from glc.etl.inputs import FeatureSource, build_model_inputs
    from glc.features import sets

    task, surveys, _, out = built
    sdf = spark.read.parquet(str(SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir / "surveys"))
    patches = read_features(PatchTiles(data_root=task.data_root, out_root=str(out), k=8).output())
    test_id = int(surveys.loc[surveys["split"] == "test", "surveyId"].min())
    kept = patches[patches["surveyId"] != test_id][["surveyId", "dct"]].assign(dct=lambda d: d["dct"].map(list))
    pdf = spark.createDataFrame(kept, "surveyId long, dct array<float>")
    with pytest.raises(
        ValueError,
        match=(
            r"1 surveys have no row in the PatchTiles artifact of "
            rf"feature set 'patch_dct' .*'test': 1.*surveyId \[{test_id}\]"
        ),
    ):
        build_model_inputs(spark, sdf, np.array([], np.int64), {"patch_dct": FeatureSource(pdf, where="k8")})
    filled = sets.FeatureSet(
        "patch_fill",
        "test: patch planes with the fill policy",
        "PatchTiles",
        {"k": 8},
        (sets.Column("patch_fill", "float32", (4, 8, 8), source="dct"),),
        missing="fill",
    )
    monkeypatch.setitem(sets.FEATURE_SETS, "patch_fill", filled)
    frames, meta = build_model_inputs(
        spark, sdf, np.array([], np.int64), {"patch_fill": FeatureSource(pdf, where="k8")}
    )
    assert meta["feature_info"]["patch_fill"]["n_missing"] == {"train": 0, "val": 0, "test": 1}
    assert meta["columns"]["patch_fill_mask"] == {"dtype": "int32", "shape": [], "feature_set": "patch_fill"}
    test = frames["test"].toPandas().set_index("surveyId")
    assert test.loc[test_id, "patch_fill_mask"] == 0 and (test.drop(test_id)["patch_fill_mask"] == 1).all()
    train_ids = set(surveys.loc[surveys["split"] == "train", "surveyId"])
    mean = np.stack(
        [np.asarray(v, np.float64) for s, v in zip(patches["surveyId"], patches["dct"]) if s in train_ids]
    ).mean(0)
    np.testing.assert_allclose(
        np.asarray(test.loc[test_id, "patch_fill"]), mean, rtol=1e-5
    )  # the train mean, not zeros


def test_plot_metadata_encodes_unknown_values_with_a_flag_never_nan(built, spark) -> None:
    """The plot set: [log1p(area), known, log1p(uncertainty), known] per survey from the survey table; an empty
    (null), negative or NaN value is 0 with its flag 0, counted in meta.json; the train statistics are recorded."""
    from pyspark.sql import functions as F

    from glc.etl.inputs import build_model_inputs, read_feature_source

    task, surveys, _, out = built
    sdir = SurveyTable(data_root=task.data_root, out_root=str(out)).output().dir
    src = read_feature_source(spark, "plot", sdir)
    ids = sorted(surveys["surveyId"].astype(int))[:3]
    src.frame = src.frame.withColumn(  # three deliberately bad rows: null area, negative area, NaN uncertainty
        "areaInM2",
        F.when(F.col("surveyId") == ids[0], F.lit(None))
        .when(F.col("surveyId") == ids[1], F.lit(-5.0))
        .otherwise(F.col("areaInM2")),
    ).withColumn(
        "geoUncertaintyInM",
        F.when(F.col("surveyId") == ids[2], F.lit(float("nan"))).otherwise(F.col("geoUncertaintyInM")),
    )
    frames, meta = build_model_inputs(
        spark, spark.read.parquet(str(sdir / "surveys")), np.array([], np.int64), {"plot": src}
    )
    rows = pd.concat([f.toPandas() for f in frames.values()]).set_index("surveyId")
    plot = np.stack(rows["plot"].to_numpy())
    assert plot.dtype == np.float32 and np.isfinite(plot).all()
    s = surveys.set_index("surveyId")
    for sid in ids:
        v = np.asarray(rows.loc[sid, "plot"])
        area, unc = s.loc[sid, "areaInM2"], s.loc[sid, "geoUncertaintyInM"]
        if sid in ids[:2]:
            assert v[0] == 0 and v[1] == 0
        else:
            assert v[1] == 1 and v[0] == pytest.approx(np.log1p(area), rel=1e-5)
        if sid == ids[2]:
            assert v[2] == 0 and v[3] == 0
        elif pd.notna(unc):
            assert v[3] == 1 and v[2] == pytest.approx(np.log1p(unc), rel=1e-5)
    info = meta["feature_info"]["plot"]
    assert info["n_unknown"]["areaInM2"] >= 2 and info["n_unknown"]["geoUncertaintyInM"] >= 1
    assert info["names"] == ["log1p_area_m2", "area_known", "log1p_uncertainty_m", "uncertainty_known"]
