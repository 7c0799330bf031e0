"""Geolocation nets: encoders against independent references, coordinate noise statistics, shapes, a tiny fit."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from glc.config import resolve
from glc.geo import to_laea
from glc.models.geolocation import (
    X0_M,
    Y0_M,
    CoordinateNoise,
    GeolocationNet,
    SinusoidalEncoder,
    build_geolocation_net,
    laea_sphere_forward,
    laea_sphere_inverse,
    real_spherical_harmonics,
)

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
def test_xy_encoder_origin_is_epsg3035_centre() -> None:
    """The documented centre constants are EPSG:3035's projection of its origin 52°N 10°E (checked with pyproj)."""
    x, y = to_laea(10.0, 52.0)
    assert abs(float(x) - X0_M) < 1e-3 and abs(float(y) - Y0_M) < 1e-3
    enc = _net(encoder="xy", hidden=0).encoder
    z = enc(
        torch.tensor([X0_M, X0_M + 1e6], dtype=torch.float64), torch.tensor([Y0_M, Y0_M - 2e6], dtype=torch.float64)
    )
    torch.testing.assert_close(z, torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64))


def test_sinusoid_scales_and_features() -> None:
    enc = SinusoidalEncoder(n_scales=8, min_scale_km=1.0, max_scale_km=2000.0)
    w = np.array(enc.wavelengths_km)
    assert w[0] == 1.0 and w[-1] == 2000.0
    np.testing.assert_allclose(w[1:] / w[:-1], 2000.0 ** (1 / 7), rtol=1e-12)  # geometric
    _, _, x, y = _points(50, seed=3)
    z = enc(torch.tensor(x), torch.tensor(y)).numpy()
    assert z.shape == (50, 32)
    ph_x = 2 * np.pi * (x[:, None] - X0_M) / (w * 1000.0)
    ph_y = 2 * np.pi * (y[:, None] - Y0_M) / (w * 1000.0)
    np.testing.assert_allclose(z, np.hstack([np.sin(ph_x), np.cos(ph_x), np.sin(ph_y), np.cos(ph_y)]), atol=1e-9)
    # shifting x by one wavelength w_k leaves scale k's x features unchanged, but not those of scale k+1
    k = 2
    z2 = enc(torch.tensor(x + w[k] * 1000.0), torch.tensor(y)).numpy()
    np.testing.assert_allclose(z2[:, [k, 8 + k]], z[:, [k, 8 + k]], atol=1e-9)
    assert np.abs(z2[:, k + 1] - z[:, k + 1]).max() > 0.1
    np.testing.assert_allclose(z2[:, 16:], z[:, 16:])  # y features untouched


def test_spherical_harmonics_equal_scipy_real_sh() -> None:
    from scipy.special import sph_harm_y

    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 180, 200), rng.uniform(-90, 90, 200)
    lat[:3] = [90.0, -90.0, 0.0]  # poles and equator
    L = 9
    ours = real_spherical_harmonics(torch.tensor(lon), torch.tensor(lat), L).numpy()
    assert ours.shape == (200, L * L) and ours.dtype == np.float64
    theta, phi = np.radians(90.0 - lat), np.radians(lon)
    for l in range(L):  # noqa: E741
        for m in range(-l, l + 1):
            cplx = sph_harm_y(l, abs(m), theta, phi)  # Condon-Shortley phase included
            if m == 0:
                ref = cplx.real
            elif m > 0:
                ref = math.sqrt(2) * (-1) ** m * cplx.real
            else:
                ref = math.sqrt(2) * (-1) ** m * cplx.imag
            np.testing.assert_allclose(ours[:, l * l + l + m], ref, atol=1e-12, err_msg=f"l={l} m={m}")


