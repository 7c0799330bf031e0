"""Geography of the synthetic world: land, countries, biogeographic regions, the raster grid, towns.

Countries are assigned by the nearest of ~300 real city anchors (a Voronoi approximation of the borders), and
biogeographic regions by simple rules on position, elevation and the latent climate (see :func:`assign_regions`),
so that metadata looks like GLC24's (``CONTINENTAL``, ``ATLANTIC``, ``MEDITERRANEAN``, ``ALPINE``, ``BOREAL``,
``PANNONIAN``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glc.data.layout import GLC_BBOX
from glc.synth._landmask import load_landmask

KM_PER_DEG = 111.195

#: (country, [(lon, lat, relative population), ...]) for real cities; the first city of each country is its capital.
_CITIES: tuple[tuple[str, tuple[tuple[float, float, float], ...]], ...] = (
    (
        "France",
        (
            (2.35, 48.86, 10),
            (4.84, 45.76, 2.2),
            (5.37, 43.30, 1.8),
            (1.44, 43.60, 1.3),
            (-0.58, 44.84, 1.2),
            (-1.55, 47.22, 1.0),
            (3.06, 50.63, 1.2),
            (7.75, 48.58, 0.8),
            (-4.49, 48.39, 0.3),
            (3.08, 45.78, 0.5),
            (5.04, 47.32, 0.4),
            (3.88, 43.61, 0.7),
            (1.26, 45.83, 0.3),
            (1.10, 49.44, 0.6),
            (5.72, 45.19, 0.7),
            (8.74, 41.93, 0.1),
            (0.34, 46.58, 0.3),
            (1.91, 47.90, 0.4),
            (4.03, 49.26, 0.3),
            (-1.68, 48.11, 0.7),
            (6.18, 48.69, 0.4),
            (0.69, 47.39, 0.4),
            (2.30, 49.89, 0.2),
            (-0.36, 49.18, 0.3),
            (6.02, 47.24, 0.2),
        ),
    ),
    (
        "Denmark",
        (
            (12.57, 55.68, 2.0),
            (10.20, 56.16, 0.6),
            (10.39, 55.40, 0.3),
            (9.92, 57.05, 0.3),
            (8.45, 55.48, 0.15),
            (9.40, 56.45, 0.1),
            (11.70, 55.30, 0.1),
            (9.50, 55.25, 0.1),
        ),
    ),
    (
        "Netherlands",
        (
            (4.90, 52.37, 1.5),
            (4.48, 51.92, 1.2),
            (5.12, 52.09, 0.6),
            (6.57, 53.22, 0.4),
            (5.47, 51.44, 0.4),
            (6.09, 52.51, 0.2),
            (5.90, 51.98, 0.3),
            (4.30, 52.08, 0.8),
        ),
    ),
    ("Belgium", ((4.35, 50.85, 1.5), (4.40, 51.22, 0.8), (5.57, 50.63, 0.5), (4.87, 50.47, 0.2), (3.72, 51.05, 0.4))),
    ("Luxembourg", ((6.13, 49.61, 0.3),)),
    (
        "Germany",
        (
            (13.40, 52.52, 4.0),
            (9.99, 53.55, 2.0),
            (11.58, 48.14, 1.8),
            (6.96, 50.94, 1.3),
            (8.68, 50.11, 1.0),
            (9.18, 48.78, 0.8),
            (12.37, 51.34, 0.7),
            (9.73, 52.37, 0.6),
            (11.08, 49.45, 0.6),
            (13.74, 51.05, 0.6),
            (12.10, 54.09, 0.2),
            (9.48, 51.31, 0.2),
            (7.47, 51.51, 1.5),
            (8.80, 53.08, 0.6),
            (11.03, 50.98, 0.2),
            (10.52, 52.27, 0.3),
            (7.84, 47.99, 0.3),
            (11.63, 52.13, 0.3),
            (10.13, 54.32, 0.3),
        ),
    ),
    (
        "Switzerland",
        (
            (8.54, 47.37, 1.0),
            (7.45, 46.95, 0.4),
            (6.14, 46.20, 0.6),
            (8.95, 46.00, 0.2),
            (9.53, 46.85, 0.05),
            (7.36, 46.23, 0.05),
            (7.59, 47.56, 0.4),
        ),
    ),
    (
        "Austria",
        (
            (16.37, 48.21, 2.0),
            (15.44, 47.07, 0.3),
            (14.29, 48.31, 0.3),
            (13.04, 47.81, 0.2),
            (11.40, 47.27, 0.2),
            (14.31, 46.62, 0.1),
            (9.74, 47.50, 0.1),
        ),
    ),
    (
        "Italy",
        (
            (12.50, 41.90, 4.0),
            (9.19, 45.46, 3.0),
            (14.27, 40.85, 2.0),
            (7.69, 45.07, 1.5),
            (11.26, 43.77, 0.8),
            (11.34, 44.49, 0.8),
            (12.32, 45.44, 0.5),
            (16.87, 41.12, 0.6),
            (13.36, 38.12, 0.8),
            (9.12, 39.22, 0.3),
            (15.65, 38.11, 0.2),
            (14.21, 42.46, 0.2),
            (11.12, 46.07, 0.1),
            (8.93, 44.41, 0.6),
            (15.09, 37.50, 0.4),
            (8.56, 40.73, 0.1),
            (15.80, 40.64, 0.1),
            (13.51, 43.62, 0.2),
            (10.99, 45.44, 0.3),
            (11.88, 45.41, 0.3),
            (13.78, 45.65, 0.2),
            (12.25, 43.11, 0.1),
            (16.25, 39.30, 0.1),
            (18.17, 40.35, 0.1),
        ),
    ),
    (
        "Spain",
        (
            (-3.70, 40.42, 5.0),
            (2.17, 41.39, 3.5),
            (-0.38, 39.47, 1.5),
            (-5.98, 37.39, 1.2),
            (-0.89, 41.65, 0.7),
            (-2.93, 43.26, 0.8),
            (-8.41, 43.36, 0.3),
            (-4.72, 41.65, 0.3),
            (-3.60, 37.18, 0.3),
            (-1.13, 37.99, 0.5),
            (-6.97, 38.88, 0.15),
            (2.65, 39.57, 0.4),
            (-5.66, 40.97, 0.15),
            (-1.86, 38.99, 0.15),
            (-5.85, 43.36, 0.2),
            (-4.42, 36.72, 0.6),
            (-0.48, 38.35, 0.3),
            (-15.43, 28.12, 0.4),
            (-16.25, 28.46, 0.3),
            (-1.64, 42.81, 0.2),
            (-4.03, 39.86, 0.1),
            (-6.37, 39.47, 0.1),
            (-8.54, 42.88, 0.1),
        ),
    ),
    (
        "Portugal",
        (
            (-9.14, 38.72, 2.5),
            (-8.61, 41.15, 1.2),
            (-7.93, 37.02, 0.2),
            (-8.43, 40.21, 0.2),
            (-6.76, 41.81, 0.05),
            (-16.91, 32.65, 0.1),
            (-25.67, 37.74, 0.1),
            (-7.91, 38.57, 0.05),
            (-7.50, 40.28, 0.05),
        ),
    ),
    (
        "United Kingdom",
        (
            (-0.13, 51.51, 9.0),
            (-1.90, 52.49, 1.2),
            (-2.24, 53.48, 1.5),
            (-4.25, 55.86, 0.8),
            (-3.19, 55.95, 0.5),
            (-3.18, 51.48, 0.4),
            (-1.61, 54.98, 0.4),
            (-4.22, 57.48, 0.05),
            (1.30, 52.63, 0.2),
            (-4.14, 50.38, 0.2),
            (-5.93, 54.60, 0.3),
            (-1.55, 53.80, 0.8),
            (-2.59, 51.45, 0.5),
            (-2.10, 57.15, 0.2),
            (-3.44, 58.59, 0.02),
            (-5.05, 56.40, 0.02),
        ),
    ),
    (
        "Ireland",
        ((-6.26, 53.35, 1.2), (-8.47, 51.90, 0.2), (-9.05, 53.27, 0.1), (-8.63, 52.66, 0.1), (-8.47, 54.27, 0.02)),
    ),
    (
        "Norway",
        (
            (10.75, 59.91, 0.7),
            (5.32, 60.39, 0.3),
            (10.40, 63.43, 0.2),
            (18.96, 69.65, 0.05),
            (14.40, 67.28, 0.05),
            (5.73, 58.97, 0.15),
            (10.47, 61.12, 0.03),
            (8.00, 58.15, 0.05),
            (25.0, 70.0, 0.01),
            (7.16, 62.74, 0.03),
            (11.5, 65.0, 0.01),
            (8.6, 60.8, 0.01),
        ),
    ),
    (
        "Sweden",
        (
            (18.07, 59.33, 1.5),
            (11.97, 57.71, 0.6),
            (13.00, 55.60, 0.4),
            (20.26, 63.83, 0.1),
            (22.15, 65.58, 0.05),
            (14.64, 63.18, 0.04),
            (14.16, 57.78, 0.1),
            (20.23, 67.86, 0.02),
            (17.31, 62.39, 0.05),
            (13.50, 59.38, 0.08),
            (15.62, 58.41, 0.15),
            (16.35, 56.66, 0.06),
            (17.14, 60.67, 0.07),
            (14.0, 61.5, 0.01),
            (17.5, 65.5, 0.01),
        ),
    ),
    (
        "Finland",
        (
            (24.94, 60.17, 1.2),
            (23.76, 61.50, 0.3),
            (25.47, 65.01, 0.2),
            (27.68, 62.89, 0.1),
            (25.73, 66.50, 0.05),
            (22.27, 60.45, 0.2),
            (21.62, 63.10, 0.06),
            (25.75, 62.24, 0.1),
            (28.19, 61.06, 0.06),
            (27.0, 68.5, 0.01),
            (29.0, 64.0, 0.01),
        ),
    ),
    (
        "Poland",
        (
            (21.01, 52.23, 1.8),
            (19.94, 50.06, 0.8),
            (18.65, 54.35, 0.5),
            (17.04, 51.11, 0.6),
            (16.93, 52.41, 0.5),
            (23.16, 53.13, 0.3),
            (22.57, 51.25, 0.3),
            (14.55, 53.43, 0.4),
            (19.46, 51.76, 0.7),
            (19.02, 50.26, 1.0),
            (18.00, 53.12, 0.3),
            (20.49, 53.78, 0.2),
            (21.00, 50.04, 0.2),
        ),
    ),
    (
        "Czech Republic",
        (
            (14.42, 50.08, 1.3),
            (16.61, 49.20, 0.4),
            (18.29, 49.82, 0.3),
            (13.38, 49.74, 0.2),
            (14.47, 48.97, 0.1),
            (15.83, 50.21, 0.1),
        ),
    ),
    ("Slovakia", ((17.11, 48.15, 0.4), (21.26, 48.72, 0.25), (19.15, 48.74, 0.08), (18.74, 49.22, 0.08))),
    (
        "Hungary",
        (
            (19.04, 47.50, 1.8),
            (21.63, 47.53, 0.2),
            (20.15, 46.25, 0.2),
            (18.23, 46.07, 0.15),
            (17.63, 47.69, 0.12),
            (20.78, 48.10, 0.15),
            (16.55, 47.23, 0.05),
        ),
    ),
    ("Slovenia", ((14.51, 46.06, 0.3), (15.65, 46.55, 0.1), (13.73, 45.55, 0.05))),
    (
        "Croatia",
        (
            (15.98, 45.81, 0.8),
            (16.44, 43.51, 0.2),
            (14.44, 45.33, 0.15),
            (18.69, 45.55, 0.1),
            (15.23, 44.12, 0.08),
            (18.09, 42.65, 0.04),
            (13.85, 44.87, 0.04),
        ),
    ),
    ("Bosnia and Herzegovina", ((18.41, 43.86, 0.4), (17.19, 44.77, 0.2), (17.81, 43.34, 0.1), (18.67, 44.54, 0.1))),
    (
        "Serbia",
        ((20.46, 44.79, 1.3), (19.83, 45.27, 0.3), (21.90, 43.32, 0.2), (20.91, 44.01, 0.15), (21.16, 42.66, 0.2)),
    ),
    ("Montenegro", ((19.26, 42.44, 0.2), (18.94, 42.77, 0.05))),
    ("Albania", ((19.82, 41.33, 0.6), (19.51, 42.07, 0.1), (20.14, 40.08, 0.05))),
    ("North Macedonia", ((21.43, 42.00, 0.5), (21.33, 41.03, 0.08))),
    (
        "Greece",
        (
            (23.73, 37.98, 3.0),
            (22.94, 40.64, 0.8),
            (21.73, 38.25, 0.2),
            (20.85, 39.67, 0.1),
            (25.14, 35.34, 0.2),
            (22.42, 39.64, 0.15),
            (25.87, 40.85, 0.05),
            (22.11, 37.04, 0.05),
        ),
    ),
    (
        "Bulgaria",
        (
            (23.32, 42.70, 1.2),
            (24.75, 42.14, 0.35),
            (27.91, 43.21, 0.3),
            (27.47, 42.50, 0.2),
            (24.62, 43.42, 0.1),
            (25.95, 43.85, 0.1),
        ),
    ),
    (
        "Romania",
        (
            (26.10, 44.43, 1.8),
            (23.59, 46.77, 0.3),
            (27.60, 47.16, 0.3),
            (21.23, 45.76, 0.3),
            (28.63, 44.18, 0.3),
            (25.60, 45.65, 0.25),
            (23.80, 44.32, 0.25),
            (24.15, 45.79, 0.15),
            (26.25, 47.65, 0.1),
        ),
    ),
    ("Moldova", ((28.86, 47.01, 0.6), (27.93, 47.76, 0.1))),
    (
        "Ukraine",
        (
            (30.52, 50.45, 3.0),
            (24.03, 49.84, 0.7),
            (30.72, 46.48, 1.0),
            (36.23, 49.99, 1.4),
            (35.05, 48.46, 1.0),
            (26.25, 50.62, 0.2),
            (28.47, 49.23, 0.35),
            (32.06, 49.44, 0.2),
            (33.39, 49.07, 0.2),
            (31.29, 51.49, 0.2),
            (32.00, 46.97, 0.4),
            (34.10, 44.95, 0.3),
            (22.29, 48.62, 0.1),
            (35.14, 47.84, 0.7),
        ),
    ),
    (
        "Belarus",
        (
            (27.56, 53.90, 2.0),
            (23.69, 52.10, 0.3),
            (30.98, 52.44, 0.5),
            (30.20, 55.19, 0.35),
            (23.83, 53.68, 0.3),
            (30.33, 53.90, 0.35),
        ),
    ),
    ("Lithuania", ((25.28, 54.69, 0.6), (23.90, 54.90, 0.3), (21.14, 55.70, 0.15))),
    ("Latvia", ((24.11, 56.95, 0.6), (26.54, 55.87, 0.08), (21.01, 56.51, 0.07))),
    ("Estonia", ((24.75, 59.44, 0.45), (26.72, 58.38, 0.1), (24.50, 58.39, 0.05))),
    (
        "Russia",
        (
            (30.34, 59.93, 5.0),
            (20.51, 54.71, 0.5),
            (32.05, 54.78, 0.3),
            (28.33, 57.82, 0.2),
            (34.36, 61.79, 0.25),
            (33.08, 68.97, 0.3),
            (34.36, 53.24, 0.4),
            (31.27, 58.52, 0.2),
            (35.9, 56.86, 0.4),
            (33.5, 64.5, 0.01),
            (35.0, 66.5, 0.01),
        ),
    ),
    (
        "Turkey",
        (
            (28.98, 41.01, 10.0),
            (26.56, 41.68, 0.15),
            (27.14, 38.42, 3.0),
            (29.06, 40.19, 2.0),
            (30.71, 36.90, 1.2),
            (32.86, 39.93, 4.0),
            (32.49, 37.87, 1.2),
            (35.33, 41.29, 0.5),
            (29.09, 37.78, 0.5),
            (30.52, 39.78, 0.8),
            (34.63, 36.80, 1.0),
            (27.88, 39.65, 0.3),
        ),
    ),
    ("Cyprus", ((33.38, 35.17, 0.3),)),
    ("Malta", ((14.51, 35.90, 0.2),)),
    ("Iceland", ((-21.94, 64.15, 0.2), (-18.09, 65.68, 0.02), (-14.40, 65.27, 0.005), (-15.20, 64.25, 0.005))),
    (
        "Morocco",
        (
            (-6.84, 34.02, 1.8),
            (-5.00, 34.03, 1.2),
            (-7.99, 31.63, 0.9),
            (-5.83, 35.76, 0.9),
            (-9.60, 30.43, 0.4),
            (-1.91, 34.68, 0.5),
            (-7.59, 33.57, 3.5),
            (-5.55, 33.89, 0.6),
            (-6.35, 32.34, 0.2),
            (-13.20, 27.15, 0.2),
        ),
    ),
    (
        "Algeria",
        (
            (3.06, 36.75, 3.0),
            (-0.64, 35.70, 1.0),
            (6.61, 36.37, 0.5),
            (5.73, 34.85, 0.2),
            (3.67, 32.49, 0.1),
            (-2.22, 31.62, 0.1),
            (5.41, 36.19, 0.3),
            (7.77, 36.90, 0.3),
            (4.35, 36.19, 0.1),
        ),
    ),
    ("Tunisia", ((10.18, 36.81, 2.0), (10.76, 34.74, 0.3), (8.78, 34.43, 0.1), (10.64, 35.83, 0.2))),
    (
        "Libya",
        ((13.19, 32.89, 1.2), (20.07, 32.12, 0.6), (16.59, 31.21, 0.1), (15.09, 32.38, 0.2), (22.64, 32.77, 0.05)),
    ),
    (
        "Egypt",
        ((29.92, 31.20, 5.0), (31.24, 30.04, 10.0), (32.30, 31.26, 0.6), (31.50, 28.10, 0.3), (27.24, 31.35, 0.05)),
    ),
    ("Israel", ((34.78, 32.08, 1.5), (35.21, 31.77, 0.8), (34.79, 31.25, 0.2))),
    ("Lebanon", ((35.50, 33.89, 1.5),)),
    ("Syria", ((35.78, 35.52, 0.4),)),
)

#: Relative density of PA survey clusters per country (loosely after the GLC24 PA test set, plus coverage of
#: the boreal, Pannonian and Iberian regions).
PA_COUNTRY_WEIGHTS: dict[str, float] = {
    "Denmark": 12.0,
    "France": 14.0,
    "Netherlands": 8.0,
    "Italy": 6.0,
    "Austria": 3.0,
    "Switzerland": 2.5,
    "Germany": 3.0,
    "Spain": 3.0,
    "Poland": 2.0,
    "Belgium": 1.5,
    "Czech Republic": 1.5,
    "Croatia": 1.0,
    "Slovenia": 0.8,
    "Hungary": 1.0,
    "Sweden": 1.5,
    "Norway": 0.8,
    "Finland": 0.8,
    "United Kingdom": 2.0,
    "Ireland": 0.7,
    "Portugal": 1.0,
    "Slovakia": 0.5,
    "Bosnia and Herzegovina": 0.3,
    "Montenegro": 0.3,
    "Greece": 0.5,
    "Bulgaria": 0.5,
    "Romania": 0.6,
    "Estonia": 0.3,
    "Latvia": 0.2,
    "Lithuania": 0.2,
    "Serbia": 0.3,
    "Albania": 0.1,
    "Luxembourg": 0.1,
    "North Macedonia": 0.1,
}

#: Countries whose land counts as "Europe" for PO sampling away from towns.
EUROPE: frozenset[str] = frozenset(PA_COUNTRY_WEIGHTS) | {"Belarus", "Ukraine", "Moldova", "Russia", "Malta", "Cyprus"}


@dataclass(frozen=True)
class Cities:
    """The built-in city anchors.

    Attributes:
        lon, lat: coordinates.
        pop: relative population (capital of France = 10).
        country: country index per city (into ``names``).
        names: country names.
    """

    lon: np.ndarray
    lat: np.ndarray
    pop: np.ndarray
    country: np.ndarray
    names: tuple[str, ...]


def cities() -> Cities:
    """Return the built-in city anchors as arrays."""
    names = tuple(c for c, _ in _CITIES)
    rows = [(lon, lat, pop, i) for i, (_, cs) in enumerate(_CITIES) for lon, lat, pop in cs]
    a = np.array(rows, dtype=np.float64)
    return Cities(lon=a[:, 0], lat=a[:, 1], pop=a[:, 2], country=a[:, 3].astype(np.int64), names=names)


def local_xy_km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An equal-area-ish projection (sinusoidal, km) good enough for distances within Europe."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return (lon - 10.0) * np.cos(np.radians(lat)) * KM_PER_DEG, lat * KM_PER_DEG


def country_of(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Country name of each point: the country of the nearest city anchor (object array of str)."""
    from scipy.spatial import cKDTree

    c = cities()
    cx, cy = local_xy_km(c.lon, c.lat)
    px, py = local_xy_km(lon, lat)
    _, idx = cKDTree(np.column_stack([cx, cy])).query(np.column_stack([px, py]))
    return np.asarray(c.names, dtype=object)[c.country[idx]]


