"""bench.full_dag helpers: experiment order, a failing step is recorded (not raised), disk accounting."""

from __future__ import annotations

import os
from pathlib import Path

from bench.full_dag import GOAL_EXPERIMENTS, dir_bytes, experiment_order, run_step


def test_goal_experiments_first_then_cheapest_by_demo_wall_time() -> None:
    order = experiment_order(["tile-cnn", "knn", "rf", "geolocation-asl", "frequency"])
    assert order[:3] == list(GOAL_EXPERIMENTS)
    assert set(order[3:]) == {"tile-cnn", "rf"}
    assert order.index("rf") < order.index("tile-cnn")  # 85 s vs 242 s on the demo world (synth_leaderboard.json)


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
