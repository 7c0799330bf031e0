"""Independent reference for glc.features.tiles and GeoTIFF fixture writers (tests and benchmarks only).

The reference is the naive loop the fast path must equal: for each site, one rasterio *boundless* window read,
the documented fill rule written out with numpy, and ``scipy.fft.dctn(norm="ortho")[:k, :k]``. It shares no code
with :mod:`glc.features.tiles`: the site pixel comes from rasterio's ``DatasetReader.index``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import scipy.fft
from affine import Affine
from rasterio.windows import Window


def write_raster(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    nodata: float | None,
    crs: str = "EPSG:4326",
    mask: np.ndarray | None = None,
    **profile: Any,
) -> Path:
    """Write a (bands, H, W) array as a GeoTIFF; ``mask`` (H, W bool, True = valid) becomes an internal mask band."""
    bands, h, w = data.shape
    prof = dict(driver="GTiff", width=w, height=h, count=bands, dtype=data.dtype, crs=crs, transform=transform)
    if nodata is not None:
        prof["nodata"] = nodata
    prof.update(profile)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
    return path


def pixel_centre(transform: Affine, row: float, col: float) -> tuple[float, float]:
    """(x, y) of the centre of pixel (row, col)."""
    x, y = transform @ (col + 0.5, row + 0.5)
    return float(x), float(y)


def reference_tile(
    src: rasterio.io.DatasetReader,
    x: float,
    y: float,
    tile_size: int,
    k: int,
    bands: list[int],
    global_means: np.ndarray,
    fill: str = "tile_mean",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The naive tile at raster-CRS coordinates (x, y): ``(dct (bands, k, k), valid_fraction (bands,), tile)``."""
    row, col = src.index(x, y)
    r0, c0 = row - tile_size // 2, col - tile_size // 2
    data = src.read(bands, window=Window(c0, r0, tile_size, tile_size), boundless=True).astype(np.float64)
    rows = np.arange(r0, r0 + tile_size)[:, None]
    cols = np.arange(c0, c0 + tile_size)[None, :]
    inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
    masks = None
    if any(src.nodatavals[b - 1] is None for b in bands):  # no nodata value: GDAL's mask band says what is valid
        masks = src.read_masks(bands, window=Window(c0, r0, tile_size, tile_size), boundless=True)
    out = np.empty((len(bands), k, k))
    frac = np.empty(len(bands))
    tiles = np.empty_like(data)
    for i, b in enumerate(bands):
        valid = inside & np.isfinite(data[i])
        nd = src.nodatavals[b - 1]
        if nd is not None:
            valid &= data[i] != nd
        else:
            valid &= masks[i] != 0  # type: ignore[index]  # all 255 when the raster has neither nodata nor mask
        frac[i] = valid.mean()
        if not valid.any():
            value = global_means[i]
        elif fill == "tile_mean":
            value = data[i][valid].mean()
        else:
            value = global_means[i]
        tiles[i] = np.where(valid, data[i], value)
        out[i] = scipy.fft.dctn(tiles[i], norm="ortho")[:k, :k]
    return out, frac, tiles


def reference_tiles(
    path: Path | str,
    lons: np.ndarray,
    lats: np.ndarray,
    tile_size: int,
    k: int,
    global_means: np.ndarray,
    bands: list[int] | None = None,
    fill: str = "tile_mean",
) -> tuple[np.ndarray, np.ndarray]:
    """The naive loop over sites (lon/lat in the raster's CRS):
    ``(dct (n, bands, k, k), valid_fraction (n, bands))``."""
    with rasterio.open(path) as src:
        bands = bands or list(range(1, src.count + 1))
        res = [reference_tile(src, x, y, tile_size, k, bands, global_means, fill) for x, y in zip(lons, lats)]
    return np.stack([r[0] for r in res]), np.stack([r[1] for r in res])


#: The GLC bounding box of the human-footprint rasters (glc24-format.md §7).
GLC_TRANSFORM = Affine(0.009892734568157884, 0.0, -32.27179464817084, 0.0, -0.009892734568157884, 72.189628338207)


def write_extent_raster(path: Path, dtype: str, width: int = 8000, height: int = 5500, seed: int = 0) -> Path:
    """A full-extent synthetic raster (smooth field + noise, nodata patches), tiled 256x256 and deflate-compressed.

    Written in strips of 512 rows so at most one strip of the raster is in memory.
    """
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    nodata = info.max
    prof = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype=dtype,
        crs="EPSG:4326",
        transform=GLC_TRANSFORM,
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    top = min(info.max - 1, 1000)
    with rasterio.open(path, "w", **prof) as dst:
        for r0 in range(0, height, 512):
            h = min(512, height - r0)
            yy, xx = np.mgrid[r0 : r0 + h, 0:width]
            field = (np.sin(xx / 300.0) * np.cos(yy / 200.0) + 1) * top / 2
            block = np.clip(field + rng.normal(0, top / 20, size=field.shape), 0, top).astype(dtype)
            block[(np.sin(xx / 50.0) * np.sin(yy / 70.0)) > 0.97] = nodata  # scattered nodata patches
            dst.write(block[None], window=Window(0, r0, width, h))
    return path
