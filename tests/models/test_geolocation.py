"""Geolocation nets: shapes, extras, the SIREN body, bad batches and configs, a tiny fit (the coordinate encoders
and noise: tests/models/test_location.py)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from glc.config import resolve
from glc.geo import to_laea
from glc.models.geolocation import GeolocationNet, build_geolocation_net

N_REGIONS, ENV_DIM, C = 5, 3, 7
GFV_DIM = C  # the dense graph feature vector has one value per species column
ALL_EXTRAS = ["year", "region", "env", "gfv"]


def _points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random lon/lat over GLC's Europe and their EPSG:3035 x/y (pyproj)."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-10.0, 30.0, n)
    lat = rng.uniform(36.0, 70.0, n)
    x, y = to_laea(lon, lat)
    return lon, lat, x, y


def _batch(n: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """A loader-style batch (float32 coordinates, int64 year/region, float32 env and gfv)."""
    lon, lat, x, y = _points(n, seed)
    rng = np.random.default_rng(seed + 1)
    return {
        "surveyId": torch.arange(n, dtype=torch.int64),
        "x": torch.tensor(x, dtype=torch.float32),
        "y": torch.tensor(y, dtype=torch.float32),
        "lon": torch.tensor(lon, dtype=torch.float32),
        "lat": torch.tensor(lat, dtype=torch.float32),
        "year": torch.tensor(rng.integers(2017, 2022, n), dtype=torch.int64),
        "region": torch.tensor(rng.integers(0, N_REGIONS, n), dtype=torch.int64),
        "env": torch.tensor(rng.normal(size=(n, ENV_DIM)), dtype=torch.float32),
        "gfv": torch.tensor(
            rng.uniform(size=(n, GFV_DIM)) * (rng.uniform(size=(n, GFV_DIM)) < 0.4), dtype=torch.float32
        ),
    }


def _net(**cfg: object) -> GeolocationNet:
    return build_geolocation_net(
        {"sh_degree": 4, "n_scales": 3, "hidden": 16, **cfg},
        C,
        {"region": N_REGIONS, "env": ENV_DIM, "gfv": GFV_DIM, "year": 1},
    )


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("encoder", ["xy", "sinusoidal", "sh"])
@pytest.mark.parametrize("body", ["linear", "mlp", "siren"])
@pytest.mark.parametrize("extras", [[], ALL_EXTRAS])
def test_output_shape_every_encoder_body_and_extras(encoder: str, body: str, extras: list[str]) -> None:
    hidden = 0 if body == "linear" else 16
    net = _net(
        encoder=encoder, hidden=hidden, siren=body == "siren", extras=extras, dropout=0.0 if hidden == 0 else 0.1
    )
    enc_dim = {"xy": 2, "sinusoidal": 4 * 3, "sh": 4**2}[encoder]
    assert net.in_dim == enc_dim + (1 + N_REGIONS + ENV_DIM + GFV_DIM if extras else 0)
    batch = _batch(9)
    for train in (False, True):
        net.train(train)
        out = net(batch)
        assert out.shape == (9, C) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()  # train mode (noise + dropout): gradients reach every parameter and stay finite
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_input_columns_follow_encoder_and_extras() -> None:
    assert _net(encoder="xy", extras=["env"]).input_columns == ("x", "y", "env")
    assert _net(encoder="sh", extras=["year", "region"]).input_columns == ("lon", "lat", "year", "region")
    assert _net(encoder="xy", extras=["gfv", "env"]).input_columns == ("x", "y", "gfv", "env")


def test_gfv_is_concatenated_after_env() -> None:
    """Linear body: logits = W [encoding, env, gfv] + b, so the gfv block of W is exactly the gfv's effect."""
    net = _net(encoder="xy", hidden=0, extras=["gfv", "env"]).eval()
    assert net.in_dim == 2 + ENV_DIM + GFV_DIM
    b = _batch(6)
    z = net.encoder(b["x"], b["y"])
    expected = torch.cat([z, b["env"], b["gfv"]], dim=-1) @ net.body.weight.T + net.body.bias
    torch.testing.assert_close(net(b), expected)
    b2 = {**b, "gfv": torch.zeros_like(b["gfv"])}
    torch.testing.assert_close(net(b) - net(b2), b["gfv"] @ net.body.weight[:, 2 + ENV_DIM :].T)


