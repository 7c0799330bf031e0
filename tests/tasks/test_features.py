"""The feature tasks on the tiny synthetic world: one row per survey, equal to per-survey references, no NaN/inf,
idempotent reruns, paths from significant parameters only, bad inputs fail the task or are quarantined on request."""

from __future__ import annotations

import shutil
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.data.cubes import read_cube
from glc.data.env import read_env_csv
from glc.data.layout import ENV_COLUMNS, Layout, detect_layout
from glc.data.patches import read_patch_files
from glc.etl.env import ENV_FEATURE_COMPONENTS
from glc.features.dct import dct2
from glc.features.tiles import extract_tiles
from glc.tasks import CubeFeatures, EnvFeatures, PatchTiles, RasterTiles, SurveyTable
from glc.tasks.features import read_features, read_summary
from glc.tasks.surveys import read_surveys
from tests.etl.test_cubes import assert_matches_reference
from tests.etl.test_env import reference_env


def _build(*tasks: luigi.Task):
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=1)


def _tasks(root: Path, out: Path) -> dict[str, luigi.Task]:
    common = {"data_root": str(root), "out_root": str(out)}
    return {
        "patches": PatchTiles(k=4, **common),
        "cubes": CubeFeatures(n=16, **common),
        "env": EnvFeatures(**common),
        "rasters": RasterTiles(raster_group="human_footprint", k=2, tile_size=8, **common),
    }


@pytest.fixture(scope="module")
def built(
    spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, luigi.Task], pd.DataFrame, Path]:
    out = tmp_path_factory.mktemp("features_out")
    tasks = _tasks(tiny_world, out)
    res = _build(*tasks.values())
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    surveys = read_surveys(SurveyTable(data_root=str(tiny_world), out_root=str(out)).output())
    return tasks, surveys, out


def _numeric_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for c in df.columns:
        if c in ("surveyId", "split", "raw"):
            continue
        v = df[c]
        out[c] = np.stack(v.to_numpy()).astype(np.float64) if v.dtype == object else v.to_numpy(np.float64)
    return out


def test_one_finite_row_per_survey_in_every_artifact(built) -> None:
    tasks, surveys, _ = built
    want = surveys[["surveyId", "split"]].sort_values("surveyId", ignore_index=True)
    for name, task in tasks.items():
        df = read_features(task.output())
        pd.testing.assert_frame_equal(df[["surveyId", "split"]], want, obj=name)
        for col, arr in _numeric_arrays(df).items():
            assert np.isfinite(arr).all(), f"{name}.{col} has NaN/inf"
        summary = read_summary(task.output())
        assert (
            summary["n_written"] == len(want)
            and summary["by_split"] == want["split"].value_counts().sort_index().to_dict()
        )
    assert {len(v) for v in read_features(tasks["patches"].output())["dct"]} == {4 * 4 * 4}
    assert len(read_features(tasks["env"].output())["env"][0]) == 46


def test_patches_equal_reference(built, tiny_world: Path) -> None:
    tasks, _, _ = built
    layout = detect_layout(tiny_world)
    df = read_features(tasks["patches"].output())
    for sid, split, dct in zip(df["surveyId"], df["split"], df["dct"]):
        patch = read_patch_files(layout.patch_path(split, sid, "rgb"), layout.patch_path(split, sid, "nir"))
        ref = np.concatenate([dct2(patch[c].astype(np.float32), 4).reshape(-1) for c in range(4)])
        np.testing.assert_array_equal(dct, ref)


def test_cubes_equal_reference(built, tiny_world: Path) -> None:
    tasks, _, _ = built
    layout = detect_layout(tiny_world)
    df = read_features(tasks["cubes"].output())
    sample = df.iloc[np.random.default_rng(0).choice(len(df), 30, replace=False)]
    cubes = {
        int(sid): (
            read_cube(layout.cube_path(split, "landsat", sid), "landsat"),
            read_cube(layout.cube_path(split, "bioclim", sid), "bioclim"),
        )
        for sid, split in zip(sample["surveyId"], sample["split"])
    }
    assert_matches_reference(sample, cubes, 16)
    assert read_summary(tasks["cubes"].output())["sources"]["landsat/train"] == "cubes"


