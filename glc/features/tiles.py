"""DCT tiles of a GeoTIFF raster around many sites, with windowed reads only (the pure core of ``RasterTiles``).

For each site (a survey's lon/lat) a ``tile_size x tile_size`` window of the raster is cut around the site's pixel,
its invalid pixels are filled by a documented rule, and the top-left ``k x k`` block of its orthonormal 2D DCT-II
(:func:`glc.features.dct.dct2`) is kept, per band.

Conventions:

* **Site pixel.** ``(col, row) = ~transform * (lon, lat)`` (lon/lat are WGS84; for a projected raster they are
  first transformed to its CRS); the site's pixel is ``(floor(row), floor(col))``, pixel ``(r, c)`` covering
  ``[c, c + 1) x [r, r + 1)`` in pixel space.
* **Centring.** The window's upper-left pixel is ``(floor(row) - T // 2, floor(col) - T // 2)`` for tile size ``T``,
  so the site's pixel is at index ``(T // 2, T // 2)`` of the tile. For an odd ``T`` that is the exact centre; for an
  even ``T`` (e.g. 128) the site's pixel is the one just below and right of the window's geometric centre:
  ``T // 2`` pixels lie above/left of it (64) and ``T // 2 - 1`` below/right (63). This is the same convention as
  :func:`glc.data.rasters.centered_window_offsets`, which (with :func:`glc.data.rasters.lonlat_to_pixel`) computes it.
* **Valid pixels.** A pixel is invalid when it lies outside the raster, equals the band's nodata value, is NaN or
  +-inf (float rasters), or is masked by the dataset's mask band (rasters without nodata but with an internal mask).
* **Fill rule** (:class:`TileSpec` ``fill``):

  - ``"tile_mean"`` (default): invalid pixels are replaced by the mean of the *valid pixels of the same tile and
    band*, so a fill value never dominates the low frequencies (a coastal tile keeps the level of its land
    pixels instead of jumping to 0 or to a nodata code);
  - ``"global_mean"``: invalid pixels are replaced by the band's global mean.

  A tile and band with **no valid pixel** is filled entirely with the band's global mean (its DCT is then
  ``global_mean * T`` at ``(0, 0)`` and zero elsewhere) and gets ``valid_fraction == 0``. The global mean is
  estimated from a decimated read (GDAL uses the raster's overviews when it has them, else a strided sample of at
  most ``GLOBAL_MEAN_SAMPLE_PIXELS`` pixels), never from the whole raster; it is computed once per raster and bands
  and only when needed, and callers may pass their own (e.g. computed once on the Spark driver).
* **Sites outside the raster** (site pixel not inside it) get ``inside == False`` and are counted in ``n_outside``;
  their rows are still returned, computed by the same rule (the part of their window that overlaps the raster, if
  any, is used; otherwise the global mean), so callers decide whether to keep them.
* Outputs never contain NaN or inf: this is checked before returning, and a violation raises :class:`DataError`.

Speed and memory: sites are grouped by square cells of the raster and processed cell by cell in row-major order,
so the windows of a group are served by **one** read of the group's bounding window (GDAL's block cache then serves
the strips/tiles shared with the neighbouring groups), and the DCT of a whole chunk of tiles is one pair of matrix
products ``D_k @ tile @ D_k.T`` (``O(k * T * T)`` per tile, see :func:`glc.features.dct.dct2`). The cell side is at
most ``MAX_CELL`` pixels (larger groups are slower: their tiles fall out of the CPU caches) and small enough that a
group's buffers (native read, float32 values, validity mask, summed-area table of the mask) take at most
``max_group_bytes`` (default ``DEFAULT_MAX_GROUP_BYTES`` = 64 MiB); tiles are gathered in chunks that take at most
as much again. So the extra memory is at most about ``2 * max_group_bytes`` plus GDAL's block cache plus the outputs
(``n * bands * (k * k + 1) * 4`` bytes), whatever the raster size. Results are returned in input order.

Precision: pixel values and the DCT basis are float32 (exact for integer rasters with values below 2**24), tile
means are accumulated in float64, and the coefficients are stored as float32; they match a float64
``scipy.fft.dctn(norm="ortho")`` reference to about 1e-6 of the tile's largest coefficient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

import numpy as np
import rasterio
from numpy.lib.stride_tricks import sliding_window_view
from rasterio._err import CPLE_BaseError
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from glc.data.errors import DataError, require_file
from glc.data.rasters import RasterInfo, centered_window_offsets, lonlat_to_pixel
from glc.features.dct import dct2, dct_matrix

__all__ = [
    "DEFAULT_MAX_GROUP_BYTES",
    "GLOBAL_MEAN_SAMPLE_PIXELS",
    "FillRule",
    "TileExtractor",
    "TileSpec",
    "extract_tiles",
]

FillRule = Literal["tile_mean", "global_mean"]

#: Default bound on the bytes of one group's buffers (and, separately, of one chunk of gathered tiles).
DEFAULT_MAX_GROUP_BYTES = 64 * 2**20
#: At most this many pixels per band are read to estimate a band's global mean (fallback fill).
GLOBAL_MEAN_SAMPLE_PIXELS = 4_000_000
#: Largest group side in pixels, whatever the memory bound (bigger groups are slower: tiles fall out of the caches).
MAX_CELL = 512
#: A failing read is tried this many times in all before :class:`DataError` is raised (transient NAS/HTTP errors).
READ_ATTEMPTS = 3

_READ_ERRORS = (RasterioError, CPLE_BaseError)


@dataclass(frozen=True)
class TileSpec:
    """What a DCT tile is: window size, coefficients kept, and how invalid pixels are filled.

    Attributes:
        tile_size: window side ``T`` in pixels (> 0); see the module docstring for the centring of even sizes.
        k: the top-left ``k x k`` DCT-II block is kept (``1 <= k <= tile_size``).
        fill: ``"tile_mean"`` (invalid pixels take the mean of the tile's valid pixels, per band) or
            ``"global_mean"`` (they take the band's global mean). Tiles with no valid pixel always take the band's
            global mean.
    """

    tile_size: int = 128
    k: int = 8
    fill: FillRule = "tile_mean"

    def __post_init__(self) -> None:
        """Validate the parameters.

        Raises:
            ValueError: naming the bad parameter.
        """
        if not (isinstance(self.tile_size, (int, np.integer)) and self.tile_size > 0):
            raise ValueError(f"TileSpec: tile_size must be a positive int (pixels), got {self.tile_size!r}")
        if not (isinstance(self.k, (int, np.integer)) and 1 <= self.k <= self.tile_size):
            raise ValueError(
                f"TileSpec: k must be an int in 1..tile_size={self.tile_size} (DCT block kept), got {self.k!r}"
            )
        if self.fill not in get_args(FillRule):
            raise ValueError(f"TileSpec: fill must be one of {get_args(FillRule)}, got {self.fill!r}")


def _window_text(row_off: int, col_off: int, height: int, width: int) -> str:
    return f"window row_off={row_off} col_off={col_off} height={height} width={width}"


class TileExtractor:
    """DCT tiles from one open raster; reuse one instance for many batches of sites (e.g. one Spark partition).

    One instance per thread or process: a rasterio dataset must not be shared between threads. The global means
    (fallback fill) are computed at most once per instance, or passed in.

    Example:
        >>> with TileExtractor("Lights2009_WGS84.tif", TileSpec(128, 8)) as ex:  # doctest: +SKIP
        ...     out = ex.extract(survey_ids, lons, lats)
        >>> out["dct"].shape  # doctest: +SKIP
        (n, 1, 8, 8)

    Args:
        raster: a GeoTIFF path, or an open rasterio dataset (not closed by this object).
        spec: tile size, k and fill rule.
        bands: 1-based band numbers to use, or ``None`` for all bands.
        global_means: per-band global means (same order as ``bands``) to use as the fallback fill instead of
            estimating them from the raster.
        max_group_bytes: bound on the group buffers and, separately, on a chunk of gathered tiles (see module
            docstring); must leave room for at least one ``tile_size x tile_size`` window of all bands.

    Raises:
        DataFileNotFoundError: if the raster file is missing.
        DataError: if rasterio cannot open it or it has no CRS.
        ValueError: on bad ``bands``, ``global_means`` or ``max_group_bytes``.
    """

    def __init__(
        self,
        raster: str | Path | DatasetReader,
        spec: TileSpec | None = None,
        bands: Sequence[int] | int | None = None,
        global_means: Sequence[float] | None = None,
        max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
    ) -> None:
        self.spec = spec if spec is not None else TileSpec()
        #: optional lap timer (anything with ``lap(phase)``, e.g. :class:`glc.etl.profile.PhaseClock`): raster reads
        #: are charged to ``read``, fill + DCT to ``transform``
        self.clock: Any = None
        self._owns = not isinstance(raster, DatasetReader)
        self.src: DatasetReader = _open(raster) if self._owns else raster  # type: ignore[arg-type]
        self.path = str(self.src.name)
        try:
            self.bands = _band_list(self.src, bands)
            if self.src.crs is None:
                raise DataError(
                    f"GeoTIFF raster {self.path}: has no CRS, so lon/lat cannot be placed on it; expected a "
                    "georeferenced raster (e.g. EPSG:4326). Use the original file."
                )
            self.info = RasterInfo(
                path=Path(self.path),
                width=self.src.width,
                height=self.src.height,
                count=self.src.count,
                dtype=self.src.dtypes[0],
                nodata=self.src.nodata,
                transform=self.src.transform,
                crs=self.src.crs,
                bounds=self.src.bounds,
            )
            self._global_means = None if global_means is None else self._check_means(global_means)
            self._nodata = [self._nodata_value(b) for b in self.bands]
            flags = [self.src.mask_flag_enums[b - 1] for b in self.bands]
            self._mask_band = [not (MaskFlags.nodata in f or MaskFlags.all_valid in f) for f in flags]
            self._float = [np.dtype(self.src.dtypes[b - 1]).kind in "fc" for b in self.bands]
            t = self.spec.tile_size
            itemsize = max(np.dtype(self.src.dtypes[b - 1]).itemsize for b in self.bands)
            # native read + float32 values + bool mask + int32 summed-area table, per band and pixel
            per_px = len(self.bands) * (itemsize + 4 + 1 + 4)
            side = math.isqrt(max(0, int(max_group_bytes)) // per_px)
            if side < t:
                raise ValueError(
                    f"max_group_bytes={max_group_bytes} is too small for one {t}x{t} window of {len(self.bands)} "
                    f"band(s) of {self.path} (needs >= {t * t * per_px} bytes); raise it"
                )
            self.max_group_bytes = int(max_group_bytes)
            # groups larger than MAX_CELL pixels are slower (the tiles gathered from them fall out of the CPU caches)
            self.cell = min(side, MAX_CELL + t - 1) - t + 1
            # gathered float32 tiles + fill temporaries (bool mask + float32) per tile and band
            self.chunk = max(1, self.max_group_bytes // (len(self.bands) * t * t * 9))
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the raster if this object opened it."""
        if self._owns and not self.src.closed:
            self.src.close()

    def __enter__(self) -> TileExtractor:
        """Use as a context manager that closes the raster it opened."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the raster."""
        self.close()

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _check_means(self, means: Sequence[float]) -> np.ndarray:
        m = np.asarray(means, dtype=np.float64).reshape(-1)
        if m.shape != (len(self.bands),) or not np.isfinite(m).all():
            raise ValueError(
                f"global_means must be {len(self.bands)} finite value(s), one per band {self.bands} of "
                f"{self.path}, got {means!r}"
            )
        return m

    def _nodata_value(self, band: int) -> float | None:
        """The band's nodata value if some pixel of its dtype can equal it (NaN nodata is covered by isfinite)."""
        nd = self.src.nodatavals[band - 1]
        if nd is None or np.isnan(nd):
            return None
        dtype = np.dtype(self.src.dtypes[band - 1])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if not (float(nd).is_integer() and info.min <= nd <= info.max):
                return None
        return float(nd)

    def _valid(self, data: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """Validity of ``data`` (bands, h, w); ``masks`` is GDAL's mask band where a band needs it."""
        valid = np.ones(data.shape, dtype=bool)
        for i in range(len(self.bands)):
            d = data[i]
            if self._float[i]:
                valid[i] &= np.isfinite(d)
            nd = self._nodata[i]
            if nd is not None:
                valid[i] &= d != np.asarray(nd).astype(d.dtype)
            if masks is not None and self._mask_band[i]:
                valid[i] &= masks[i] != 0
        return valid

    def _read(self, window: Window, out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read ``window`` (inside the raster) of the bands, with retries; return ``(data, valid)``.

        Raises:
            DataError: naming the file and the window, when every attempt fails.
        """
        kwargs: dict[str, Any] = {"window": window}
        if out_shape is not None:
            kwargs.update(out_shape=(len(self.bands), *out_shape), resampling=Resampling.nearest)
        last: Exception | None = None
        for _ in range(READ_ATTEMPTS):
            try:
                data = self.src.read(self.bands, **kwargs)
                masks = self.src.read_masks(self.bands, **kwargs) if any(self._mask_band) else None
                return data, self._valid(data, masks)
            except _READ_ERRORS as e:
                last = e
        detail = f"{last}" + (f" ({last.__cause__})" if last is not None and last.__cause__ is not None else "")
        w = _window_text(int(window.row_off), int(window.col_off), int(window.height), int(window.width))
        raise DataError(
            f"GeoTIFF raster {self.path}: reading {w} of band(s) {self.bands} failed {READ_ATTEMPTS} times "
            f"({detail}); the file is corrupt or truncated (or its storage failed). Re-download or re-unzip it; "
            "`gdalinfo -checksum` lists the bad blocks."
        ) from last

    # -- public ------------------------------------------------------------------------------------------------------
    def global_means(self) -> np.ndarray:
        """Per-band global mean of the valid pixels, estimated from a decimated read (cached).

        GDAL serves the decimated read from the raster's overviews when it has them; otherwise it reads a strided
        (nearest-neighbour) sample of at most ``GLOBAL_MEAN_SAMPLE_PIXELS`` pixels per band. The full raster is
        never loaded.

        Returns:
            float64 array ``(bands,)``.

        Raises:
            DataError: if a band has no valid pixel in the sample (pass ``global_means`` explicitly then).
        """
        if self._global_means is None:
            h, w = self.src.height, self.src.width
            step = max(1, math.ceil(math.sqrt(h * w / GLOBAL_MEAN_SAMPLE_PIXELS)))
            shape = (max(1, h // step), max(1, w // step))
            data, valid = self._read(Window(0, 0, w, h), out_shape=shape if step > 1 else None)
            means = np.empty(len(self.bands), dtype=np.float64)
            for i in range(len(self.bands)):
                v = data[i][valid[i]].astype(np.float64)
                m = float(v.mean()) if v.size else float("nan")
                if not math.isfinite(m):
                    raise DataError(
                        f"GeoTIFF raster {self.path}: band {self.bands[i]} has no valid (finite, non-nodata) pixel in "
                        f"a {shape[0]}x{shape[1]} sample (or its mean overflows), so the fallback fill for empty tiles "
                        "is undefined; check the nodata value, or pass global_means explicitly"
                    )
                means[i] = m
            self._global_means = means
        return self._global_means

    def pixel_offsets(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window offsets of the sites (see the module docstring for the centring).

        Args:
            lons: WGS84 longitudes (degrees), 1D.
            lats: WGS84 latitudes (degrees), same length.

        Returns:
            ``(row_off, col_off, inside)``: int64 upper-left pixel of each window, and whether the site's pixel is
            inside the raster.

        Raises:
            ValueError: if a coordinate is not finite (naming its index).
        """
        x = np.asarray(lons, dtype=np.float64)
        y = np.asarray(lats, dtype=np.float64)
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{int(bad.sum())} site(s) have a non-finite lon/lat, first at index {i}: lon={x[i]}, lat={y[i]}; "
                "drop or fix them before extracting tiles"
            )
        col_off, row_off = centered_window_offsets(*lonlat_to_pixel(self.info, x, y), self.spec.tile_size)
        row_off, col_off = np.asarray(row_off, dtype=np.int64), np.asarray(col_off, dtype=np.int64)
        half = self.spec.tile_size // 2
        r, c = row_off + half, col_off + half  # the site's pixel
        inside = (r >= 0) & (r < self.src.height) & (c >= 0) & (c < self.src.width)
        return row_off, col_off, inside

    def extract(self, survey_ids: Any, lons: Any, lats: Any) -> dict[str, Any]:
        """DCT tiles of all bands at the sites, in input order.

        Args:
            survey_ids: 1D array-like of survey ids (returned as given, in input order).
            lons: WGS84 longitudes, same length.
            lats: WGS84 latitudes, same length.

        Returns:
            A dict with ``surveyId`` (n,), ``dct`` float32 (n, bands, k, k), ``valid_fraction`` float32 (n, bands),
            ``inside`` bool (n,), ``n_outside`` (int: sites whose pixel is outside the raster), ``n_empty`` (int:
            site-band tiles with no valid pixel, filled with the global mean) and ``bands`` (tuple of the 1-based
            band numbers, the order of the band axis).

        Raises:
            ValueError: on inputs of different lengths or non-finite coordinates.
            DataError: on a corrupt raster block (naming the file and window) or if an output is not finite.
        """
        ids = np.asarray(survey_ids)
        lon = np.asarray(lons, dtype=np.float64)
        lat = np.asarray(lats, dtype=np.float64)
        if not (ids.ndim == lon.ndim == lat.ndim == 1 and len(ids) == len(lon) == len(lat)):
            raise ValueError(
                f"survey_ids, lons and lats must be 1D and of equal length, got shapes {ids.shape}, {lon.shape}, "
                f"{lat.shape}"
            )
        n, nb, k = len(ids), len(self.bands), self.spec.k
        dct_out = np.empty((n, nb, k, k), dtype=np.float32)
        frac_out = np.empty((n, nb), dtype=np.float32)
        row_off, col_off, inside = self.pixel_offsets(lon, lat)
        n_empty = 0
        if n:
            cell_r, cell_c = row_off // self.cell, col_off // self.cell
            order = np.lexsort((col_off, row_off, cell_c, cell_r))
            key_r, key_c = cell_r[order], cell_c[order]
            starts = np.flatnonzero(np.r_[True, (key_r[1:] != key_r[:-1]) | (key_c[1:] != key_c[:-1])])
            ends = np.r_[starts[1:], n]
            for s, e in zip(starts, ends, strict=True):
                idx = order[s:e]
                n_empty += self._group(row_off[idx], col_off[idx], dct_out, frac_out, idx, ids)
        if not (np.isfinite(dct_out).all() and np.isfinite(frac_out).all()):
            bad = np.flatnonzero(~np.isfinite(dct_out).reshape(n, -1).all(axis=1))
            raise DataError(
                f"GeoTIFF raster {self.path}: DCT tiles of {len(bad)} site(s) are not finite (first surveyIds "
                f"{ids[bad[:5]].tolist()}); the raster holds values too large for float32 coefficients. "
                "Rescale the raster or mark those values as nodata."
            )
        return {
            "surveyId": ids,
            "dct": dct_out,
            "valid_fraction": frac_out,
            "inside": inside,
            "n_outside": int((~inside).sum()),
            "n_empty": int(n_empty),
            "bands": tuple(self.bands),
        }

    def _group(
        self,
        row_off: np.ndarray,
        col_off: np.ndarray,
        dct_out: np.ndarray,
        frac_out: np.ndarray,
        idx: np.ndarray,
        ids: np.ndarray,
    ) -> int:
        """Read one group's bounding window, fill, DCT; write rows ``idx`` of the outputs. Returns empty tiles."""
        t, k, nb = self.spec.tile_size, self.spec.k, len(self.bands)
        r0, c0 = int(row_off.min()), int(col_off.min())
        h, w = int(row_off.max()) - r0 + t, int(col_off.max()) - c0 + t
        values = np.zeros((nb, h, w), dtype=np.float32)
        valid = np.zeros((nb, h, w), dtype=bool)
        # the part of the bounding window inside the raster
        ir0, ic0 = max(r0, 0), max(c0, 0)
        ir1, ic1 = min(r0 + h, self.src.height), min(c0 + w, self.src.width)
        if self.clock is not None:
            self.clock.lap("transform")
        if ir1 > ir0 and ic1 > ic0:
            data, ok = self._read(Window(ic0, ir0, ic1 - ic0, ir1 - ir0))
            if self.clock is not None:
                self.clock.lap("read")
            sl = (slice(None), slice(ir0 - r0, ir1 - r0), slice(ic0 - c0, ic1 - c0))
            with np.errstate(over="ignore"):  # float values beyond float32 become inf: the DCT check reports them
                np.copyto(values[sl], data, where=ok, casting="unsafe")
            valid[sl] = ok
        rr, cc = row_off - r0, col_off - c0
        full = t * t
        if valid.all():
            counts = np.full((len(idx), nb), full, dtype=np.int64)
        else:
            sat = np.zeros((nb, h + 1, w + 1), dtype=np.int32 if (h + 1) * (w + 1) < 2**31 else np.int64)
            np.cumsum(valid, axis=1, out=sat[:, 1:, 1:])
            np.cumsum(sat[:, 1:, 1:], axis=2, out=sat[:, 1:, 1:])
            counts = (sat[:, rr + t, cc + t] - sat[:, rr, cc + t] - sat[:, rr + t, cc] + sat[:, rr, cc]).T
            counts = counts.astype(np.int64)
        frac_out[idx] = counts / full
        n_empty = int((counts == 0).sum())
        gmeans = (
            self.global_means() if (n_empty or (self.spec.fill == "global_mean" and (counts < full).any())) else None
        )
        # (bands, h, w) -> windows (h-t+1, w-t+1, bands, t, t); fancy indexing copies (m, bands, t, t)
        win_values = sliding_window_view(values, (t, t), axis=(1, 2)).transpose(1, 2, 0, 3, 4)
        win_valid = sliding_window_view(valid, (t, t), axis=(1, 2)).transpose(1, 2, 0, 3, 4)
        for s in range(0, len(idx), self.chunk):
            sel = slice(s, s + self.chunk)
            tiles = win_values[rr[sel], cc[sel]]
            cnt = counts[sel]
            part_i, part_b = np.nonzero(cnt < full)
            if len(part_i):
                mask = win_valid[rr[sel][part_i], cc[sel][part_i], part_b]  # (p, t, t)
                sub = tiles[part_i, part_b]
                c = cnt[part_i, part_b]
                if self.spec.fill == "tile_mean":
                    fill = np.divide(sub.sum(axis=(1, 2), dtype=np.float64), c, out=np.zeros(len(c)), where=c > 0)
                else:
                    fill = gmeans[part_b]  # type: ignore[index]
                if gmeans is not None:
                    fill = np.where(c > 0, fill, gmeans[part_b])
                tiles[part_i, part_b] = np.where(mask, sub, fill[:, None, None].astype(np.float32))
            try:
                dct_out[idx[sel]] = dct2(tiles, k)
            except ValueError as e:
                bad = np.flatnonzero([not np.isfinite(_dct2_unchecked(tile, k)).all() for tile in tiles])
                raise DataError(
                    f"GeoTIFF raster {self.path}: DCT tiles of {len(bad)} site(s) in {_window_text(r0, c0, h, w)} are "
                    f"not finite (first surveyIds {ids[idx[sel]][bad[:5]].tolist()}); the raster holds values too "
                    "large for float32 coefficients. Rescale the raster or mark those values as nodata."
                ) from e
        if self.clock is not None:
            self.clock.lap("transform")
        return n_empty


def _dct2_unchecked(tile: np.ndarray, k: int) -> np.ndarray:
    """:func:`glc.features.dct.dct2` of one ``(..., T, T)`` tile without the finiteness check (to locate bad tiles)."""
    with np.errstate(all="ignore"):
        d = dct_matrix(tile.shape[-1], k, tile.dtype)
        return d @ tile @ d.T


def _open(path: str | Path) -> DatasetReader:
    p = require_file(path, "GeoTIFF raster")
    try:
        return rasterio.open(p)
    except _READ_ERRORS as e:
        raise DataError(
            f"GeoTIFF raster {p}: rasterio cannot open it ({e}); expected a GeoTIFF. Re-download or re-unzip it."
        ) from e


def _band_list(src: DatasetReader, bands: Sequence[int] | int | None) -> list[int]:
    out = (
        list(range(1, src.count + 1))
        if bands is None
        else [bands]
        if isinstance(bands, (int, np.integer))
        else list(bands)
    )
    if not out or any(not isinstance(b, (int, np.integer)) or not 1 <= b <= src.count for b in out):
        raise ValueError(f"bands must be 1-based band numbers in 1..{src.count} of {src.name}, got {bands!r}")
    return [int(b) for b in out]


def extract_tiles(
    raster_path: str | Path | DatasetReader,
    survey_ids: Any,
    lons: Any,
    lats: Any,
    tile_size: int = 128,
    k: int = 8,
    bands: Sequence[int] | int | None = None,
    *,
    fill: FillRule = "tile_mean",
    global_means: Sequence[float] | None = None,
    max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
) -> dict[str, Any]:
    """DCT tiles of one GeoTIFF at many sites (see the module docstring for every convention).

    A convenience wrapper around :class:`TileExtractor` that opens and closes the raster; to process many batches of
    the same raster (a Spark partition), keep one :class:`TileExtractor` instead so the global means are computed once.

    Args:
        raster_path: the GeoTIFF (or an open rasterio dataset, left open).
        survey_ids: 1D survey ids.
        lons: WGS84 longitudes, same length.
        lats: WGS84 latitudes, same length.
        tile_size: window side in pixels.
        k: DCT block kept.
        bands: 1-based band numbers, or ``None`` for all.
        fill: ``"tile_mean"`` or ``"global_mean"`` (see :class:`TileSpec`).
        global_means: optional per-band fallback means (else estimated from a decimated read when needed).
        max_group_bytes: memory bound of a group and of a chunk of tiles.

    Returns:
        See :meth:`TileExtractor.extract`.

    Raises:
        DataFileNotFoundError: if the raster is missing.
        DataError: if it cannot be opened, has no CRS, has a corrupt block (named), or yields non-finite output.
        ValueError: on bad parameters or coordinates.
    """
    spec = TileSpec(tile_size=tile_size, k=k, fill=fill)
    with TileExtractor(raster_path, spec, bands, global_means, max_group_bytes) as ex:
        return ex.extract(survey_ids, lons, lats)