def test_siren_body_uses_sitzmann_init() -> None:
    net = _net(encoder="sinusoidal", n_scales=8, hidden=64, siren=True)
    sine, _, out = net.body
    assert type(sine).__name__ == "SineLayer" and sine.w0 == 30.0
    w = sine.linear.weight
    assert w.abs().max() <= 1 / 32 and w.abs().max() > 0.9 / 32  # U(-1/in, 1/in), in = 4 * 8
    bound = math.sqrt(6 / 64) / 30
    assert out.weight.abs().max() <= bound and out.weight.abs().max() > 0.9 * bound
    z = torch.randn(5, 32)
    torch.testing.assert_close(sine(z), torch.sin(30.0 * (z @ w.T + sine.linear.bias)))


def test_defaults_come_from_config() -> None:
    net = build_geolocation_net({"kind": "geolocation", "top_n": 10}, C, {"region": N_REGIONS, "env": 0})
    m = resolve({"model": {"kind": "geolocation"}})["model"]
    assert net.encoder_name == m["encoder"] and net.noise.mean_km == m["coord_noise_km"]
    assert net.body[0].out_features == m["hidden"]  # 2-layer MLP: Linear(in, 256) -> ReLU -> Dropout -> Linear(256, C)
    assert [type(layer).__name__ for layer in net.body] == ["Linear", "ReLU", "Dropout", "Linear"]


# ----------------------------------------------------------------------------- encoders


@pytest.mark.parametrize("encoder", ["sinusoidal", "sh"])
def test_net_eval_is_deterministic_and_noise_free_train_is_noisy(encoder: str) -> None:
    torch.manual_seed(0)
    noisy = _net(encoder=encoder, coord_noise_km=5.0, dropout=0.0, n_scales=8)
    clean = _net(encoder=encoder, coord_noise_km=0.0, dropout=0.0, n_scales=8)
    clean.load_state_dict(copy.deepcopy(noisy.state_dict()))
    b = _batch(32)
    noisy.eval()
    e1, e2 = noisy(b), noisy(b)
    assert torch.equal(e1, e2)
    assert torch.equal(e1, clean.eval()(b))  # eval mode adds no noise
    assert torch.equal(clean.train()(b), e1)  # noise 0 is the identity in training mode too
    noisy.train()
    t1, t2 = noisy(b), noisy(b)
    assert not torch.equal(t1, e1) and not torch.equal(t1, t2)


# ----------------------------------------------------------------------------- learning
def test_mlp_learns_spatial_pattern_better_than_linear() -> None:
    """Species present inside disks (not linearly separable in x/y): the MLP must beat the linear model held out."""
    lon, lat, x, y = _points(1200, seed=7)
    centres = to_laea(np.array([0.0, 15.0, 25.0, 5.0]), np.array([45.0, 50.0, 60.0, 62.0]))
    dist = np.hypot(x[:, None] - centres[0][None], y[:, None] - centres[1][None])
    target = torch.tensor(dist < 700_000.0, dtype=torch.float32)
    assert 0.1 < target.mean() < 0.5
    batch = {"x": torch.tensor(x, dtype=torch.float32), "y": torch.tensor(y, dtype=torch.float32)}
    tr, te = slice(0, 1000), slice(1000, None)

    def fit(hidden: int) -> float:
        torch.manual_seed(0)
        net = build_geolocation_net({"encoder": "xy", "hidden": hidden, "coord_noise_km": 0.0}, 4, {})
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        loss = torch.nn.BCEWithLogitsLoss()
        for _ in range(300):
            opt.zero_grad()
            loss(net({k: v[tr] for k, v in batch.items()}), target[tr]).backward()
            opt.step()
        with torch.no_grad():
            return loss(net.eval()({k: v[te] for k, v in batch.items()}), target[te]).item()

    linear, mlp = fit(0), fit(64)
    assert mlp < 0.5 * linear, (mlp, linear)  # measured: 0.028 vs 0.301


