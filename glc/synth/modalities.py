"""Per-survey remote-sensing products of the synthetic world: Sentinel-2-like patches, Landsat and bioclim cubes.

All three are driven by the site's latent state, so that they carry the same signal the species respond to:

* the **habitat composition** of the plot's surroundings (fractions of :data:`HABITATS`): patch colours and
  textures, NIR brightness (vegetation), Landsat spectra and their seasonal cycle;
* the **climate** at the site: the monthly bioclimatic cube (temperature, precipitation) and snow in winter
  Landsat quarters where it is cold;
* the **survey year**: Landsat quarters after it are NaN (as in GLC24), and patch brightness varies by year.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from glc.data.layout import BIOCLIM_YEARS, LANDSAT_YEARS

#: Fine-scale habitat classes of a plot's surroundings.
HABITATS: tuple[str, ...] = ("water", "urban", "cropland", "grassland", "broadleaf", "conifer", "shrub", "bare")
N_HAB = len(HABITATS)

#: Mean habitat composition of each IGBP class (rows 0..17; row 0 unused), used as a Dirichlet centre.
IGBP_HABITAT_MIX = np.array(
    [
        [0.125] * 8,
        [0.02, 0.01, 0.03, 0.08, 0.08, 0.70, 0.06, 0.02],  # 1 evergreen needleleaf
        [0.01, 0.02, 0.05, 0.07, 0.65, 0.08, 0.10, 0.02],  # 2 evergreen broadleaf
        [0.02, 0.01, 0.03, 0.08, 0.08, 0.70, 0.06, 0.02],  # 3 deciduous needleleaf
        [0.02, 0.02, 0.08, 0.10, 0.65, 0.08, 0.04, 0.01],  # 4 deciduous broadleaf
        [0.02, 0.02, 0.06, 0.10, 0.38, 0.36, 0.05, 0.01],  # 5 mixed forest
        [0.01, 0.02, 0.05, 0.15, 0.07, 0.05, 0.60, 0.05],  # 6 closed shrublands
        [0.01, 0.02, 0.08, 0.20, 0.05, 0.04, 0.45, 0.15],  # 7 open shrublands
        [0.01, 0.02, 0.08, 0.25, 0.25, 0.10, 0.27, 0.02],  # 8 woody savannas
        [0.02, 0.02, 0.10, 0.40, 0.16, 0.14, 0.14, 0.02],  # 9 savannas
        [0.02, 0.03, 0.12, 0.60, 0.08, 0.05, 0.07, 0.03],  # 10 grasslands
        [0.35, 0.01, 0.05, 0.35, 0.07, 0.07, 0.08, 0.02],  # 11 wetlands
        [0.01, 0.04, 0.70, 0.12, 0.07, 0.02, 0.03, 0.01],  # 12 croplands
        [0.02, 0.60, 0.10, 0.15, 0.08, 0.02, 0.02, 0.01],  # 13 urban
        [0.02, 0.04, 0.40, 0.25, 0.16, 0.06, 0.06, 0.01],  # 14 cropland/natural mosaic
        [0.02, 0.00, 0.00, 0.10, 0.00, 0.03, 0.10, 0.75],  # 15 snow and ice
        [0.02, 0.01, 0.02, 0.15, 0.02, 0.03, 0.20, 0.55],  # 16 barren
        [0.70, 0.02, 0.05, 0.10, 0.05, 0.03, 0.03, 0.02],  # 17 water
    ]
)


def habitat_composition(
    rng: np.random.Generator, igbp: np.ndarray, hfp: np.ndarray, concentration: float = 6.0
) -> np.ndarray:
    """Draw each site's habitat fractions ``(N, 8)``: Dirichlet around its IGBP class mix, more urban with footprint.

    Args:
        rng: the generator (one call, vectorized).
        igbp: IGBP class of each site's pixel (1..17).
        hfp: human footprint index (0..50) at each site.
        concentration: Dirichlet concentration (lower = more variable sites).
    """
    base = IGBP_HABITAT_MIX[np.clip(np.asarray(igbp, dtype=np.int64), 0, 17)].copy()
    base[:, 1] += 0.5 * np.clip(np.asarray(hfp, dtype=np.float64), 0, 50) / 50.0
    base /= base.sum(axis=1, keepdims=True)
    g = rng.gamma(concentration * base + 0.02)
    g = np.maximum(g, 1e-12)
    return g / g.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------------ patches
PATCH = 128
_RGB = np.array(
    [
        [28, 42, 58],
        [128, 124, 122],
        [118, 112, 80],
        [88, 108, 66],
        [52, 72, 45],
        [38, 52, 42],
        [110, 104, 80],
        [168, 160, 150],
    ],
    dtype=np.float32,
)
_NIR = np.array([18, 100, 150, 185, 190, 140, 140, 150], dtype=np.float32)
_TEXTURE_SD = np.array([3, 18, 6, 6, 11, 9, 10, 12], dtype=np.float32)
_CROP_PALETTE = np.array(
    [[118, 112, 80], [96, 120, 64], [150, 138, 96], [84, 104, 58], [132, 116, 84]], dtype=np.float32
)
_CROP_NIR = np.array([130, 190, 120, 200, 140], dtype=np.float32)
_HAZE = np.array([16, 17, 14], dtype=np.float32)  # 20 % of a mean Sentinel-2 colour: softens contrast
_YY, _XX = (a.astype(np.float32) for a in np.mgrid[0:PATCH, 0:PATCH])
_NOISE_BANK_SIZE = 32
_NOISE_BANK: np.ndarray | None = None


def _noise_bank() -> np.ndarray:
    """A fixed bank ``(32, 128, 128, 5)`` (same in every process): channels 0-3 white pixel noise, channel 4 a
    smooth fine texture (from a 40 x 40 noise grid)."""
    global _NOISE_BANK
    if _NOISE_BANK is None:
        rng = np.random.default_rng(20240229)
        bank = np.empty((_NOISE_BANK_SIZE, PATCH, PATCH, 5), dtype=np.float32)
        bank[..., :4] = rng.standard_normal((_NOISE_BANK_SIZE, PATCH, PATCH, 4), dtype=np.float32)
        bank[..., 4] = _smooth(rng, 40, count=_NOISE_BANK_SIZE)
        _NOISE_BANK = bank
    return _NOISE_BANK


def _basis(cells: int) -> np.ndarray:
    """A ``(128, cells)`` Gaussian interpolation basis with unit-norm rows (so ``B g B^T`` has unit variance)."""
    centres = (np.arange(cells) + 0.5) * PATCH / cells
    x = np.arange(PATCH) + 0.5
    b = np.exp(-0.5 * ((x[:, None] - centres[None, :]) / (0.75 * PATCH / cells)) ** 2)
    return (b / np.sqrt((b * b).sum(axis=1, keepdims=True))).astype(np.float32)


_BASIS = {c: _basis(c) for c in (5, 40)}


def _smooth(rng: np.random.Generator, cells: int, count: int | None = None) -> np.ndarray:
    """Smooth unit-variance float32 fields on the 128 x 128 patch from ``cells x cells`` white noise.

    Returns ``(128, 128)``, or ``(count, 128, 128)`` when ``count`` is given.
    """
    b = _BASIS[cells]
    g = rng.standard_normal((1 if count is None else count, cells, cells), dtype=np.float32)
    out = (b @ g) @ b.T
    return out[0] if count is None else out


def habitat_map(site_rng: np.random.Generator, comp: np.ndarray) -> np.ndarray:
    """Assign each patch pixel a habitat, matching the composition ``comp`` (to a pixel) as smooth blobs."""
    n = PATCH * PATCH
    counts = np.floor(comp * n).astype(np.int64)
    order = np.argsort(-comp, kind="stable")
    counts[order[0]] += n - counts.sum()
    minor = [int(c) for c in order[1:][::-1] if counts[c] > 0]  # non-dominant classes, smallest first
    out = np.full(n, order[0], dtype=np.int64)
    if not minor:
        return out.reshape(PATCH, PATCH)
    noise = _smooth(site_rng, 5, count=len(minor)).reshape(len(minor), n)
    free = np.ones(n, dtype=bool)
    for c, field in zip(minor, noise):
        k = int(counts[c])
        cand = np.flatnonzero(free)
        take = cand[np.argpartition(-field[cand], k - 1)[:k]]
        out[take] = c
        free[take] = False
    return out.reshape(PATCH, PATCH)


def render_patch(
    site_rng: np.random.Generator, survey_rng: np.random.Generator, comp: np.ndarray, year: int
) -> tuple[bytes, bytes]:
    """Render one survey's RGB (3-channel, 4:2:0) and NIR (mode ``L``) JPEGs, 128 x 128, quality 90.

    The layout (habitat blobs, crop parcels, road grid, texture) is drawn from ``site_rng`` so that repeat visits of
    a plot look alike; brightness, per-year colour shifts and pixel noise come from ``survey_rng``.

    Returns:
        ``(rgb_jpeg_bytes, nir_jpeg_bytes)``.
    """
    rgb, nir = render_pixels(site_rng, survey_rng, comp, year)
    rgb8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    nir8 = np.clip(np.rint(nir), 0, 255).astype(np.uint8)
    out_rgb, out_nir = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb8, mode="RGB").save(out_rgb, format="JPEG", quality=90, subsampling=2)
    Image.fromarray(nir8, mode="L").save(out_nir, format="JPEG", quality=90)
    return out_rgb.getvalue(), out_nir.getvalue()


def render_pixels(
    site_rng: np.random.Generator, survey_rng: np.random.Generator, comp: np.ndarray, year: int
) -> tuple[np.ndarray, np.ndarray]:
    """The float pixels of :func:`render_patch` before rounding: ``(rgb (128, 128, 3), nir (128, 128))`` float32 on
    the GLC24 0..255 scale (not clipped)."""
    hab = habitat_map(site_rng, comp)
    rgb = _RGB[hab]
    nir = _NIR[hab]
    # crop parcels: rotated rectangles, each with its own crop colour
    theta = site_rng.uniform(0, np.pi)
    u = _XX * np.float32(np.cos(theta)) + _YY * np.float32(np.sin(theta))
    v = _YY * np.float32(np.cos(theta)) - _XX * np.float32(np.sin(theta))
    pu, pv = site_rng.uniform(12, 30), site_rng.uniform(20, 45)
    parcel = (np.floor(u / pu).astype(np.int64) * 1009 + np.floor(v / pv).astype(np.int64)) % 4096
    kind = site_rng.integers(0, len(_CROP_PALETTE), size=4096)[parcel]
    crop = hab == 2
    rgb[crop] = _CROP_PALETTE[kind[crop]]
    nir[crop] = _CROP_NIR[kind[crop]]
    # urban road grid
    step = int(site_rng.integers(14, 26))
    grid_lines = ((_XX.astype(np.int64) % step) < 2) | ((_YY.astype(np.int64) % step) < 2)
    roads = (hab == 1) & grid_lines
    rgb[roads] = 90.0
    nir[roads] = 70.0
    # texture: a fine smooth field (a site-specific pick and flip from the bank) scaled per habitat
    pick, fx, fy = (int(v) for v in site_rng.integers((_NOISE_BANK_SIZE, 2, 2)))
    tex = _noise_bank()[pick, :: (1 - 2 * fx), :: (1 - 2 * fy), 4] * _TEXTURE_SD[hab]
    rgb += tex[..., None]
    nir += np.float32(1.4) * tex
    # per-survey (season / year / atmosphere) variation and pixel noise from a fixed bank
    gain = survey_rng.normal(1.0, 0.05) * (1.0 + 0.01 * (year - 2019))
    chan = (gain * survey_rng.normal(1.0, 0.02, size=3)).astype(np.float32)
    nir_gain = np.float32(gain * survey_rng.normal(1.0, 0.03))
    pick, fx, fy = (int(v) for v in survey_rng.integers((_NOISE_BANK_SIZE, 2, 2)))
    noise = _noise_bank()[pick, :: (1 - 2 * fx), :: (1 - 2 * fy)]
    rgb = (np.float32(0.8) * rgb + _HAZE) * chan + np.float32(3.0) * noise[..., :3]
    nir = nir * nir_gain + np.float32(4.0) * noise[..., 3]
    return rgb, nir


#: GLC25 patch reflectance per band (R, G, B, NIR) as ``gain * (GLC24-scale pixel) + offset``: chosen so that the
#: synthetic train patches' band means and standard deviations land near the organizers' GLC25 train statistics
#: (means ~630, 692, 461, 2959; std ~436, 371, 343, 925; ``Stats/Stats_satellite_train.csv``).
GLC25_GAIN = np.array([14.0, 14.7, 14.0, 22.0], np.float32)
GLC25_OFFSET = np.array([-577.0, -703.0, -531.0, -421.0], np.float32)
#: Fraction of GLC25 patches with a nodata strip (a swath or tile edge), and the strip's width range in pixels.
GLC25_NODATA_RATE = 0.03
GLC25_NODATA_WIDTH = (2, 24)


def render_patch_glc25(
    site_rng: np.random.Generator, survey_rng: np.random.Generator, comp: np.ndarray, year: int
) -> np.ndarray:
    """Render one survey's GLC25 patch: ``(4, 64, 64) int16`` reflectances (R, G, B, NIR), nodata -1.

    The same scene as :func:`render_patch` (so a site looks alike in both editions), averaged 2 x 2 to 64 px (10 m
    pixels over 640 m), mapped to reflectance-like values (:data:`GLC25_GAIN`, :data:`GLC25_OFFSET`) with pixel
    noise, clipped to ``1..32767``. :data:`GLC25_NODATA_RATE` of the patches get a nodata strip along one edge.
    """
    rgb, nir = render_pixels(site_rng, survey_rng, comp, year)
    px = np.concatenate([rgb.transpose(2, 0, 1), nir[None]], axis=0)  # (4, 128, 128)
    px = px.reshape(4, 64, 2, 64, 2).mean(axis=(2, 4))
    refl = px * GLC25_GAIN[:, None, None] + GLC25_OFFSET[:, None, None]
    refl = refl + survey_rng.normal(0.0, 12.0, size=refl.shape).astype(np.float32)
    out = np.clip(np.rint(refl), 1, 32767).astype(np.int16)
    if survey_rng.random() < GLC25_NODATA_RATE:
        width = int(survey_rng.integers(*GLC25_NODATA_WIDTH))
        edge = int(survey_rng.integers(4))
        if edge == 0:
            out[:, :width, :] = -1
        elif edge == 1:
            out[:, -width:, :] = -1
        elif edge == 2:
            out[:, :, :width] = -1
        else:
            out[:, :, -width:] = -1
    return out


# ------------------------------------------------------------------------------------------------------ landsat
# Seasonal spectra (band: red, green, blue, nir, swir1, swir2; quarter 1..4) per habitat, in the 0..255 GLC24 scale.
_SPECTRA = np.array(
    [
        [[8, 10, 8, 5, 3, 2]] * 4,  # water
        [[30, 30, 22, 45, 50, 40]] * 4,  # urban
        [[25, 24, 14, 45, 60, 40], [12, 16, 7, 90, 50, 25], [22, 22, 12, 60, 70, 45], [20, 20, 11, 50, 62, 40]],
        [[15, 17, 8, 60, 50, 27], [10, 15, 6, 95, 52, 25], [12, 16, 7, 85, 55, 27], [12, 15, 7, 70, 52, 26]],
        [[12, 12, 7, 40, 35, 18], [7, 11, 5, 110, 45, 18], [6, 10, 5, 115, 45, 17], [9, 11, 6, 70, 40, 18]],
        [[6, 7, 4, 45, 25, 10], [5, 8, 4, 70, 28, 11], [5, 8, 4, 72, 28, 11], [6, 7, 4, 55, 26, 10]],
        [[20, 20, 12, 55, 65, 40], [16, 18, 10, 65, 62, 36], [22, 22, 13, 55, 72, 45], [20, 20, 12, 55, 66, 40]],
        [[45, 42, 32, 55, 80, 65]] * 4,  # bare
    ],
    dtype=np.float64,
).transpose(0, 2, 1)  # -> (habitat, band, quarter)
_SNOW = np.array([140, 145, 150, 130, 20, 15], dtype=np.float64)


def landsat_cube(
    site_rng: np.random.Generator, survey_rng: np.random.Generator, comp: np.ndarray, year: int, t_january: float
) -> np.ndarray:
    """Landsat cube ``(6, 4, 21)`` (band, quarter, year 2000..2020): integers 0..255, NaN after the survey year.

    Mixes the habitat spectra by composition, adds snow to the first quarter where January is below freezing, a
    per-site trend, year-to-year variation and noise; about 0.5 % of the cells are missing (NaN) at random.
    """
    base = np.einsum("h,hbq->bq", comp, _SPECTRA)
    snow = float(np.clip((-t_january - 1.0) / 6.0, 0.0, 0.8))
    base[:, 0] = (1.0 - snow) * base[:, 0] + snow * _SNOW
    years = np.asarray(LANDSAT_YEARS, dtype=np.float64)
    trend = 1.0 + site_rng.normal(0.0, 0.004) * (years - 2010.0)
    yearly = survey_rng.normal(1.0, 0.05, size=(1, 4, len(years)))
    cube = base[:, :, None] * trend[None, None, :] * yearly + survey_rng.normal(0.0, 2.0, size=(6, 4, len(years)))
    cube = np.clip(np.rint(cube), 0, 255)
    cube[:, :, years > year] = np.nan
    cube[survey_rng.uniform(size=cube.shape) < 0.005] = np.nan
    return cube.astype(np.float32)


def bioclim_cube(survey_rng: np.random.Generator, tm: np.ndarray, pm: np.ndarray, dm: np.ndarray) -> np.ndarray:
    """Monthly bioclimatic cube ``(4, 19, 12)`` (pr, tas, tasmax, tasmin; 2000..2018; months) in CHELSA integers.

    Temperatures are K x 10 with a warming trend (0.3 K/decade), year anomalies and monthly noise; precipitation
    is kg m-2 x 100 with log-normal monthly variability.
    """
    years = np.asarray(BIOCLIM_YEARS, dtype=np.float64)
    ny = len(years)
    anom = survey_rng.normal(0.0, 0.6, size=(ny, 1))
    tas_c = tm[None, :] + 0.03 * (years[:, None] - 2009.0) + anom + survey_rng.normal(0.0, 0.8, size=(ny, 12))
    half = dm[None, :] / 2.0 * survey_rng.normal(1.0, 0.08, size=(ny, 12))
    tas = np.rint((tas_c + 273.15) * 10.0)
    tasmax = np.maximum(np.rint((tas_c + np.abs(half) + 273.15) * 10.0), tas)
    tasmin = np.minimum(np.rint((tas_c - np.abs(half) + 273.15) * 10.0), tas)
    pr = np.rint(np.maximum(pm[None, :], 0.0) * 100.0 * survey_rng.lognormal(0.0, 0.5, size=(ny, 12)))
    return np.stack([pr, tas, tasmax, tasmin]).astype(np.float32)
