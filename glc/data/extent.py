"""Where the data says anything: the study extent and the land/sea mask, read from a GeoTIFF of the data root.

Prediction at new points and maps (:mod:`glc.predict.points`, :mod:`glc.predict.maps`) must not invent values at sea
or outside the rasters. The mask is the nodata pattern of one environmental raster: GLC24's rasters are nodata over
the sea (e.g. ``Lights2009_WGS84.tif``: uint8, nodata 127). :func:`data_extent` picks, among the rasters of the data
root that declare a nodata value, the one with the fewest pixels (the coarsest, so it is read whole once: the
human-footprint rasters are 6860 x 4605; the 11 GB elevation raster is never the pick when another one exists).

Each point gets a status (:data:`STATUSES`): ``ok`` (on land inside the raster), ``sea`` (the raster's pixel is
nodata) or ``outside_extent`` (outside the raster). A data root without any usable GeoTIFF (e.g. the Kaggle layout,
which ships pre-extracted CSVs only) falls back to the GLC study box (:data:`glc.data.layout.GLC_BBOX`) with every
point inside it counted as ``ok`` — :attr:`DataExtent.source` says so, and reports print it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glc.data.layout import GLC_BBOX, RASTER_GROUPS, detect_layout

log = logging.getLogger(__name__)

__all__ = ["STATUSES", "DataExtent", "data_extent", "mask_raster", "mask_raster_candidates"]

#: Point statuses, in code order (``status_codes`` returns indices into this tuple).
STATUSES: tuple[str, ...] = ("ok", "sea", "outside_extent")
OK, SEA, OUTSIDE = 0, 1, 2


@dataclass(frozen=True)
class DataExtent:
    """The study extent and land mask (see the module docstring).

    Attributes:
        bbox: ``(west, south, east, north)`` in degrees (EPSG:4326).
        land: ``(height, width)`` bool grid, True on land (None: no raster; all of ``bbox`` counts as land).
        transform: affine transform of ``land`` (lon/lat degrees).
        source: the raster the mask comes from, or a sentence saying there was none.
    """

    bbox: tuple[float, float, float, float]
    land: np.ndarray | None
    transform: object | None
    source: str

    def status_codes(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Index into :data:`STATUSES` for each point (``uint8``; non-finite coordinates are ``outside_extent``)."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        w, s, e, n = self.bbox
        finite = np.isfinite(lon) & np.isfinite(lat)
        inside = finite & (lon >= w) & (lon < e) & (lat > s) & (lat <= n)
        out = np.full(lon.shape, OUTSIDE, dtype=np.uint8)
        if self.land is None:
            out[inside] = OK
            return out
        col, row = ~self.transform @ (np.where(inside, lon, 0.0), np.where(inside, lat, 0.0))  # type: ignore[operator]
        col = np.floor(np.asarray(col)).astype(np.int64)
        row = np.floor(np.asarray(row)).astype(np.int64)
        h, wd = self.land.shape
        inside &= (col >= 0) & (col < wd) & (row >= 0) & (row < h)
        on_land = np.zeros(lon.shape, dtype=bool)
        on_land[inside] = self.land[row[inside], col[inside]]
        out[inside] = np.where(on_land[inside], OK, SEA)
        return out

    def statuses(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Status names (object array) of each point."""
        return np.asarray(STATUSES, dtype=object)[self.status_codes(lon, lat)]

    def check_bbox(self, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """``bbox`` clipped to the extent.

        Raises:
            ValueError: ``bbox`` is malformed or does not overlap the data extent (naming both).
        """
        w, s, e, n = (float(v) for v in bbox)
        if not all(np.isfinite([w, s, e, n])) or not (w < e and s < n):
            raise ValueError(f"bbox={bbox}: expected west,south,east,north in degrees with west < east and south < north")
        W, S, E, N = self.bbox
        cw, cs, ce, cn = max(w, W), max(s, S), min(e, E), min(n, N)
        if not (cw < ce and cs < cn):
            raise ValueError(
                f"bbox={bbox} (west,south,east,north, degrees) lies outside the data extent {self.bbox} "
                f"({self.source}); give a bbox that overlaps it"
            )
        return cw, cs, ce, cn


def mask_raster_candidates(data_root: str | Path) -> list[Path]:
    """GeoTIFFs of the data root that could serve as the land mask (every raster group's files that exist)."""
    layout = detect_layout(data_root)
    found: list[Path] = []
    for group in RASTER_GROUPS:
        try:
            found += layout.raster_paths(group)
        except (ValueError, FileNotFoundError, OSError):
            continue
    return found


def mask_raster(data_root: str | Path) -> Path | None:
    """The GeoTIFF :func:`data_extent` takes the land mask from: among the data root's rasters with a nodata value
    and a geographic CRS, the one with the fewest pixels (ties: the first path); None when there is none."""
    from glc.data.rasters import raster_info

    infos = [raster_info(p) for p in mask_raster_candidates(data_root)]
    usable = [i for i in infos if i.nodata is not None and i.crs is not None and i.crs.is_geographic]
    return min(usable, key=lambda i: (i.width * i.height, str(i.path))).path if usable else None


def data_extent(data_root: str | Path, raster: str | Path | None = None) -> DataExtent:
    """The extent and land mask of ``data_root`` (or of an explicit ``raster``), see the module docstring.

    Raises:
        ValueError: an explicit ``raster`` declares no nodata value (it cannot tell land from sea).
    """
    import rasterio

    picked = Path(raster) if raster is not None else mask_raster(data_root)
    candidates = [picked] if picked is not None else []
    if not candidates:
        log.warning("no GeoTIFF with a nodata value under %s: the land mask is unknown; every point inside the GLC "
                    "study box %s counts as land", data_root, GLC_BBOX)
        return DataExtent(GLC_BBOX, None, None, f"no GeoTIFF with nodata under {data_root}: GLC study box, land unknown")
    path = candidates[0]
    with rasterio.open(path) as src:
        if src.nodata is None:
            raise ValueError(f"land-mask raster {path} declares no nodata value, so it cannot tell land from sea; pick another")
        band = src.read(1)
        nodata = src.nodata
        land = ~np.isnan(band) if np.isnan(nodata) else (band != nodata)
        if np.issubdtype(band.dtype, np.floating):
            land &= np.isfinite(band)
        b = src.bounds
        return DataExtent((float(b.left), float(b.bottom), float(b.right), float(b.top)), land, src.transform, str(path))
