"""Tests of glc.features.tiles against the naive per-site reference (tests/features/reference.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from glc.data.errors import DataError, DataFileNotFoundError
from glc.features.dct import idct2
from glc.features.tiles import TileExtractor, TileSpec, extract_tiles
from tests.features.reference import pixel_centre, reference_tiles, write_raster

RES = 0.01
TRANSFORM = Affine(RES, 0.0, 10.0, 0.0, -RES, 50.0)  # north-up, upper-left corner at (10E, 50N)
H, W = 70, 90


def _close(got: np.ndarray, ref: np.ndarray) -> None:
    """float32 output vs float64 reference: equal to float32 rounding of the tile's scale."""
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def _edge_sites(tile: int) -> list[tuple[int, int]]:
    """(row, col) of sites within half a tile of every edge and corner, on the border pixels, and in the middle."""
    h2 = tile // 2
    rows = [0, 1, h2 - 1, H // 2, H - h2, H - 2, H - 1]
    cols = [0, 1, h2 - 1, W // 2, W - h2, W - 2, W - 1]
    return [(r, c) for r in rows for c in cols]


@pytest.fixture(scope="module")
def uint8_raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 bands, uint8, nodata 255: a gradient plus noise, a nodata block at the top-left and a nodata column."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W]
    data = np.stack([(xx * 2 + yy) % 250, rng.integers(0, 250, size=(H, W))]).astype(np.uint8)
    data[:, 3:12, 5:20] = 255
    data[0, :, 60] = 255
    path = tmp_path_factory.mktemp("rasters") / "u8.tif"
    return write_raster(path, data, TRANSFORM, nodata=255, compress="deflate", tiled=True, blockxsize=32, blockysize=32)


@pytest.fixture(scope="module")
def float_raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """float32, nodata -9999, with NaN, +inf and -inf pixels and a nodata region on the right edge."""
    rng = np.random.default_rng(2)
    data = rng.normal(100.0, 20.0, size=(1, H, W)).astype(np.float32)
    data[0, 10:14, 10:14] = np.nan
    data[0, 30, 40] = np.inf
    data[0, 31, 41] = -np.inf
    data[0, :, W - 5 :] = -9999.0
    path = tmp_path_factory.mktemp("rasters") / "f32.tif"
    return write_raster(path, data, TRANSFORM, nodata=-9999.0)


def _lonlat(sites: list[tuple[int, int]], transform: Affine = TRANSFORM) -> tuple[np.ndarray, np.ndarray]:
    xy = np.array([pixel_centre(transform, r, c) for r, c in sites])
    return xy[:, 0], xy[:, 1]


@pytest.mark.parametrize("tile", [16, 15])
@pytest.mark.parametrize("name", ["uint8_raster", "float_raster"])
def test_edges_and_corners_equal_reference(name: str, tile: int, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(name)
    sites = _edge_sites(tile)
    lons, lats = _lonlat(sites)
    ids = np.arange(len(sites)) * 7 + 3
    k = 6
    with TileExtractor(path, TileSpec(tile, k)) as ex:
        out = ex.extract(ids, lons, lats)
        means = ex.global_means()
    nb = 2 if name == "uint8_raster" else 1
    assert out["dct"].shape == (len(sites), nb, k, k) and out["dct"].dtype == np.float32
    assert out["valid_fraction"].shape == (len(sites), nb) and out["valid_fraction"].dtype == np.float32
    assert np.isfinite(out["dct"]).all()
    assert out["inside"].all() and out["n_outside"] == 0
    np.testing.assert_array_equal(out["surveyId"], ids)
    ref, frac = reference_tiles(path, lons, lats, tile, k, means)
    np.testing.assert_allclose(out["valid_fraction"], frac, rtol=0, atol=1e-7)
    _close(out["dct"], ref)
    # the corner windows really are partly outside the raster
    assert out["valid_fraction"].min() < 0.6


def test_valid_fraction_counts_pixels_in_the_raster(uint8_raster: Path) -> None:
    tile = 16
    lons, lats = _lonlat([(H // 2, 0), (0, W // 2), (H - 1, W - 1)])
    out = extract_tiles(uint8_raster, [1, 2, 3], lons, lats, tile_size=tile, k=4, bands=[2])
    # band 2 has nodata only in rows 3..11 x cols 5..19, away from these windows. An even tile has tile // 2 pixels
    # above/left of the site pixel and tile // 2 - 1 below/right: a site on the last row/col keeps tile // 2 + 1
    # of them.
    expected = [(tile // 2) * tile / tile**2, tile * (tile // 2) / tile**2, (tile // 2 + 1) ** 2 / tile**2]
    np.testing.assert_allclose(out["valid_fraction"][:, 0], expected)
    assert out["bands"] == (2,)


def test_float_nan_and_inf_are_invalid(float_raster: Path) -> None:
    lons, lats = _lonlat([(12, 12), (30, 40)])
    out = extract_tiles(float_raster, [1, 2], lons, lats, tile_size=8, k=8)
    np.testing.assert_allclose(out["valid_fraction"][:, 0], [1 - 16 / 64, 1 - 2 / 64])
    assert np.isfinite(out["dct"]).all()


@pytest.mark.parametrize("tile", [8, 9])
def test_site_pixel_is_at_index_half_tile(uint8_raster: Path, tile: int) -> None:
    """With k == tile the DCT inverts exactly: the site's pixel sits at (tile // 2, tile // 2)."""
    with rasterio.open(uint8_raster) as src:
        band1 = src.read(1)
    sites = [(40, 30), (41, 30), (40, 31), (50, 70)]
    lons, lats = _lonlat(sites)
    # move the points off the pixel centres, still inside the same pixels
    lons, lats = lons + np.array([0.4, -0.4, 0.1, -0.2]) * RES, lats + np.array([0.3, -0.45, 0.2, 0.4]) * RES
    out = extract_tiles(uint8_raster, np.arange(4), lons, lats, tile_size=tile, k=tile, bands=[1])
    tiles = idct2(out["dct"][:, 0].astype(np.float64), (tile, tile))
    for (r, c), t in zip(sites, tiles, strict=True):
        h = tile // 2
        np.testing.assert_allclose(t, band1[r - h : r - h + tile, c - h : c - h + tile], atol=1e-3)


def test_sites_outside_are_flagged_counted_and_filled(uint8_raster: Path) -> None:
    x_far, y_far = pixel_centre(TRANSFORM, -100, -100)
    x_near, y_near = pixel_centre(TRANSFORM, H + 2, W // 2)  # 3 rows below the raster: the window overlaps it
    x_in, y_in = pixel_centre(TRANSFORM, 40, 40)
    tile, k = 16, 4
    with TileExtractor(uint8_raster, TileSpec(tile, k)) as ex:
        out = ex.extract([10, 11, 12], [x_far, x_in, x_near], [y_far, y_in, y_near])
        means = ex.global_means()
    np.testing.assert_array_equal(out["inside"], [False, True, False])
    assert out["n_outside"] == 2
    assert out["n_empty"] == 2  # two bands of the far site
    np.testing.assert_array_equal(out["valid_fraction"][0], [0.0, 0.0])
    expected = np.zeros((2, k, k))
    expected[:, 0, 0] = means * tile  # a constant tile of the global mean
    _close(out["dct"][0], expected)
    assert out["valid_fraction"][2, 0] == pytest.approx((tile // 2 - 2) * tile / tile**2)  # rows 64..69 of 64..79
    ref, _ = reference_tiles(uint8_raster, [x_near], [y_near], tile, k, means)
    _close(out["dct"][2], ref[0])


def test_global_mean_is_the_mean_of_valid_pixels(uint8_raster: Path, float_raster: Path) -> None:
    with rasterio.open(uint8_raster) as src:
        d = src.read().astype(np.float64)
    with TileExtractor(uint8_raster) as ex:
        np.testing.assert_allclose(ex.global_means(), [d[i][d[i] != 255].mean() for i in range(2)])
    with rasterio.open(float_raster) as src:
        f = src.read(1).astype(np.float64)
    with TileExtractor(float_raster) as ex:
        np.testing.assert_allclose(ex.global_means(), [f[np.isfinite(f) & (f != -9999)].mean()])


def test_global_mean_uses_a_strided_sample_of_large_rasters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import glc.features.tiles as tiles_mod

    yy, xx = np.mgrid[0:200, 0:300]
    data = (xx + yy).astype(np.int16)[None]
    path = write_raster(tmp_path / "big.tif", data, TRANSFORM, nodata=None)
    monkeypatch.setattr(tiles_mod, "GLOBAL_MEAN_SAMPLE_PIXELS", 600)  # 60000 pixels -> step 10
    with TileExtractor(path) as ex:
        m = ex.global_means()
    assert m[0] == pytest.approx(data.mean(), rel=0.05)
    assert m[0] != data.mean()  # a sample, not the full read


def test_global_mean_fill_rule(uint8_raster: Path) -> None:
    lons, lats = _lonlat([(5, 10), (0, 0), (35, 45)])
    with TileExtractor(uint8_raster, TileSpec(16, 5, fill="global_mean")) as ex:
        out = ex.extract([1, 2, 3], lons, lats)
        means = ex.global_means()
    ref, _ = reference_tiles(uint8_raster, lons, lats, 16, 5, means, fill="global_mean")
    _close(out["dct"], ref)
    tile_mean, _ = reference_tiles(uint8_raster, lons, lats, 16, 5, means, fill="tile_mean")
    assert not np.allclose(ref[:2], tile_mean[:2])  # the rules differ on tiles with invalid pixels


def test_grouping_and_order_do_not_change_results(uint8_raster: Path) -> None:
    rng = np.random.default_rng(5)
    n = 300
    rows, cols = rng.integers(-10, H + 10, n), rng.integers(-10, W + 10, n)
    lons, lats = _lonlat(list(zip(rows, cols, strict=True)))
    ids = rng.permutation(10_000)[:n]
    big = extract_tiles(uint8_raster, ids, lons, lats, tile_size=16, k=4)
    # tiny groups (cell of 1 pixel) and chunks: every site its own read
    small = extract_tiles(uint8_raster, ids, lons, lats, tile_size=16, k=4, max_group_bytes=2 * 16 * 16 * 15)
    perm = rng.permutation(n)
    shuffled = extract_tiles(uint8_raster, ids[perm], lons[perm], lats[perm], tile_size=16, k=4)
    for key in ("dct", "valid_fraction", "inside"):
        np.testing.assert_allclose(small[key], big[key], rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(shuffled[key], big[key][perm])
    np.testing.assert_array_equal(shuffled["surveyId"], ids[perm])
    assert big["n_outside"] == int(((rows < 0) | (rows >= H) | (cols < 0) | (cols >= W)).sum()) > 0


def test_raster_without_nodata_uses_its_mask_band(tmp_path: Path) -> None:
    data = np.arange(H * W, dtype=np.int16).reshape(1, H, W) % 97
    mask = np.ones((H, W), dtype=bool)
    mask[20:30, 20:30] = False
    masked = write_raster(tmp_path / "masked.tif", data, TRANSFORM, nodata=None, mask=mask)
    plain = write_raster(tmp_path / "plain.tif", data, TRANSFORM, nodata=None)
    lons, lats = _lonlat([(25, 25), (60, 80)])
    for path, frac0 in ((masked, 1 - 100 / 256), (plain, 1.0)):  # rows 17..32 x cols 17..32 hold 10x10 masked
        with TileExtractor(path, TileSpec(16, 4)) as ex:
            out = ex.extract([1, 2], lons, lats)
            means = ex.global_means()
        assert out["valid_fraction"][0, 0] == pytest.approx(frac0)
        ref, frac = reference_tiles(path, lons, lats, 16, 4, means)
        np.testing.assert_allclose(out["valid_fraction"], frac)
        _close(out["dct"], ref)


def test_projected_raster(tmp_path: Path) -> None:
    t = Affine(1000.0, 0.0, 4_000_000.0, 0.0, -1000.0, 3_000_000.0)  # 1 km EPSG:3035 grid
    data = np.random.default_rng(3).integers(0, 100, size=(1, H, W)).astype(np.uint8)
    path = write_raster(tmp_path / "laea.tif", data, t, nodata=None, crs="EPSG:3035")
    xy = np.array([pixel_centre(t, r, c) for r, c in [(5, 5), (35, 45), (69, 89)]])
    lon, lat = Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True).transform(xy[:, 0], xy[:, 1])
    with TileExtractor(path, TileSpec(12, 4)) as ex:
        out = ex.extract([1, 2, 3], lon, lat)
        means = ex.global_means()
    ref, _ = reference_tiles(path, xy[:, 0], xy[:, 1], 12, 4, means)
    _close(out["dct"], ref)


def _corrupt(src: Path, dst: Path, how: str) -> Path:
    raw = bytearray(src.read_bytes())
    if how == "truncated":
        raw = raw[: int(len(raw) * 0.6)]
    else:  # overwrite the middle of the compressed strips with garbage
        a, b = int(len(raw) * 0.4), int(len(raw) * 0.6)
        raw[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("how", ["truncated", "garbled"])
def test_corrupt_raster_raises_naming_file_and_window(tmp_path: Path, how: str) -> None:
    rng = np.random.default_rng(4)
    data = rng.integers(0, 250, size=(1, 400, 300)).astype(np.uint8)
    good = write_raster(tmp_path / "good.tif", data, TRANSFORM, nodata=255, compress="deflate")
    bad = _corrupt(good, tmp_path / f"{how}.tif", how)
    lons, lats = _lonlat([(r, 150) for r in range(8, 400, 16)])
    with pytest.raises(DataError, match=re.escape(str(bad)) + r": reading window row_off=\d+ col_off=\d+"):
        extract_tiles(bad, np.arange(len(lons)), lons, lats, tile_size=16, k=4)
    extract_tiles(good, np.arange(len(lons)), lons, lats, tile_size=16, k=4)  # the intact file reads


def test_corrupt_block_message_names_the_window(tmp_path: Path) -> None:
    data = np.random.default_rng(4).integers(0, 250, size=(1, 400, 300)).astype(np.uint8)
    good = write_raster(tmp_path / "good.tif", data, TRANSFORM, nodata=255, compress="deflate")
    bad = _corrupt(good, tmp_path / "garbled.tif", "garbled")
    lons, lats = _lonlat([(200, 150)])
    with pytest.raises(DataError, match=r"garbled\.tif: reading window row_off=192 col_off=142 height=16 width=16"):
        extract_tiles(bad, [1], lons, lats, tile_size=16, k=4)


def test_bad_inputs_raise_with_names(uint8_raster: Path, tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="GeoTIFF raster not found: .*missing.tif"):
        extract_tiles(tmp_path / "missing.tif", [1], [10.1], [49.9])
    (tmp_path / "text.tif").write_text("not a tiff")
    with pytest.raises(DataError, match=r"text\.tif: rasterio cannot open it"):
        extract_tiles(tmp_path / "text.tif", [1], [10.1], [49.9])
    with pytest.raises(ValueError, match=r"non-finite lon/lat, first at index 1: lon=nan"):
        extract_tiles(uint8_raster, [1, 2], [10.1, np.nan], [49.9, 49.9], tile_size=8, k=2)
    with pytest.raises(ValueError, match="equal length"):
        extract_tiles(uint8_raster, [1, 2], [10.1], [49.9], tile_size=8, k=2)
    with pytest.raises(ValueError, match=r"bands must be 1-based band numbers in 1\.\.2"):
        extract_tiles(uint8_raster, [1], [10.1], [49.9], tile_size=8, k=2, bands=[3])
    with pytest.raises(ValueError, match=r"TileSpec: k must be an int in 1\.\.tile_size=8"):
        extract_tiles(uint8_raster, [1], [10.1], [49.9], tile_size=8, k=9)
    with pytest.raises(ValueError, match="TileSpec: fill must be one of"):
        TileSpec(fill="zero")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_group_bytes=100 is too small"):
        extract_tiles(uint8_raster, [1], [10.1], [49.9], tile_size=8, k=2, max_group_bytes=100)
    with pytest.raises(ValueError, match="global_means must be 2 finite value"):
        TileExtractor(uint8_raster, global_means=[1.0])
    empty = extract_tiles(uint8_raster, [], [], [], tile_size=8, k=2)
    assert empty["dct"].shape == (0, 2, 2, 2) and empty["n_outside"] == 0


def test_values_too_large_for_float32_raise(tmp_path: Path) -> None:
    data = np.full((1, 20, 20), 1e38, dtype=np.float64)
    path = write_raster(tmp_path / "huge.tif", data, TRANSFORM, nodata=None)
    lons, lats = _lonlat([(10, 10)])
    with pytest.raises(
        DataError, match=r"huge\.tif: DCT tiles of 1 site\(s\) in window .* not finite \(first surveyIds \[7\]\)"
    ):
        extract_tiles(path, [7], lons, lats, tile_size=8, k=2)


# -- the two real GLC human-footprint rasters at the 4,716 real PA-test sites -------------------------------------
@pytest.mark.parametrize("name", ["Lights2009", "Built2009"])
def test_real_rasters_at_real_test_sites(shared_data: Path, name: str) -> None:
    path = shared_data / "glc24-samples" / "rasters" / f"{name}_WGS84.tif"
    meta = pd.read_csv(shared_data / "glc24-real" / "GLC24_PA_metadata_test.csv")
    assert len(meta) == 4716
    t0 = time.perf_counter()
    with TileExtractor(path, TileSpec(128, 8)) as ex:
        out = ex.extract(meta["surveyId"].to_numpy(), meta["lon"].to_numpy(), meta["lat"].to_numpy())
        means = ex.global_means()
    seconds = time.perf_counter() - t0
    assert out["dct"].shape == (4716, 1, 8, 8) and out["valid_fraction"].shape == (4716, 1)
    assert np.isfinite(out["dct"]).all() and np.isfinite(out["valid_fraction"]).all()
    np.testing.assert_array_equal(out["surveyId"], meta["surveyId"].to_numpy())
    assert out["n_outside"] == 0 and out["inside"].all()  # the PA test sites lie in the GLC bounding box
    # coastal sites have nodata (sea) in their windows; every tile has some valid pixel
    assert out["valid_fraction"].min() > 0 and (out["valid_fraction"] < 1).any()
    rng = np.random.default_rng(0)
    pick = np.r_[rng.choice(4716, 6, replace=False), np.argsort(out["valid_fraction"][:, 0])[:3]]
    ref, frac = reference_tiles(path, meta["lon"].to_numpy()[pick], meta["lat"].to_numpy()[pick], 128, 8, means)
    np.testing.assert_allclose(out["valid_fraction"][pick], frac, atol=1e-7)
    _close(out["dct"][pick], ref)
    assert seconds < 30, f"{name}: {seconds:.1f} s for 4,716 tiles"


# -- throughput (slow): fast path vs the naive per-site loop on one core ------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_throughput_vs_naive_reference(tmp_path: Path, dtype: str) -> None:
    from threadpoolctl import threadpool_limits

    from tests.features.reference import GLC_TRANSFORM, write_extent_raster

    path = write_extent_raster(tmp_path / f"extent_{dtype}.tif", dtype)
    rng = np.random.default_rng(0)
    n, n_ref = 100_000, 1_000
    lons, lats = GLC_TRANSFORM @ (rng.uniform(0, 8000, n), rng.uniform(0, 5500, n))
    ids = np.arange(n)
    # CPU time of this process (one thread): tiles per second per core, robust to other jobs on the machine
    with threadpool_limits(1):
        t0 = time.process_time()
        out = extract_tiles(path, ids, lons, lats, tile_size=128, k=8)
        fast = n / (time.process_time() - t0)
        with TileExtractor(path) as ex:
            means = ex.global_means()
        t0 = time.process_time()
        ref, frac = reference_tiles(path, lons[:n_ref], lats[:n_ref], 128, 8, means)
        naive = n_ref / (time.process_time() - t0)
    _close(out["dct"][:n_ref], ref)
    np.testing.assert_allclose(out["valid_fraction"][:n_ref], frac, atol=1e-7)
    print(f"\n{dtype}: fast {fast:,.0f} tiles/cpu-s, naive {naive:,.0f} tiles/cpu-s, ratio {fast / naive:.1f}")
    assert fast > 5 * naive
