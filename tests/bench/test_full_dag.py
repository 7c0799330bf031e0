"""bench.full_dag helpers: experiment order, a failing step is recorded (not raised), disk accounting, the result
assembled after every step."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from bench.full_dag import (
    BENCHES,
    GOAL_EXPERIMENTS,
    assemble,
    dir_bytes,
    experiment_order,
    has_checkpoint,
    outcome,
    render_table,
    report_row,
    run_step,
    step_log,
)
from glc.config import load_experiment, model_key


def test_goal_experiments_first_then_cheapest_by_demo_wall_time() -> None:
    order = experiment_order(["tile-cnn", "knn", "rf", "geolocation-asl", "frequency"])
    assert order[:3] == list(GOAL_EXPERIMENTS)
    assert set(order[3:]) == {"tile-cnn", "rf"}
    assert order.index("rf") < order.index("tile-cnn")  # 85 s vs 242 s on the demo world (synth_leaderboard.json)


def test_a_late_fusion_runs_after_its_members_in_the_run() -> None:
    # blend is the cheapest on the demo world (it only reads its members' predictions); left first, its step would
    # train gbm and tile-cnn-rasters and bill their time to the blend
    order = experiment_order(["blend", "tile-cnn-rasters", "gbm", "knn", "frequency"])
    assert order[:2] == ["frequency", "knn"]
    assert order.index("blend") > max(order.index("gbm"), order.index("tile-cnn-rasters"))
    assert sorted(order) == sorted(["blend", "tile-cnn-rasters", "gbm", "knn", "frequency"])
    assert experiment_order(["blend"]) == ["blend"]  # members not in the run are not added


def test_render_table_names_other_experiments_tasks_a_step_ran() -> None:
    row = {
        "experiment": "blend",
        "goal": False,
        "returncode": 0,
        "test_sample_f1": 0.5,
        "seconds": 2300.0,
        "peak_rss_gb": 7.0,
        "cpu_seconds": 4000.0,
        "machine_busy_cpu_seconds": 4100.0,
        "tasks": [
            {"task": "TrainModel", "experiment": "tile-cnn-rasters", "seconds": 2000.0},
            {"task": "Predict", "experiment": "tile-cnn-rasters", "seconds": 60.4},
            {"task": "ModelInputs", "seconds": 100.0},
            {"task": "Predict", "experiment": "blend", "seconds": 40.0},
        ],
    }
    member = {
        **row,
        "experiment": "tile-cnn-rasters",
        "seconds": 120.0,
        "tasks": [{"task": "Report", "experiment": "tile-cnn-rasters", "seconds": 110.0}],
    }
    lines = render_table({"experiments": [row, member]}).splitlines()
    assert "| 2300 s (incl. 2060 s: TrainModel, Predict of `tile-cnn-rasters`) |" in lines[2]
    assert "| 120 s (+2060 s: TrainModel, Predict run earlier in `blend`'s step) |" in lines[3]


def test_a_failing_step_is_recorded_with_its_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    row = run_step(["NoSuchTask", "--data-root", "d"], env, tmp_path, timeout_s=120)
    assert row["returncode"] != 0
    assert "NoSuchTask" in row["stderr_tail"]
    assert row["tasks"] == [] and row["peak_rss_gb"] > 0
    # the console output went to the step's log as it came, so a long step can be followed
    log = step_log(tmp_path, ["NoSuchTask", "--data-root", "d"])
    assert log == tmp_path / "_logs" / "NoSuchTask.log"
    text = log.read_text()
    assert text.startswith("=== ") and "NoSuchTask --data-root d" in text.splitlines()[0]
    assert row["stderr_tail"].strip().splitlines()[-1] in text


def test_a_failed_steps_error_reaches_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    step = "Submission --experiment fusion-concat --data-root d --out-root o"
    assert not report_row(
        {
            "step": step,
            "returncode": 1,
            "seconds": 183.0,
            "stderr_tail": "Not enough memory to build and broadcast",
            "tasks": [{"task": "ModelInputs"}],
        }
    )
    out, err = capsys.readouterr()
    assert json.loads(out) == {"step": step, "returncode": 1, "seconds": 183.0}
    assert (
        "Submission --experiment fusion-concat failed (exit 1)" in err
        and "Not enough memory to build and broadcast" in err
    )
    assert not report_row({"step": step, "returncode": -9, "timed_out_after_s": 7200.0, "stderr_tail": "Epoch 15"})
    assert "Submission --experiment fusion-concat was stopped by the step timeout (exit -9)" in capsys.readouterr().err
    assert report_row({"step": step, "returncode": 0, "stderr_tail": "INFO: done"})
    assert capsys.readouterr().err == ""


def test_dir_bytes_counts_every_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12345")
    (tmp_path / "y").write_bytes(b"123")
    assert dir_bytes(tmp_path) == 8
    assert dir_bytes(tmp_path / "missing") == 0


def test_render_table_says_why_an_experiment_has_no_score() -> None:
    step = {"seconds": 10.0, "peak_rss_gb": 1.234, "cpu_seconds": 15.0, "machine_busy_cpu_seconds": 19.6}
    res = {
        "etl": [
            {**step, "step": "SurveyTable --data-root d --out-root o", "returncode": 0},
            {**step, "step": "PatchTiles --data-root d --out-root o", "returncode": 1},
        ],
        "experiments": [
            {
                "experiment": "gbm",
                "goal": False,
                "not_run": "--budget-hours 1.5 spent (1.77 h elapsed) before it could start",
            },
            {**step, "experiment": "tile-cnn", "goal": False, "returncode": -9, "timed_out_after_s": 3600.0},
            {
                **step,
                "experiment": "knn",
                "goal": True,
                "returncode": 0,
                "test_sample_f1": 0.48612,
                "earlier_attempts": [{"seconds": 2700.4}],
            },
            {**step, "experiment": "rf", "goal": False, "returncode": 1},
        ],
    }
    lines = render_table(res).splitlines()
    assert len(lines) == 2 + 2 + 4
    assert lines[2] == "| SurveyTable | 10 s | 1.23 GB | 15 / 20 |"
    assert lines[3].startswith("| PatchTiles FAILED (exit 1) |")
    assert lines[4].startswith("| `knn` Submission, test sample-F1 **0.486** | 10 s (+2700 s in 1 earlier attempt(s)")
    assert lines[5] == "| `gbm` | not run: --budget-hours 1.5 spent | | |"
    assert lines[6].startswith(
        "| `tile-cnn` Submission, stopped by the step timeout | 10 s (a later `--merge` on the same out-root resumes"
    )
    assert lines[7].startswith("| `rf` Submission FAILED (exit 1) |")


def _row(name: str, seconds: float, **kw: object) -> dict:
    return {
        "experiment": name,
        "goal": name in GOAL_EXPERIMENTS,
        "returncode": 0,
        "seconds": seconds,
        "peak_rss_gb": 2.0,
        "cpu_seconds": seconds,
        "machine_busy_cpu_seconds": seconds,
        **kw,
    }


def _assemble(old: dict, etl: list, rows: list, merge: bool = True, **kw: object) -> dict:
    return assemble(
        old, etl, rows, merge=merge, etl_ok=True, data_root="d", n_surveys=10, seconds=50.0, out_root_gb=1.0, **kw
    )


def test_a_partial_merge_keeps_the_earlier_rows_it_has_not_replaced_yet() -> None:
    # written after every step: a merge run stopped after its first experiment must not lose the others' old rows
    etl = [{"step": "SurveyTable --data-root d --out-root o", "returncode": 0, "seconds": 100.0, "peak_rss_gb": 3.0}]
    old = {
        "etl": etl,
        "invocations": 2,
        "total_seconds": 900.0,
        "experiments": [
            _row("knn", 20.0, test_sample_f1=0.4),
            _row("rf", 30.0, test_sample_f1=0.5),
            _row("gbm", 40.0, returncode=-9, timed_out_after_s=40.0),
        ],
    }
    frozen = copy.deepcopy(old)
    res = _assemble(old, etl, [_row("gbm", 60.0, test_sample_f1=0.52)])
    by = {r["experiment"]: r for r in res["experiments"]}
    assert set(by) == {"knn", "rf", "gbm"}
    assert by["gbm"]["test_sample_f1"] == 0.52 and by["gbm"]["seconds_all_attempts"] == 100.0
    assert [e["seconds"] for e in by["gbm"]["earlier_attempts"]] == [40.0]
    assert res["invocations"] == 3 and res["all_ok"] and res["max_peak_rss_gb"] == 3.0
    assert old == frozen  # pure: called again after the next step, it must not stack earlier attempts twice
    killed = {**old, "experiments": [_row("gbm", 40.0, returncode=-9, timed_out_after_s=40.0, peak_rss_gb=9.5)]}
    assert _assemble(killed, etl, [_row("gbm", 60.0, test_sample_f1=0.52)])["max_peak_rss_gb"] == 9.5
    again = _assemble(old, etl, [_row("gbm", 60.0, test_sample_f1=0.52), _row("rf", 35.0, test_sample_f1=0.51)])
    by = {r["experiment"]: r for r in again["experiments"]}
    assert len(by["gbm"]["earlier_attempts"]) == 1 and by["rf"]["seconds"] == 35.0 and len(again["experiments"]) == 3


def test_the_goal_is_met_only_when_its_experiments_all_ran() -> None:
    etl = [{"step": "SurveyTable --data-root d --out-root o", "returncode": 0, "seconds": 100.0, "peak_rss_gb": 3.0}]
    partial = _assemble({}, etl, [_row("frequency", 10.0), _row("knn", 10.0)], merge=False)
    assert not partial["goal"]["met"] and partial["invocations"] == 1
    full = _assemble({}, etl, [_row(n, 10.0) for n in GOAL_EXPERIMENTS], merge=False)
    assert full["goal"]["met"] and full["goal"]["seconds"] == 130.0
    rows = [_row(n, 10.0) for n in GOAL_EXPERIMENTS[:-1]] + [_row(GOAL_EXPERIMENTS[-1], 5.0, returncode=1)]
    failed = _assemble({}, etl, rows, merge=False)
    assert not failed["goal"]["met"] and not failed["all_ok"]


def test_etl_a_fresh_out_root_rebuilds_is_kept_apart_from_the_measured_etl() -> None:
    # a --merge on a fresh machine must rebuild the ETL first; billing it to the experiment's step or replacing the
    # first run's ETL rows (the goal's figures) would both misreport
    etl = [
        {
            "step": "SurveyTable --data-root d --out-root o",
            "returncode": 0,
            "seconds": 100.0,
            "peak_rss_gb": 3.0,
            "cpu_seconds": 90.0,
            "machine_busy_cpu_seconds": 95.0,
        }
    ]
    old = {
        "etl": etl,
        "invocations": 11,
        "etl_rebuilds": [{**etl[0], "seconds": 120.0, "invocation": 5}],
        "experiments": [_row(n, 10.0) for n in GOAL_EXPERIMENTS],
    }
    rebuilt = {**etl[0], "seconds": 140.0, "peak_rss_gb": 17.5, "invocation": 12}
    res = assemble(
        old,
        etl,
        [_row("gbm", 60.0, test_sample_f1=0.5)],
        merge=True,
        etl_ok=True,
        data_root="d",
        n_surveys=10,
        seconds=50.0,
        out_root_gb=1.0,
        rebuilds=[rebuilt],
    )
    assert [r["seconds"] for r in res["etl_rebuilds"]] == [120.0, 140.0]
    assert res["etl"] == etl and res["etl_seconds"] == 100.0 and res["goal"]["seconds"] == 130.0
    assert res["max_peak_rss_gb"] == 17.5  # the machine still had to hold it
    assert res["out_root_gb"] == 1.0  # this (fresh) out-root's size: larger than the earlier runs' (none recorded)
    assert _assemble({**old, "out_root_gb": 5.63}, etl, [])["out_root_gb"] == 5.63  # not the fresh machine's 1.0
    lines = render_table(res).splitlines()
    assert lines[2] == "| SurveyTable | 100 s | 3.00 GB | 90 / 95 |"
    assert lines[3].startswith("| SurveyTable, rebuilt by run 5 (its out-root lacked it) | 120 s |")
    assert lines[4].startswith("| SurveyTable, rebuilt by run 12 (its out-root lacked it) | 140 s |")
    assert len(old["etl_rebuilds"]) == 1  # pure: called after every step, it must not stack this run's rebuilds
    assert _assemble({}, etl, [], merge=False)["etl_rebuilds"] == []


def test_an_attempt_after_a_timeout_says_whether_it_resumed() -> None:
    old = {"experiments": [_row("tile-cnn-idct", 6840.0, returncode=-9, timed_out_after_s=6840.0)]}
    for at_start, word in ((True, "resumed)"), (False, "not resumed: its checkpoint was not in the out-root")):
        res = _assemble(old, [], [_row("tile-cnn-idct", 3000.0, test_sample_f1=0.3, checkpoint_at_start=at_start)])
        assert res["experiments"][0]["seconds_all_attempts"] == 9840.0
        assert word in render_table(res).splitlines()[2]


def test_each_earlier_attempt_keeps_whether_it_resumed() -> None:
    # tile-cnn-idct at full scale: attempt 1 fresh, attempt 2 on a fresh machine (its checkpoint lost), 3 and 4 resumed
    res: dict = {}
    for seconds, at_start, timed_out in (
        (6840.0, False, True),
        (3600.0, False, True),
        (7200.0, True, True),
        (5000.0, True, False),
    ):
        extra = {"returncode": -9, "timed_out_after_s": seconds} if timed_out else {"test_sample_f1": 0.3}
        res = _assemble(res, [], [_row("tile-cnn-idct", seconds, checkpoint_at_start=at_start, **extra)])
    row = res["experiments"][0]
    assert [e["checkpoint_at_start"] for e in row["earlier_attempts"]] == [False, False, True]
    assert row["seconds_all_attempts"] == 22640.0
    line = render_table(res).splitlines()[2]
    assert (
        "in 3 earlier attempt(s) killed by the step timeout, resumed; attempt 2 of 4 started over, its checkpoint "
        "not in the out-root)"
    ) in line
    # the first attempt had nothing to resume from: starting fresh is not a lost checkpoint
    first_fresh = {**row, "earlier_attempts": [{**row["earlier_attempts"][0]}, {**row["earlier_attempts"][2]}]}
    assert "started over" not in render_table({"experiments": [first_fresh]}).splitlines()[2]
    # two earlier attempts lost their checkpoints and so did the finishing one: plural, and "also"
    both_lost = {
        **row,
        "checkpoint_at_start": False,
        "earlier_attempts": [*row["earlier_attempts"][:2], {**row["earlier_attempts"][1]}],
    }
    line = render_table({"experiments": [both_lost]}).splitlines()[2]
    assert (
        "this attempt started over; attempts 2, 3 of 4 also started over, their checkpoints not in the out-root" in line
    )


def test_has_checkpoint_finds_only_this_experiments_model(tmp_path: Path) -> None:
    idct, cnn = load_experiment("tile-cnn-idct"), load_experiment("tile-cnn")
    assert not has_checkpoint(tmp_path, cnn)
    run = tmp_path / "full-seed0-abc" / "models" / f"tile-cnn-idct-{model_key(idct)}" / "training" / "checkpoints"
    run.mkdir(parents=True)
    (run / "epoch003-f10.2800.ckpt").write_bytes(b"x")
    assert not has_checkpoint(tmp_path, idct)  # a best checkpoint without last.ckpt: nothing to resume from
    (run / "last.ckpt").write_bytes(b"x")
    assert has_checkpoint(tmp_path, idct)
    assert not has_checkpoint(tmp_path, cnn)  # "tile-cnn-" is a prefix of the other's directory, not its model


def test_render_table_a_resumed_step_shows_the_highest_peak_of_its_attempts() -> None:
    # fusion-concat at full scale: 10.42 GB while training fold 1 (killed by the step timeout), 5.94 GB resuming
    row = {
        **_row(
            "fusion-concat",
            1354.9,
            test_sample_f1=0.5746,
            peak_rss_gb=5.94,
            cpu_seconds=2475.8,
            machine_busy_cpu_seconds=2497.3,
            checkpoint_at_start=True,
        ),
        "earlier_attempts": [
            {
                "seconds": 7200.6,
                "peak_rss_gb": 10.42,
                "cpu_seconds": 13772.0,
                "machine_busy_cpu_seconds": 13924.2,
                "timed_out_after_s": 7200.0,
            }
        ],
    }
    line = render_table({"experiments": [row]}).splitlines()[2]
    assert "| 10.42 GB (in an earlier attempt; this one 5.94 GB) |" in line
    assert line.endswith("| 2476 / 2497 (+13772 / 13924 earlier) |")
    alone = render_table({"experiments": [{**row, "earlier_attempts": []}]}).splitlines()[2]
    assert alone.endswith("| 5.94 GB | 2476 / 2497 |")


def test_the_console_summary_tells_a_step_timeout_from_a_failure() -> None:
    # run 15 printed "tile-cnn-idct: FAILED (exit -9)" for a step its own --step-timeout-hours stopped (resumable)
    stopped = _row("tile-cnn-idct", 6840.2, returncode=-9, timed_out_after_s=6840.0)
    assert outcome(stopped).startswith("stopped by the step timeout after 6840.2 s")
    assert outcome(_row("rf", 30.0, returncode=-9)) == "FAILED (exit -9)"  # killed by something else: the OOM killer
    resumed = {
        **_row("fusion-concat", 1354.9, test_sample_f1=0.57461),
        "seconds_all_attempts": 8555.5,
        "earlier_attempts": [{"seconds": 7200.6}],
    }
    assert outcome(resumed) == "test sample-F1 0.5746, 8555.5 s over 2 attempts"
    assert outcome(_row("knn", 168.1, test_sample_f1=0.4861)) == "test sample-F1 0.4861, 168.1 s"
    assert outcome({"experiment": "fusion-paper", "not_run": "its [train] accelerator needs a GPU"}).startswith(
        "not run: its"
    )


def test_render_table_marks_a_row_transcribed_by_hand() -> None:
    # tile-cnn-idct's finishing run: its machine was lost before the tool's own JSON row could be committed
    row = {
        **_row("tile-cnn-idct", 1015.0, test_sample_f1=0.322, peak_rss_gb=2.69),
        "recovered_from": "session 37's README text",
    }
    row.pop("cpu_seconds", None)
    row.pop("machine_busy_cpu_seconds", None)
    line = render_table({"experiments": [row]}).splitlines()[2]
    assert "(figures transcribed, not written by this tool: session 37's README text)" in line
    assert line.endswith("| 2.69 GB | not recorded |")
    assert "transcribed" not in render_table({"experiments": [_row("knn", 168.1, test_sample_f1=0.4861)]})


def test_each_edition_has_its_own_goal_result_and_doc_table() -> None:
    glc25 = BENCHES["glc25"]
    assert BENCHES["glc24"].result == "full_dag" and glc25.result == "full_dag_glc25"
    assert glc25.doc.name == "glc25.md" and all(m in glc25.doc.read_text() for m in glc25.marks)
    order = experiment_order(["tile-cnn", "gbm", "rf", "knn", "frequency"], glc25)
    assert order[:3] == ["frequency", "knn", "gbm"]
    etl = [{"step": "SurveyTable --data-root d --out-root o", "returncode": 0, "seconds": 100.0, "peak_rss_gb": 3.0}]
    res = _assemble({}, etl, [_row(n, 10.0, goal=True) for n in glc25.goal], merge=False, bench=glc25)
    assert res["goal"]["met"] and res["goal"]["steps"] == "ETL + Submission for frequency, knn, gbm"
    # the GLC24 goal's experiments do not make GLC25's (no gbm) and vice versa
    assert not _assemble({}, etl, [_row(n, 10.0) for n in GOAL_EXPERIMENTS], merge=False, bench=glc25)["goal"]["met"]


def test_a_lazy_etl_row_says_its_seconds_include_the_etl_it_built() -> None:
    row = _row("geolocation-po", 700.0, test_sample_f1=0.5, lazy_etl="its seconds include building the ETL")
    line = [ln for ln in render_table({"experiments": [row]}).splitlines() if "geolocation-po" in ln][0]
    assert "700 s (with the ETL artifacts it reads, built in this step: `--lazy-etl`)" in line
    assert "(with the ETL" not in render_table({"experiments": [_row("knn", 10.0, test_sample_f1=0.4)]})


def test_lazy_etl_is_refused_outside_a_merge_of_named_experiments() -> None:
    from bench.full_dag import main

    for argv in (["--lazy-etl", "--experiments", "knn"], ["--lazy-etl", "--merge"]):
        with pytest.raises(SystemExit, match="--lazy-etl adds experiments to an earlier run"):
            main(argv)


def test_render_table_a_step_that_found_a_checkpoint_no_recorded_attempt_left_says_so() -> None:
    # fusion-concat at full scale, 2026-11-26: a run stopped from outside (not by --step-timeout-hours) left
    # last.ckpt; the --merge that finished it recorded only its own 6,414 s, so the row must say it is not the whole
    found = _row("fusion-concat", 6414.5, test_sample_f1=0.5754, checkpoint_at_start=True)
    line = render_table({"experiments": [found]}).splitlines()[2]
    assert line.startswith("| `fusion-concat` Submission, test sample-F1 **0.575** | 6414 s (a `last.ckpt` was in")
    assert "the time of the run that left it is not in this" in line
    for fresh in (
        {**found, "checkpoint_at_start": False},
        {k: v for k, v in found.items() if k != "checkpoint_at_start"},
    ):
        assert "last.ckpt" not in render_table({"experiments": [fresh]}).splitlines()[2]
    # a timed-out attempt recorded here already says how the finishing one resumed: no second note
    timed = {**found, "earlier_attempts": [{"seconds": 7200.0, "timed_out_after_s": 7200.0, "peak_rss_gb": 2.0}]}
    assert "last.ckpt" not in render_table({"experiments": [timed]}).splitlines()[2]
