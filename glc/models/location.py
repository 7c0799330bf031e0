"""Coordinate encoders: a survey's location as features, shared by every model that reads where a survey is.

* :class:`XYEncoder` (``"xy"``): EPSG:3035 metres centred on the projection's origin (52°N 10°E: false easting
  ``X0 = 4 321 000``, northing ``Y0 = 3 210 000``) and scaled by 1000 km, so GLC's Europe maps to about [-2, 3.5].
* :class:`SinusoidalEncoder` (``"sinusoidal"``): multi-scale sinusoids of the centred x/y, wavelengths geometric from
  ``min_scale_km`` to ``max_scale_km``: ``[sin(2 pi dx / w_k)] + [cos(2 pi dx / w_k)] + [the same for dy]``
  (phases in float64).
* :class:`SphericalHarmonicsEncoder` (``"sh"``): real orthonormal spherical harmonics of (lon, lat),
  :func:`real_spherical_harmonics` (SatCLIP's ``L²`` features).
* :class:`CoordinateNoise`: training-time isotropic Gaussian displacement in EPSG:3035 metres, applied to x/y and,
  through a spherical Lambert azimuthal equal-area round trip (:func:`laea_sphere_forward`,
  :func:`laea_sphere_inverse`), to lon/lat, so both still describe one point.

:data:`COORDINATE_ENCODERS` is the lookup table of the encoders by name (what each reads and how it is built); the
geolocation net (:mod:`glc.models.geolocation`), the fusion net's location branch and SatCLIP's location encoder
(:mod:`glc.models.satclip`) use these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "COORDINATE_ENCODERS",
    "ENCODERS",
    "CoordinateEncoder",
    "CoordinateNoise",
    "SinusoidalEncoder",
    "SphericalHarmonicsEncoder",
    "XYEncoder",
    "laea_sphere_forward",
    "laea_sphere_inverse",
    "real_spherical_harmonics",
]

#: EPSG:3035 false easting / northing (metres): the projected position of its origin, 52°N 10°E.
X0_M = 4_321_000.0
Y0_M = 3_210_000.0
#: Scale of the ``xy`` encoder (metres): 1000 km.
XY_SCALE_M = 1_000_000.0
#: EPSG:3035's projection centre and the GRS80 authalic radius used by the spherical LAEA of the coordinate noise.
LAEA_LAT0_DEG = 52.0
LAEA_LON0_DEG = 10.0
AUTHALIC_RADIUS_M = 6_371_007.181


# ------------------------------------------------------------------------------------------------ encoders
class XYEncoder(nn.Module):
    """Centred, scaled EPSG:3035 x/y: ``((x - X0) / 1e6, (y - Y0) / 1e6)`` (float64 in, float64 out)."""

    out_dim = 2

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """``[B]`` x, ``[B]`` y (metres) -> ``[B, 2]``."""
        return torch.stack([(x - X0_M) / XY_SCALE_M, (y - Y0_M) / XY_SCALE_M], dim=-1)


class SinusoidalEncoder(nn.Module):
    """Multi-scale sinusoids of the centred EPSG:3035 x/y (see the module docstring for the feature order).

    Args:
        n_scales: number of wavelengths (>= 1).
        min_scale_km: smallest wavelength (km, > 0).
        max_scale_km: largest wavelength (km, >= min_scale_km); ``n_scales == 1`` uses ``min_scale_km`` only.
    """

    def __init__(self, n_scales: int = 8, min_scale_km: float = 1.0, max_scale_km: float = 2000.0) -> None:
        super().__init__()
        if n_scales == 1:
            km = [float(min_scale_km)]
        else:
            ratio = (max_scale_km / min_scale_km) ** (1.0 / (n_scales - 1))
            km = [min_scale_km * ratio**k for k in range(n_scales)]
            km[-1] = float(max_scale_km)
        self.wavelengths_km: tuple[float, ...] = tuple(km)  # plain floats: module.float()/half() cannot round them
        self.out_dim = 4 * n_scales

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """``[B]`` x, ``[B]`` y (metres, float64) -> ``[B, 4 * n_scales]`` float64."""
        freq = 2.0 * math.pi / (torch.tensor(self.wavelengths_km, dtype=torch.float64, device=x.device) * 1000.0)
        px = (x - X0_M).unsqueeze(-1) * freq
        py = (y - Y0_M).unsqueeze(-1) * freq
        return torch.cat([torch.sin(px), torch.cos(px), torch.sin(py), torch.cos(py)], dim=-1)

    def extra_repr(self) -> str:
        return f"wavelengths_km={[round(w, 3) for w in self.wavelengths_km]}"


def real_spherical_harmonics(lon_deg: Tensor, lat_deg: Tensor, degree: int) -> Tensor:
    """Real, orthonormal spherical harmonics of degrees ``0 .. degree - 1`` at (lon, lat), in float64.

    Convention: colatitude ``theta = 90° - lat``, azimuth ``phi = lon``; column ``l² + l + m`` holds
    ``Y_lm`` for ``m = -l .. l``::

        Y_l0  = N_l0 P_l^0(cos theta)
        Y_lm  = sqrt(2) N_lm P_l^m(cos theta) cos(m phi)        (m > 0)
        Y_l-m = sqrt(2) N_lm P_l^m(cos theta) sin(m phi)        (m > 0)
        N_lm  = sqrt((2l + 1) / (4 pi) * (l - m)! / (l + m)!)

    with the associated Legendre functions ``P_l^m`` **without** the Condon-Shortley phase ``(-1)^m``; i.e.
    ``Y_lm = sqrt(2) (-1)^m Re Y_l^m`` and ``Y_l-m = sqrt(2) (-1)^m Im Y_l^m`` of the complex (Condon-Shortley)
    harmonics of ``scipy.special.sph_harm_y``. They are orthonormal on the unit sphere (∫ Y_i Y_j dΩ = δ_ij).
    SatCLIP uses the same L² functions (its sign and latitude conventions differ, which only flips signs /
    reflects the basis). ``N_lm P_l^m`` is computed with the standard stable recurrences of the fully normalised
    functions (no factorials), vectorised over orders, in torch, so it runs on the input's device.

    Args:
        lon_deg: longitudes in degrees, any shape ``[...]``.
        lat_deg: latitudes in degrees, same shape.
        degree: ``L >= 1``: the number of degrees (``L²`` functions).

    Returns:
        float64 tensor ``[..., L²]``.
    """
    if int(degree) != degree or degree < 1:
        raise ValueError(f"sh degree must be an integer >= 1, got {degree!r}")
    L = int(degree)
    lon = lon_deg.to(torch.float64)
    lat = torch.deg2rad(lat_deg.to(torch.float64))
    phi = torch.deg2rad(lon).unsqueeze(-1)
    ct = torch.sin(lat).unsqueeze(-1)  # cos(theta)
    st = torch.cos(lat).clamp(min=0.0).unsqueeze(-1)  # sin(theta) >= 0
    dev = lon.device
    ms = torch.arange(L, dtype=torch.float64, device=dev)

    # diagonal: Pbar_m^m = sqrt(1 / 4pi) * prod_{k<=m} sqrt((2k + 1) / 2k) * sin(theta)^m
    diag_coef = [math.sqrt(1.0 / (4.0 * math.pi))]
    for m in range(1, L):
        diag_coef.append(diag_coef[-1] * math.sqrt((2 * m + 1) / (2 * m)))
    diag = torch.tensor(diag_coef, dtype=torch.float64, device=dev) * st.pow(ms)  # [..., L]

    rows: list[Tensor] = [diag[..., :1]]  # rows[l][..., m] = Pbar_l^m, m = 0..l
    for l in range(1, L):  # noqa: E741 - the degree is called l
        parts = []
        if l >= 2:
            m = torch.arange(l - 1, dtype=torch.float64, device=dev)
            a = torch.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
            b = torch.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1.0))
            parts.append(a * (ct * rows[l - 1][..., : l - 1] - b * rows[l - 2][..., : l - 1]))
        parts.append(math.sqrt(2 * l + 1) * ct * diag[..., l - 1 : l])  # Pbar_l^(l-1)
        parts.append(diag[..., l : l + 1])  # Pbar_l^l
        rows.append(torch.cat(parts, dim=-1))

    cos_m = torch.cos(phi * ms)
    sin_m = torch.sin(phi * ms)
    out = []
    for l in range(L):  # noqa: E741
        p = rows[l]
        if l == 0:
            out.append(p)
            continue
        neg = math.sqrt(2.0) * (p[..., 1:] * sin_m[..., 1 : l + 1]).flip(-1)  # m = -l .. -1
        pos = math.sqrt(2.0) * p[..., 1:] * cos_m[..., 1 : l + 1]  # m = 1 .. l
        out.append(torch.cat([neg, p[..., :1], pos], dim=-1))
    return torch.cat(out, dim=-1)


class SphericalHarmonicsEncoder(nn.Module):
    """Real spherical harmonics of (lon, lat), degrees ``0 .. degree - 1`` (``degree²`` features, float64)."""

    def __init__(self, degree: int = 10) -> None:
        super().__init__()
        self.degree = int(degree)
        self.out_dim = self.degree**2

    def forward(self, lon: Tensor, lat: Tensor) -> Tensor:
        """``[B]`` lon, ``[B]`` lat (degrees) -> ``[B, degree²]`` float64."""
        return real_spherical_harmonics(lon, lat, self.degree)

    def extra_repr(self) -> str:
        return f"degree={self.degree}"


# ------------------------------------------------------------------------------------------ coordinate noise
def laea_sphere_forward(lon_deg: Tensor, lat_deg: Tensor) -> tuple[Tensor, Tensor]:
    """Spherical Lambert azimuthal equal-area (Snyder 1987, "Map Projections: A Working Manual", ch. 24) with
    EPSG:3035's centre (52°N 10°E) and the GRS80 authalic radius; float64 metres.

    Relative to the centre (no false easting/northing). Used only to move lon/lat by a metric displacement.
    """
    lam = torch.deg2rad(lon_deg.to(torch.float64) - LAEA_LON0_DEG)
    phi = torch.deg2rad(lat_deg.to(torch.float64))
    p1 = math.radians(LAEA_LAT0_DEG)
    cos_c = math.sin(p1) * torch.sin(phi) + math.cos(p1) * torch.cos(phi) * torch.cos(lam)
    k = torch.sqrt(2.0 / (1.0 + cos_c).clamp(min=1e-12))
    X = AUTHALIC_RADIUS_M * k * torch.cos(phi) * torch.sin(lam)
    Y = AUTHALIC_RADIUS_M * k * (math.cos(p1) * torch.sin(phi) - math.sin(p1) * torch.cos(phi) * torch.cos(lam))
    return X, Y


def laea_sphere_inverse(X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`laea_sphere_forward` (Snyder 1987, ch. 24): metres -> lon/lat degrees."""
    X = X.to(torch.float64)
    Y = Y.to(torch.float64)
    R = AUTHALIC_RADIUS_M
    p1 = math.radians(LAEA_LAT0_DEG)
    rho = torch.hypot(X, Y)
    c = 2.0 * torch.asin((rho / (2.0 * R)).clamp(max=1.0))
    # sin(c) / rho -> 1 / R at the centre; where() keeps the division away from rho = 0
    near = rho < 1e-6
    sinc_rho = torch.where(
        near, torch.full_like(rho, 1.0 / R), torch.sin(c) / torch.where(near, torch.ones_like(rho), rho)
    )
    lat = torch.asin((torch.cos(c) * math.sin(p1) + Y * sinc_rho * math.cos(p1)).clamp(-1.0, 1.0))
    lon = LAEA_LON0_DEG + torch.rad2deg(
        torch.atan2(X * sinc_rho, math.cos(p1) * torch.cos(c) - Y * sinc_rho * math.sin(p1))
    )
    lon = torch.remainder(lon + 180.0, 360.0) - 180.0
    return lon, torch.rad2deg(lat)


