"""GeoTIFF rasters: metadata, windowed reads with a validity mask, lon/lat -> pixel.

Format (glc24-format.md §7): single- or multi-band GeoTIFFs in EPSG:4326 (e.g. the human-footprint rasters:
6860 x 4605, uint8 nodata 127 or int32 nodata 2147483647, 1-row strips). Rasters are never read whole:
:func:`read_window` reads one ``size x size`` window, with rasterio's boundless reads when the window crosses the
raster edge, and returns a mask that is ``False`` where a pixel lies outside the raster or equals the band's nodata
(or is NaN, for float rasters). Out-of-raster pixels never pass as data: they are masked, and their value is ``fill``
(or the nodata value, or 0 when the band has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from glc.data.errors import DataError, require_file

_WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True)
class RasterInfo:
    """What a reader needs to know about a raster (values of band 1 for ``dtype`` and ``nodata``).

    Attributes:
        path: the file.
        width: columns.
        height: rows.
        count: bands.
        dtype: numpy dtype name of band 1 (e.g. ``"uint8"``).
        nodata: nodata value of band 1, or ``None``.
        transform: pixel -> CRS affine transform (upper-left corner of pixel ``(0, 0)`` at ``transform @ (0, 0)``).
        crs: the coordinate reference system, or ``None`` if the file has none.
        bounds: ``(left, bottom, right, top)`` in CRS units.
    """

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    transform: Affine
    crs: CRS | None
    bounds: BoundingBox


def _open(path: str | Path) -> DatasetReader:
    p = require_file(path, "GeoTIFF raster")
    try:
        return rasterio.open(p)
    except RasterioError as e:
        raise DataError(
            f"GeoTIFF raster {p}: rasterio cannot open it ({e}); expected a GeoTIFF. Re-download or re-unzip it."
        ) from e


def raster_info(path: str | Path) -> RasterInfo:
    """Return the metadata of a raster without reading its pixels.

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: if rasterio cannot open it.
    """
    with _open(path) as src:
        return RasterInfo(
            path=Path(path),
            width=src.width,
            height=src.height,
            count=src.count,
            dtype=src.dtypes[0],
            nodata=src.nodata,
            transform=src.transform,
            crs=src.crs,
            bounds=src.bounds,
        )


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer pixel offset, got {value!r}")
    return int(value)


def _band_indexes(src: DatasetReader, band: int | Sequence[int] | None) -> list[int]:
    indexes = list(range(1, src.count + 1)) if band is None else [band] if isinstance(band, (int, np.integer)) else list(band)
    bad = [b for b in indexes if not 1 <= int(b) <= src.count]
    if bad or not indexes:
        raise ValueError(f"band must be 1-based band number(s) in 1..{src.count} of {src.name}, got {band!r}")
    return [int(b) for b in indexes]


def read_window(
    src_or_path: DatasetReader | str | Path,
    col_off: int,
    row_off: int,
    size: int,
    band: int | Sequence[int] | None = None,
    fill: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one square window, boundless, with a validity mask.

    Args:
        src_or_path: an open rasterio dataset (preferred when reading many windows) or a path.
        col_off: column of the window's upper-left pixel (may be negative or beyond the raster).
        row_off: row of the window's upper-left pixel (may be negative or beyond the raster).
        size: window width and height in pixels (> 0).
        band: 1-based band number, a sequence of them, or ``None`` for all bands.
        fill: value written into every invalid pixel (outside the raster or nodata); it must be representable in
            the raster dtype. ``None`` leaves nodata pixels as they are and gives out-of-raster pixels the band's
            nodata value (0 when it has none).

    Returns:
        ``(data, valid)``: ``data`` of shape ``(bands, size, size)`` in the raster dtype, ``valid`` a bool array of
        the same shape, ``False`` outside the raster, where ``data == nodata``, and at NaN for float rasters.

    Raises:
        DataFileNotFoundError: if a path is given and the file is missing.
        DataError: if the read fails (corrupt or truncated blocks), naming the file and the window.
        ValueError: on a bad offset, size, band or fill.
    """
    if not isinstance(src_or_path, DatasetReader):
        with _open(src_or_path) as src:
            return read_window(src, col_off, row_off, size, band, fill)
    src = src_or_path
    col_off, row_off, size = _as_int(col_off, "col_off"), _as_int(row_off, "row_off"), _as_int(size, "size")
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    indexes = _band_indexes(src, band)
    dtype = np.dtype(src.dtypes[indexes[0] - 1])
    if fill is not None:
        fill_arr = np.asarray(fill).astype(dtype)
        if not (fill_arr == np.asarray(fill) or (np.isnan(fill_arr) and np.isnan(fill))):
            raise ValueError(f"fill={fill!r} is not representable in the raster dtype {dtype} of {src.name}")
    nodatas = [src.nodatavals[i - 1] for i in indexes]
    window = Window(col_off, row_off, size, size)
    rows = np.arange(row_off, row_off + size)
    cols = np.arange(col_off, col_off + size)
    inside = ((rows >= 0) & (rows < src.height))[:, None] & ((cols >= 0) & (cols < src.width))[None, :]
    try:
        if inside.all():
            data = src.read(indexes, window=window)
        else:
            outside_value = fill if fill is not None else (nodatas[0] if nodatas[0] is not None else 0)
            data = src.read(indexes, window=window, boundless=True, fill_value=outside_value)
    except RasterioError as e:
        detail = f"{e}" + (f" {e.__cause__}" if e.__cause__ is not None else "")
        raise DataError(
            f"GeoTIFF raster {src.name}: reading window col_off={col_off} row_off={row_off} size={size} "
            f"band(s) {indexes} failed ({detail}); the file is corrupt or truncated. Re-download or re-unzip it."
        ) from e
    valid = np.broadcast_to(inside, data.shape).copy()
    for k, nd in enumerate(nodatas):
        if nd is not None:
            valid[k] &= ~(np.isnan(data[k]) if np.isnan(nd) else data[k] == np.asarray(nd).astype(data.dtype))
        if data.dtype.kind == "f":
            valid[k] &= ~np.isnan(data[k])
    if fill is not None:
        data[~valid] = fill
    else:
        for k, nd in enumerate(nodatas):  # boundless reads fill with band 1's nodata; use each band's own
            data[k][~inside] = nd if nd is not None else 0
    return data, valid


