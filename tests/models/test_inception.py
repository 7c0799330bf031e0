"""GLC2020 Inception-v3: stride-1 stem, 6-channel IDCT stack, output shape, softmax loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glc.models.inception import InceptionNet
from glc.training.losses import build_loss

SHAPES = [(4, 16, 16), (1, 8, 8), (13, 8, 8)]
COLS = ["patch_dct16", "raster_elevation", "raster_landcover"]


def _net(**kw):
    stats = [(np.zeros(s), np.ones(s)) for s in SHAPES]
    return InceptionNet(COLS, SHAPES, stats, kw.pop("bands", [0, 1, 2, 3, 4, 5]), 7, **kw)


def test_six_channel_stack_and_stride_one_stem() -> None:
    torch.manual_seed(0)
    net = _net().eval()
    assert net.net.Conv2d_1a_3x3.conv.stride == (1, 1) and net.net.Conv2d_1a_3x3.conv.in_channels == 6
    assert net.net.Conv2d_2a_3x3.conv.padding == (1, 1)
    assert getattr(net.net, "AuxLogits", None) is None  # no auxiliary head
    batch = {
        "patch_dct16": torch.randn(2, 4, 16, 16),
        "raster_elevation": torch.randn(2, 1, 8, 8),
        "raster_landcover": torch.randn(2, 13, 8, 8),
    }
    imgs = net.images(batch)
    assert imgs.shape == (2, 6, 64, 64)
    assert net(batch).shape == (2, 7)
    # channel 5 is land-cover band 0: it changes only with that band
    b2 = {**batch, "raster_landcover": batch["raster_landcover"].clone()}
    b2["raster_landcover"][:, 1:] += 5.0
    assert torch.equal(net.images(b2), imgs)


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="outside"):
        _net(bands=[0, 18])
    with pytest.raises(ValueError, match=">= 64"):
        _net(image_size=32)


def test_softmax_loss_uses_the_normalised_species_distribution() -> None:
    loss = build_loss({"kind": "softmax"})
    z = torch.tensor([[2.0, 0.0, -1.0]])
    y = torch.tensor([[1.0, 1.0, 0.0]])
    want = -(0.5 * torch.log_softmax(z, 1)[0, 0] + 0.5 * torch.log_softmax(z, 1)[0, 1])
    assert loss(z, y).item() == pytest.approx(want.item())
    assert loss(z, torch.zeros(1, 3)).item() == 0.0
