"""PatchTiles ETL: Spark output equals a per-survey reference; channel-major layout; bad JPEGs fail or are
quarantined."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from glc.data.errors import DataError
from glc.data.layout import Layout
from glc.data.patches import read_patch_files
from glc.etl.patches import patch_dct, write_patch_tiles
from glc.features.dct import dct2


def write_patches(layout: Layout, surveys: pd.DataFrame, seed: int = 0) -> None:
    """Write a distinct RGB + NIR JPEG pair for every ``surveyId, split`` row (smooth fields + noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128]
    for sid, split in zip(surveys["surveyId"], surveys["split"]):
        a, b = rng.uniform(5, 40, 2)
        base = 100 + 60 * np.sin(xx / a) * np.cos(yy / b)
        chans = [np.clip(base + 25 * c + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8) for c in range(4)]
        rgb_p, nir_p = layout.patch_path(split, int(sid), "rgb"), layout.patch_path(split, int(sid), "nir")
        rgb_p.parent.mkdir(parents=True, exist_ok=True)
        nir_p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack(chans[:3], axis=-1), "RGB").save(rgb_p, quality=90)
        Image.fromarray(chans[3], "L").save(nir_p, quality=90)


def survey_frame(n_train: int, n_test: int, seed: int = 0) -> pd.DataFrame:
    """A small survey table (ids with 3..7 digits, incl. one < 1000 to exercise the unpadded folder rule)."""
    rng = np.random.default_rng(seed)
    ids = np.r_[642, rng.choice(np.arange(1000, 3_900_000), n_train + n_test - 1, replace=False)]
    return pd.DataFrame(
        {
            "surveyId": ids.astype(np.int64),
            "split": ["test"] + ["train"] * n_train + ["test"] * (n_test - 1),
            "lon": rng.uniform(-5, 18, len(ids)),
            "lat": rng.uniform(40, 55, len(ids)),
        }
    )


def reference_patch_features(layout: Layout, surveys: pd.DataFrame, k: int) -> dict[int, tuple[np.ndarray, bytes]]:
    """The naive loop: per survey, read the two JPEGs and DCT each channel separately."""
    out = {}
    for sid, split in zip(surveys["surveyId"], surveys["split"]):
        patch = read_patch_files(layout.patch_path(split, int(sid), "rgb"), layout.patch_path(split, int(sid), "nir"))
        coeffs = np.concatenate([dct2(patch[c].astype(np.float32), k).reshape(-1) for c in range(4)])
        out[int(sid)] = (coeffs.astype(np.float32), patch.tobytes())
    return out


@pytest.fixture(scope="module")
def patch_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, pd.DataFrame]:
    root = tmp_path_factory.mktemp("patch_world")
    layout = Layout(root)
    surveys = survey_frame(14, 6, seed=1)
    write_patches(layout, surveys, seed=1)
    return layout, surveys


def test_patch_dct_is_channel_major() -> None:
    """Per-channel constant patches: the DC coefficient of channel c sits at c*k*k and equals value*128."""
    k = 3
    patches = np.zeros((2, 4, 128, 128), np.uint8)
    for c in range(4):
        patches[0, c] = 10 * (c + 1)
        patches[1, c] = 200 - 7 * c
    out = patch_dct(patches, k)
    assert out.shape == (2, 4 * k * k) and out.dtype == np.float32
    for c in range(4):
        block = out[:, c * k * k : (c + 1) * k * k]
        np.testing.assert_allclose(block[:, 0], patches[:, c, 0, 0].astype(np.float64) * 128, rtol=1e-6)
        np.testing.assert_allclose(block[:, 1:], 0, atol=1e-3)
    with pytest.raises(ValueError, match=r"expected patches of shape \(m, 4, H, W\)"):
        patch_dct(np.zeros((1, 3, 128, 128), np.uint8), k)


def test_patch_tiles_equal_reference(spark, patch_world, tmp_path: Path) -> None:
    layout, surveys = patch_world
    k = 4
    summary = write_patch_tiles(
        spark, layout, spark.createDataFrame(surveys), tmp_path / "p", k=k, keep_raw=True, partitions=3
    )
    df = pd.read_parquet(tmp_path / "p" / "data")
    assert list(df.columns) == ["surveyId", "split", "dct", "raw"]
    assert df["surveyId"].tolist() == sorted(surveys["surveyId"].tolist())
    assert dict(zip(df["surveyId"], df["split"])) == dict(zip(surveys["surveyId"], surveys["split"]))
    ref = reference_patch_features(layout, surveys, k)
    for sid, dct, raw in zip(df["surveyId"], df["dct"], df["raw"]):
        assert dct.dtype == np.float32 and dct.shape == (4 * k * k,)
        np.testing.assert_array_equal(dct, ref[sid][0])
        assert raw == ref[sid][1]
    assert np.isfinite(np.stack(df["dct"])).all()
    assert summary["n_written"] == len(surveys) and summary["n_skipped"] == 0
    assert summary["by_split"] == surveys["split"].value_counts().sort_index().to_dict()
    assert json.loads((tmp_path / "p" / "_SUCCESS").read_text())["params"] == {"k": k, "keep_raw": True}
    assert pd.read_parquet(tmp_path / "p" / "quarantine").empty
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["_SUCCESS", "data", "quarantine", "report.json"]


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


