"""``python -m bench.real_cv``: refuses a folder without the real labels, naming it and what to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import real_cv


def test_real_cv_names_the_missing_labels_and_the_variable(tmp_path: Path) -> None:
    (tmp_path / "GLC24_PA_metadata_test.csv").write_text("surveyId,lon,lat\n")
    with pytest.raises(SystemExit, match=r"no GLC24_SOLUTION_FILE\.csv in .*GLC_REAL_DATA") as e:
        real_cv.main(["--real-dir", str(tmp_path), "--out-root", str(tmp_path / "out"), "--models", "frequency"])
    assert str(tmp_path) in str(e.value)
    assert not (tmp_path / "out").exists()  # refused before anything ran
