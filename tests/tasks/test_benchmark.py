"""RealCV: the real-data benchmark as a Luigi task on the real GLC24 labelled surveys (``glc24-real`` of ``data/real``
or ``$GLC_REAL_DATA``)."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pytest

from glc.tasks.benchmark import RealCV


def test_real_cv_task_writes_the_table(shared_data: Path, tmp_path: Path) -> None:
    real = shared_data / "glc24-real"
    if not (real / "GLC24_SOLUTION_FILE.csv").exists():
        pytest.skip(f"{real} is not present")
    task = RealCV(real_dir=str(real), out_root=str(tmp_path), folds=2, models="region_frequency")
    assert luigi.build([task], local_scheduler=True)
    res = json.loads((task.output().dir / "result.json").read_text())
    assert res["protocol"]["n_surveys"] == 4716 and res["protocol"]["n_folds"] == 2
    assert {r["model"] for r in res["models"]} == {"region_frequency"}
    assert all(0.05 < r["sample_f1_mean"] < 0.5 for r in res["models"])
    assert "| region_frequency |" in (task.output().dir / "table.md").read_text()
    # rerun does no work: the artifact is complete
    assert task.complete()


def test_unknown_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown \\['nope'\\]"):
        RealCV(out_root=str(tmp_path), models="frequency,nope").output()
