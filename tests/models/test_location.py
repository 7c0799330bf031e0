"""Coordinate encoders against independent references (pyproj, scipy's spherical harmonics, quadrature) and the
coordinate noise's statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glc.geo import to_laea
from glc.models.location import (
    COORDINATE_ENCODERS,
    X0_M,
    Y0_M,
    CoordinateNoise,
    SinusoidalEncoder,
    laea_sphere_forward,
    laea_sphere_inverse,
    real_spherical_harmonics,
)


def _points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random lon/lat over GLC's Europe and their EPSG:3035 x/y (pyproj)."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-10.0, 30.0, n)
    lat = rng.uniform(36.0, 70.0, n)
    x, y = to_laea(lon, lat)
    return lon, lat, x, y


def test_xy_encoder_origin_is_epsg3035_centre() -> None:
    """The documented centre constants are EPSG:3035's projection of its origin 52°N 10°E (checked with pyproj)."""
    x, y = to_laea(10.0, 52.0)
    assert abs(float(x) - X0_M) < 1e-3 and abs(float(y) - Y0_M) < 1e-3
    enc = COORDINATE_ENCODERS["xy"].build({})
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


def test_encoder_table_builds_each_encoder_with_its_width_and_coordinates() -> None:
    p = {"n_scales": 3, "min_scale_km": 1.0, "max_scale_km": 100.0, "sh_degree": 4}
    widths = {name: e.build(p).out_dim for name, e in COORDINATE_ENCODERS.items()}
    assert widths == {"xy": 2, "sinusoidal": 12, "sh": 16}
    assert [n for n, e in COORDINATE_ENCODERS.items() if e.geographic] == ["sh"]


def test_noise_zero_and_eval_mode_are_identity() -> None:
    lon, lat, x, y = _points(16)
    b = {k: torch.tensor(v, dtype=torch.float32) for k, v in (("x", x), ("y", y), ("lon", lon), ("lat", lat))}
    x = b["x"]
    for noise in (CoordinateNoise(5.0).eval(), CoordinateNoise(0.0).train()):
        nx, ny, nlon, nlat = noise(b["x"], b["y"], b["lon"], b["lat"])
        assert torch.equal(nx, x.double()) and torch.equal(nlat, b["lat"].double())
