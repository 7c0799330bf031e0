"""Orthonormal DCT-II features and exact DCT-domain augmentations.

Every transform here is the *orthonormal* DCT-II of :mod:`scipy.fft` (``norm="ortho"``), so Parseval holds
(the energy of an image equals the energy of its coefficients) and the inverse is exact. scipy's default
``norm=None`` scales the coefficients and breaks both (pitfall 6 in docs/contributing.md).

Conventions (2D):

* Images have shape ``(..., H, W)``: axis ``-2`` is the **row** (vertical, north to south for a north-up raster),
  axis ``-1`` the **column** (horizontal, west to east). Any leading axes (batch, band) are carried along.
* Coefficient ``c[..., u, v]``: ``u`` is the vertical frequency (along the rows axis), ``v`` the horizontal
  frequency (along the columns axis); ``c[..., 0, 0]`` is ``sum(x) / sqrt(H * W)``.
* "Keeping k" means keeping the top-left (lowest-frequency) ``k x k`` block ``c[..., :k, :k]``.

Augmentations act on coefficient arrays of any size (the full ``H x W`` array or a kept ``k x k`` block) and are
exactly the DCT of the same operation applied in pixel space (verified in ``tests/features/test_dct.py``):

* ``np.fliplr(x)`` (mirror left-right): ``c[u, v] * (-1)**v`` -- :func:`flip_horizontal`
* ``np.flipud(x)`` (mirror up-down): ``c[u, v] * (-1)**u`` -- :func:`flip_vertical`
* ``x.swapaxes(-1, -2)`` (reflection across the main diagonal): ``c.swapaxes(-1, -2)`` -- :func:`transpose`
* ``np.rot90(x, 1)`` (90 deg counter-clockwise): ``transpose(flip_horizontal(c))`` -- :func:`rotate90` ``times=1``
* ``np.rot90(x, 2)`` (180 deg): ``c[u, v] * (-1)**(u + v)`` -- :func:`rotate90` ``times=2``
* ``np.rot90(x, 3)`` (270 deg counter-clockwise): ``flip_horizontal(transpose(c))`` -- :func:`rotate90` ``times=3``
* any of the 8 operations, chosen per sample, on a batch (numpy or torch) -- :func:`dihedral`

Which sign changes: reversing the pixel order along array axis ``a`` multiplies the coefficients by ``(-1)**f``
where ``f`` is the frequency index *of that same array axis* (``np.fliplr`` reverses the columns, axis ``-1``, so it
negates the odd horizontal frequencies ``v``). Said with the mirror line instead: mirroring across the vertical
centre line (a left-right flip) changes the odd coefficients of the *horizontal* frequency axis, i.e. of the axis
perpendicular to the mirror line.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

__all__ = [
    "dct1",
    "dct2",
    "dct_matrix",
    "dihedral",
    "flip_horizontal",
    "flip_vertical",
    "from_zigzag",
    "idct1",
    "idct2",
    "image_dihedral",
    "rotate90",
    "to_zigzag",
    "transpose",
    "zigzag_indices",
]


def _float(x: np.ndarray) -> np.ndarray:
    """``x`` as float32 if it already is float32, else float64 (integers and float16 are widened)."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _check_finite(out: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(out).all():
        raise ValueError(
            f"{what}: the result contains NaN or inf because the input does; expected finite values. "
            "Impute or mask missing values before transforming (e.g. glc.features.tiles fills invalid pixels)."
        )
    return out


@lru_cache(maxsize=64)
def _dct_matrix_cached(n: int, k: int, dtype: str) -> np.ndarray:
    m = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)[:k].astype(dtype)
    m.setflags(write=False)
    return m


def dct_matrix(n: int, k: int | None = None, dtype: np.dtype | type | str = np.float64) -> np.ndarray:
    """The first ``k`` rows of the orthonormal DCT-II matrix of size ``n``.

    ``dct_matrix(n) @ x == scipy.fft.dct(x, norm="ortho")`` for a length-``n`` vector ``x``; the rows are
    orthonormal, so ``D.T @ D`` restricted to the kept rows is the projection onto the first ``k`` frequencies.
    Built from :func:`scipy.fft.dct` itself (the DCT of the identity), cached, and returned read-only.

    Args:
        n: signal length (> 0).
        k: number of rows (frequencies) to keep, ``1 <= k <= n``; ``None`` keeps all ``n``.
        dtype: float dtype of the matrix.

    Returns:
        A read-only ``(k, n)`` array.

    Raises:
        ValueError: if ``n`` or ``k`` is out of range.
    """
    k = n if k is None else k
    if not (isinstance(n, (int, np.integer)) and n > 0):
        raise ValueError(f"dct_matrix: n must be a positive int (signal length), got {n!r}")
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= n):
        raise ValueError(f"dct_matrix: k must be an int in 1..n={n} (frequencies kept), got {k!r}")
    return _dct_matrix_cached(int(n), int(k), np.dtype(dtype).name)


