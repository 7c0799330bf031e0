"""Pretraining (glc.training.pretrain): fit + evaluation + encoder file on a seeded fake, resume without retraining
(the throughput of the finished run is kept), the untrained control, the embeddings of the published encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glc.config import resolve_encoder
from glc.training.pretrain import ENCODER_FILE, embed, load_encoder, pretrain
from tests.loaders.test_pretrain import _fake

CFG = {
    "encoder": {"kind": "tile2vec", "channels": [8], "reduce": 4, "latent": 8, "val_triplets": 64, "distant_km": 500.0},
    "pretrain": {"max_epochs": 2, "patience": 2, "batch_size": 32, "accelerator": "cpu"},
    "wandb": {"mode": "disabled"},
}


def test_pretrain_resume_keeps_the_finished_run(tmp_path: Path) -> None:
    cfg = resolve_encoder(CFG)
    data = _fake()
    s1 = pretrain(data, cfg, tmp_path / "w", tmp_path / "o1", progress=False, wandb=False)
    assert s1["epochs_trained"] == 2 and s1["train_samples"] == 2 * (
        90 - s1["counts"]["train_anchor_without_neighbour"]
    )
    s2 = pretrain(data, cfg, tmp_path / "w", tmp_path / "o2", progress=False, wandb=False)
    assert s2["train_samples_per_s"] == s1["train_samples_per_s"] and s2["best_monitor"] == s1["best_monitor"]
    a, _ = load_encoder(tmp_path / "o1" / ENCODER_FILE)
    b, _ = load_encoder(tmp_path / "o2" / ENCODER_FILE)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k
    e = embed(a, "tile2vec", data, device="cpu")["embedding"]
    assert e.shape == (len(data), 8) and np.isfinite(e).all()


def test_untrained_control_publishes_the_seeded_init(tmp_path: Path) -> None:
    cfg = resolve_encoder({**CFG, "pretrain": {**CFG["pretrain"], "max_epochs": 0}})
    s = pretrain(_fake(), cfg, tmp_path / "w", tmp_path / "o", progress=False, wandb=False)
    assert "curve" not in s and s["fit_seconds"] == 0 and 0 <= s["evaluation"]["heldout_triplet_acc"] <= 1
    torch.manual_seed(0)
    net, c = load_encoder(tmp_path / "o" / ENCODER_FILE)
    again = pretrain(_fake(), cfg, tmp_path / "w2", tmp_path / "o2", progress=False, wandb=False)
    net2, _ = load_encoder(tmp_path / "o2" / ENCODER_FILE)
    assert again["evaluation"] == s["evaluation"]
    assert all(torch.equal(v, w) for v, w in zip(net.state_dict().values(), net2.state_dict().values()))


def test_load_encoder_refuses_other_files(tmp_path: Path) -> None:
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a glc encoder file"):
        load_encoder(tmp_path / "x.pt")
