"""The real GLC25 sample files (``glc25-samples`` of ``data/real`` or ``$GLC_REAL_DATA``): every file sits where :class:`Layout` puts it,
and the readers return exactly what an independent read of the same bytes gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from glc.data.cubes import read_cube
from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import Layout, detect_layout, survey_id_from_cube_name
from glc.data.metadata import read_pa_metadata
from glc.data.patches import patch_rgb, read_geotiff_patch, read_patch

from .conftest import GLC25_TEST_SURVEY, GLC25_TRAIN_SURVEY


def test_every_real_file_is_where_the_layout_puts_it(glc25_samples: Layout) -> None:
    root = glc25_samples.root
    tiffs = sorted(root.glob("SatelitePatches/*/*/*/*.tiff"))
    assert len(tiffs) == 2
    for tif in tiffs:
        split = tif.parts[-4].removeprefix("PA-")
        assert glc25_samples.patch_path(split, int(tif.stem), "tiff") == tif  # type: ignore[arg-type]
    cubes = sorted(root.glob("*/cubes/PA-*/*_cube.pt"))
    assert len(cubes) == 4
    for cube in cubes:
        split = cube.parent.name.removeprefix("PA-")
        kind = "landsat" if "landsat" in cube.name else "bioclim"
        assert glc25_samples.cube_path(split, kind, survey_id_from_cube_name(cube.name)) == cube  # type: ignore[arg-type]
    # hyphens in the train Landsat stem, underscores in the test one (the real names)
    assert glc25_samples.cube_path("train", "landsat", GLC25_TRAIN_SURVEY).name.startswith("GLC25-PA-train-landsat-time-series_")
    assert glc25_samples.cube_path("test", "landsat", GLC25_TEST_SURVEY).name.startswith("GLC25-PA-test-landsat_time_series_")


@pytest.mark.parametrize("split, sid", [("train", GLC25_TRAIN_SURVEY), ("test", GLC25_TEST_SURVEY)])
def test_real_patch_matches_an_independent_read(glc25_samples: Layout, split: str, sid: int) -> None:
    path = glc25_samples.patch_path(split, sid, "tiff")  # type: ignore[arg-type]
    patch = read_geotiff_patch(path)
    with rasterio.open(path) as src:  # rasterio's own masked read, from the file's nodata tag
        ref = src.read(masked=True)
        assert (src.nodata, src.crs.to_dict()["proj"], src.res) == (-1.0, "laea", (10.0, 10.0))
    assert patch.dtype == np.int16 and patch.shape == (4, 64, 64)
    np.testing.assert_array_equal(patch.data, ref.data)
    np.testing.assert_array_equal(np.ma.getmaskarray(patch), np.ma.getmaskarray(ref))
    # reflectance-like values, not 0..255 (the real file's band means, read independently above)
    np.testing.assert_allclose(patch.mean(axis=(1, 2)), ref.mean(axis=(1, 2)))
    assert patch.max() > 1000
    # bytes read ahead decode to the same patch, and read_patch dispatches on the edition
    np.testing.assert_array_equal(read_geotiff_patch(path, path.read_bytes()).data, patch.data)
    np.testing.assert_array_equal(read_patch(glc25_samples, split, sid).data, patch.data)  # type: ignore[arg-type]
    assert patch_rgb(glc25_samples, split, sid).shape == (64, 64, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind, shape", [("landsat", (6, 4, 21)), ("bioclim", (4, 19, 12))])
@pytest.mark.parametrize("split, sid", [("train", GLC25_TRAIN_SURVEY), ("test", GLC25_TEST_SURVEY)])
def test_real_cubes_match_torch(glc25_samples: Layout, kind: str, shape: tuple, split: str, sid: int) -> None:
    path = glc25_samples.cube_path(split, kind, sid)  # type: ignore[arg-type]
    cube = read_cube(path, kind)  # type: ignore[arg-type]
    ref = torch.load(path, map_location="cpu", weights_only=True).numpy()
    assert cube.shape == shape
    np.testing.assert_array_equal(cube, ref)


def test_real_metadata_rows(glc25_samples: Layout) -> None:
    """The real rows read by name (the extra ``subset`` column, malpolon's own train/val/test subsets, ignored);
    the one survey of the GLC25 test set is the only id from 5,000,000 up."""
    meta = read_pa_metadata(glc25_samples.root / "metadata.csv", "train")
    raw = pd.read_csv(glc25_samples.root / "metadata.csv")
    assert len(meta) == len(raw) == 100
    np.testing.assert_array_equal(meta["speciesId"], raw["speciesId"].astype(np.int64))
    high = set(meta.loc[meta["surveyId"] >= glc25_samples.edition.test_id_min, "surveyId"])
    assert high == {GLC25_TEST_SURVEY}


def test_band_statistics_match_the_organizers(glc25_samples: Layout) -> None:
    """The organizers' train band statistics are what the GLC25 docs and the synthetic world use (R, G, B, NIR)."""
    stats = pd.read_csv(glc25_samples.root / "Stats" / "Stats_satellite_train.csv")
    np.testing.assert_allclose(stats["mean"], [630, 692, 461, 2959], rtol=0.01)
    np.testing.assert_allclose(stats["std"], [436, 371, 343, 925], rtol=0.01)


def test_detect_layout_needs_the_metadata_files(glc25_samples: Layout, tmp_path) -> None:
    (tmp_path / "GLC25_PA_metadata_test.csv").write_text("lon\n")
    layout = detect_layout(tmp_path)
    assert (layout.flavour, layout.edition.name, layout.edition.patch_kinds) == ("glc25", "glc25", ("tiff",))


# ------------------------------------------------------------------------------------------------ bad GeoTIFFs
def _write_tiff(path, arr: np.ndarray, like) -> None:
    """Write ``arr`` with the real file's profile (count and dtype from ``arr``)."""
    with rasterio.open(like) as src:
        profile = src.profile
    profile.update(count=arr.shape[0], dtype=str(arr.dtype))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)