def _pair(k: int | tuple[int, int] | None, shape: tuple[int, int], name: str) -> tuple[int, int]:
    kh, kw = shape if k is None else (k, k) if isinstance(k, (int, np.integer)) else tuple(k)
    if not (1 <= kh <= shape[0] and 1 <= kw <= shape[1]):
        raise ValueError(
            f"{name}: k={k!r} must be in 1..{shape[0]} (rows) and 1..{shape[1]} (columns) for an image of shape "
            f"{shape}; lower k or use larger tiles"
        )
    return int(kh), int(kw)


def dct2(tile: np.ndarray, k: int | tuple[int, int] | None = 8) -> np.ndarray:
    """Orthonormal 2D DCT-II of the last two axes, keeping the top-left ``k x k`` block.

    Computed as ``D_H[:k] @ tile @ D_W[:k].T`` with the orthonormal DCT basis matrices (:func:`dct_matrix`), which
    costs ``O(k * H * W)`` instead of the full transform's ``O(H * W * log)`` plus a copy, and equals
    ``scipy.fft.dctn(tile, axes=(-2, -1), norm="ortho")[..., :k, :k]`` to rounding.

    Args:
        tile: array ``(..., H, W)``; leading axes (batch, bands) are kept. Integer input is computed in float64,
            float32 input in float32.
        k: block size kept: an int (``k x k``), a pair ``(kh, kw)``, or ``None`` for the full ``H x W`` array.

    Returns:
        Coefficients ``(..., k, k)``.

    Raises:
        ValueError: if ``tile`` has fewer than 2 axes, ``k`` exceeds the image size, or the input is not finite.
    """
    x = _float(tile)
    if x.ndim < 2:
        raise ValueError(f"dct2: expected an array (..., H, W) with at least 2 axes, got shape {x.shape}")
    h, w = x.shape[-2:]
    kh, kw = _pair(k, (h, w), "dct2")
    dh = dct_matrix(h, kh, x.dtype)
    dw = dct_matrix(w, kw, x.dtype)
    # Contract the columns with one GEMM over all leading axes and rows: (..., H, W) @ (W, kw) -> (..., H, kw).
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by _check_finite below
        y = x @ dw.T
        out = dh @ y  # (kh, H) @ (..., H, kw) -> (..., kh, kw)
    return _check_finite(out, "dct2")