@dataclass(frozen=True)
class RasterGrid:
    """The GeoTIFF grid of a world: EPSG:4326 over the GLC bounding box at ``res`` degrees.

    Attributes:
        west, north: the upper-left corner.
        res: cell size in degrees.
        width, height: size in pixels.
    """

    west: float
    north: float
    res: float
    width: int
    height: int

    @classmethod
    def for_resolution(cls, res: float) -> RasterGrid:
        """The grid covering :data:`glc.data.layout.GLC_BBOX` at ``res`` degrees."""
        if not (0.001 <= res <= 2.0):
            raise ValueError(f"raster_res_deg must be within [0.001, 2] degrees, got {res}")
        west, south, east, north = GLC_BBOX
        return cls(
            west=west,
            north=north,
            res=res,
            width=int(np.ceil((east - west) / res)),
            height=int(np.ceil((north - south) / res)),
        )

    def pixel_of(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, col)`` of the pixel containing each point (clipped to the grid)."""
        col = np.floor((np.asarray(lon) - self.west) / self.res).astype(np.int64)
        row = np.floor((self.north - np.asarray(lat)) / self.res).astype(np.int64)
        return np.clip(row, 0, self.height - 1), np.clip(col, 0, self.width - 1)

    def centre_of(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lon, lat)`` of pixel centres."""
        return self.west + (np.asarray(col) + 0.5) * self.res, self.north - (np.asarray(row) + 0.5) * self.res

    def col_lons(self) -> np.ndarray:
        """Longitudes of the column centres."""
        return self.west + (np.arange(self.width) + 0.5) * self.res

    def row_lats(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Latitudes of the centres of rows ``start..stop``."""
        stop = self.height if stop is None else stop
        return self.north - (np.arange(start, stop) + 0.5) * self.res


def is_valid_site(lon: np.ndarray, lat: np.ndarray, grid: RasterGrid) -> np.ndarray:
    """True where a site may lie: on land, and its raster pixel centre on land too (so rasters have data there)."""
    mask = load_landmask()
    west, south, east, north = GLC_BBOX
    lon = np.asarray(lon)
    lat = np.asarray(lat)
    inside = (lon > west) & (lon < east) & (lat > south) & (lat < north)
    row, col = grid.pixel_of(lon, lat)
    clon, clat = grid.centre_of(row, col)
    return inside & mask.is_land(lon, lat) & mask.is_land(clon, clat)


#: The biogeographic regions the generator uses (EEA names, as in GLC24's ``region`` column).
REGIONS: tuple[str, ...] = (
    "ALPINE",
    "ATLANTIC",
    "BLACK SEA",
    "BOREAL",
    "CONTINENTAL",
    "MACARONESIAN",
    "MEDITERRANEAN",
    "PANNONIAN",
    "STEPPIC",
)


def assign_regions(
    lon: np.ndarray, lat: np.ndarray, elevation: np.ndarray, summer_dry: np.ndarray, country: np.ndarray
) -> np.ndarray:
    """Biogeographic region of each site from position, elevation (m) and summer dryness (0..1).

    Rules, first match wins: Macaronesian islands; mountains (>= 1000 m, or >= 600 m north of 59 N) are ALPINE;
    the Atlantic fringe (Norway's south-west coast, and west of a line from 2 E at 45 N to ~10 E at 56 N, plus
    Ireland/UK/north-west Iberia) is ATLANTIC; summer-dry places are MEDITERRANEAN; the Hungarian basin is
    PANNONIAN; the west Black Sea coast is BLACK SEA; the lowlands east of 26.5 E between 44 and 49 N are STEPPIC;
    Fennoscandia and the Baltics are BOREAL; everything else is CONTINENTAL.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    elev = np.asarray(elevation, dtype=np.float64)
    dry = np.asarray(summer_dry, dtype=np.float64)
    country = np.asarray(country, dtype=object)
    out = np.full(lon.shape, "CONTINENTAL", dtype=object)
    done = np.zeros(lon.shape, dtype=bool)

    def put(mask: np.ndarray, name: str) -> None:
        m = mask & ~done
        out[m] = name
        done[m] = True

    put((lon < -12.0) & (lat < 40.0), "MACARONESIAN")
    put((elev >= 1000.0) | ((elev >= 600.0) & (lat >= 59.0)), "ALPINE")
    atlantic_line = lon < 2.0 + (lat - 45.0) * 0.7
    put((lat >= 58.0) & (lat <= 63.0) & (lon < 7.0) & (country == "Norway"), "ATLANTIC")
    put(np.isin(country, ["Ireland", "United Kingdom"]), "ATLANTIC")
    put((lat >= 42.6) & (lon < -1.5) & np.isin(country, ["Spain", "Portugal"]), "ATLANTIC")
    put((lat >= 44.0) & (lat < 58.0) & atlantic_line, "ATLANTIC")
    put(dry >= 0.5, "MEDITERRANEAN")
    put((lon >= 16.3) & (lon <= 22.8) & (lat >= 45.3) & (lat <= 48.6) & (elev < 350.0), "PANNONIAN")
    put((lon >= 27.3) & (lon <= 30.5) & (lat >= 41.0) & (lat <= 44.0), "BLACK SEA")
    put((lon >= 26.5) & (lat >= 44.0) & (lat <= 49.0) & (elev < 400.0), "STEPPIC")
    boreal_c = np.isin(country, ["Sweden", "Finland", "Norway", "Estonia", "Latvia", "Lithuania", "Russia"])
    put(boreal_c & ~((country == "Sweden") & (lat < 56.8)) & (lat >= 53.8), "BOREAL")
    return out