@pytest.fixture
def real_tiff(glc25_samples: Layout):
    return glc25_samples.patch_path("test", GLC25_TEST_SURVEY, "tiff")


def test_nodata_is_masked_never_averaged_in(real_tiff, tmp_path) -> None:
    arr = read_geotiff_patch(real_tiff).data.copy()
    arr[:, :5, :] = -1  # a nodata strip
    path = tmp_path / "strip.tiff"
    _write_tiff(path, arr, real_tiff)
    patch = read_geotiff_patch(path)
    assert np.ma.getmaskarray(patch).sum() == 4 * 5 * 64
    assert (patch.mean(axis=(1, 2)) == arr[:, 5:, :].mean(axis=(1, 2))).all()  # -1 never enters a mean


def test_all_nodata_patch_is_a_bad_input(real_tiff, tmp_path) -> None:
    path = tmp_path / "blank.tiff"
    _write_tiff(path, np.full((4, 64, 64), -1, np.int16), real_tiff)
    with pytest.raises(DataError, match=r"blank\.tiff: every pixel is nodata"):
        read_geotiff_patch(path)
    arr = read_geotiff_patch(real_tiff).data.copy()
    arr[3] = -1
    _write_tiff(path, arr, real_tiff)
    with pytest.raises(DataError, match=r"every pixel of band\(s\) \['nir'\] is nodata"):
        read_geotiff_patch(path)


def test_truncated_three_band_and_wrong_dtype_geotiffs(real_tiff, tmp_path) -> None:
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(real_tiff.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cut\.tiff: not a readable GeoTIFF .*truncated or corrupt"):
        read_geotiff_patch(cut)
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_geotiff_patch(cut, cut.read_bytes())
    three = tmp_path / "three.tiff"
    _write_tiff(three, read_geotiff_patch(real_tiff).data[:3], real_tiff)
    with pytest.raises(DataError, match=r"three\.tiff: found 3 band\(s\) of int16, 64x64 px, expected 4 bands"):
        read_geotiff_patch(three)
    wide = tmp_path / "float.tiff"
    _write_tiff(wide, read_geotiff_patch(real_tiff).data.astype(np.float32), real_tiff)
    with pytest.raises(DataError, match="found 4 band\\(s\\) of float32"):
        read_geotiff_patch(wide)
    with pytest.raises(DataFileNotFoundError, match="satellite patch GeoTIFF not found"):
        read_geotiff_patch(tmp_path / "missing.tiff")
