"""Sentinel-2 satellite patches: one RGB JPEG and one NIR JPEG per survey -> ``(4, 128, 128) uint8``.

Format (glc24-format.md §3): RGB is a 3-channel JPEG (mode ``RGB``), NIR a separate 1-channel JPEG (mode ``L``),
both 128 x 128, at ``<patch_root>/<CD>/<AB>/<surveyId>.jpeg`` (see :func:`glc.data.layout.patch_subdirs`). The
4-channel array is ``concat(R, G, B, NIR)``, as in malpolon's loader.

Truncated files are errors: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay ``False`` (its default), so that a
cut JPEG raises instead of decoding to a partly grey image. This module never changes it.
"""

from __future__ import annotations

import io
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


def read_patch(layout: Layout, split: Split, survey_id: int) -> np.ndarray:
    """Read the RGB + NIR patch of one PA survey.

    Args:
        layout: the data root (Kaggle or Seafile names).
        split: ``"train"`` or ``"test"``.
        survey_id: the survey id.

    Returns:
        ``(4, 128, 128) uint8`` (R, G, B, NIR), see :func:`read_patch_files`.
    """
    return read_patch_files(layout.patch_path(split, survey_id, "rgb"), layout.patch_path(split, survey_id, "nir"))