def test_spherical_harmonics_orthonormal_by_quadrature() -> None:
    """Gauss-Legendre in cos(theta) x uniform phi integrates products of degree < 2L exactly: Gram = identity."""
    L = 12
    nodes, weights = np.polynomial.legendre.leggauss(L + 1)
    n_phi = 2 * L + 2
    lat = np.degrees(np.arcsin(nodes))  # cos(theta) = sin(lat)
    lon = np.degrees(np.arange(n_phi) * 2 * np.pi / n_phi) - 180.0
    LAT, LON = np.meshgrid(lat, lon, indexing="ij")
    W = (weights[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).ravel()
    Y = real_spherical_harmonics(torch.tensor(LON.ravel()), torch.tensor(LAT.ravel()), L).numpy()
    gram = (Y * W[:, None]).T @ Y
    np.testing.assert_allclose(gram, np.eye(L * L), atol=1e-10)


def test_spherical_harmonics_bad_degree() -> None:
    with pytest.raises(ValueError, match="sh degree must be an integer >= 1"):
        real_spherical_harmonics(torch.zeros(2), torch.zeros(2), 0)


# ----------------------------------------------------------------------------- coordinate noise
def test_laea_sphere_round_trip() -> None:
    lon, lat, _, _ = _points(500, seed=4)
    X, Y = laea_sphere_forward(torch.tensor(lon), torch.tensor(lat))
    lon2, lat2 = laea_sphere_inverse(X, Y)
    np.testing.assert_allclose(lon2.numpy(), lon, atol=1e-9)
    np.testing.assert_allclose(lat2.numpy(), lat, atol=1e-9)
    X0, Y0 = laea_sphere_forward(torch.tensor([10.0]), torch.tensor([52.0]))
    assert abs(X0.item()) < 1e-6 and abs(Y0.item()) < 1e-6
    lonc, latc = laea_sphere_inverse(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    assert abs(lonc.item() - 10.0) < 1e-12 and abs(latc.item() - 52.0) < 1e-12


def test_noise_mean_displacement_is_coord_noise_km() -> None:
    """Mean |d| of the training noise is coord_noise_km = sigma sqrt(pi/2) (Rayleigh mean).

    With n = 40 000 draws, |d| has std sigma sqrt((4 - pi) / 2) = 0.523 * mean, so the sample mean's standard
    error is 0.523 * 5000 m / 200 = 13 m; the 60 m tolerance is 4.6 standard errors (seeded, so deterministic).
    """
    torch.manual_seed(0)
    n = 40_000
    lon, lat, x, y = _points(n, seed=5)
    noise = CoordinateNoise(5.0).train()
    nx, ny, nlon, nlat = noise(torch.tensor(x), torch.tensor(y), torch.tensor(lon), torch.tensor(lat))
    dx, dy = nx.numpy() - x, ny.numpy() - y
    d = np.hypot(dx, dy)
    assert abs(d.mean() - 5000.0) < 60.0, d.mean()
    sigma = 5000.0 / math.sqrt(math.pi / 2)
    assert abs(dx.std() / sigma - 1) < 0.03 and abs(dy.std() / sigma - 1) < 0.03  # isotropic, per-axis sigma
    assert abs(dx.mean()) < 60.0 and abs(dy.mean()) < 60.0
    # lon/lat moved by the same displacement: their EPSG:3035 projection lands on the noisy x/y (pyproj, GRS80)
    px, py = to_laea(nlon.numpy(), nlat.numpy())
    err = np.hypot(px - nx.numpy(), py - ny.numpy())
    assert (err <= 0.01 * d + 1.0).all(), float((err / np.maximum(d, 1.0)).max())


def test_noise_zero_and_eval_mode_are_identity() -> None:
    b = _batch(16)
    x = b["x"]
    for noise in (CoordinateNoise(5.0).eval(), CoordinateNoise(0.0).train()):
        nx, ny, nlon, nlat = noise(b["x"], b["y"], b["lon"], b["lat"])
        assert torch.equal(nx, x.double()) and torch.equal(nlat, b["lat"].double())


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
