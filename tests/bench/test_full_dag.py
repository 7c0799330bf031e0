"""bench.full_dag helpers: experiment order, a failing step is recorded (not raised), disk accounting."""

from __future__ import annotations

import os
from pathlib import Path

from bench.full_dag import GOAL_EXPERIMENTS, dir_bytes, experiment_order, render_table, run_step


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
    row = {"experiment": "blend", "goal": False, "returncode": 0, "test_sample_f1": 0.5, "seconds": 2300.0,
           "peak_rss_gb": 7.0, "cpu_seconds": 4000.0, "machine_busy_cpu_seconds": 4100.0,
           "tasks": [{"task": "TrainModel", "experiment": "tile-cnn-rasters", "seconds": 2000.0},
                     {"task": "Predict", "experiment": "tile-cnn-rasters", "seconds": 60.4},
                     {"task": "ModelInputs", "seconds": 100.0},
                     {"task": "Predict", "experiment": "blend", "seconds": 40.0}]}
    member = {**row, "experiment": "tile-cnn-rasters", "seconds": 120.0,
              "tasks": [{"task": "Report", "experiment": "tile-cnn-rasters", "seconds": 110.0}]}
    lines = render_table({"experiments": [row, member]}).splitlines()
    assert "| 2300 s (incl. 2060 s: TrainModel, Predict of `tile-cnn-rasters`) |" in lines[2]
    assert "| 120 s (+2060 s: TrainModel, Predict run earlier in `blend`'s step) |" in lines[3]


def test_a_failing_step_is_recorded_with_its_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    row = run_step(["NoSuchTask"], env, tmp_path, timeout_s=120)
    assert row["returncode"] != 0
    assert "NoSuchTask" in row["stderr_tail"]
    assert row["tasks"] == [] and row["peak_rss_gb"] > 0


def test_dir_bytes_counts_every_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12345")
    (tmp_path / "y").write_bytes(b"123")
    assert dir_bytes(tmp_path) == 8
    assert dir_bytes(tmp_path / "missing") == 0


def test_render_table_says_why_an_experiment_has_no_score() -> None:
    step = {"seconds": 10.0, "peak_rss_gb": 1.234, "cpu_seconds": 15.0, "machine_busy_cpu_seconds": 19.6}
    res = {
        "etl": [{**step, "step": "SurveyTable --data-root d --out-root o", "returncode": 0},
                {**step, "step": "PatchTiles --data-root d --out-root o", "returncode": 1}],
        "experiments": [
            {"experiment": "gbm", "goal": False, "not_run": "--budget-hours 1.5 spent (1.77 h elapsed) before it could start"},
            {**step, "experiment": "tile-cnn", "goal": False, "returncode": -9, "timed_out_after_s": 3600.0},
            {**step, "experiment": "knn", "goal": True, "returncode": 0, "test_sample_f1": 0.48612,
             "earlier_attempts": [{"seconds": 2700.4}]},
            {**step, "experiment": "rf", "goal": False, "returncode": 1},
        ],
    }
    lines = render_table(res).splitlines()
    assert len(lines) == 2 + 2 + 4
    assert lines[2] == "| SurveyTable | 10 s | 1.23 GB | 15 / 20 |"
    assert lines[3].startswith("| PatchTiles FAILED (exit 1) |")
    assert lines[4].startswith("| `knn` Submission, test sample-F1 **0.486** | 10 s (+2700 s in 1 earlier attempt(s)")
    assert lines[5] == "| `gbm` | not run: --budget-hours 1.5 spent | | |"
    assert lines[6].startswith("| `tile-cnn` Submission, stopped by the step timeout | 10 s (resumes from its last checkpoint")
    assert lines[7].startswith("| `rf` Submission FAILED (exit 1) |")