class CoordinateNoise(nn.Module):
    """Training-time isotropic Gaussian displacement with mean length ``mean_km`` (identity in eval mode or at 0).

    Args:
        mean_km: mean displacement ``E|d|`` in km (``sigma = mean_km / sqrt(pi / 2)`` per axis); ``0`` = off.
    """

    def __init__(self, mean_km: float = 5.0) -> None:
        super().__init__()
        self.mean_km = float(mean_km)
        self.sigma_m = self.mean_km * 1000.0 / math.sqrt(math.pi / 2.0)

    def forward(
        self, x: Tensor | None, y: Tensor | None, lon: Tensor | None = None, lat: Tensor | None = None
    ) -> tuple[Tensor | None, ...]:
        """Displace x/y (metres) and lon/lat (degrees) by one shared draw; returns float64 ``(x, y, lon, lat)``.

        Any pair may be ``None`` (returned as ``None``); at least one pair must be given.
        """
        f64 = [None if t is None else t.to(torch.float64) for t in (x, y, lon, lat)]
        if not (self.training and self.mean_km > 0):
            return tuple(f64)
        ref = f64[0] if f64[0] is not None else f64[2]
        if ref is None:
            raise ValueError("CoordinateNoise needs x/y or lon/lat, got neither")
        dx = torch.randn_like(ref) * self.sigma_m
        dy = torch.randn_like(ref) * self.sigma_m
        nx = ny = nlon = nlat = None
        if f64[0] is not None:
            nx, ny = f64[0] + dx, f64[1] + dy
        if f64[2] is not None:
            X, Y = laea_sphere_forward(f64[2], f64[3])
            nlon, nlat = laea_sphere_inverse(X + dx, Y + dy)
        return nx, ny, nlon, nlat

    def extra_repr(self) -> str:
        return f"mean_km={self.mean_km}, sigma_m={self.sigma_m:.1f}"


