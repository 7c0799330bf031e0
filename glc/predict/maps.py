"""Species maps: an experiment's probabilities on a regular grid, written as a tiled, compressed GeoTIFF.

``python -m glc map`` (and the ``SpeciesMap`` task) call :func:`write_species_map`: the grid (:func:`map_grid`)
covers a lon/lat box at ``resolution_km`` in an equal-area CRS (EPSG:3035 by default); cell centres are classified
with the data root's land mask (:mod:`glc.data.extent`) and only land cells are scored, tile by tile (``tile`` x
``tile`` cells per window, the rows of a window in batches sized so one batch of dense scores stays under
``memory_mb``), so memory does not grow with the map. Bands: one float32 band per requested species (probability in
[0, 1]) and, with ``richness``, a last band holding the sum of every species' probability (the expected number of
species). Cells at sea or outside the data are nodata (:data:`NODATA`). Band descriptions name each band
(``species 1234``, ``richness``) so ``gdalinfo`` and rasterio show them.

:func:`preview_png` draws a band with a colour bar and the land outline (matplotlib).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from glc.data.extent import OK, DataExtent

if TYPE_CHECKING:  # pragma: no cover
    from glc.predict.points import PointModel

log = logging.getLogger(__name__)

__all__ = ["NODATA", "MapGrid", "map_grid", "preview_png", "write_species_map"]

#: Value of cells at sea or outside the data.
NODATA = -1.0
DEFAULT_CRS = "EPSG:3035"


@dataclass(frozen=True)
class MapGrid:
    """A north-up grid: ``width`` x ``height`` cells of ``res`` map units from ``(west, north)`` in ``crs``."""

    crs: str
    west: float
    north: float
    res: float
    width: int
    height: int

    @property
    def transform(self) -> Any:
        """The affine transform (rasterio)."""
        from rasterio.transform import from_origin

        return from_origin(self.west, self.north, self.res, self.res)

    def centres(self, row0: int, row1: int, col0: int, col1: int) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of the cell centres of rows ``row0:row1`` and columns ``col0:col1`` (row-major, flat)."""
        xs = self.west + (np.arange(col0, col1) + 0.5) * self.res
        ys = self.north - (np.arange(row0, row1) + 0.5) * self.res
        X, Y = np.meshgrid(xs, ys)
        return X.ravel(), Y.ravel()


def _transformer(src: str, dst: str) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def map_grid(extent: DataExtent, bbox: Sequence[float] | None, resolution_km: float, crs: str = DEFAULT_CRS) -> MapGrid:
    """The grid covering ``bbox`` (west, south, east, north in degrees; None = the data extent) at ``resolution_km``.

    The box's outline (densified, 100 points per edge) is projected to ``crs``; the grid snaps outward to whole
    multiples of the resolution.

    Raises:
        ValueError: a non-positive resolution, a bbox outside the data extent, or a grid over 10^9 cells.
    """
    from pyproj import CRS

    if not (math.isfinite(resolution_km) and resolution_km > 0):
        raise ValueError(f"resolution_km={resolution_km!r} must be a positive number of kilometres")
    target = CRS.from_user_input(crs)
    if target.is_geographic:
        raise ValueError(f"crs={crs!r} is geographic; maps need a projected CRS in metres (e.g. EPSG:3035)")
    w, s, e, n = extent.check_bbox(tuple(bbox) if bbox is not None else extent.bbox)
    t = np.linspace(0.0, 1.0, 101)
    lon = np.concatenate([w + (e - w) * t, np.full_like(t, e), e - (e - w) * t, np.full_like(t, w)])
    lat = np.concatenate([np.full_like(t, s), s + (n - s) * t, np.full_like(t, n), n - (n - s) * t])
    x, y = _transformer("EPSG:4326", target.to_string()).transform(lon, lat)
    x, y = np.asarray(x), np.asarray(y)
    res = float(resolution_km) * 1000.0
    x0, x1 = math.floor(np.min(x) / res) * res, math.ceil(np.max(x) / res) * res
    y0, y1 = math.floor(np.min(y) / res) * res, math.ceil(np.max(y) / res) * res
    width, height = int(round((x1 - x0) / res)), int(round((y1 - y0) / res))
    if width * height > 10**9:
        raise ValueError(
            f"a {width} x {height} grid at {resolution_km} km is too large "
            "(> 10^9 cells); use a coarser resolution or a smaller bbox"
        )
    return MapGrid(target.to_string(), x0, y1, res, width, height)


def _rows_per_batch(n_species: int, memory_mb: float) -> int:
    # a dense batch holds species ids (int64) + probabilities (float32) + sort workspace: ~ 24 bytes per score
    return max(256, int(memory_mb * 2**20 / (24 * max(1, n_species))))


