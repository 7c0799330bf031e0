"""The walking-skeleton DAG end to end: Submission on a fake world, idempotent reruns, crash safety, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.io import TMP_MARK
from glc.submission import validate_submission_file
from glc.tasks import Report, Submission, SurveyTable

REPO = Path(__file__).resolve().parents[2]


def _build(task: luigi.Task):
    return luigi.build([task], local_scheduler=True, detailed_summary=True, workers=1)


@pytest.fixture(scope="module")
def finished(spark, fake_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    task = Submission(experiment="frequency", data_root=str(fake_world), out_root=str(out))
    res = _build(task)
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return task, out


def test_submission_is_valid_and_report_written(finished, fake_world):
    task, _ = finished
    test_ids = pd.read_csv(fake_world / "GLC24_PA_metadata_test.csv")["surveyId"]
    assert validate_submission_file(task.output().path, test_ids, 11255) == len(test_ids)
    rep = Report(experiment="frequency", data_root=task.data_root, out_root=task.out_root).output().dir
    md = (rep / "report.md").read_text()
    assert "sample-F1" in md and "region_frequency" in md
    import json

    j = json.loads((rep / "report.json").read_text())
    assert 0.0 < j["validation"]["sample_f1"] <= 1.0
    assert j["data"]["bad_rows"]["train_rows"]["bad_rows"] == 3  # tests.fakes.BAD_ROWS
    assert j["data"]["bad_rows"]["empty_species_rows"] == 1  # tests.fakes.EMPTY_SPECIES_ROW: counted, not bad
    # counts and decoder settings read as sentences and tables, never as Python reprs
    assert "{'" not in md and "': " not in md
    assert "train metadata: 3 of " in md and "train rows with an empty speciesId: 1" in md
    assert "| setting | value |" in md
    html = (rep / "report.html").read_text()
    assert "{&#x27;" not in html and "{'" not in html


def test_second_run_does_no_work(finished):
    task, out = finished
    mtimes = {p: p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file()}
    res = _build(Submission(experiment="frequency", data_root=task.data_root, out_root=task.out_root))
    assert res.status == LuigiStatusCode.SUCCESS
    from luigi.execution_summary import _summary_dict  # what Luigi's own execution-summary tests inspect

    d = _summary_dict(res.worker)
    assert not d["completed"] and not d["failed"], res.summary_text
    assert {t.task_family for t in d["already_done"]} == {
        "Submission"
    }  # complete at once: nothing below is even checked
    assert {p: p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file()} == mtimes


def test_same_seed_gives_byte_identical_submission(finished, tmp_path, spark):
    task, _ = finished
    other = Submission(experiment="frequency", data_root=task.data_root, out_root=str(tmp_path))
    assert _build(other).status == LuigiStatusCode.SUCCESS
    assert Path(other.output().path).read_bytes() == Path(task.output().path).read_bytes()


def test_killed_survey_table_write_is_never_done(fake_world, tmp_path, spark):
    """SIGKILL a SurveyTable run while it writes: no final artifact; the rerun completes and equals a clean run."""
    out = tmp_path / "out"
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"), "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "glc.tasks",
        "SurveyTable",
        "--local-scheduler",
        "--data-root",
        str(fake_world),
        "--out-root",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    art_parent = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            tmps = list(out.glob(f"*/surveys{TMP_MARK}*")) if out.exists() else []
            if tmps and any(tmps[0].rglob("*.parquet")) or tmps and any(tmps[0].rglob("_temporary")):
                art_parent = tmps[0].parent
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert art_parent is not None, "the writer finished or never started writing before it could be killed"
    final = art_parent / "surveys"
    assert not (final / "_SUCCESS").exists()
    task = SurveyTable(data_root=str(fake_world), out_root=str(out))
    assert not task.complete()
    assert _build(task).status == LuigiStatusCode.SUCCESS
    assert not any(TMP_MARK in p.name for p in art_parent.iterdir()), "stale temp debris was not collected"
    clean = SurveyTable(data_root=str(fake_world), out_root=str(tmp_path / "clean"))
    assert _build(clean).status == LuigiStatusCode.SUCCESS
    from pyspark.testing import assertDataFrameEqual

    a = spark.read.parquet(str(task.output().dir / "surveys"))
    b = spark.read.parquet(str(clean.output().dir / "surveys"))
    assertDataFrameEqual(a, b, checkRowOrder=True)


def test_missing_data_root_exits_non_zero(tmp_path):
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"), "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "luigi",
            "--module",
            "glc.tasks",
            "SurveyTable",
            "--local-scheduler",
            "--data-root",
            str(tmp_path / "nope"),
            "--out-root",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 20, r.stderr[-2000:]  # [retcode] missing_data


def test_bad_test_row_never_drops_a_survey_from_the_submission(spark, tmp_path):
    """Default: a malformed PA-test row fails the DAG naming file and line. With ``[SurveyTable] bad_test_rows =
    fallback`` the submission still has one row per test survey of the ORIGINAL metadata, the bad one predicted by
    the documented fallback and counted in submission.json."""
    import json

    from tests.fakes import make_fake_metadata

    world = tmp_path / "world"
    make_fake_metadata(world, seed=11)
    test_csv = world / "GLC24_PA_metadata_test.csv"
    with open(test_csv, "a") as fh:
        fh.write("2.5,north,2019,10.0,100.0,ATLANTIC,France,990555\n")
    res = _build(Submission(experiment="frequency", data_root=str(world), out_root=str(tmp_path / "out")))
    assert res.status == LuigiStatusCode.FAILED
    cfg = luigi.configuration.get_config()
    cfg.set("SurveyTable", "bad_test_rows", "fallback")
    cfg.set("SurveyTable", "max_bad_fraction", "0.1")
    try:
        task = Submission(experiment="frequency", data_root=str(world), out_root=str(tmp_path / "out"))
        res = _build(task)
        assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    finally:
        cfg.remove_option("SurveyTable", "bad_test_rows")
        cfg.remove_option("SurveyTable", "max_bad_fraction")
    sub = pd.read_csv(task.output().path)
    test_ids = set(pd.read_csv(test_csv, dtype=str)["surveyId"].astype(int))
    assert set(sub["surveyId"]) == test_ids and 990555 in test_ids and len(sub) == 31
    summary = json.loads(task.exp_path("submission.json").read_text())
    assert summary["n_fallback"] == 1 and summary["fallback_surveys"] == [990555]
    assert sub.loc[sub["surveyId"] == 990555, "predictions"].str.len().iloc[0] > 0