@dataclass(frozen=True)
class CoordinateEncoder:
    """One entry of :data:`COORDINATE_ENCODERS`.

    Attributes:
        coords: the batch keys it reads, in call order (``("x", "y")`` metres or ``("lon", "lat")`` degrees).
        build: ``params -> nn.Module`` (keys ``n_scales``, ``min_scale_km``, ``max_scale_km``, ``sh_degree``; each
            encoder reads its own).
    """

    coords: tuple[str, str]
    build: Callable[[Mapping[str, Any]], nn.Module]

    @property
    def geographic(self) -> bool:
        """Reads lon/lat (the coordinate noise moves them through the spherical LAEA round trip)."""
        return self.coords == ("lon", "lat")


#: The coordinate encoders by name.
COORDINATE_ENCODERS: dict[str, CoordinateEncoder] = {
    "xy": CoordinateEncoder(("x", "y"), lambda p: XYEncoder()),
    "sinusoidal": CoordinateEncoder(
        ("x", "y"),
        lambda p: SinusoidalEncoder(int(p["n_scales"]), float(p["min_scale_km"]), float(p["max_scale_km"])),
    ),
    "sh": CoordinateEncoder(("lon", "lat"), lambda p: SphericalHarmonicsEncoder(int(p["sh_degree"]))),
}
ENCODERS: tuple[str, ...] = tuple(COORDINATE_ENCODERS)
