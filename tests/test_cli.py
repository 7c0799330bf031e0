"""``python -m glc``: score and validate-submission on the real GLC24 test metadata and solution file."""

from __future__ import annotations

import pytest

from glc.cli import main


@pytest.fixture()
def real(shared_data):
    return shared_data / "glc24-real"


def test_score_solution_against_itself_is_one(real, capsys):
    sol = real / "GLC24_SOLUTION_FILE.csv"
    assert main(["score", "--solution", str(sol), "--submission", str(sol)]) == 0
    out = capsys.readouterr().out
    assert "sample_f1=1.000000" in out
    assert "micro_f1=1.000000" in out and "n_surveys=4716 n_missing=0" in out


def test_score_counts_missing_surveys_as_zero(real, tmp_path, capsys):
    lines = (real / "GLC24_SOLUTION_FILE.csv").read_text().splitlines()
    sub = tmp_path / "sub.csv"
    # Kaggle header; the first survey omitted -> it scores 0
    sub.write_text("surveyId,predictions\n" + "\n".join(lines[2:]) + "\n")
    assert main(["score", "--solution", str(real / "GLC24_SOLUTION_FILE.csv"), "--submission", str(sub)]) == 0
    out = capsys.readouterr().out
    assert f"sample_f1={4715 / 4716:.6f}" in out and "n_missing=1" in out


def test_validate_submission_accepts_valid_and_rejects_missing_or_empty(real, tmp_path, capsys):
    test_csv = real / "GLC24_PA_metadata_test.csv"
    rows = [line.split(",", 1) for line in (real / "GLC24_SOLUTION_FILE.csv").read_text().splitlines()[1:]]
    good = tmp_path / "good.csv"
    good.write_text("surveyId,predictions\n" + "".join(f"{s},{p}\n" for s, p in rows))
    assert main(["validate-submission", str(good), "--test-metadata", str(test_csv)]) == 0
    assert "4716 test surveys" in capsys.readouterr().out

    missing = tmp_path / "missing.csv"
    missing.write_text("surveyId,predictions\n" + "".join(f"{s},{p}\n" for s, p in rows[1:]))
    assert main(["validate-submission", str(missing), "--test-metadata", str(test_csv)]) == 1
    assert "1 test survey(s) have no row, e.g. [642]" in capsys.readouterr().err

    empty = tmp_path / "empty.csv"
    empty.write_text("surveyId,predictions\n" + "".join(f"{s},{'' if i == 3 else p}\n" for i, (s, p) in enumerate(rows)))
    assert main(["validate-submission", str(empty), "--test-metadata", str(test_csv)]) == 1
    assert f"empty.csv:5: survey {rows[3][0]} has an empty prediction list" in capsys.readouterr().err
