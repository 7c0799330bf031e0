"""Sentinel-2 satellite patches, in each edition's format (the readers of :data:`PATCH_FORMATS`).

* ``jpeg_pair`` (GLC24): one RGB JPEG and one NIR JPEG per survey -> ``(4, 128, 128) uint8``;
* ``geotiff`` (GLC25): one 4-band (R, G, B, NIR) int16 GeoTIFF per survey, 64 x 64, nodata -1, LZW, 10 m pixels in
  LAEA Europe, reflectance-like values (train band means ~630, 692, 461, 2959) -> ``(4, 64, 64) int16`` with a mask of
  its nodata pixels (:func:`read_geotiff_patch`). Nodata pixels are never averaged in as -1: the reader returns the
  mask, and a patch whose every pixel of a band is nodata is a bad input.

GLC24 format (glc24-format.md §3): RGB is a 3-channel JPEG (mode ``RGB``), NIR a separate 1-channel JPEG (mode ``L``),
both 128 x 128, at ``<patch_root>/<CD>/<AB>/<surveyId>.jpeg`` (see :func:`glc.data.layout.patch_subdirs`). The
4-channel array is ``concat(R, G, B, NIR)``, as in malpolon's loader.

Truncated files are errors: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay ``False`` (its default), so that a
cut JPEG raises instead of decoding to a partly grey image. This module never changes it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from glc.data.errors import DataError, require_file
from glc.data.layout import Layout, Split

#: Height and width of a GLC24 patch in pixels.
PATCH_SIZE = 128
#: Channel order of :func:`read_patch`.
PATCH_CHANNELS: tuple[str, ...] = ("red", "green", "blue", "nir")


def read_bytes(path: str | Path) -> bytes | OSError:
    """The bytes of a file, or the ``OSError`` that reading it raised (for readers run on an I/O thread pool)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return e


def _read_jpeg(path: str | Path, mode: str, what: str, data: bytes | OSError | None = None) -> np.ndarray:
    """Decode one patch JPEG, checking its mode and size; returns ``(H, W[, C]) uint8``.

    ``data``: the file's bytes (or the error reading them) when they were read ahead (:func:`read_bytes`).
    """
    p = path
    if isinstance(data, OSError):
        require_file(p, what)  # raises DataFileNotFoundError naming what was found there
        raise DataError(f"{what} {p}: could not be read ({data}); check the file and its permissions") from data
    try:
        fh = open(p, "rb") if data is None else io.BytesIO(data)  # noqa: SIM115 - closed below; no stat first
    except OSError:
        require_file(p, what)  # raises DataFileNotFoundError naming what was found there
        raise
    try:
        with fh, Image.open(fh) as im:
            if im.mode != mode or im.size != (PATCH_SIZE, PATCH_SIZE):
                raise DataError(
                    f"{what} {p}: found mode {im.mode!r} size {im.size[0]}x{im.size[1]}, expected mode {mode!r} "
                    f"size {PATCH_SIZE}x{PATCH_SIZE}; the file is not a GLC24 {what} (RGB and NIR swapped, or "
                    "re-encoded?). Replace it with the original patch."
                )
            im.load()
            arr = np.asarray(im, dtype=np.uint8)
    except UnidentifiedImageError as e:
        raise DataError(
            f"{what} {p}: not a readable image ({e}); expected a {PATCH_SIZE}x{PATCH_SIZE} JPEG. "
            "Re-extract the patch archive."
        ) from e
    except OSError as e:  # Pillow raises OSError for truncated/corrupt data ("image file is truncated")
        raise DataError(
            f"{what} {p}: the JPEG is truncated or corrupt ({e}); re-extract the patch archive "
            "(truncated images are never padded: ImageFile.LOAD_TRUNCATED_IMAGES stays False)"
        ) from e
    return arr