def idct2(coeffs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Reconstruct ``(..., H, W)`` images from their top-left DCT-II block (orthonormal inverse, rest zero).

    Equal to ``scipy.fft.idctn(c_full, axes=(-2, -1), norm="ortho")`` where ``c_full`` is ``coeffs`` zero-filled to
    ``(..., H, W)``; with ``coeffs`` from :func:`dct2` this is the least-squares projection of the image onto its
    first ``kh x kw`` frequencies, and the squared error equals the energy of the dropped coefficients (Parseval).

    Args:
        coeffs: array ``(..., kh, kw)``.
        shape: ``(H, W)`` of the output, with ``H >= kh`` and ``W >= kw``.

    Returns:
        Images ``(..., H, W)``.

    Raises:
        ValueError: on a bad shape or non-finite coefficients.
    """
    c = _float(coeffs)
    if c.ndim < 2:
        raise ValueError(f"idct2: expected coefficients (..., kh, kw) with at least 2 axes, got shape {c.shape}")
    h, w = (int(s) for s in shape)
    kh, kw = c.shape[-2:]
    if not (h >= kh >= 1 and w >= kw >= 1):
        raise ValueError(f"idct2: shape={shape!r} must be at least the coefficient block {c.shape[-2:]}")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by _check_finite below
        out = dct_matrix(h, kh, c.dtype).T @ c @ dct_matrix(w, kw, c.dtype)
    return _check_finite(out, "idct2")


def dct1(series: np.ndarray, n: int = 64) -> np.ndarray:
    """Orthonormal 1D DCT-II of the last axis, keeping the first ``n`` coefficients.

    If the series is shorter than ``n`` (``T < n``), its ``T`` coefficients are returned **zero-padded** to length
    ``n`` (a series has no frequencies beyond its length), so every output has the same length; :func:`idct1` with
    ``length=T`` inverts it exactly.

    Args:
        series: array ``(..., T)`` with ``T >= 1``.
        n: number of coefficients returned (> 0).

    Returns:
        Coefficients ``(..., n)``.

    Raises:
        ValueError: if ``n < 1``, the series is empty, or it contains NaN/inf.
    """
    x = _float(series)
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"dct1: n must be a positive int (coefficients kept), got {n!r}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"dct1: expected an array (..., T) with T >= 1, got shape {x.shape}")
    t = x.shape[-1]
    c = scipy.fft.dct(x, type=2, norm="ortho", axis=-1)[..., :n]
    if t < n:
        c = np.concatenate([c, np.zeros((*x.shape[:-1], n - t), dtype=c.dtype)], axis=-1)
    return _check_finite(c, "dct1")


def idct1(coeffs: np.ndarray, length: int) -> np.ndarray:
    """Reconstruct series of ``length`` samples from their first DCT-II coefficients (orthonormal, rest zero).

    Args:
        coeffs: array ``(..., n)``. If ``n > length`` the coefficients beyond ``length`` must be zero (the padding
            :func:`dct1` adds for short series); they cannot be represented in ``length`` samples.
        length: number of samples ``T`` of the output (> 0).

    Returns:
        Series ``(..., length)``.

    Raises:
        ValueError: on a bad length, non-zero coefficients beyond ``length``, or non-finite coefficients.
    """
    c = _float(coeffs)
    if not (isinstance(length, (int, np.integer)) and length >= 1):
        raise ValueError(f"idct1: length must be a positive int (samples), got {length!r}")
    if c.ndim < 1:
        raise ValueError("idct1: expected coefficients (..., n), got a scalar")
    n = c.shape[-1]
    if n > length:
        if np.any(c[..., length:] != 0):
            raise ValueError(
                f"idct1: {n} coefficients but length={length}: coefficients {length}..{n - 1} are non-zero and "
                "cannot be represented; pass the series' true length (the one given to dct1)"
            )
        c = c[..., :length]
    elif n < length:
        c = np.concatenate([c, np.zeros((*c.shape[:-1], length - n), dtype=c.dtype)], axis=-1)
    return _check_finite(scipy.fft.idct(c, type=2, norm="ortho", axis=-1), "idct1")


@lru_cache(maxsize=32)
def _zigzag_cached(k: int) -> np.ndarray:
    rows, cols = np.divmod(np.arange(k * k), k)
    diag = rows + cols
    # JPEG order: along each anti-diagonal s = row + col, odd s runs down-left (row increasing),
    # even s runs up-right (row decreasing).
    order = np.lexsort((np.where(diag % 2 == 1, rows, -rows), diag))
    order.setflags(write=False)
    return order


def zigzag_indices(k: int) -> np.ndarray:
    """Flat (row-major) indices of a ``k x k`` block in JPEG zigzag order.

    ``c.reshape(..., k * k)[..., zigzag_indices(k)]`` lists the coefficients from the lowest frequency outward:
    ``(0,0), (0,1), (1,0), (2,0), (1,1), (0,2), (0,3), ...`` as ``(row u, column v)``.

    Args:
        k: block size (> 0).

    Returns:
        A read-only int64 permutation of ``0 .. k*k - 1``.

    Raises:
        ValueError: if ``k < 1``.
    """
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"zigzag_indices: k must be a positive int (block size), got {k!r}")
    return _zigzag_cached(int(k))


def to_zigzag(coeffs: np.ndarray) -> np.ndarray:
    """Flatten ``(..., k, k)`` coefficient blocks to ``(..., k*k)`` vectors in JPEG zigzag order.

    Raises:
        ValueError: if the last two axes are not square.
    """
    c = np.asarray(coeffs)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(f"to_zigzag: expected square blocks (..., k, k), got shape {c.shape}")
    k = c.shape[-1]
    return c.reshape(*c.shape[:-2], k * k)[..., zigzag_indices(k)]


def from_zigzag(vec: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`to_zigzag`: ``(..., k*k)`` zigzag vectors back to ``(..., k, k)`` blocks.

    Raises:
        ValueError: if the last axis is not ``k*k`` long.
    """
    v = np.asarray(vec)
    if v.ndim < 1 or v.shape[-1] != k * k:
        raise ValueError(f"from_zigzag: expected vectors (..., k*k={k * k}) for k={k}, got shape {v.shape}")
    out = np.empty_like(v)
    out[..., zigzag_indices(k)] = v
    return out.reshape(*v.shape[:-1], k, k)


def _signs(n: int, dtype: np.dtype) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, 1, -1).astype(dtype)