# ----------------------------------------------------------------------------- errors
def test_missing_batch_key_raises_naming_it() -> None:
    b = _batch(4)
    with pytest.raises(KeyError, match=r"needs batch key 'x'"):
        _net(encoder="xy")({k: v for k, v in b.items() if k != "x"})
    with pytest.raises(KeyError, match=r"needs batch key 'lat'"):
        _net(encoder="sh")({k: v for k, v in b.items() if k != "lat"})
    with pytest.raises(KeyError, match=r"needs batch key 'env'"):
        _net(extras=["env"])({k: v for k, v in b.items() if k != "env"})
    with pytest.raises(KeyError, match=r"needs batch key 'gfv'"):
        _net(extras=["gfv"])({k: v for k, v in b.items() if k != "gfv"})


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("x", lambda b: torch.where(torch.arange(4) == 2, torch.nan, b["x"]), r"batch\['x'\] has 1 non-finite"),
        (
            "year",
            lambda b: torch.zeros(4, dtype=torch.int64),
            r"batch\['year'\] has years outside \(1950, 2100\) \(e.g. 0\)",
        ),
        (
            "region",
            lambda b: torch.full((4,), N_REGIONS),
            r"batch\['region'\] has region codes outside 0..4 \(e.g. 5\)",
        ),
        ("env", lambda b: torch.zeros(4, ENV_DIM + 1), r"batch\['env'\] has shape \(4, 4\), expected \[B, env_dim=3\]"),
        ("gfv", lambda b: torch.zeros(4, GFV_DIM + 1), r"batch\['gfv'\] has shape \(4, 8\), expected \[B, gfv_dim=7\]"),
        ("gfv", lambda b: torch.zeros(4), r"batch\['gfv'\] has shape \(4,\), expected \[B, gfv_dim=7\]"),
        (
            "gfv",
            lambda b: torch.where(torch.arange(GFV_DIM) == 3, torch.inf, b["gfv"]),
            r"batch\['gfv'\] has 4 non-finite",
        ),
        ("y", lambda b: b["y"][:3], r"batch\['y'\] has shape \(3,\)"),
    ],
)
def test_bad_batch_values_raise(key: str, value, match: str) -> None:
    b = _batch(4)
    b[key] = value(b)
    with pytest.raises(ValueError, match=match):
        _net(encoder="xy", extras=ALL_EXTRAS)(b)


@pytest.mark.parametrize(
    "cfg,dims,match",
    [
        ({"encoder": "fourier"}, {}, r"encoder 'fourier' is unknown; valid encoders are \['xy', 'sinusoidal', 'sh'\]"),
        ({"extras": ["elevation"]}, {}, r"unknown extra\(s\) \['elevation'\]; valid extras"),
        ({"extras": ["env"]}, {"env": 0}, r"extras has 'env' but env_dim is 0"),
        (
            {"extras": ["gfv"]},
            {"gfv": 0},
            r"extras has 'gfv' but gfv_dim is 0; build the model inputs with the GraphFeatures",
        ),
        ({"extras": ["gfv"]}, {}, r"extras has 'gfv' but gfv_dim is 0"),
        ({"extras": ["region"]}, {}, r"extras has 'region' but n_regions is 0"),
        ({"hidden": 0, "siren": True}, {}, r"siren = true needs hidden > 0"),
        ({"hidden": 0, "dropout": 0.2}, {}, r"dropout = 0.2 has no effect on the linear model"),
        ({"hiden": 64}, {}, r"unknown key\(s\) \['hiden'\]"),
        ({"min_scale_km": 10.0, "max_scale_km": 1.0}, {}, r"min_scale_km / max_scale_km"),
        ({"coord_noise_km": -1.0}, {}, r"coord_noise_km must be a finite number >= 0"),
        ({"sh_degree": 0}, {}, r"sh_degree must be an integer in \[1, 100\]"),
        ({}, {"altitude": 1}, r"extra_dims: unknown extra\(s\) \['altitude'\]"),
    ],
)
def test_bad_config_raises(cfg: dict, dims: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_geolocation_net(cfg, C, dims)
