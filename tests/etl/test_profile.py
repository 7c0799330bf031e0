"""Profiling of the ETL jobs: the lap clock, the accumulator, and a real job's breakdown in its summary."""

from __future__ import annotations

import time
from pathlib import Path

from glc.data.layout import Layout
from glc.etl.patches import write_patch_tiles
from glc.etl.profile import DictSum, DriverPhases, PhaseClock
from tests.etl.test_patches import survey_frame, write_patches


def test_phase_clock_charges_laps_input_and_output() -> None:
    clock = PhaseClock()

    def slow(n: int):
        for i in range(n):
            time.sleep(0.02)  # the producer: charged to "input"
            yield i

    def job():
        for item in clock.batches(slow(3)):
            time.sleep(0.01)
            clock.lap("transform")
            yield from clock.emit(item)

    for _ in job():
        time.sleep(0.03)  # the consumer: charged to "output"
    s = clock.seconds
    # sleeps never return early, so the lower bounds are exact; the upper bounds only catch a lap charged to the
    # wrong phase (each would then hold the other phases' 0.03-0.09 s), with room for a loaded machine
    assert 0.06 <= s["input"] < 0.06 + 0.09 + 0.5
    assert 0.03 <= s["transform"] < 0.03 + 0.5
    assert 0.09 <= s["output"] < 0.09 + 0.06 + 0.5
    assert s["arrow"] < min(s["input"], s["output"])


def test_dict_sum_and_driver_phases() -> None:
    p = DictSum()
    assert p.addInPlace(p.zero({}), {"a": 1.0, "b": 2}) == {"a": 1.0, "b": 2.0}
    assert p.addInPlace({"a": 1.0}, {"a": 0.5}) == {"a": 1.5}
    d = DriverPhases()
    for _ in range(2):
        with d.phase("x"):
            time.sleep(0.01)
    assert d.rounded()["x"] >= 0.02


def test_job_summary_holds_the_profile(spark, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "w")
    surveys = survey_frame(8, 4, seed=2)
    write_patches(layout, surveys, seed=2)
    summary = write_patch_tiles(spark, layout, spark.createDataFrame(surveys), tmp_path / "p", k=2, partitions=2)
    prof = summary["profile"]
    assert set(prof["driver_seconds"]) >= {"bounds", "compute", "merge", "quarantine"}
    py = prof["python_seconds"]
    assert py["rows"] == len(surveys)  # every row passed through one clock exactly once
    assert {"input", "read", "transform", "arrow", "spill", "merge_read", "merge_sort", "merge_write"} <= set(py)
    assert py["read"] > 0 and all(v >= 0 for v in py.values())