def _coeff_array(c: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(c)
    if c.ndim < 2:
        raise ValueError(f"{name}: expected coefficients (..., U, V) with at least 2 axes, got shape {c.shape}")
    return c


def flip_horizontal(c: np.ndarray) -> np.ndarray:
    """DCT of the left-right mirrored image (``np.fliplr``, columns reversed): ``c[..., u, v] * (-1)**v``.

    Works on the full ``H x W`` coefficient array and on any kept top-left block alike.
    """
    c = _coeff_array(c, "flip_horizontal")
    return c * _signs(c.shape[-1], c.dtype)


def flip_vertical(c: np.ndarray) -> np.ndarray:
    """DCT of the up-down mirrored image (``np.flipud``, rows reversed): ``c[..., u, v] * (-1)**u``.

    Works on the full ``H x W`` coefficient array and on any kept top-left block alike.
    """
    c = _coeff_array(c, "flip_vertical")
    return c * _signs(c.shape[-2], c.dtype)[:, None]


def transpose(c: np.ndarray) -> np.ndarray:
    """DCT of the transposed image (``x.swapaxes(-1, -2)``): the coefficients transposed.

    This is a **reflection across the main diagonal**, not a rotation (the DS@GT paper calls it a rotation; it is
    not: ``rot90 = transpose o flip``, see :func:`rotate90`). For an ``H x W`` image the result is ``W x H``.
    """
    return _coeff_array(c, "transpose").swapaxes(-1, -2)


def rotate90(c: np.ndarray, times: int = 1) -> np.ndarray:
    """DCT of the image rotated by ``90 * times`` degrees counter-clockwise, like ``np.rot90(x, times, axes=(-2, -1))``.

    Derivation: ``np.rot90(x) == fliplr(x).T`` (reverse the columns, then transpose), so one turn is
    ``transpose(flip_horizontal(c))``, i.e. ``c'[a, b] = c[b, a] * (-1)**a``; two turns flip both axes,
    ``c[u, v] * (-1)**(u + v)``; three turns are ``np.rot90(x, 3) == fliplr(x.T)``, i.e.
    ``flip_horizontal(transpose(c))``. ``times`` is taken modulo 4 (negative values turn clockwise).

    Args:
        c: coefficients ``(..., U, V)`` (full array or kept block).
        times: number of counter-clockwise quarter turns.

    Returns:
        Coefficients ``(..., V, U)`` for odd ``times``, ``(..., U, V)`` for even.
    """
    c = _coeff_array(c, "rotate90")
    if not isinstance(times, (int, np.integer)):
        raise ValueError(f"rotate90: times must be an int (quarter turns), got {times!r}")
    t = int(times) % 4
    if t == 0:
        return c.copy()
    if t == 1:
        return transpose(flip_horizontal(c))
    if t == 2:
        return flip_vertical(flip_horizontal(c))
    return flip_horizontal(transpose(c))


#: The 8 dihedral operations of a square tile (:func:`dihedral`): bit 0 = :func:`flip_horizontal`, bit 1 =
#: :func:`flip_vertical`, bit 2 = :func:`transpose`, applied in that order. ``0`` is the identity, ``3`` a 180 degree
#: turn, ``5`` (flip, then transpose) a 90 degree counter-clockwise turn, ``6`` a 270 degree one.
N_DIHEDRAL = 8


def _check_dihedral(who: str, what: str, x, ops) -> None:
    """Square trailing axes and one op per sample (the shape rules of :func:`dihedral` and :func:`image_dihedral`)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{who}: {what} must be square (a transpose keeps the shape), got {tuple(x.shape)}")
    if len(ops) != x.shape[0]:
        raise ValueError(f"{who}: {len(ops)} ops for a batch of {x.shape[0]} samples")


def dihedral(c, ops):
    """Apply one of the 8 dihedral operations **per sample** to DCT coefficient blocks, in the DCT domain.

    Exactly the DCT of the same operation in pixel space (``np.fliplr``, ``np.flipud``, ``swapaxes``, composed in
    the order of :data:`N_DIHEDRAL`'s bits), for every sample ``i`` its own ``ops[i]``; works on numpy arrays and
    torch tensors (on any device, autograd-safe) with the same code, so the training loop can augment whole batches.

    Args:
        c: coefficients ``(B, ..., k, k)`` (square blocks: a transpose must keep the shape).
        ops: ``(B,)`` integers in ``0..7`` (numpy array or tensor, matching ``c``).

    Returns:
        The transformed coefficients, same shape and type as ``c``.

    Raises:
        ValueError: if the blocks are not square, or ``ops`` has the wrong length or values outside 0..7.
    """
    _check_dihedral("dihedral", "blocks", c, ops)
    k = c.shape[-1]
    is_torch = hasattr(c, "new_tensor")
    if is_torch:
        import torch

        ops_t = (
            ops.to(device=c.device, dtype=torch.int64)
            if isinstance(ops, torch.Tensor)
            else torch.as_tensor(ops, device=c.device)
        )
        if bool(((ops_t < 0) | (ops_t > 7)).any()):
            raise ValueError("dihedral: ops must be in 0..7")
        signs = torch.where(torch.arange(k, device=c.device) % 2 == 0, 1.0, -1.0).to(c.dtype)
        view = (-1,) + (1,) * (c.dim() - 1)
        bit = lambda b: ((ops_t >> b) & 1).bool().view(view)  # noqa: E731
        where, swap = torch.where, lambda a: a.transpose(-1, -2)
    else:
        ops_t = np.asarray(ops, np.int64)
        if ((ops_t < 0) | (ops_t > 7)).any():
            raise ValueError("dihedral: ops must be in 0..7")
        c = np.asarray(c)
        signs = _signs(k, c.dtype)
        view = (-1,) + (1,) * (c.ndim - 1)
        bit = lambda b: ((ops_t >> b) & 1).astype(bool).reshape(view)  # noqa: E731
        where, swap = np.where, lambda a: a.swapaxes(-1, -2)
    out = where(bit(0), c * signs, c)  # flip_horizontal: (-1)**v along the last axis
    out = where(bit(1), out * signs[:, None], out)  # flip_vertical: (-1)**u along the rows axis
    return where(bit(2), swap(out), out)


def image_dihedral(x, ops):
    """The same 8 dihedral operations as :func:`dihedral`, **per sample**, on pixel images ``(B, ..., H, W)``.

    Bit 0 of ``ops[i]`` flips the columns (``np.fliplr``), bit 1 the rows (``np.flipud``), bit 2 transposes, in this
    order, so ``dct2(image_dihedral(img, ops)) == dihedral(dct2(img), ops)``: use this one on images (IDCT
    reconstructions, raw pixels) and :func:`dihedral` on coefficients. Applying :func:`dihedral` to an image would
    change the signs of alternate pixel columns instead of flipping it.

    Raises:
        ValueError: if the images are not square, or ``ops`` has the wrong length or values outside 0..7.
    """
    _check_dihedral("image_dihedral", "images", x, ops)
    if hasattr(x, "new_tensor"):
        import torch

        o = (
            ops.to(device=x.device, dtype=torch.int64)
            if isinstance(ops, torch.Tensor)
            else torch.as_tensor(ops, device=x.device)
        )
        if bool(((o < 0) | (o > 7)).any()):
            raise ValueError("image_dihedral: ops must be in 0..7")
        view = (-1,) + (1,) * (x.dim() - 1)
        bit = lambda b: ((o >> b) & 1).bool().view(view)  # noqa: E731
        out = torch.where(bit(0), x.flip(-1), x)
        out = torch.where(bit(1), out.flip(-2), out)
        return torch.where(bit(2), out.transpose(-1, -2), out)
    o = np.asarray(ops, np.int64)
    if ((o < 0) | (o > 7)).any():
        raise ValueError("image_dihedral: ops must be in 0..7")
    x = np.asarray(x)
    view = (-1,) + (1,) * (x.ndim - 1)
    bit = lambda b: ((o >> b) & 1).astype(bool).reshape(view)  # noqa: E731
    out = np.where(bit(0), x[..., ::-1], x)
    out = np.where(bit(1), out[..., ::-1, :], out)
    return np.where(bit(2), out.swapaxes(-1, -2), out)
