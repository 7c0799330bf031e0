"""Patch reader on the real Sentinel-2 JPEGs, both layouts, and broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import Layout
from glc.data.patches import read_patch, read_patch_files

from .conftest import SAMPLE_SURVEY


def _sample_ids(layout: Layout) -> list[int]:
    return sorted(int(p.stem) for p in layout.patch_root("train", "rgb").glob("*/*/*.jpeg"))


def test_truncated_images_are_not_loaded() -> None:
    # the reader must never make Pillow pad truncated JPEGs with grey
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_real_patch_matches_pillow(kaggle_samples: Layout) -> None:
    rgb_path = kaggle_samples.patch_path("train", SAMPLE_SURVEY, "rgb")
    nir_path = kaggle_samples.patch_path("train", SAMPLE_SURVEY, "nir")
    assert rgb_path.as_posix().endswith("PA_Train_SatellitePatches_RGB/pa_train_patches_rgb/01/23/1322301.jpeg")
    assert nir_path.as_posix().endswith("PA_Train_SatellitePatches_NIR/pa_train_patches_nir/01/23/1322301.jpeg")

    patch = read_patch(kaggle_samples, "train", SAMPLE_SURVEY)
    assert patch.shape == (4, 128, 128) and patch.dtype == np.uint8 and patch.flags.c_contiguous

    with Image.open(rgb_path) as rgb, Image.open(nir_path) as nir:
        assert (rgb.mode, nir.mode) == ("RGB", "L")
        for x, y in [(0, 0), (64, 64), (127, 0), (5, 100)]:
            assert tuple(patch[:3, y, x]) == rgb.getpixel((x, y))
            assert patch[3, y, x] == nir.getpixel((x, y))
        np.testing.assert_array_equal(patch[0], np.asarray(rgb.getchannel("R")))
        np.testing.assert_array_equal(patch[2], np.asarray(rgb.getchannel("B")))
        np.testing.assert_array_equal(patch[3], np.asarray(nir))
    assert 0 < patch.std()  # a real image, not a constant fill


def test_all_real_sample_patches(kaggle_samples: Layout) -> None:
    ids = _sample_ids(kaggle_samples)
    assert len(ids) == 18 and SAMPLE_SURVEY in ids and 80000 in ids
    patches = np.stack([read_patch(kaggle_samples, "train", i) for i in ids])
    assert patches.shape == (18, 4, 128, 128)
    # channel means near the documented jrc sample means (RGB ~ 76/82/69, NIR ~ 151): the channel order is right
    means = patches.mean(axis=(0, 2, 3))
    assert means[3] > means[0] + 40 and means[1] > means[2]


def test_path_rule_has_no_zero_padding() -> None:
    layout = Layout(Path("/root"), "kaggle")
    assert layout.patch_path("test", 642, "rgb").as_posix() == "/root/PA_Test_SatellitePatches_RGB/pa_test_patches_rgb/42/6/642.jpeg"
    assert layout.patch_path("train", 1322301, "nir").as_posix().endswith("pa_train_patches_nir/01/23/1322301.jpeg")


def test_seafile_copy(kaggle_samples: Layout, tmp_path: Path) -> None:
    seafile = Layout(tmp_path, "seafile")
    for kind in ("rgb", "nir"):
        dest = seafile.patch_path("train", SAMPLE_SURVEY, kind)
        dest.parent.mkdir(parents=True)
        shutil.copyfile(kaggle_samples.patch_path("train", SAMPLE_SURVEY, kind), dest)
    assert "SatellitePatches/PA-Train-SatellitePatches-RGB/01/23" in seafile.patch_path("train", SAMPLE_SURVEY, "rgb").as_posix()
    np.testing.assert_array_equal(read_patch(seafile, "train", SAMPLE_SURVEY), read_patch(kaggle_samples, "train", SAMPLE_SURVEY))


# ----------------------------------------------------------------------------------------------- broken inputs
@pytest.fixture
def real_pair(kaggle_samples: Layout) -> tuple[Path, Path]:
    return kaggle_samples.patch_path("train", SAMPLE_SURVEY, "rgb"), kaggle_samples.patch_path("train", SAMPLE_SURVEY, "nir")


def test_missing_file(real_pair: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "01" / "23" / "1322301.jpeg"
    with pytest.raises(DataFileNotFoundError, match=r"NIR patch not found: .*01/23/1322301\.jpeg"):
        read_patch_files(real_pair[0], missing)
    with pytest.raises(DataFileNotFoundError, match="RGB patch not found"):
        read_patch(Layout(tmp_path, "kaggle"), "test", 642)


def test_truncated_jpeg(real_pair: tuple[Path, Path], tmp_path: Path) -> None:
    data = real_pair[0].read_bytes()
    cut = tmp_path / "cut.jpeg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"RGB patch .*cut\.jpeg: the JPEG is truncated or corrupt \(image file is truncated"):
        read_patch_files(cut, real_pair[1])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_nir_saved_as_rgb(real_pair: tuple[Path, Path], tmp_path: Path) -> None:
    wrong = tmp_path / "nir_rgb.jpeg"
    with Image.open(real_pair[1]) as nir:
        nir.convert("RGB").save(wrong, "JPEG")
    with pytest.raises(DataError, match=r"NIR patch .*nir_rgb\.jpeg: found mode 'RGB' size 128x128, expected mode 'L'"):
        read_patch_files(real_pair[0], wrong)
    # and RGB/NIR swapped
    with pytest.raises(DataError, match=r"RGB patch .*: found mode 'L' size 128x128, expected mode 'RGB'"):
        read_patch_files(real_pair[1], real_pair[0])


def test_wrong_size_and_not_an_image(real_pair: tuple[Path, Path], tmp_path: Path) -> None:
    small = tmp_path / "small.jpeg"
    with Image.open(real_pair[0]) as rgb:
        rgb.resize((64, 64)).save(small, "JPEG")
    with pytest.raises(DataError, match=r"found mode 'RGB' size 64x64, expected mode 'RGB' size 128x128"):
        read_patch_files(small, real_pair[1])
    text = tmp_path / "text.jpeg"
    text.write_text("not a jpeg")
    with pytest.raises(DataError, match=r"text\.jpeg: not a readable image"):
        read_patch_files(text, real_pair[1])
