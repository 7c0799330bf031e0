"""``python -m glc``: score and validate-submission on the real GLC24 test metadata and solution file."""

from __future__ import annotations

import subprocess

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
    empty.write_text(
        "surveyId,predictions\n" + "".join(f"{s},{'' if i == 3 else p}\n" for i, (s, p) in enumerate(rows))
    )
    assert main(["validate-submission", str(empty), "--test-metadata", str(test_csv)]) == 1
    assert f"empty.csv:5: survey {rows[3][0]} has an empty prediction list" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# One parser for score and validate-submission; stdin and pipes; user errors exit 2 without a traceback
# ---------------------------------------------------------------------------------------------------------------
SOL = "surveyId,target_species_ids\n1,10 20 30\n2,5\n"


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "glc", *args], input=stdin, capture_output=True, text=True)


def test_score_reads_stdin_and_pipes(tmp_path):
    sol = tmp_path / "sol.csv"
    sol.write_text(SOL)
    r = _run("score", "--solution", str(sol), "--submission", "-", stdin="surveyId,predictions\n1,10 20 30\n2,5\n")
    assert r.returncode == 0 and "sample_f1=1.000000" in r.stdout, r.stderr
    r = _run(
        "score", "--solution", "/dev/stdin", "--submission", str(sol), stdin=SOL
    )  # a pipe path, not a regular file
    assert r.returncode == 0 and "sample_f1=1.000000" in r.stdout, r.stderr
    r = _run("score", "--solution", "-", "--submission", "-", stdin=SOL)
    assert r.returncode == 2 and "only one of --solution and --submission" in r.stderr


def test_score_and_validate_agree_on_bom_whitespace_and_blank_lines(tmp_path):
    """BOM, spaces around fields, double spaces between ids and blank lines mean the same to both commands."""
    sol = tmp_path / "sol.csv"
    sol.write_text(SOL)
    meta = tmp_path / "test.csv"
    meta.write_text(
        "lon,lat,year,geoUncertaintyInM,areaInM2,region,country,surveyId\n1,45,2019,1,1,ALPINE,France,1\n2,46,2020,1,1,ALPINE,France,2\n"
    )
    sub = tmp_path / "sub.csv"
    sub.write_bytes("\ufeffsurveyId,predictions\n 1 , 10  20 30 \n\n2,5\n".encode())
    r = _run("score", "--solution", str(sol), "--submission", str(sub))
    assert r.returncode == 0 and "sample_f1=1.000000" in r.stdout, r.stderr
    r = _run("validate-submission", str(sub), "--test-metadata", str(meta))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "surveyId,predictions\n1,10 x\n",
            r"error: .*sub\.csv:2 \(surveyId 1\): predictions '10 x' is not a list of space-separated integers",
        ),
        ("surveyId,predictions\n1,10\n1,20\n", r"error: .*sub\.csv:3: surveyId 1 appears twice \(first on line 2\)"),
        ("surveyId,predictions\n1,10,3\n", r"error: .*sub\.csv:2: expected 2 comma-separated fields"),
        ("id,predictions\n1,10\n", r"error: .*sub\.csv:1: header \['id', 'predictions'\] has no 'surveyId'"),
    ],
)
def test_malformed_submission_is_a_user_error_without_traceback(tmp_path, text, match):
    import re

    sol = tmp_path / "sol.csv"
    sol.write_text(SOL)
    sub = tmp_path / "sub.csv"
    sub.write_text(text)
    r = _run("score", "--solution", str(sol), "--submission", str(sub))
    assert r.returncode == 2 and re.search(match, r.stderr), r.stderr
    assert "Traceback" not in r.stderr


def test_missing_input_file_is_a_user_error(tmp_path):
    r = _run("score", "--solution", str(tmp_path / "nope.csv"), "--submission", str(tmp_path / "nope.csv"))
    assert (
        r.returncode == 2
        and "cannot be read" in r.stderr
        and "regenerate" not in r.stderr
        and "Traceback" not in r.stderr
    )


def test_validate_with_a_bad_test_metadata_row_still_knows_that_survey(tmp_path):
    """A test row with a broken lat is still a test survey a submission must cover: validate names it, no crash."""
    meta = tmp_path / "test.csv"
    meta.write_text(
        "lon,lat,year,geoUncertaintyInM,areaInM2,region,country,surveyId\n1,45,2019,1,1,ALPINE,France,1\n2,north,2020,1,1,ALPINE,France,2\n"
    )
    sub = tmp_path / "sub.csv"
    sub.write_text("surveyId,predictions\n1,10\n")
    r = _run("validate-submission", str(sub), "--test-metadata", str(meta))
    assert r.returncode == 1 and "1 test survey(s) have no row, e.g. [2]" in r.stderr and "Traceback" not in r.stderr
    meta.write_text("lon,lat,year,geoUncertaintyInM,areaInM2,region,country,surveyId\n1,45,2019,1,1,ALPINE,France,x\n")
    r = _run("validate-submission", str(sub), "--test-metadata", str(meta))
    assert r.returncode == 2 and "test.csv:2: surveyId 'x' is not a non-negative integer" in r.stderr


def test_adding_po_patches_to_a_missing_world_is_a_user_error(tmp_path):
    r = _run("synth", "--add-po-patches", "--out", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "not a complete synthetic world" in r.stderr and "Traceback" not in r.stderr


def test_synth_po_records_draws_that_many_presence_only_records_into_its_own_folder(tmp_path, monkeypatch, capsys):
    import json

    import pandas as pd

    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--scale", "tiny", "--seed", "3", "--po-records", "5000"]) == 0
    world = tmp_path / "data" / "synthetic" / "tiny-seed3-po5000"
    summary = json.loads((world / "_SUCCESS").read_text())
    po = pd.read_csv(world / "GLC24_P0_metadata_train.csv")
    # the tiny scale draws about 2,000; the records are drawn per PO survey (1.32 on average), so the count is close
    assert summary["params"]["n_po_records"] == 5000 and summary["counts"]["po_records"] == len(po)
    assert 4500 < len(po) < 5500 and po["surveyId"].nunique() < len(po)
    capsys.readouterr()
    assert main(["synth", "--scale", "tiny", "--po-records", "0"]) == 2
    assert "--po-records 0: expected a positive number of presence-only records" in capsys.readouterr().err
    assert main(["synth", "--add-po-patches", "--po-records", "10", "--out", str(world)]) == 2
    assert "draws no records" in capsys.readouterr().err


def test_holdout_distances_prints_the_test_and_hold_out_gaps(tiny_world):
    r = _run("holdout-distances", "--data-root", str(tiny_world), "--block-km", "10", "200")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = {ln.split()[0] + (" " + ln.split()[1] if ln.startswith("blocks") else ""): ln for ln in lines}
    assert {"test", "blocks 10", "blocks 200"} <= set(rows)
    med = {k: float(rows[k].split()[-5]) for k in ("blocks 10", "blocks 200")}  # q50
    assert med["blocks 10"] < med["blocks 200"]
    assert lines[-1].startswith("closest median to the test surveys': blocks ")
    assert "scheme = 'blocks'" in lines[0]  # a GLC24 world: the edition's default hold-out


def test_holdout_distances_of_a_missing_root_or_a_bad_fraction_is_a_user_error(tmp_path, tiny_world):
    r = _run("holdout-distances", "--data-root", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _run("holdout-distances", "--data-root", str(tiny_world), "--val-fraction", "1.5")
    assert r.returncode == 2 and "val_fraction" in r.stderr and "Traceback" not in r.stderr