def write_species_map(
    model: PointModel,
    grid: MapGrid,
    path: str | Path,
    species: Sequence[int] = (),
    richness: bool = True,
    tile: int = 256,
    memory_mb: float = 256.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every land cell of ``grid`` and write the GeoTIFF at ``path`` (atomically). Returns a summary.

    Raises:
        ValueError: no band requested, or the grid has no land cell.
        KeyError: a species id the model does not know (before anything is written).
    """
    import rasterio
    from rasterio.windows import Window
    from tqdm.auto import tqdm

    from glc.io import atomic_path

    species = [int(s) for s in species]
    if not species and not richness:
        raise ValueError("a map needs at least one band: give species ids and/or richness")
    model.species_positions(species)  # unknown ids fail before anything is written
    descriptions = [f"species {s}" for s in species] + (["richness"] if richness else [])
    to_lonlat = _transformer(grid.crs, "EPSG:4326")
    rows_per = _rows_per_batch(len(model.vocab), memory_mb)
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": len(descriptions),
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }
    t0 = time.perf_counter()
    counts = {"cells": grid.width * grid.height, "land": 0, "sea": 0, "outside_extent": 0}
    vmax = np.zeros(len(descriptions), np.float64)
    windows = [(r, c) for r in range(0, grid.height, tile) for c in range(0, grid.width, tile)]
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for k, d in enumerate(descriptions, start=1):
            dst.set_band_description(k, d)
        for r0, c0 in tqdm(windows, desc=f"map {Path(path).name}", unit="tile", disable=not progress):
            r1, c1 = min(r0 + tile, grid.height), min(c0 + tile, grid.width)
            X, Y = grid.centres(r0, r1, c0, c1)
            lon, lat = to_lonlat.transform(X, Y)
            status = (
                model.extent.status_codes(np.asarray(lon), np.asarray(lat))
                if model.extent is not None
                else np.zeros(len(X), np.uint8)
            )
            counts["land"] += int((status == OK).sum())
            counts["sea"] += int((status == 1).sum())
            counts["outside_extent"] += int((status == 2).sum())
            out = np.full((len(descriptions), len(X)), NODATA, np.float32)
            land = np.flatnonzero(status == OK)
            for b0 in range(0, len(land), rows_per):
                idx = land[b0 : b0 + rows_per]
                frame = model.frame(_points(np.asarray(lon)[idx], np.asarray(lat)[idx], grid.crs, ids=idx))
                P, rich = model.dense(frame, species)
                vals = np.vstack([P.T, rich[None, :]]) if richness else P.T
                if not np.isfinite(vals).all():
                    raise ValueError(
                        f"the model produced non-finite scores in map window rows {r0}:{r1}, cols {c0}:{c1}"
                    )
                out[:, idx] = vals
                vmax = np.maximum(vmax, vals.max(axis=1))
            dst.write(out.reshape(len(descriptions), r1 - r0, c1 - c0), window=Window(c0, r0, c1 - c0, r1 - r0))
    if counts["land"] == 0:
        Path(path).unlink(missing_ok=True)
        raise ValueError(
            "the map grid has no land cell (source of the land mask: "
            f"{model.extent.source if model.extent else 'none'}); check the bbox"
        )
    return {
        "path": str(path),
        "crs": grid.crs,
        "resolution_km": grid.res / 1000.0,
        "width": grid.width,
        "height": grid.height,
        "bands": descriptions,
        "nodata": NODATA,
        "max_value": {d: float(v) for d, v in zip(descriptions, vmax)},
        **counts,
        "land_mask": model.extent.source if model.extent is not None else None,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _points(lon: np.ndarray, lat: np.ndarray, crs: str, ids: np.ndarray | None = None) -> Any:
    import pandas as pd

    ids = np.arange(len(lon), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    return pd.DataFrame({"id": ids, "lon": np.asarray(lon, np.float64), "lat": np.asarray(lat, np.float64)})


def preview_png(tif: str | Path, band: int, png: str | Path, max_pixels: int = 1200, title: str | None = None) -> Path:
    """A PNG of one band of a map GeoTIFF: colour bar, nodata in light grey, the land outline in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio

    from glc.io import atomic_path

    with rasterio.open(tif) as src:
        scale = max(1.0, max(src.width, src.height) / max_pixels)
        shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale)))
        a = src.read(band, out_shape=shape).astype(np.float64)
        nodata = src.nodata
        desc = src.descriptions[band - 1] or f"band {band}"
        b = src.bounds
        crs = src.crs.to_string() if src.crs else ""
    valid = a != nodata
    fig, ax = plt.subplots(figsize=(7, 7 * shape[0] / max(shape[1], 1) + 0.6), dpi=110)
    ax.set_facecolor("#e6e6e6")
    extent_km = (b.left / 1000, b.right / 1000, b.bottom / 1000, b.top / 1000)
    im = ax.imshow(
        np.ma.masked_where(~valid, a),
        extent=extent_km,
        cmap="viridis",
        interpolation="nearest",
        vmin=0.0,
        vmax=float(a[valid].max()) if valid.any() and desc == "richness" else 1.0,
    )
    if valid.any() and not valid.all():
        ax.contour(valid.astype(float), levels=[0.5], colors="black", linewidths=0.4, origin="upper", extent=extent_km)
    fig.colorbar(im, ax=ax, shrink=0.8, label="expected number of species" if desc == "richness" else "probability")
    ax.set_title(title or desc)
    ax.set_xlabel(f"x (km, {crs})")
    ax.set_ylabel("y (km)")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(png)
