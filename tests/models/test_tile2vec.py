"""tile2vec (glc.models.tile2vec): the triplet margin loss and accuracy against references, the encoder (the tile CNN
body without a head), its registry entry and config checks; the embedding head of the transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glc.models.tile2vec import Tile2VecNet, triplet_accuracy, triplet_margin_loss


def test_triplet_loss_and_accuracy_match_a_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    a, n, d = (rng.normal(size=(50, 6)) for _ in range(3))
    ref = np.maximum(np.linalg.norm(a - n, axis=1) - np.linalg.norm(a - d, axis=1) + 0.5, 0).mean()
    got = triplet_margin_loss(torch.tensor(a), torch.tensor(n), torch.tensor(d), 0.5)
    assert float(got) == pytest.approx(ref, rel=1e-12)
    # torch's own TripletMarginLoss (p=2, eps=0 differs only by its eps) agrees closely
    tm = torch.nn.TripletMarginLoss(margin=0.5, p=2, eps=0.0)(torch.tensor(a), torch.tensor(n), torch.tensor(d))
    assert float(got) == pytest.approx(float(tm), rel=1e-9)
    acc = float(triplet_accuracy(torch.tensor(a), torch.tensor(n), torch.tensor(d)))
    assert acc == pytest.approx(np.mean(np.linalg.norm(a - n, axis=1) < np.linalg.norm(a - d, axis=1)))
    assert float(triplet_accuracy(torch.tensor(a), torch.tensor(a), torch.tensor(d))) == 1.0


def test_encoder_is_the_tile_body_without_a_head() -> None:
    torch.manual_seed(0)
    shape = (5, 8, 8)
    net = Tile2VecNet(
        shape, np.zeros(shape, np.float32), np.ones(shape, np.float32), channels=(8, 16), reduce=4, latent=32
    ).eval()
    z = net(torch.randn(3, *shape))
    assert z.shape == (3, 32)
    assert not any(isinstance(m, torch.nn.Linear) and m.out_features > 32 for m in net.modules())
    net.train()
    x = torch.randn(3, *shape)
    torch.manual_seed(1)
    z1 = net(x)
    torch.manual_seed(2)
    z2 = net(x)
    assert not torch.allclose(z1, z2)  # per-sample DCT-domain augmentation in training


def test_tile2vec_registry_and_config_checks() -> None:
    from glc.config import ConfigError, load_encoder_config, resolve_encoder
    from glc.models.registry import encoder_kinds, get_encoder

    assert {"tile2vec", "satclip"} <= set(encoder_kinds())
    spec = get_encoder("tile2vec")
    assert (
        spec.objective == "triplet"
        and spec.uses_neighbours
        and spec.monitor == "val/triplet_loss"
        and spec.monitor_mode == "min"
    )
    cfg = load_encoder_config("tile2vec")
    assert cfg["encoder"]["neighbour_km"] == 100.0 and cfg["encoder"]["distant_km"] > cfg["encoder"]["neighbour_km"]
    assert load_encoder_config("tile2vec-untrained")["pretrain"]["max_epochs"] == 0
    with pytest.raises(ConfigError, match="distant_km = 50.0 must be larger than encoder.neighbour_km"):
        resolve_encoder({"encoder": {"kind": "tile2vec", "distant_km": 50.0}})
    with pytest.raises(ConfigError, match="tiles"):
        resolve_encoder({"encoder": {"kind": "tile2vec", "tiles": ["env"]}})
    with pytest.raises(ConfigError, match="not a known encoder"):
        resolve_encoder({"encoder": {"kind": "tile2vex"}})


def test_embedding_head_reads_its_feature_set_and_refuses_bad_batches() -> None:
    from glc.config import ConfigError, resolve
    from glc.models.embedding_head import EmbeddingHead, embedding_sets
    from glc.models.registry import get_model

    assert {"tile2vec", "tile2vec_untrained", "satclip_location", "satclip_image"} <= set(embedding_sets())
    assert get_model("embedding_head").features({"embedding": "satclip_location"}) == ("satclip_location",)
    head = EmbeddingHead("tile2vec", 8, 5, hidden=4)
    assert head({"tile2vec": torch.randn(2, 8)}).shape == (2, 5)
    with pytest.raises(ValueError, match=r"expected \[B, 8\]"):
        head({"tile2vec": torch.randn(2, 7)})
    with pytest.raises(ValueError, match="non-finite"):
        head({"tile2vec": torch.full((2, 8), float("nan"))})
    with pytest.raises(KeyError, match="tile2vec"):
        head({"x": torch.randn(2)})
    with pytest.raises(ConfigError, match="embedding"):
        resolve({"model": {"kind": "embedding_head", "embedding": "patch_dct"}})
