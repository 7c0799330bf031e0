"""Property tests of glc.features.dct against scipy.fft and pixel-space numpy operations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

from glc.features.dct import (
    dct1,
    dct2,
    dct_matrix,
    flip_horizontal,
    flip_vertical,
    from_zigzag,
    idct1,
    idct2,
    rotate90,
    to_zigzag,
    transpose,
    zigzag_indices,
)

SETTINGS = settings(max_examples=40, deadline=None)


def _full(x: np.ndarray) -> np.ndarray:
    """Reference: the full orthonormal 2D DCT-II of the last two axes."""
    return scipy.fft.dctn(x, axes=(-2, -1), norm="ortho")


@st.composite
def images(draw: st.DrawFn, square: bool = False, max_side: int = 33) -> tuple[np.ndarray, int]:
    """A random (bands, H, W) image (odd and even sides, optionally square) and a k <= min(H, W)."""
    h = draw(st.integers(1, max_side))
    w = h if square else draw(st.integers(1, max_side))
    bands = draw(st.integers(1, 3))
    k = draw(st.integers(1, min(h, w)))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e4]))
    x = np.random.default_rng(seed).normal(size=(bands, h, w)) * scale
    return x, k


def _close(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> None:
    """Equal up to float64 rounding relative to the data's scale."""
    atol = 1e-9 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=atol)


@SETTINGS
@given(images())
def test_dct2_equals_scipy_dctn_block(xk: tuple[np.ndarray, int]) -> None:
    x, k = xk
    got = dct2(x, k)
    assert got.shape == (x.shape[0], k, k)
    _close(got, _full(x)[..., :k, :k], x)


@SETTINGS
@given(images(square=True))
def test_flips_and_rotations_equal_pixel_ops_on_kept_block(xk: tuple[np.ndarray, int]) -> None:
    x, k = xk
    c = dct2(x, k)
    _close(flip_horizontal(c), dct2(np.flip(x, axis=-1), k), x)
    _close(flip_vertical(c), dct2(np.flip(x, axis=-2), k), x)
    _close(transpose(c), dct2(x.swapaxes(-1, -2), k), x)
    for times in range(-5, 6):
        _close(rotate90(c, times), dct2(np.rot90(x, times, axes=(-2, -1)), k), x)


@SETTINGS
@given(images())
def test_augmentations_on_full_non_square_coefficients(xk: tuple[np.ndarray, int]) -> None:
    x, _ = xk
    c = _full(x)
    _close(flip_horizontal(c), _full(np.stack([np.fliplr(b) for b in x])), x)
    _close(flip_vertical(c), _full(np.stack([np.flipud(b) for b in x])), x)
    _close(transpose(c), _full(np.stack([b.T for b in x])), x)
    for times in range(4):
        _close(rotate90(c, times), _full(np.stack([np.rot90(b, times) for b in x])), x)
    # the kept block of a non-square image too (k <= min(H, W))
    k = min(x.shape[-2:])
    _close(flip_horizontal(dct2(x, k)), dct2(x[..., ::-1], k), x)
    _close(rotate90(dct2(x, k), 1), dct2(np.rot90(x, 1, axes=(-2, -1)), k), x)


def test_transpose_is_a_reflection_not_a_rotation() -> None:
    x = np.arange(12.0).reshape(3, 4) ** 1.5
    c = dct2(x, None)
    assert not np.allclose(transpose(c), rotate90(c, 1))
    assert not np.allclose(transpose(c), rotate90(c, 3))
    # a rotation is a transpose composed with a flip, and applying the transpose twice is the identity
    np.testing.assert_allclose(transpose(transpose(c)), c)
    np.testing.assert_allclose(rotate90(c, 1), transpose(flip_horizontal(c)))


@SETTINGS
@given(images())
def test_parseval_reconstruction_error_is_dropped_energy(xk: tuple[np.ndarray, int]) -> None:
    x, k = xk
    h, w = x.shape[-2:]
    rec = idct2(dct2(x, k), (h, w))
    full = _full(x)
    dropped = (full**2).sum(axis=(-2, -1)) - (full[..., :k, :k] ** 2).sum(axis=(-2, -1))
    err = ((x - rec) ** 2).sum(axis=(-2, -1))
    scale = (x**2).sum(axis=(-2, -1))
    np.testing.assert_allclose(err, dropped, rtol=1e-7, atol=1e-10 * scale.max() + 1e-300)
    # and idct2 is scipy's orthonormal inverse of the zero-filled block
    padded = np.zeros_like(full)
    padded[..., :k, :k] = full[..., :k, :k]
    _close(rec, scipy.fft.idctn(padded, axes=(-2, -1), norm="ortho"), x)


@SETTINGS
@given(images())
def test_round_trip_is_exact_when_all_coefficients_are_kept(xk: tuple[np.ndarray, int]) -> None:
    x, _ = xk
    _close(idct2(dct2(x, None), x.shape[-2:]), x, x)
    if x.shape[-1] == x.shape[-2]:
        _close(idct2(dct2(x, x.shape[-1]), x.shape[-2:]), x, x)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_dct1_idct1(t: int, n: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=(2, 3, t)) * 100
    c = dct1(x, n)
    assert c.shape == (2, 3, n)
    full = scipy.fft.dct(x, norm="ortho", axis=-1)
    m = min(n, t)
    _close(c[..., :m], full[..., :m], x)
    assert (c[..., m:] == 0).all()  # documented zero padding when T < n
    rec = idct1(c, t)
    assert rec.shape == x.shape
    dropped = (full[..., m:] ** 2).sum(-1)
    np.testing.assert_allclose(((x - rec) ** 2).sum(-1), dropped, rtol=1e-7, atol=1e-9 * (x**2).sum(-1).max())
    if n >= t:
        _close(rec, x, x)


