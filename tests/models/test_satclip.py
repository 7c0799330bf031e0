"""SatCLIP pieces (glc.models.satclip): the CLIP loss against a float64 numpy reference, the SH + SIREN location
encoder (shapes, init, any lon/lat), the image encoder with cube series, the encoder registry entry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glc.models.satclip import CLIP_INIT_T, LocationEncoder, SatCLIPNet, SirenLayer, clip_logits, clip_loss


def _reference_clip_loss(img: np.ndarray, loc: np.ndarray, t: float) -> float:
    """Symmetric InfoNCE in float64 numpy, written from the CLIP paper's pseudo-code."""
    a = img / np.linalg.norm(img, axis=1, keepdims=True)
    b = loc / np.linalg.norm(loc, axis=1, keepdims=True)
    logits = min(math.exp(t), 100.0) * a @ b.T

    def ce(m: np.ndarray) -> float:
        m = m - m.max(axis=1, keepdims=True)
        logp = m - np.log(np.exp(m).sum(axis=1, keepdims=True))
        return float(-np.mean(np.diag(logp)))

    return 0.5 * (ce(logits) + ce(logits.T))


@pytest.mark.parametrize("t", [CLIP_INIT_T, 0.0, 6.0])
def test_clip_loss_equals_float64_reference(t: float) -> None:
    rng = np.random.default_rng(0)
    img, loc = rng.normal(size=(17, 8)), rng.normal(size=(17, 8))
    got = clip_loss(torch.tensor(img), torch.tensor(loc), torch.tensor(t, dtype=torch.float64))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(_reference_clip_loss(img, loc, t), rel=1e-12, abs=1e-12)
    # float32 agrees to float32 rounding
    got32 = clip_loss(torch.tensor(img, dtype=torch.float32), torch.tensor(loc, dtype=torch.float32), torch.tensor(t))
    assert float(got32) == pytest.approx(_reference_clip_loss(img, loc, t), rel=1e-5)


def test_clip_loss_rewards_matching_pairs_and_clamps_the_scale() -> None:
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(32, 16)))
    matched = clip_loss(z, z.clone(), torch.tensor(CLIP_INIT_T, dtype=torch.float64))
    shuffled = clip_loss(z, z[torch.randperm(32)], torch.tensor(CLIP_INIT_T, dtype=torch.float64))
    assert float(matched) < 0.1 < float(shuffled)
    big = clip_logits(z, z, torch.tensor(50.0, dtype=torch.float64))
    assert float(big.abs().max()) == pytest.approx(100.0)


def test_location_encoder_any_point_shapes_init_and_errors() -> None:
    torch.manual_seed(0)
    enc = LocationEncoder(sh_degree=10, hidden=32, n_layers=3, dim=16, w0=30.0, dropout=0.0).eval()
    lon = torch.tensor([-20.0, 2.35, 35.0, 179.9], dtype=torch.float64)
    lat = torch.tensor([30.0, 48.85, 70.0, -89.0], dtype=torch.float64)
    z = enc(lon, lat)
    assert z.shape == (4, 16) and z.dtype == torch.float32 and torch.isfinite(z).all()
    first, later = enc.siren[0], enc.siren[2]
    assert isinstance(first, SirenLayer) and first.w0 == 30.0 and float(first.linear.weight.abs().max()) <= 1.0 / 100
    assert later.w0 == 1.0 and float(later.linear.weight.abs().max()) <= math.sqrt(6.0 / 32)
    # nearby points embed closer than far ones (a smooth function of the sphere)
    near = enc(torch.tensor([2.36], dtype=torch.float64), torch.tensor([48.86], dtype=torch.float64))
    assert torch.dist(z[1], near[0]) < torch.dist(z[1], z[2])
    with pytest.raises(ValueError, match="non-finite lon/lat"):
        enc(torch.tensor([float("nan")]), torch.tensor([0.0]))


def test_satclip_net_with_cubes_trains_one_step() -> None:
    torch.manual_seed(0)
    shape = (4, 8, 8)
    cubes = {"bioclim_dct": ((4, 16), np.zeros((4, 16), np.float32), np.ones((4, 16), np.float32))}
    net = SatCLIPNet(
        shape,
        np.zeros(shape, np.float32),
        np.ones(shape, np.float32),
        LocationEncoder(5, 16, 2, 12),
        channels=(8,),
        reduce=4,
        cubes=cubes,
    )
    b = {
        "tile": torch.randn(6, *shape),
        "lon": torch.linspace(-5, 20, 6, dtype=torch.float64),
        "lat": torch.linspace(40, 55, 6, dtype=torch.float64),
        "bioclim_dct": torch.randn(6, 4, 16),
    }
    assert net.image(b).shape == (6, 12) and net.locate(b["lon"], b["lat"]).shape == (6, 12)
    loss = net.loss(b)
    loss.backward()
    assert net.t.grad is not None and net.cube_proj.weight.grad is not None
    assert float(net.t) == pytest.approx(CLIP_INIT_T)


def test_satclip_is_a_registered_encoder_with_its_config() -> None:
    from glc.config import ConfigError, load_encoder_config, resolve_encoder
    from glc.models.registry import get_encoder

    spec = get_encoder("satclip")
    assert spec.objective == "clip" and spec.monitor == "val/clip_loss" and spec.monitor_mode == "min"
    assert set(spec.embeddings) == {"location_embedding", "image_embedding"}
    cfg = load_encoder_config("satclip")
    assert cfg["encoder"]["sh_degree"] == 40 and cfg["encoder"]["grid_points"] >= 100_000
    with pytest.raises(ConfigError, match="heatmap_lonlat"):
        resolve_encoder({"encoder": {"kind": "satclip", "heatmap_lonlat": [0.0, 95.0]}})
    with pytest.raises(ConfigError, match="unknown|not a known"):
        resolve_encoder({"encoder": {"kind": "satclip", "margin": 1.0}})
