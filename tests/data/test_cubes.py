"""Cube reader/writer on the real Landsat and bioclimatic ``.pt`` files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from glc.data.cubes import (
    BIOCLIM_SHAPE,
    LANDSAT_SHAPE,
    read_bioclim_cube,
    read_cube,
    read_landsat_cube,
    write_cube,
)
from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import Layout

from .conftest import SAMPLE_SURVEY


def _stored_floats(path: Path) -> np.ndarray:
    """The raw float32 storage of a saved tensor, read from the zip archive without torch."""
    with zipfile.ZipFile(path) as z:
        (member,) = [n for n in z.namelist() if n.endswith("/data/0")]
        return np.frombuffer(z.read(member), dtype="<f4")


def _member(path: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        (member,) = [n for n in z.namelist() if n.endswith(suffix)]
        return z.read(member)


def test_real_landsat_cube(kaggle_samples: Layout) -> None:
    path = kaggle_samples.cube_path("train", "landsat", SAMPLE_SURVEY)
    assert path.name == "GLC24-PA-train-landsat-time-series_1322301_cube.pt"  # train stem uses hyphens
    cube = read_landsat_cube(kaggle_samples, "train", SAMPLE_SURVEY)
    assert cube.shape == LANDSAT_SHAPE == (6, 4, 21) and cube.dtype == np.float32 and cube.flags.c_contiguous

    raw = _stored_floats(path)
    assert raw.size == 504 and raw[:4].tolist() == [17.0, 12.0, 14.0, 13.0]
    # storage is [band][year][quarter]: cube[b, q, y] == raw[b*84 + y*4 + q]  (strides (84, 1, 4))
    b, q, y = np.meshgrid(range(6), range(4), range(21), indexing="ij")
    np.testing.assert_array_equal(cube, raw[b * 84 + y * 4 + q])
    assert torch.load(path, weights_only=True).stride() == (84, 1, 4)
    assert cube[:, 0, 0].tolist() == [17.0, 18.0, 9.0, 69.0, 53.0, 27.0]
    assert cube[0, :, 0].tolist() == [17.0, 12.0, 14.0, 13.0]
    assert cube[3].mean() > cube[2].mean()  # NIR (index 3) brighter than blue (index 2) over vegetation


def test_real_bioclim_cube(kaggle_samples: Layout) -> None:
    path = kaggle_samples.cube_path("train", "bioclim", SAMPLE_SURVEY)
    cube = read_bioclim_cube(kaggle_samples, "train", SAMPLE_SURVEY)
    assert cube.shape == BIOCLIM_SHAPE == (4, 19, 12) and cube.dtype == np.float32 and cube.flags.c_contiguous
    raw = _stored_floats(path)
    assert raw[:4].tolist() == [5169.0, 2773.0, 2791.0, 2750.0] == cube[:, 0, 0].tolist()
    v, y, m = np.meshgrid(range(4), range(19), range(12), indexing="ij")
    np.testing.assert_array_equal(cube, raw[y * 48 + m * 4 + v])  # strides (1, 48, 4)
    assert torch.load(path, weights_only=True).stride() == (1, 48, 4)
    assert (cube[2] >= cube[1]).all() and (cube[1] >= cube[3]).all()  # tasmax >= tas >= tasmin


def test_seafile_copy(kaggle_samples: Layout, tmp_path: Path) -> None:
    seafile = Layout(tmp_path, "seafile")
    for kind in ("landsat", "bioclim"):
        dest = seafile.cube_path("train", kind, SAMPLE_SURVEY)
        dest.parent.mkdir(parents=True)
        dest.write_bytes(kaggle_samples.cube_path("train", kind, SAMPLE_SURVEY).read_bytes())
    assert seafile.cube_path("train", "landsat", 5).name == "GLC24-PA-train-landsat-time-series_5_cube.pt"
    np.testing.assert_array_equal(read_landsat_cube(seafile, "train", SAMPLE_SURVEY), read_landsat_cube(kaggle_samples, "train", SAMPLE_SURVEY))
    np.testing.assert_array_equal(read_bioclim_cube(seafile, "train", SAMPLE_SURVEY), read_bioclim_cube(kaggle_samples, "train", SAMPLE_SURVEY))


# ----------------------------------------------------------------------------------------------- write_cube
@pytest.mark.parametrize("kind, strides", [("landsat", (84, 1, 4)), ("bioclim", (1, 48, 4))])
def test_write_cube_round_trip(kind: str, strides: tuple[int, int, int], tmp_path: Path) -> None:
    shape = LANDSAT_SHAPE if kind == "landsat" else BIOCLIM_SHAPE
    rng = np.random.default_rng(7)
    x = rng.normal(30, 20, size=shape).astype(np.float32)
    x[rng.random(shape) < 0.15] = np.nan
    path = write_cube(tmp_path / "a" / f"GLC24-PA-test-{kind}_9_cube.pt", x, kind)  # type: ignore[arg-type]

    back = read_cube(path, kind)  # type: ignore[arg-type]
    np.testing.assert_array_equal(back, x)  # equal values and equal NaN positions
    assert np.isnan(back).sum() == np.isnan(x).sum() > 0
    t = torch.load(path, weights_only=True)
    assert t.stride() == strides and not t.is_contiguous()
    assert _member(path, "/data.pkl")  # archive members live under the file stem
    with zipfile.ZipFile(path) as z:
        assert all(n.startswith(f"GLC24-PA-test-{kind}_9_cube/") for n in z.namelist())

    first = path.read_bytes()
    write_cube(path, x, kind)  # type: ignore[arg-type]
    assert path.read_bytes() == first
    other = write_cube(tmp_path / "b" / path.name, x.copy(), kind)  # type: ignore[arg-type]
    assert other.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp debris


def test_write_cube_reproduces_real_files(kaggle_samples: Layout, tmp_path: Path) -> None:
    for kind in ("landsat", "bioclim"):
        real = kaggle_samples.cube_path("train", kind, SAMPLE_SURVEY)
        copy = write_cube(tmp_path / real.name, read_cube(real, kind), kind)  # type: ignore[arg-type]
        assert _member(copy, "/data/0") == _member(real, "/data/0")  # identical storage bytes
        assert _member(copy, "/data.pkl") == _member(real, "/data.pkl")  # identical pickle (shape, strides, offset)


def test_write_cube_is_deterministic_across_processes(tmp_path: Path) -> None:
    # torch.save's .data/serialization_id must not vary between interpreter runs
    x = np.arange(504, dtype=np.float32).reshape(LANDSAT_SHAPE)
    here = write_cube(tmp_path / "here" / "c_1_cube.pt", x, "landsat")
    code = (
        "import sys, numpy as np; from glc.data.cubes import write_cube; "
        "write_cube(sys.argv[1], np.arange(504, dtype=np.float32).reshape(6, 4, 21), 'landsat')"
    )
    there = tmp_path / "there" / "c_1_cube.pt"
    subprocess.run([sys.executable, "-c", code, str(there)], check=True, cwd=Path(__file__).resolve().parents[2])
    assert there.read_bytes() == here.read_bytes()
    assert _member(here, "/.data/serialization_id") == _member(there, "/.data/serialization_id")


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_cube(tmp_path / "c_1_cube.pt", np.zeros(BIOCLIM_SHAPE, np.float32), "bioclim")
    before = path.read_bytes()

    def broken_save(obj: object, f: object) -> None:
        Path(str(f)).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_cube(path, np.ones(BIOCLIM_SHAPE, np.float32), "bioclim")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_write_cube_rejects_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"write_cube\(landsat\): expected an array of shape \(6, 4, 21\), found \(6, 21, 4\)"):
        write_cube(tmp_path / "x.pt", np.zeros((6, 21, 4)), "landsat")
    with pytest.raises(DataError, match=r"expected a real numeric array, found dtype <U1"):
        write_cube(tmp_path / "x.pt", np.full(LANDSAT_SHAPE, "a"), "landsat")
    assert not (tmp_path / "x.pt").exists()


# ----------------------------------------------------------------------------------------------- bad files
def test_wrong_shape_cube(tmp_path: Path) -> None:
    path = tmp_path / "base_cube.pt"
    torch.save(torch.zeros(6, 21, 4), path)
    with pytest.raises(DataError, match=r"landsat cube .*base_cube\.pt: expected a float32 tensor of shape \(6, 4, 21\), found float32 of shape \(6, 21, 4\)"):
        read_cube(path, "landsat")
    real_landsat = tmp_path / "l.pt"
    torch.save(torch.zeros(LANDSAT_SHAPE), real_landsat)
    with pytest.raises(DataError, match=r"expected a float32 tensor of shape \(4, 19, 12\)"):
        read_cube(real_landsat, "bioclim")


def test_wrong_dtype_and_not_a_tensor(tmp_path: Path) -> None:
    f64 = tmp_path / "f64.pt"
    torch.save(torch.zeros(BIOCLIM_SHAPE, dtype=torch.float64), f64)
    with pytest.raises(DataError, match=r"f64\.pt: expected a float32 tensor of shape \(4, 19, 12\), found float64"):
        read_cube(f64, "bioclim")
    d = tmp_path / "dict.pt"
    torch.save({"cube": torch.zeros(BIOCLIM_SHAPE)}, d)
    with pytest.raises(DataError, match=r"dict\.pt: holds a dict, not a tensor"):
        read_cube(d, "bioclim")


def test_corrupt_and_missing_cube(kaggle_samples: Layout, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pt"
    data = kaggle_samples.cube_path("train", "landsat", SAMPLE_SURVEY).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"landsat cube .*cut\.pt: torch\.load\(weights_only=True\) failed"):
        read_cube(cut, "landsat")
    with pytest.raises(DataFileNotFoundError, match=r"bioclim cube not found: .*GLC24-PA-test-bioclimatic_monthly_642_cube\.pt"):
        read_bioclim_cube(kaggle_samples, "test", 642)
    with pytest.raises(ValueError, match="cube kind must be one of"):
        read_cube(cut, "sentinel")  # type: ignore[arg-type]


def test_read_ahead_bytes_decode_like_the_file_and_read_errors_name_it(tmp_path: Path) -> None:
    from glc.data.patches import read_bytes

    arr = np.arange(6 * 4 * 21, dtype=np.float32).reshape(6, 4, 21)
    path = write_cube(tmp_path / "c.pt", arr, "landsat")
    ahead = read_bytes(path)
    assert isinstance(ahead, bytes)
    np.testing.assert_array_equal(read_cube(path, "landsat", ahead), read_cube(path, "landsat"))
    missing = tmp_path / "gone.pt"
    with pytest.raises(DataFileNotFoundError, match="gone.pt"):
        read_cube(missing, "landsat", read_bytes(missing))
    with pytest.raises(DataError, match=r"c\.pt: could not be read"):
        read_cube(path, "landsat", PermissionError(13, "Permission denied"))
    with pytest.raises(DataError, match=r"c\.pt: torch.load"):
        read_cube(path, "landsat", b"not a zip")
