"""The fault-injection suite's summary: ``python -m bench.faults [-k EXPR]`` (``make test-faults``).

Runs every case of ``tests/faults`` (slow ones included) with pytest, each under a bounded timeout, with
``GLC_FAULTS_OUT`` set so each case records what it observed (:class:`tests.faults.conftest.FaultCase`), and joins the
records with pytest's outcome of each test (JUnit XML). A case *survived* when its test passed and its record says
so (completed, or failed clearly and the rerun completed); ``data_lost`` is the record's. A test that failed or
timed out before recording is listed with ``survived: false`` and pytest's message.

Writes ``bench/results/faults.json``::

    {"machine", "results": [{"fault", "where", "expected", "observed", "survived", "data_lost", "seconds", "test"}],
     "summary": {"cases", "survived", "data_lost", "defects_fixed"}, "defects_fixed": [{"defect", "fix", "test"}]}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bench.common import REPO, write_result

#: Seconds one case may run before pytest-timeout fails it (a hang is a failed case, never a stuck suite).
CASE_TIMEOUT_S = 1800
#: Record fields shown in the table, in order.
FIELDS = ("fault", "where", "expected", "observed", "survived", "data_lost", "seconds", "test")

#: What the suite found in the product, how it was fixed and the test that guards the fix.
DEFECTS_FIXED: list[dict[str, str]] = [
    {
        "defect": "a gs:// upload, download or existence check that failed after gcsfs's retries surfaced as a bare "
        "aiohttp error (ServerDisconnectedError) naming no object",
        "fix": "glc.storage.TransferError names the action, the object, the retries already made, what the failure "
        "left behind and to rerun",
        "test": "tests/faults/test_gcs_faults.py::test_gcs_server_stopped_during_an_upload",
    },
    {
        "defect": "the out-root probe blamed credentials/permission when the store did not answer (503s, dropped "
        "connections)",
        "fix": "glc.storage.is_transient tells a store that does not answer from a refusal; the former is a "
        "TransferError",
        "test": "tests/test_storage.py::test_a_store_that_does_not_answer_is_not_blamed_on_credentials",
    },
    {
        "defect": "a rerun after a failed upload rebuilt the artifact although its local copy was complete and current",
        "fix": "GlcTask.local_copy_complete: such a copy is uploaded, not rebuilt",
        "test": "tests/faults/test_gcs_faults.py::test_gcs_server_stopped_during_an_upload",
    },
    {
        "defect": "the temporary prefix of an upload that died stayed in the bucket for good (found twice: a "
        "new process's rerun, and a rerun inside the same process)",
        "fix": "publish removes this machine's dead upload temporaries (host tag + pid in the name) and this "
        "process's own finished attempts; another machine's and a running upload's are kept",
        "test": "tests/test_storage.py::test_publish_removes_this_machines_dead_upload_temporaries",
    },
    {
        "defect": "a full disk surfaced as a bare OSError, or as a Py4JJavaError deep in a Spark stack trace",
        "fix": "glc.io.DiskFullError names the artifact, the space it had written, the space free and what to do",
        "test": "tests/test_io.py::test_a_full_disk_is_an_error_naming_the_artifact_and_the_space",
    },
]


_TMP = re.compile(
    r"(?:/private)?" + re.escape(tempfile.gettempdir().rstrip("/")) + r"/(?:pytest-of-[^/]+/pytest-\d+/)?"
)


def scrub(text: str) -> str:
    """``text`` with this machine's temporary folders written ``<tmp>/`` (result files name no machine path)."""
    return _TMP.sub("<tmp>/", text)


def nodeid(classname: str, name: str) -> str:
    """The pytest node id of a JUnit ``testcase`` (``tests.faults.test_x`` + ``test_y[a]``)."""
    return f"{classname.replace('.', '/')}.py::{name}"


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """``{nodeid: (outcome, message)}`` from a JUnit XML file (passed, failed, error, skipped)."""
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome, message = ("failed" if tag == "failure" else tag), (el.get("message") or "")[:500]
                break
        out[nodeid(case.get("classname", ""), case.get("name", ""))] = (outcome, message)
    return out


def collect(records: Path, junit: Path) -> dict[str, Any]:
    """Join the cases' records with pytest's outcomes into the result (see the module docstring)."""
    recs = {r["test"]: r for r in (json.loads(p.read_text()) for p in sorted(records.glob("*.json")))}
    cases = []
    for test, (outcome, message) in sorted(outcomes(junit).items()):
        rec = recs.get(test)
        if outcome == "skipped":
            row = {"test": test, "survived": False, "data_lost": False, "observed": f"skipped: {message}"}
        elif rec is None:
            row = {"test": test, "survived": False, "data_lost": False, "observed": f"{outcome}: {message}"}
        else:
            row = {k: rec.get(k) for k in FIELDS}
            row["survived"] = bool(rec["survived"]) and outcome == "passed"
            if outcome != "passed":
                row["observed"] = f"{rec['observed']} [test {outcome}: {message}]"
        row["observed"] = scrub(str(row.get("observed", "")))
        cases.append({k: row.get(k) for k in FIELDS})
    return {
        "cases": cases,
        "summary": {
            "cases": len(cases),
            "survived": sum(bool(c["survived"]) for c in cases),
            "data_lost": sum(bool(c["data_lost"]) for c in cases),
            "defects_fixed": len(DEFECTS_FIXED),
        },
        "defects_fixed": DEFECTS_FIXED,
    }


def render_table(data: dict[str, Any]) -> str:
    """The docs table of a result file: the summary, one row per case (fault, where, expected, observed, survived,
    data lost, seconds, test), then the defects fixed."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    s = data["summary"]
    out = [
        f"{s['survived']} of {s['cases']} cases survived, {s['data_lost']} lost data; {s['defects_fixed']} defects "
        "found by the suite were fixed.\n",
        "| fault | where | expected | observed | survived | data lost | s | test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in data["results"]:
        out.append("| " + " | ".join(cell(c.get(k)) for k in FIELDS[:-2]) + f" | {c['seconds']} | `{c['test']}` |")
    out += ["", "| defect found | fix | regression test |", "|---|---|---|"]
    out += [f"| {cell(d['defect'])} | {cell(d['fix'])} | `{d['test']}` |" for d in data["defects_fixed"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "-k",
        default="",
        help="run only the cases whose test name matches (pytest -k); the result file is written only for a full run",
    )
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="glc-faults-") as tmp:
        records, junit = Path(tmp) / "records", Path(tmp) / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "tests/faults",
            "-m",
            "slow or not slow",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            f"--timeout={CASE_TIMEOUT_S}",
            f"--junitxml={junit}",
        ]
        if a.k:
            cmd += ["-k", a.k]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "GLC_FAULTS_OUT": str(records)}, check=False)
        result = collect(records, junit)
    s = result["summary"]
    for c in result["cases"]:
        print(f"{'survived' if c['survived'] else 'FAILED  '}  {c['test']}: {c['observed']}")
    print(
        f"{s['survived']}/{s['cases']} cases survived, {s['data_lost']} lost data; {s['defects_fixed']} defects fixed"
    )
    if not a.k:
        print("wrote", write_result("faults", result["cases"], {"summary": s, "defects_fixed": DEFECTS_FIXED}))
    return 0 if proc.returncode == 0 and s["survived"] == s["cases"] and not s["data_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