def read_patch_files(
    rgb_path: str | Path, nir_path: str | Path, data: tuple[bytes | OSError, bytes | OSError] | None = None
) -> np.ndarray:
    """Read one RGB JPEG and one NIR JPEG into a 4-channel patch.

    Args:
        rgb_path: the 3-channel JPEG (mode ``RGB``, 128 x 128).
        nir_path: the 1-channel JPEG (mode ``L``, 128 x 128).
        data: the two files' bytes (or their read errors, see :func:`read_bytes`) when read ahead; the paths then
            only name the files in messages.

    Returns:
        A C-contiguous ``(4, 128, 128) uint8`` array, channels R, G, B, NIR.

    Raises:
        DataFileNotFoundError: if either file is missing.
        DataError: if a file is not an image, has the wrong mode or size, or is truncated/corrupt.
    """
    rgb = _read_jpeg(rgb_path, "RGB", "RGB patch", None if data is None else data[0])
    nir = _read_jpeg(nir_path, "L", "NIR patch", None if data is None else data[1])
    out = np.empty((4, PATCH_SIZE, PATCH_SIZE), dtype=np.uint8)
    out[:3] = rgb.transpose(2, 0, 1)
    out[3] = nir
    return out


#: Side of a GLC25 GeoTIFF patch in pixels, its band count, dtype and nodata value.
GEOTIFF_SIZE = 64
GEOTIFF_BANDS = 4
GEOTIFF_DTYPE = "int16"
GEOTIFF_NODATA = -1


def read_geotiff_patch(path: str | Path, data: bytes | OSError | None = None) -> np.ma.MaskedArray:
    """Read one GLC25 satellite patch GeoTIFF with rasterio.

    Args:
        path: the ``.tiff`` file (names it in messages when ``data`` is given).
        data: its bytes (or the error reading them) when read ahead (:func:`read_bytes`).

    Returns:
        A ``(4, 64, 64) int16`` masked array, bands R, G, B, NIR; ``mask`` is True at nodata pixels (the file's
        nodata value, -1 in every real file). ``mask`` is always a full boolean array.

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: if it is not a readable GeoTIFF (truncated, corrupt), has another band count, dtype or size, or
            a band without one valid pixel (an all-nodata patch): the message names the file and what was found.
    """
    import rasterio
    from rasterio.errors import RasterioError

    if isinstance(data, OSError):
        require_file(path, "satellite patch GeoTIFF")
        raise DataError(f"satellite patch GeoTIFF {path}: could not be read ({data}); check the file and its permissions") from data
    if data is None:
        require_file(path, "satellite patch GeoTIFF")
    try:
        with contextlib.ExitStack() as stack:
            if data is None:
                src = stack.enter_context(rasterio.open(path))
            else:
                mem = stack.enter_context(rasterio.MemoryFile(data))
                src = stack.enter_context(mem.open())
            found = f"{src.count} band(s) of {src.dtypes[0]}, {src.width}x{src.height} px"
            if (src.count, src.dtypes[0], src.width, src.height) != (GEOTIFF_BANDS, GEOTIFF_DTYPE, GEOTIFF_SIZE, GEOTIFF_SIZE):
                raise DataError(
                    f"satellite patch GeoTIFF {path}: found {found}, expected {GEOTIFF_BANDS} bands (R, G, B, NIR) of "
                    f"{GEOTIFF_DTYPE}, {GEOTIFF_SIZE}x{GEOTIFF_SIZE} px (the GLC25 patch format); replace it with the "
                    "original file from the GLC25 download"
                )
            nodata = src.nodata
            arr = src.read()
    except RasterioError as e:
        raise DataError(
            f"satellite patch GeoTIFF {path}: not a readable GeoTIFF ({e}); the file is truncated or corrupt. "
            "Re-extract it from the GLC25 download."
        ) from e
    mask = arr == GEOTIFF_NODATA
    if nodata is not None and nodata != GEOTIFF_NODATA:
        mask |= arr == np.int16(nodata)
    empty = [PATCH_CHANNELS[b] for b in range(GEOTIFF_BANDS) if mask[b].all()]
    if empty:
        what = "every pixel" if len(empty) == GEOTIFF_BANDS else f"every pixel of band(s) {empty}"
        raise DataError(
            f"satellite patch GeoTIFF {path}: {what} is nodata ({GEOTIFF_NODATA}); the patch carries no image. "
            "Skip the survey (--skip-bad-inputs) or replace the file."
        )
    return np.ma.MaskedArray(arr, mask=mask)


