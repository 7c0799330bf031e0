"""Projections and distances.

Every metric distance in glc (spatial blocks, neighbour radii, coordinate noise) is computed in EPSG:3035
(ETRS89 / LAEA Europe, metres), the equal-area projection the EU uses for Europe-wide grids. Never a UTM zone:
DS@GT's first survey table was projected to a Madagascar UTM zone and every km cutoff was off by 1-30 %.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LAEA_EUROPE = "EPSG:3035"
WGS84 = "EPSG:4326"


@lru_cache(maxsize=4)
def _transformer(src: str, dst: str):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def to_laea(lon: np.ndarray | float, lat: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 lon/lat (degrees) to EPSG:3035 x/y (metres).

    Raises:
        ValueError: if any coordinate is not finite or outside [-180, 180] x [-90, 90].
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} coordinate(s) are not valid WGS84 lon/lat, first at index {i}: "
            f"lon={lon.flat[i]}, lat={lat.flat[i]}; clean or drop those rows before projecting"
        )
    x, y = _transformer(WGS84, LAEA_EUROPE).transform(lon, lat)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_lonlat(x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_laea`."""
    lon, lat = _transformer(LAEA_EUROPE, WGS84).transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return np.asarray(lon), np.asarray(lat)
