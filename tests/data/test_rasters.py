"""Raster reader on the two real human-footprint GeoTIFFs, plus small written rasters for edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window

from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.rasters import (
    RasterInfo,
    centered_window_offsets,
    lonlat_to_pixel,
    raster_info,
    read_window,
    sample_points,
)

ORIGIN = (-32.27179464817084, 72.189628338207)
RES = 0.009892734568157884
BRUSSELS = (4.3517, 50.8503)


@pytest.fixture(scope="module", params=[("Lights2009_WGS84.tif", "uint8", 127), ("Built2009_WGS84.tif", "int32", 2147483647)])
def real_raster(request: pytest.FixtureRequest, samples: Path) -> tuple[Path, str, int]:
    name, dtype, nodata = request.param
    return samples / "rasters" / name, dtype, nodata


def test_real_raster_info(real_raster: tuple[Path, str, int]) -> None:
    path, dtype, nodata = real_raster
    info = raster_info(path)
    assert isinstance(info, RasterInfo) and info.path == path
    assert (info.width, info.height, info.count) == (6860, 4605, 1)
    assert info.dtype == dtype and info.nodata == nodata
    assert info.crs is not None and info.crs.to_epsg() == 4326
    assert (info.transform.c, info.transform.f) == ORIGIN and (info.transform.a, info.transform.e) == (RES, -RES)
    assert info.bounds.left == ORIGIN[0] and info.bounds.top == ORIGIN[1]
    assert info.bounds.right == pytest.approx(ORIGIN[0] + 6860 * RES) and info.bounds.bottom == pytest.approx(ORIGIN[1] - 4605 * RES)


def test_real_window_matches_rasterio(real_raster: tuple[Path, str, int]) -> None:
    path, dtype, nodata = real_raster
    info = raster_info(path)
    col, row = lonlat_to_pixel(info, *BRUSSELS)
    assert (int(col), int(row)) == (3702, 2157)
    col_off, row_off = centered_window_offsets(col, row, 9)
    assert (col_off, row_off) == (3698, 2153)
    with rasterio.open(path) as src:
        data, valid = read_window(src, col_off, row_off, 9)
        expected = src.read(1, window=Window(col_off, row_off, 9, 9))
    assert data.shape == valid.shape == (1, 9, 9) and data.dtype == np.dtype(dtype) and valid.dtype == bool
    np.testing.assert_array_equal(data[0], expected)
    np.testing.assert_array_equal(valid[0], expected != nodata)
    assert data[0, 4, 4] == expected[4, 4] == 10 and valid.all()  # Brussels: built-up / lit class 10
    # the same read through a path
    np.testing.assert_array_equal(read_window(path, col_off, row_off, 9)[0], data)


def test_real_edge_windows_are_masked(real_raster: tuple[Path, str, int]) -> None:
    path, dtype, nodata = real_raster
    with rasterio.open(path) as src:
        corner = src.read(1, window=Window(0, 0, 5, 5))
        last = src.read(1, window=Window(6860 - 4, 4605 - 4, 4, 4))
        data, valid = read_window(src, -3, -3, 8)
        assert data.shape == (1, 8, 8)
        assert not valid[0, :3].any() and not valid[0, :, :3].any()  # outside the raster
        assert (data[0, :3] == nodata).all() and (data[0, :, :3] == nodata).all()  # fill None: nodata outside
        np.testing.assert_array_equal(data[0, 3:, 3:], corner)
        np.testing.assert_array_equal(valid[0, 3:, 3:], corner != nodata)

        filled, valid2 = read_window(src, 6860 - 4, 4605 - 4, 8, fill=5)
        np.testing.assert_array_equal(valid2[0, :4, :4], last != nodata)
        assert not valid2[0, 4:].any() and not valid2[0, :, 4:].any()
        assert (filled[0][~valid2[0]] == 5).all()

        far, far_valid = read_window(src, -100, 10, 16)
        assert not far_valid.any() and (far == nodata).all()


def test_lonlat_to_pixel_is_vectorised(real_raster: tuple[Path, str, int]) -> None:
    info = raster_info(real_raster[0])
    lon = np.array([ORIGIN[0], ORIGIN[0] + 10.5 * RES, BRUSSELS[0]])
    lat = np.array([ORIGIN[1], ORIGIN[1] - 3.25 * RES, BRUSSELS[1]])
    col, row = lonlat_to_pixel(info, lon, lat)
    assert col.shape == row.shape == (3,)
    np.testing.assert_allclose(col[:2], [0.0, 10.5], atol=1e-9)
    np.testing.assert_allclose(row[:2], [0.0, 3.25], atol=1e-9)
    x, y = info.transform @ (col, row)
    np.testing.assert_allclose(x, lon, atol=1e-9)
    np.testing.assert_allclose(y, lat, atol=1e-9)


# ----------------------------------------------------------------------------------------------- written rasters
def _write_tif(path: Path, data: np.ndarray, nodata: float | None, crs: str = "EPSG:4326", **kw: object) -> Path:
    count, h, w = data.shape
    transform = kw.pop("transform", from_origin(0.0, 10.0, 0.1, 0.1))
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count, dtype=data.dtype, nodata=nodata,
                       crs=crs, transform=transform, **kw) as dst:
        dst.write(data)
    return path


def test_multiband_float_raster(tmp_path: Path) -> None:
    data = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    data[0, 1, 1] = -9999.0
    data[1, 2, 2] = np.nan
    path = _write_tif(tmp_path / "f.tif", data, nodata=-9999.0)
    out, valid = read_window(path, -1, 0, 4)
    assert out.shape == (2, 4, 4) and out.dtype == np.float32
    assert not valid[:, :, 0].any()  # column -1 is outside
    assert not valid[0, 1, 2] and valid[1, 1, 2]  # nodata only in band 1
    assert not valid[1, 2, 3]  # NaN is invalid
    np.testing.assert_array_equal(out[:, :, 1:], data[:, :4, :3])
    one, one_valid = read_window(path, 0, 0, 2, band=2)
    assert one.shape == (1, 2, 2) and one_valid.all()
    with pytest.raises(ValueError, match=r"band must be 1-based band number\(s\) in 1\.\.2"):
        read_window(path, 0, 0, 2, band=3)
    with pytest.raises(ValueError, match=r"fill=1\.5 is not representable in the raster dtype uint8"):
        read_window(_write_tif(tmp_path / "u.tif", np.zeros((1, 4, 4), np.uint8), nodata=None), 0, 0, 2, fill=1.5)
    with pytest.raises(ValueError, match="size must be a positive"):
        read_window(path, 0, 0, 0)


def test_projected_raster_uses_its_crs(tmp_path: Path) -> None:
    transform = from_origin(3_900_000.0, 3_200_000.0, 1000.0, 1000.0)
    path = _write_tif(tmp_path / "laea.tif", np.zeros((1, 8, 8), np.uint8), None, crs="EPSG:3035", transform=transform)
    info = raster_info(path)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3035", always_xy=True).transform(*BRUSSELS)
    col, row = lonlat_to_pixel(info, *BRUSSELS)
    assert col == pytest.approx((x - 3_900_000.0) / 1000.0) and row == pytest.approx((3_200_000.0 - y) / 1000.0)


def test_corrupt_block_names_file_and_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = _write_tif(tmp_path / "tiled.tif", rng.integers(0, 100, (1, 64, 64), dtype=np.uint8), nodata=127,
                      tiled=True, blockxsize=16, blockysize=16, compress="deflate")
    with rasterio.open(path) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_3_3", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_3_3", "TIFF", bidx=1))
    raw = bytearray(path.read_bytes())
    raw[offset:offset + size] = b"\xff" * size
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(bytes(raw))
    with rasterio.open(bad) as src:
        assert read_window(src, 0, 0, 16)[1].all()  # intact blocks still read
        with pytest.raises(DataError, match=r"corrupt\.tif: reading window col_off=40 row_off=40 size=16 band\(s\) \[1\] failed"):
            read_window(src, 40, 40, 16)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(bytes(raw[: offset + size // 2]))
    with pytest.raises(DataError, match=r"cut\.tif: reading window col_off=48 row_off=48 size=16 .*corrupt or truncated"):
        read_window(cut, 48, 48, 16)


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match=r"GeoTIFF raster not found: .*none\.tif"):
        raster_info(tmp_path / "none.tif")
    junk = tmp_path / "junk.tif"
    junk.write_text("not a tiff")
    with pytest.raises(DataError, match=r"junk\.tif: rasterio cannot open it"):
        read_window(junk, 0, 0, 4)


def test_sample_points_on_the_real_raster(real_raster: tuple[Path, str, int]) -> None:
    path, _, nodata = real_raster
    lon = np.array([BRUSSELS[0], -20.0, 200.0, 4.0])
    lat = np.array([BRUSSELS[1], 40.0, 50.0, 52.5])  # Brussels, the Atlantic (nodata), outside, the North Sea coast
    v, counts = sample_points(path, lon, lat)
    with rasterio.open(path) as src:
        want = [float(x[0]) for x in src.sample([(BRUSSELS[0], BRUSSELS[1]), (-20.0, 40.0), (4.0, 52.5)])]
    assert v[0] == want[0] and 0 <= v[0] <= 10
    assert np.isnan(v[2]) and counts["outside"] == 1 and counts["points"] == 4
    assert (want[1] == nodata) == bool(np.isnan(v[1]))  # nodata becomes NaN, never the code itself
    assert counts["nodata"] == int(np.isnan(v[[0, 1, 3]]).sum())