def test_dct_matrix_is_orthonormal_and_matches_scipy() -> None:
    d = dct_matrix(13)
    np.testing.assert_allclose(d @ d.T, np.eye(13), atol=1e-12)
    v = np.random.default_rng(0).normal(size=13)
    np.testing.assert_allclose(dct_matrix(13, 5) @ v, scipy.fft.dct(v, norm="ortho")[:5], atol=1e-12)
    with pytest.raises(ValueError):
        dct_matrix(13)[0, 0] = 1.0  # cached matrices are read-only


def test_zigzag_is_the_jpeg_order() -> None:
    # The standard JPEG zigzag scan of an 8x8 block (ITU-T T.81, Figure A.6), as row-major indices.
    jpeg = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
            14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39,
            46, 53, 60, 61, 54, 47, 55, 62, 63]  # fmt: skip
    assert zigzag_indices(8).tolist() == jpeg


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 11])
def test_zigzag_walks_adjacent_cells_and_round_trips(k: int) -> None:
    idx = zigzag_indices(k)
    assert sorted(idx.tolist()) == list(range(k * k))
    r, c = np.divmod(idx, k)
    assert (np.abs(np.diff(r)) <= 1).all() and (np.abs(np.diff(c)) <= 1).all()
    assert (np.diff(r + c) >= 0).all()  # anti-diagonals in order: low frequencies first
    x = np.random.default_rng(k).normal(size=(4, 2, k, k))
    z = to_zigzag(x)
    assert z.shape == (4, 2, k * k)
    np.testing.assert_array_equal(from_zigzag(z, k), x)


def test_errors_name_the_parameter() -> None:
    x = np.ones((5, 7))
    with pytest.raises(ValueError, match=r"dct2: k=6 must be in 1\.\.5"):
        dct2(x, 6)
    with pytest.raises(ValueError, match="dct2: the result contains NaN"):
        dct2(np.where(x > 0, np.nan, 0.0), 2)
    with pytest.raises(ValueError, match="at least 2 axes"):
        dct2(np.ones(4), 2)
    with pytest.raises(ValueError, match=r"idct2: shape=\(3, 3\) must be at least"):
        idct2(np.ones((4, 4)), (3, 3))
    with pytest.raises(ValueError, match="coefficients 3..4 are non-zero"):
        idct1(np.ones(5), 3)
    with pytest.raises(ValueError, match="dct1: the result contains NaN or inf"):
        dct1(np.array([1.0, np.inf]), 4)
    with pytest.raises(ValueError, match=r"from_zigzag: expected vectors \(\.\.\., k\*k=9\)"):
        from_zigzag(np.ones(8), 3)
    with pytest.raises(ValueError, match="times must be an int"):
        rotate90(np.ones((2, 2)), 1.0)  # type: ignore[arg-type]


def test_dtype_float32_is_kept_and_integers_are_widened() -> None:
    x = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert dct2(x, 4).dtype == np.float64
    assert dct2(x.astype(np.float32), 4).dtype == np.float32
    np.testing.assert_allclose(dct2(x, 4), _full(x.astype(np.float64))[:4, :4], atol=1e-10)


def test_dihedral_per_sample_equals_each_pixel_operation_numpy_and_torch():
    """Each of the 8 ops on a batch (one op per sample) equals the DCT of the pixel-space op; numpy and torch agree;
    ops 5/3/6 are the 90/180/270 degree turns of :func:`rotate90`."""
    import torch

    from glc.features.dct import dihedral

    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 2, 12, 12))
    c = dct2(x, None)
    ops = np.arange(8)
    out = dihedral(c, ops)
    for i in range(8):
        img = x[i]
        if i & 1:
            img = img[..., ::-1]
        if i & 2:
            img = img[..., ::-1, :]
        if i & 4:
            img = img.swapaxes(-1, -2)
        np.testing.assert_allclose(out[i], dct2(np.ascontiguousarray(img), None), atol=1e-9)
    np.testing.assert_allclose(dihedral(torch.from_numpy(c), torch.arange(8)).numpy(), out, atol=1e-12)
    for op, turns in ((5, 1), (3, 2), (6, 3)):
        np.testing.assert_allclose(out[op], rotate90(c[op], turns), atol=1e-12)
    with pytest.raises(ValueError, match="blocks must be square"):
        dihedral(np.zeros((2, 3, 4)), [0, 1])
    with pytest.raises(ValueError, match="ops must be in 0..7"):
        dihedral(np.zeros((2, 3, 3)), [0, 8])
    with pytest.raises(ValueError, match="2 ops for a batch of 3"):
        dihedral(np.zeros((3, 3, 3)), [0, 1])


def test_image_dihedral_is_the_pixel_twin_of_the_dct_domain_dihedral() -> None:
    """dct2(image_dihedral(img, ops)) == dihedral(dct2(img), ops) per sample, for numpy and torch; applying the
    DCT-domain operation to pixels instead is not a flip (the bug the pixel version exists to avoid)."""
    import torch

    from glc.features.dct import dct2, dihedral, image_dihedral

    rng = np.random.default_rng(4)
    img = rng.normal(size=(8, 3, 16, 16))
    ops = np.arange(8)
    for x, o in ((img, ops), (torch.from_numpy(img), torch.from_numpy(ops))):
        out = image_dihedral(x, o)
        out = out.numpy() if hasattr(out, "numpy") else out
        np.testing.assert_allclose(dct2(out, 16), dihedral(dct2(img, 16), ops), atol=1e-9)
    assert not np.allclose(dihedral(img, np.ones(8, int)), img[..., ::-1])  # signs, not a flip, on pixels
    with pytest.raises(ValueError, match="must be square"):
        image_dihedral(img[..., :8], ops)
