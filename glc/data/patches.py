"""Sentinel-2 satellite patches: one RGB JPEG and one NIR JPEG per survey -> ``(4, 128, 128) uint8``.

Format (glc24-format.md §3): RGB is a 3-channel JPEG (mode ``RGB``), NIR a separate 1-channel JPEG (mode ``L``),
both 128 x 128, at ``<patch_root>/<CD>/<AB>/<surveyId>.jpeg`` (see :func:`glc.data.layout.patch_subdirs`). The
4-channel array is ``concat(R, G, B, NIR)``, as in malpolon's loader.

Truncated files are errors: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay ``False`` (its default), so that a
cut JPEG raises instead of decoding to a partly grey image. This module never changes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from glc.data.errors import DataError, require_file
from glc.data.layout import Layout, Split

#: Height and width of a GLC24 patch in pixels.
PATCH_SIZE = 128
#: Channel order of :func:`read_patch`.
PATCH_CHANNELS: tuple[str, ...] = ("red", "green", "blue", "nir")


def _read_jpeg(path: str | Path, mode: str, what: str) -> np.ndarray:
    """Decode one patch JPEG, checking its mode and size; returns ``(H, W[, C]) uint8``."""
    p = require_file(path, what)
    try:
        with Image.open(p) as im:
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


def read_patch_files(rgb_path: str | Path, nir_path: str | Path) -> np.ndarray:
    """Read one RGB JPEG and one NIR JPEG into a 4-channel patch.

    Args:
        rgb_path: the 3-channel JPEG (mode ``RGB``, 128 x 128).
        nir_path: the 1-channel JPEG (mode ``L``, 128 x 128).

    Returns:
        A C-contiguous ``(4, 128, 128) uint8`` array, channels R, G, B, NIR.

    Raises:
        DataFileNotFoundError: if either file is missing.
        DataError: if a file is not an image, has the wrong mode or size, or is truncated/corrupt.
    """
    rgb = _read_jpeg(rgb_path, "RGB", "RGB patch")
    nir = _read_jpeg(nir_path, "L", "NIR patch")
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
