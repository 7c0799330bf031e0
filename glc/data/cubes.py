"""Landsat and bioclimatic ``.pt`` cubes: read them, and write them with the real storage layout.

Format (glc24-format.md §4.2, §5.2): each file is a zip-format ``torch.save`` of one bare float32 tensor.

* Landsat: shape ``(6, 4, 21)`` = (band, quarter, year), bands :data:`glc.data.layout.LANDSAT_BANDS`, years
  2000..2020. Stored non-contiguously: a contiguous ``(6, 21, 4)`` base permuted by ``(0, 2, 1)``, strides
  ``(84, 1, 4)``.
* Bioclim: shape ``(4, 19, 12)`` = (variable, year, month), variables :data:`glc.data.layout.BIOCLIM_VARS`, years
  2000..2018. Stored as a contiguous ``(19, 12, 4)`` base permuted by ``(2, 0, 1)``, strides ``(1, 48, 4)``.

Readers return C-contiguous numpy copies and keep NaN as NaN (imputation is the ETL's job). :func:`write_cube`
reproduces the storage layout, writes atomically and is deterministic: ``torch.save`` writes no timestamps, and its
``.data/serialization_id`` record is computed from the record names and the CRC32 of their contents (PyTorch's
``PyTorchStreamWriter::writeSerializationId``), not drawn at random. The archive's inner folder is named after
the file stem, so the temporary file is given the final file name inside a temporary folder.
"""

from __future__ import annotations

import io

import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from glc.data.errors import DataError, require_file
from glc.data.layout import Layout, Split

CubeKind = Literal["landsat", "bioclim"]

#: Landsat cube shape (band, quarter, year).
LANDSAT_SHAPE: tuple[int, int, int] = (6, 4, 21)
#: Bioclimatic cube shape (variable, year, month).
BIOCLIM_SHAPE: tuple[int, int, int] = (4, 19, 12)
CUBE_SHAPES: dict[str, tuple[int, int, int]] = {"landsat": LANDSAT_SHAPE, "bioclim": BIOCLIM_SHAPE}
#: How the stored base array is made from the logical cube (numpy transpose) ...
_TO_BASE: dict[str, tuple[int, int, int]] = {"landsat": (0, 2, 1), "bioclim": (1, 2, 0)}
#: ... and how the logical cube is viewed from the base (``Tensor.permute``), as in the real files.
_FROM_BASE: dict[str, tuple[int, int, int]] = {"landsat": (0, 2, 1), "bioclim": (2, 0, 1)}
#: Strides (in elements) of the real files.
CUBE_STRIDES: dict[str, tuple[int, int, int]] = {"landsat": (84, 1, 4), "bioclim": (1, 48, 4)}


def _check_kind(kind: str) -> None:
    if kind not in CUBE_SHAPES:
        raise ValueError(f"cube kind must be one of {tuple(CUBE_SHAPES)}, got {kind!r}")


def read_cube(path: str | Path, kind: CubeKind, data: bytes | OSError | None = None) -> np.ndarray:
    """Read one cube file.

    Args:
        path: the ``.pt`` file.
        kind: ``"landsat"`` (expects :data:`LANDSAT_SHAPE`) or ``"bioclim"`` (:data:`BIOCLIM_SHAPE`).
        data: the file's bytes (or the error reading them) when they were read ahead on an I/O thread pool
            (:func:`glc.data.patches.read_bytes`); ``path`` then only names the file in messages.

    Returns:
        A C-contiguous float32 numpy copy of the cube (NaN kept).

    Raises:
        DataFileNotFoundError: if the file is missing.
        DataError: if the file is not a loadable tensor file, holds something other than one tensor, or the tensor
            has the wrong dtype or shape (message names the file, expected and found).
    """
    _check_kind(kind)
    what = f"{kind} cube"
    if isinstance(data, OSError):
        p = require_file(path, what)  # raises DataFileNotFoundError naming what was found there
        raise DataError(f"{what} {p}: could not be read ({data}); check the file and its permissions") from data
    p = require_file(path, what) if data is None else Path(path)
    try:
        obj = torch.load(p if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError/... for bad files
        raise DataError(
            f"{what} {p}: torch.load(weights_only=True) failed ({type(e).__name__}: {e}); expected a zip-format "
            "torch.save of one float32 tensor. Re-extract the cube archive."
        ) from e
    if not isinstance(obj, torch.Tensor):
        raise DataError(
            f"{what} {p}: holds a {type(obj).__name__}, not a tensor; expected one float32 tensor of shape "
            f"{CUBE_SHAPES[kind]}. Re-extract the cube archive."
        )
    expected = CUBE_SHAPES[kind]
    if tuple(obj.shape) != expected or obj.dtype != torch.float32:
        raise DataError(
            f"{what} {p}: expected a float32 tensor of shape {expected}, found {str(obj.dtype).replace('torch.', '')} "
            f"of shape {tuple(obj.shape)}; is this the right kind of cube (landsat {LANDSAT_SHAPE}, bioclim {BIOCLIM_SHAPE})?"
        )
    return np.array(obj.detach().numpy(), dtype=np.float32, order="C", copy=True)


def read_landsat_cube(layout: Layout, split: Split, survey_id: int) -> np.ndarray:
    """Read one survey's Landsat cube ``(6, 4, 21)`` float32 (see :func:`read_cube`)."""
    return read_cube(layout.cube_path(split, "landsat", survey_id), "landsat")


def read_bioclim_cube(layout: Layout, split: Split, survey_id: int) -> np.ndarray:
    """Read one survey's bioclimatic cube ``(4, 19, 12)`` float32 (see :func:`read_cube`)."""
    return read_cube(layout.cube_path(split, "bioclim", survey_id), "bioclim")


def cube_tensor(array: np.ndarray, kind: CubeKind) -> torch.Tensor:
    """Build the tensor :func:`write_cube` saves: the logical cube as a permuted view of the real base layout.

    Args:
        array: the cube, shape :data:`CUBE_SHAPES` ``[kind]``, any real numeric dtype (cast to float32).
        kind: ``"landsat"`` or ``"bioclim"``.

    Returns:
        A float32 tensor of the cube's shape with the strides of the real files (:data:`CUBE_STRIDES`).

    Raises:
        DataError: if the shape is wrong or the dtype is not a real number type.
    """
    _check_kind(kind)
    arr = np.asarray(array)
    expected = CUBE_SHAPES[kind]
    if arr.shape != expected:
        raise DataError(f"write_cube({kind}): expected an array of shape {expected}, found {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"write_cube({kind}): expected a real numeric array, found dtype {arr.dtype}")
    base = np.ascontiguousarray(arr.astype(np.float32, copy=False).transpose(_TO_BASE[kind]))
    return torch.from_numpy(base.copy()).permute(*_FROM_BASE[kind])


def write_cube(path: str | Path, array: np.ndarray, kind: CubeKind) -> Path:
    """Save a cube like the real GLC24 files: real storage layout, atomic, byte-for-byte deterministic.

    The file is first written under its final name inside a temporary folder next to ``path`` (so the archive's
    inner folder name equals the final file stem), then moved into place with :func:`os.replace`. A failure leaves
    any previous file at ``path`` untouched and removes the temporary folder.

    Args:
        path: the destination ``.pt`` file; missing parent folders are created.
        array: the logical cube (see :func:`cube_tensor`); NaN is stored as NaN.
        kind: ``"landsat"`` or ``"bioclim"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: if the array has the wrong shape or dtype.
    """
    tensor = cube_tensor(array, kind)
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    try:
        tmp = Path(tmp_dir) / dest.name
        torch.save(tensor, tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dest