def lonlat_to_pixel(info: RasterInfo, lon: Any, lat: Any) -> tuple[Any, Any]:
    """Convert WGS84 lon/lat to continuous pixel coordinates (vectorised).

    Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so ``np.floor`` gives the pixel that contains
    the point and its centre is at ``+ 0.5``. Geographic rasters are used as they are; for a projected raster the
    points are first transformed from EPSG:4326 to its CRS.

    Args:
        info: the raster (see :func:`raster_info`).
        lon: longitude(s) in degrees (scalar or array).
        lat: latitude(s) in degrees, broadcastable with ``lon``.

    Returns:
        ``(col, row)`` as float64 arrays of the broadcast shape (floats for scalar input).

    Raises:
        DataError: if the raster has no CRS, so lon/lat cannot be placed on it.
    """
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    if info.crs is None:
        raise DataError(f"GeoTIFF raster {info.path}: has no CRS, so lon/lat cannot be converted to pixels; expected EPSG:4326")
    if not info.crs.is_geographic:
        xs, ys = warp_transform(_WGS84, info.crs, x.ravel().tolist(), y.ravel().tolist())
        x, y = np.asarray(xs).reshape(x.shape), np.asarray(ys).reshape(y.shape)
    col, row = ~info.transform @ (x, y)
    col, row = np.asarray(col, dtype=np.float64), np.asarray(row, dtype=np.float64)
    if col.ndim == 0:
        return float(col), float(row)
    return col, row


def centered_window_offsets(col: Any, row: Any, size: int) -> tuple[Any, Any]:
    """Upper-left offsets of the ``size x size`` window whose centre pixel contains ``(col, row)`` (vectorised).

    For an even ``size`` the containing pixel is the one just below and right of the window centre.

    Args:
        col: continuous column(s) from :func:`lonlat_to_pixel`.
        row: continuous row(s).
        size: window size in pixels.

    Returns:
        ``(col_off, row_off)`` as int64 (arrays, or ints for scalar input).
    """
    c = np.floor(np.asarray(col, dtype=np.float64)).astype(np.int64) - size // 2
    r = np.floor(np.asarray(row, dtype=np.float64)).astype(np.int64) - size // 2
    if c.ndim == 0:
        return int(c), int(r)
    return c, r


def sample_points(path: str | Path, lon: Any, lat: Any, band: int = 1) -> tuple[np.ndarray, dict[str, int]]:
    """The raster value of the pixel containing each lon/lat point (float64), NaN where there is none.

    A point outside the raster or on a nodata / NaN pixel gets NaN (counted, never a fill value); the caller's
    feature policy decides what NaN means (tree models split on it).

    Returns:
        ``(values, counts)`` with ``counts = {"points", "outside", "nodata"}``.
    """
    info = raster_info(path)
    col, row = lonlat_to_pixel(info, np.atleast_1d(lon), np.atleast_1d(lat))
    c, r = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    inside = (c >= 0) & (c < info.width) & (r >= 0) & (r < info.height)
    out = np.full(c.shape, np.nan)
    nodata = 0
    if inside.any():
        rows, cols = r[inside], c[inside]
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        with _open(path) as src:
            from rasterio.windows import Window

            data = src.read(band, window=Window(c0, r0, c1 - c0, r1 - r0)).astype(np.float64)
        v = data[rows - r0, cols - c0]
        bad = ~np.isfinite(v) | ((v == info.nodata) if info.nodata is not None else False)
        v[bad] = np.nan
        nodata = int(bad.sum())
        out[inside] = v
    return out, {"points": int(c.size), "outside": int((~inside).sum()), "nodata": nodata}