@pytest.fixture()
def bad_patch_world(tmp_path: Path) -> tuple[Layout, pd.DataFrame, dict[int, str]]:
    """Six surveys: one truncated RGB JPEG, one missing NIR JPEG."""
    layout = Layout(tmp_path / "w")
    surveys = survey_frame(4, 2, seed=3)
    write_patches(layout, surveys, seed=3)
    s_trunc, s_missing = int(surveys["surveyId"][1]), int(surveys["surveyId"][4])
    trunc = layout.patch_path(surveys["split"][1], s_trunc, "rgb")
    missing = layout.patch_path(surveys["split"][4], s_missing, "nir")
    _truncate(trunc)
    missing.unlink()
    return layout, surveys, {s_trunc: str(trunc), s_missing: str(missing)}


def test_truncated_jpeg_fails_naming_file_and_survey(spark, bad_patch_world, tmp_path: Path) -> None:
    layout, surveys, bad = bad_patch_world
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never decode cut JPEGs into filler pixels
    s_trunc = min(bad)  # the error quotes the bad inputs in surveyId order
    with pytest.raises(DataError, match=r"PatchTiles\(k=2\): 2 bad input\(s\) for 2 survey\(s\)") as err:
        write_patch_tiles(spark, layout, spark.createDataFrame(surveys), tmp_path / "out", k=2)
    msg = str(err.value)
    for sid, file in bad.items():
        assert f"surveyId {sid}" in msg and file in msg
    assert "skip_bad_inputs=True" in msg and re.search(r"truncated|not found", msg)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("out.glc-tmp-*"))  # the temporary artifact is removed
    assert s_trunc in bad


def test_skip_bad_inputs_quarantines_and_counts(spark, bad_patch_world, tmp_path: Path) -> None:
    layout, surveys, bad = bad_patch_world
    summary = write_patch_tiles(
        spark, layout, spark.createDataFrame(surveys), tmp_path / "out", k=2, skip_bad_inputs=True, max_bad_fraction=1.0
    )
    q = pd.read_parquet(tmp_path / "out" / "quarantine")
    assert dict(zip(q["surveyId"], q["file"])) == bad
    reasons = dict(zip(q["surveyId"], q["reason"]))
    trunc_sid = next(s for s, f in bad.items() if f.endswith(f"{s}.jpeg") and "rgb" in f)
    assert "truncated or corrupt" in reasons[trunc_sid]
    assert all("not found" in r for s, r in reasons.items() if s != trunc_sid)
    assert summary["n_skipped"] == summary["n_bad_inputs"] == 2 and summary["n_surveys"] == len(surveys)
    data = pd.read_parquet(tmp_path / "out" / "data")
    assert list(data.columns) == ["surveyId", "split", "dct"]  # no raw bytes unless keep_raw
    good = surveys[~surveys["surveyId"].isin(list(bad))]
    assert sorted(data["surveyId"]) == sorted(good["surveyId"]) and summary["n_written"] == len(good)
    ref = reference_patch_features(layout, good, 2)
    for sid, dct in zip(data["surveyId"], data["dct"]):
        np.testing.assert_array_equal(dct, ref[sid][0])


def test_po_patches_live_at_the_seafile_path_and_run_through_patch_tiles(spark, tmp_path: Path) -> None:
    """Presence-only sites (split "po") read their pairs from SatellitePatches/PO-Train-SatellitePatches-*."""
    for flavour in ("kaggle", "seafile"):
        lay = Layout(tmp_path / flavour, flavour)  # type: ignore[arg-type]
        assert (
            lay.patch_path("po", 1322301, "nir")
            == lay.root / "SatellitePatches" / "PO-Train-SatellitePatches-NIR" / "01" / "23" / "1322301.jpeg"
        )
    layout = Layout(tmp_path / "seafile", "seafile")
    sites = survey_frame(5, 1, seed=4).assign(split="po")
    write_patches(layout, sites, seed=4)
    summary = write_patch_tiles(spark, layout, spark.createDataFrame(sites), tmp_path / "po", k=2)
    df = pd.read_parquet(tmp_path / "po" / "data")
    assert summary["by_split"] == {"po": len(sites)} and set(df["split"]) == {"po"}
    ref = reference_patch_features(layout, sites, 2)
    for sid, dct in zip(df["surveyId"], df["dct"]):
        np.testing.assert_array_equal(dct, ref[sid][0])
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        layout.patch_root("validation", "rgb")  # type: ignore[arg-type]


