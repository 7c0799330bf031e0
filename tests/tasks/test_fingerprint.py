"""Input fingerprints: a changed raw input reruns exactly what depends on it, untouched inputs rebuild nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.data.fingerprint import clear_caches, file_fingerprint, tree_fingerprint
from glc.data.layout import detect_layout
from glc.tasks import RasterTiles, Submission, SurveyTable


def _stamp_time(task: luigi.Task) -> int:
    """When the task's output was last (re)built: the mtime of its fingerprint file."""
    return task.stamp_paths()[0].stat().st_mtime_ns


def _build(*tasks: luigi.Task) -> None:
    clear_caches()
    res = luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=1)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text


def test_file_and_tree_fingerprints(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("x\n1\n")
    a = file_fingerprint(f)
    assert file_fingerprint(f) == a
    f.write_text("x\n2\n")  # same size: the content hash tells
    assert file_fingerprint(f) != a
    assert file_fingerprint(tmp_path / "none.csv") == "missing"
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "p.jpeg").write_bytes(b"123")
    t = tree_fingerprint(tmp_path / "d")
    (tmp_path / "d" / "e" / "q.jpeg").write_bytes(b"4")
    clear_caches()
    assert tree_fingerprint(tmp_path / "d") != t and tree_fingerprint(tmp_path / "d").endswith(":2")


@pytest.fixture()
def world(tiny_world: Path, tmp_path: Path) -> Path:
    root = tmp_path / "tiny-copy"
    shutil.copytree(tiny_world, root)
    return root


def test_a_changed_input_reruns_exactly_what_depends_on_it(spark, world: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    sub = Submission(experiment="frequency", data_root=str(world), out_root=out)
    tiles = RasterTiles(raster_group="elevation", k=2, tile_size=16, data_root=str(world), out_root=out)
    surveys = SurveyTable(data_root=str(world), out_root=out)
    _build(sub, tiles)
    t0 = {"sub": _stamp_time(sub), "tiles": _stamp_time(tiles), "surveys": _stamp_time(surveys)}

    _build(sub, tiles)  # untouched inputs rebuild nothing
    assert {"sub": _stamp_time(sub), "tiles": _stamp_time(tiles), "surveys": _stamp_time(surveys)} == t0

    raster = detect_layout(world).raster_paths("elevation")[0]  # touch the raster: only its tiles rerun
    st = raster.stat()
    os.utime(raster, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not tiles.complete() and surveys.complete() and sub.complete()
    _build(sub, tiles)
    assert _stamp_time(tiles) > t0["tiles"] and _stamp_time(surveys) == t0["surveys"] and _stamp_time(sub) == t0["sub"]
    t1 = _stamp_time(tiles)

    test_csv = detect_layout(world).pa_metadata("test")  # edit a metadata CSV: the survey table and all downstream
    lines = test_csv.read_text().splitlines(keepends=True)
    test_csv.write_text("".join(lines[:-1]))  # the last test survey is withdrawn
    assert not surveys.complete() and not sub.complete() and not tiles.complete()
    _build(sub, tiles)
    assert _stamp_time(surveys) > t0["surveys"] and _stamp_time(sub) > t0["sub"] and _stamp_time(tiles) > t1
    import pandas as pd

    assert len(pd.read_csv(sub.output().path)) == len(lines) - 2  # header + the withdrawn survey