@dataclass(frozen=True)
class PatchFormat:
    """How one edition stores a survey's satellite patch.

    Attributes:
        name: registry key (:attr:`glc.data.layout.Edition.patch_format`).
        size: patch side in pixels.
        dtype: numpy dtype of the stored pixels.
        has_nodata: the format marks pixels without data (the PatchTiles artifact then fills and counts them).
        read: ``read(paths, data) -> masked (4, size, size) array`` over the survey's files in
            :attr:`~glc.data.layout.Edition.patch_kinds` order; ``data`` holds their bytes (or read errors) when read
            ahead, else ``None``. The mask marks nodata pixels (``nomask`` for a format without nodata).
    """

    name: str
    size: int
    dtype: str
    has_nodata: bool
    read: Callable[[Sequence[str | Path], Sequence[bytes | OSError] | None], np.ma.MaskedArray]


def _read_jpeg_pair(paths: Sequence[str | Path], data: Sequence[bytes | OSError] | None) -> np.ma.MaskedArray:
    return np.ma.MaskedArray(read_patch_files(paths[0], paths[1], None if data is None else (data[0], data[1])))


def _read_geotiff(paths: Sequence[str | Path], data: Sequence[bytes | OSError] | None) -> np.ma.MaskedArray:
    return read_geotiff_patch(paths[0], None if data is None else data[0])


#: Every patch format by name.
PATCH_FORMATS: dict[str, PatchFormat] = {
    "jpeg_pair": PatchFormat("jpeg_pair", PATCH_SIZE, "uint8", False, _read_jpeg_pair),
    "geotiff": PatchFormat("geotiff", GEOTIFF_SIZE, GEOTIFF_DTYPE, True, _read_geotiff),
}


def patch_format(layout: Layout) -> PatchFormat:
    """The patch format of a data root's edition."""
    return PATCH_FORMATS[layout.edition.patch_format]


def read_patch(layout: Layout, split: Split, survey_id: int) -> np.ndarray:
    """Read the satellite patch of one PA survey, in its edition's format.

    Args:
        layout: the data root (any edition).
        split: ``"train"`` or ``"test"``.
        survey_id: the survey id.

    Returns:
        GLC24: ``(4, 128, 128) uint8`` (R, G, B, NIR), see :func:`read_patch_files`. GLC25: the ``(4, 64, 64)
        int16`` masked array of :func:`read_geotiff_patch`.
    """
    fmt = patch_format(layout)
    patch = fmt.read(layout.patch_paths(split, survey_id), None)
    return patch if fmt.has_nodata else patch.data


def patch_rgb(layout: Layout, split: Split, survey_id: int) -> np.ndarray:
    """The R, G, B bands of one survey's patch as a displayable ``(H, W, 3) uint8`` image (for reports).

    GLC24 JPEG pixels are returned as they are; GLC25 reflectances are stretched per band between the 2nd and 98th
    percentiles of the patch's valid pixels, nodata pixels black.
    """
    patch = read_patch(layout, split, survey_id)
    if not isinstance(patch, np.ma.MaskedArray):
        return np.ascontiguousarray(patch[:3].transpose(1, 2, 0))
    out = np.zeros((3, *patch.shape[1:]), np.uint8)
    for b in range(3):
        valid = patch.data[b][~patch.mask[b]].astype(np.float64)
        lo, hi = np.percentile(valid, [2, 98])
        scaled = np.clip((patch.data[b] - lo) / max(hi - lo, 1.0) * 255.0, 0, 255)
        out[b] = np.where(patch.mask[b], 0, np.rint(scaled)).astype(np.uint8)
    return out.transpose(1, 2, 0)