def test_env_equals_reference(built, tiny_world: Path) -> None:
    tasks, surveys, _ = built
    layout = detect_layout(tiny_world)
    values = {
        comp: pd.concat([read_env_csv(layout, s, comp) for s in ("train", "test")]) for comp in ENV_FEATURE_COMPONENTS
    }
    ref, rref = reference_env(surveys[["surveyId", "split"]], values)
    df = read_features(tasks["env"].output())
    np.testing.assert_allclose(np.stack(df["env"]), np.stack(ref["env"]), rtol=1e-6)
    assert df["n_imputed"].tolist() == ref["n_imputed"].tolist()
    report = read_summary(tasks["env"].output())
    assert report["columns"][:19] == list(ENV_COLUMNS["bioclimatic"])
    assert sum(v for c in rref["counts"].values() for v in c.values()) == sum(
        report["corrections"][c][k] for c in report["corrections"] for k in rref["counts"][c]
    )


def test_raster_tiles_equal_single_process_extraction(built, tiny_world: Path) -> None:
    tasks, _, _ = built
    layout = detect_layout(tiny_world)
    df = read_features(tasks["rasters"].output())
    summary = read_summary(tasks["rasters"].output())
    surveys = (
        read_surveys(SurveyTable(data_root=str(tiny_world), out_root=tasks["rasters"].out_root).output())
        .set_index("surveyId")
        .loc[df["surveyId"]]
    )
    dct = np.stack(df["dct"])
    paths = layout.raster_paths("human_footprint")
    assert len(summary["bands"]) == len(paths) == 16 and dct.shape == (len(df), 16 * 4)
    for j, path in enumerate(paths):
        means = [summary["global_means"][f"{Path(path).stem}:1"]]
        one = extract_tiles(path, surveys.index, surveys["lon"], surveys["lat"], 8, 2, global_means=means)
        np.testing.assert_array_equal(dct[:, j * 4 : (j + 1) * 4], one["dct"].reshape(len(df), -1))
    assert summary["n_outside_any"] == int((~np.stack(df["inside"])).any(axis=1).sum())


def test_rerun_does_no_work_and_paths_follow_significant_params(built) -> None:
    tasks, _, out = built
    mtimes = {p: p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file()}
    res = _build(*tasks.values())
    assert res.status == LuigiStatusCode.SUCCESS
    from luigi.execution_summary import _summary_dict

    d = _summary_dict(res.worker)
    assert not d["completed"] and not d["failed"]
    assert {t.task_family for t in d["already_done"]} >= {"PatchTiles", "CubeFeatures", "EnvFeatures", "RasterTiles"}
    assert {p: p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file()} == mtimes
    p = tasks["patches"]
    same = PatchTiles(k=4, data_root=p.data_root, out_root=p.out_root, partitions=7, batch_size=3)
    assert same.task_id == p.task_id and same.output().path == p.output().path  # insignificant knobs
    assert p.output().dir.name == "k4" and p.output().dir.parent.name == "patches"
    assert (
        PatchTiles(k=4, keep_raw=True, skip_bad_inputs=True, data_root=p.data_root).output().dir.name
        == "k4-raw-skipbad"
    )
    assert tasks["cubes"].output().dir.name == "n16-auto" and tasks["env"].output().dir.name == "env"
    assert tasks["rasters"].output().dir.name == "human_footprint-k2-t8-tile_mean"
    assert {(Path(t.output().dir) / "quarantine").is_dir() for n, t in tasks.items() if n != "env"} == {True}


def test_bad_patch_fails_the_task_or_is_quarantined(spark, tiny_world: Path, tmp_path: Path) -> None:
    root = tmp_path / "tiny-copy"
    shutil.copytree(
        tiny_world, root, ignore=shutil.ignore_patterns("TimeSeries-Cubes", "EnvironmentalRasters", "*landsat*")
    )
    layout = Layout(root)
    test_ids = pd.read_csv(layout.pa_metadata("test"))["surveyId"]
    sid = int(test_ids.iloc[3])
    jpeg = layout.patch_path("test", sid, "nir")
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    out = tmp_path / "out"
    strict = PatchTiles(k=2, data_root=str(root), out_root=str(out))
    res = _build(strict)
    assert res.status == LuigiStatusCode.FAILED and not strict.complete() and not strict.output().dir.exists()
    skip = PatchTiles(k=2, skip_bad_inputs=True, data_root=str(root), out_root=str(out))
    assert _build(skip).status == LuigiStatusCode.SUCCESS
    q = pd.read_parquet(skip.output().dir / "quarantine")
    assert q["surveyId"].tolist() == [sid] and q["file"].tolist() == [str(jpeg)]
    summary = read_summary(skip.output())
    assert summary["n_skipped"] == 1 and sid not in set(read_features(skip.output())["surveyId"])
