"""``bench.faults``: a case survives only when its test passed and its record says so; a case that failed or timed
out before recording is listed as not survived with pytest's message; skipped cases are never counted survived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.faults import DEFECTS_FIXED, collect, nodeid

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.faults.test_a" name="test_ok" time="1.0"/>
<testcase classname="tests.faults.test_a" name="test_bad[x]" time="1.0"><failure message="assert False">t</failure>
</testcase>
<testcase classname="tests.faults.test_b" name="test_hang" time="9.0"><failure message="Timeout &gt;1800s">t</failure>
</testcase>
<testcase classname="tests.faults.test_b" name="test_skip" time="0"><skipped message="no mount here"/></testcase>
</testsuite></testsuites>
"""


@pytest.fixture()
def run_files(tmp_path: Path) -> tuple[Path, Path]:
    """The JUnit file above and an empty records folder."""
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    records = tmp_path / "records"
    records.mkdir()
    return records, junit


def _record(folder: Path, test: str, survived: bool, data_lost: bool = False) -> None:
    rec = {
        "fault": "f",
        "where": "w",
        "expected": "e",
        "observed": "o",
        "survived": survived,
        "data_lost": data_lost,
        "seconds": 1.0,
        "test": test,
        "notes": [],
    }
    (folder / f"{len(list(folder.iterdir()))}.json").write_text(json.dumps(rec))


def test_cases_are_joined_with_pytest_outcomes(run_files: tuple[Path, Path]) -> None:
    records, junit = run_files
    _record(records, "tests/faults/test_a.py::test_ok", True)
    _record(records, "tests/faults/test_a.py::test_bad[x]", True, data_lost=True)  # recorded, then an assert failed
    got = {c["test"]: c for c in collect(records, junit)["cases"]}
    assert got["tests/faults/test_a.py::test_ok"]["survived"] is True
    bad = got["tests/faults/test_a.py::test_bad[x]"]
    assert bad["survived"] is False and bad["data_lost"] is True and "assert False" in bad["observed"]
    hang = got["tests/faults/test_b.py::test_hang"]
    assert hang["survived"] is False and "Timeout" in hang["observed"]
    assert got["tests/faults/test_b.py::test_skip"]["survived"] is False
    summary = collect(records, junit)["summary"]
    assert summary == {"cases": 4, "survived": 1, "data_lost": 1, "defects_fixed": len(DEFECTS_FIXED)}


def test_nodeid_and_every_defect_names_an_existing_test() -> None:
    assert nodeid("tests.faults.test_gcs_faults", "test_x[a]") == "tests/faults/test_gcs_faults.py::test_x[a]"
    repo = Path(__file__).resolve().parents[2]
    for d in DEFECTS_FIXED:
        path, name = d["test"].split("::")
        assert name in (repo / path).read_text(), d["test"]


def test_the_docs_table_lists_every_case_in_the_issue_order(run_files: tuple[Path, Path]) -> None:
    from bench.faults import render_table

    records, junit = run_files
    _record(records, "tests/faults/test_a.py::test_ok", True)
    text = render_table(collect(records, junit) | {"results": collect(records, junit)["cases"]})
    assert text.startswith("1 of 4 cases survived, 0 lost data")
    assert "| fault | where | expected | observed | survived | data lost | s | test |" in text
    assert (
        text.count("`tests/faults/test_a.py") + text.count("`tests/faults/test_b.py") == 4
        and "| defect found | fix | regression test |" in text
    )
