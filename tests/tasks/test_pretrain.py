"""PretrainEncoder and Embeddings on the tiny world: artifacts, counts of tile-less (presence-only) sites, the
held-out evaluation, embeddings as a feature set a trained model reads, reruns that do no work, the Spark-free CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

TILE2VEC = """
name = "t2v-test"
seed = 0
[encoder]
kind = "tile2vec"
tiles = ["patch_dct", "raster_landcover"]
channels = [8]
reduce = 4
latent = 16
neighbour_k = 5
neighbour_sources = ["pa_train", "pa_test", "po"]
distant_km = 300.0
val_triplets = 64
[pretrain]
max_epochs = 2
patience = 2
batch_size = 32
[wandb]
mode = "disabled"
"""

SATCLIP = """
name = "satclip-test"
seed = 0
[encoder]
kind = "satclip"
tiles = ["patch_dct"]
cubes = ["bioclim_dct"]
channels = [8]
reduce = 4
sh_degree = 6
hidden = 16
dim = 8
dropout = 0.0
grid_points = 2000
[pretrain]
max_epochs = 2
patience = 2
batch_size = 32
[wandb]
mode = "disabled"
"""

EXPERIMENT = """
name = "t2v-untrained-head"
seed = 0
[model]
kind = "embedding_head"
embedding = "tile2vec_untrained"
hidden = 16
[train]
max_epochs = 2
patience = 2
batch_size = 64
reader = "arrow"
[decoder]
kind = "topk"
compare = false
[wandb]
mode = "disabled"
"""


def _build(tasks: list) -> None:
    import luigi

    res = luigi.build(tasks, local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text


@pytest.fixture(scope="module")
def built(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from glc.tasks import Embeddings

    out = tmp_path_factory.mktemp("pretrain_out")
    cfgs = tmp_path_factory.mktemp("enc")
    (cfgs / "t2v-test.toml").write_text(TILE2VEC)
    (cfgs / "satclip-test.toml").write_text(SATCLIP)
    tasks = {
        n: Embeddings(encoder=str(cfgs / f"{n}.toml"), data_root=str(tiny_world), out_root=str(out), keep_data=True)
        for n in ("t2v-test", "satclip-test")
    }
    _build(list(tasks.values()))
    return {"out": out, "tasks": tasks, "world": tiny_world}


def test_tile2vec_artifacts_counts_and_embeddings(built: dict) -> None:
    from glc.tasks.surveys import read_surveys

    emb_task = built["tasks"]["t2v-test"]
    enc_dir = emb_task.requires()["encoder"].output().dir
    summary = json.loads((enc_dir / "summary.json").read_text())
    assert (enc_dir / "encoder.pt").is_file() and (enc_dir / "pretrain_data.npz").is_file()
    # presence-only sites are neighbour sources without a patch: counted, never a zero tile
    assert summary["counts"]["all_neighbour_without_tile"] > 0
    assert summary["counts"]["po_sites_without_tile"] == summary["counts"]["po_sites"] > 0
    assert summary["counts"]["po_bad_rows"] >= 0  # malformed PO rows are counted, not silently dropped
    ev = summary["evaluation"]
    assert 0.0 <= ev["heldout_triplet_acc"] <= 1.0 and ev["heldout_triplets"] > 0
    assert len(summary["curve"]) == 2 and "val/triplet_acc" in summary["curve"][0]
    assert summary["epochs_trained"] == 2 and summary["train_samples"] > 0 and summary["train_samples_per_s"] > 0
    assert summary["sites"]["val"] > 0 and summary["sites"]["test"] > 0
    emb = pd.read_parquet(emb_task.output().dir / "data")
    surveys = read_surveys(emb_task.requires()["surveys"].output())
    assert sorted(emb["surveyId"]) == sorted(surveys["surveyId"]) and emb["surveyId"].is_monotonic_increasing
    z = np.stack(emb["embedding"].to_numpy())
    assert z.shape == (len(surveys), 16) and np.isfinite(z).all() and z.std(axis=0).min() > 0


def test_satclip_retrieval_heatmap_and_location_function(built: dict) -> None:
    import torch

    from glc.training.pretrain import ENCODER_FILE, load_encoder

    enc_dir = built["tasks"]["satclip-test"].requires()["encoder"].output().dir
    ev = json.loads((enc_dir / "summary.json").read_text())["evaluation"]
    assert ev["grid_points"] >= 2000 and ev["trained"]["n"] > 0
    for k in ("trained", "random"):
        assert 0 <= ev[k]["median_km"] <= ev[k]["p90_km"] < 20_000
    assert (enc_dir / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    counts = json.loads((enc_dir / "summary.json").read_text())["counts"]
    assert counts["po_sites_without_tile"] == counts["po_sites"] > 0  # PO sites have no patch here: skipped, counted
    net, cfg = load_encoder(enc_dir / ENCODER_FILE)
    z = net.locate(torch.tensor([2.35, 10.0], dtype=torch.float64), torch.tensor([48.85, 50.0], dtype=torch.float64))
    assert z.shape == (2, 8) and torch.isfinite(z).all()
    emb = pd.read_parquet(built["tasks"]["satclip-test"].output().dir / "data")
    assert {"location_embedding", "image_embedding"} <= set(emb.columns)


def test_rerun_does_no_work(built: dict) -> None:
    assert all(t.complete() for t in built["tasks"].values())
    for t in built["tasks"].values():
        assert t.requires()["encoder"].complete()


def test_pretraining_cli_runs_without_spark_from_the_saved_sites(built: dict, tmp_path: Path) -> None:
    from glc.training.pretrain import main

    enc_dir = built["tasks"]["t2v-test"].requires()["encoder"].output().dir
    toml = Path(built["tasks"]["t2v-test"].encoder)
    assert (
        main(
            [
                "--data",
                str(enc_dir / "pretrain_data.npz"),
                "--encoder",
                str(toml),
                "--out",
                str(tmp_path / "o"),
                "--max-epochs",
                "1",
            ]
        )
        == 0
    )
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (tmp_path / "o" / "encoder.pt").is_file() and s["epochs_to_best"] == 1


def test_embedding_feature_set_feeds_a_trained_head(built: dict, tmp_path: Path) -> None:
    """An experiment on the untrained tile2vec control (tasks/encoders/tile2vec-untrained.toml, no fitting) runs to its
    submission through ModelInputs, the Embeddings artifact being one more feature-set artifact."""
    from glc.tasks import Submission

    exp = tmp_path / "t2v-untrained-head.toml"
    exp.write_text(EXPERIMENT)
    task = Submission(experiment=str(exp), data_root=str(built["world"]), out_root=str(built["out"]))
    _build([task])
    sub = pd.read_csv(task.output().path)
    assert len(sub) > 0 and sub["predictions"].str.len().min() > 0
    report = task.requires()["report"].output().dir
    rep = json.loads((report / "report.json").read_text())
    assert "heldout_triplet_acc" in rep["encoders"]["tile2vec-untrained"]
    assert "pretraining curve of tile2vec-untrained: not trained" in (report / "report.html").read_text()