def test_read_ahead_pool_gives_the_same_patches_and_bad_inputs(bad_patch_world) -> None:
    """Bytes read on an I/O thread pool decode exactly like files read inline; bad files are reported the same."""
    from concurrent.futures import ThreadPoolExecutor

    from glc.etl.patches import read_patch_batch

    layout, surveys, bad = bad_patch_world
    ids, splits = surveys["surveyId"].to_numpy(), surveys["split"].tolist()
    inline = read_patch_batch(layout, ids, splits)
    with ThreadPoolExecutor(4) as pool:
        ahead = read_patch_batch(layout, ids, splits, pool)
    np.testing.assert_array_equal(inline[1], ahead[1])
    np.testing.assert_array_equal(inline[0][inline[1]], ahead[0][ahead[1]])
    assert inline[2] == ahead[2] and {int(ids[i]): f for i, f, _ in ahead[2]} == bad


# ------------------------------------------------------------------------------------------------ GLC25 GeoTIFFs
@pytest.fixture()
def glc25_patch_world(tmp_path: Path) -> tuple[Layout, pd.DataFrame, dict[int, np.ndarray]]:
    """Six GLC25 surveys written with the synthetic world's GeoTIFF writer: one with a nodata strip, one all nodata,
    one truncated file. Returns the layout, the surveys and the int16 pixels written per survey."""
    from glc.synth.world import write_glc25_patch

    layout = Layout(tmp_path / "g", "glc25")
    ids = np.array([1027998, 212, 3_900_001, 5_000_000, 5_000_108, 5_014_783], np.int64)
    surveys = pd.DataFrame({"surveyId": ids, "split": ["train"] * 3 + ["test"] * 3})
    rng = np.random.default_rng(5)
    pixels = {}
    for sid, split in zip(ids, surveys["split"]):
        arr = rng.integers(200, 4000, (4, 64, 64)).astype(np.int16)
        if sid == 212:
            arr[:, :, -7:] = -1
        if sid == 5_000_000:
            arr[:] = -1
        write_glc25_patch(layout.patch_path(split, int(sid), "tiff"), arr, 4.0e6, 3.0e6)
        pixels[int(sid)] = arr
    _truncate(layout.patch_path("test", 5_014_783, "tiff"))
    return layout, surveys, pixels


def test_glc25_patch_tiles_fill_nodata_and_quarantine_bad_files(spark, glc25_patch_world, tmp_path: Path) -> None:
    """DCT of the reflectances with each nodata pixel filled by its band's valid mean (never -1), nodata counted;
    the all-nodata and the truncated GeoTIFF fail naming file and survey, or are quarantined under the ceiling."""
    layout, surveys, pixels = glc25_patch_world
    frame = spark.createDataFrame(surveys)
    with pytest.raises(
        DataError, match=r"surveyId 5000000 \(test\): satellite patch GeoTIFF .*5000000\.tiff: every pixel is nodata"
    ):
        write_patch_tiles(spark, layout, frame, tmp_path / "fail", k=8)
    with pytest.raises(DataError, match="more than max_bad_fraction=0.1"):
        write_patch_tiles(spark, layout, frame, tmp_path / "ceiling", k=8, skip_bad_inputs=True, max_bad_fraction=0.1)
    k = 64  # lossless at 64 px
    summary = write_patch_tiles(spark, layout, frame, tmp_path / "p", k=k, skip_bad_inputs=True, max_bad_fraction=0.5)
    df = pd.read_parquet(tmp_path / "p" / "data")
    assert list(df.columns) == ["surveyId", "split", "dct", "nodata"]
    assert df["surveyId"].tolist() == [212, 1027998, 3_900_001, 5_000_108]
    for sid, dct, nodata in zip(df["surveyId"], df["dct"], df["nodata"]):
        arr = pixels[sid].astype(np.float32)
        mask = pixels[sid] == -1
        for c in range(4):
            arr[c][mask[c]] = pixels[sid][c][~mask[c]].astype(np.float64).mean()
        ref = np.concatenate([dct2(arr[c], k).reshape(-1) for c in range(4)])
        np.testing.assert_allclose(dct, ref, rtol=1e-5, atol=0.05)
        assert nodata == mask.sum()
    assert summary["nodata"] == {"surveys_with_nodata": 1, "nodata_pixels": 4 * 64 * 7}
    assert summary["n_skipped"] == 2 and summary["patch_format"] == "geotiff"
    q = pd.read_parquet(tmp_path / "p" / "quarantine")
    assert sorted(q["surveyId"]) == [5_000_000, 5_014_783]
    assert q["file"].str.endswith(".tiff").all() and q["reason"].str.contains("truncated or corrupt").any()
    with pytest.raises(ValueError, match="k must be an int in 1..64 .*GLC25 patches are 64 px"):
        write_patch_tiles(spark, layout, frame, tmp_path / "k", k=128)
    with pytest.raises(ValueError, match="keep_raw stores GLC24's uint8 JPEG pixels"):
        write_patch_tiles(spark, layout, frame, tmp_path / "raw", k=8, keep_raw=True)
