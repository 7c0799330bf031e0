"""The fault-injection suite: every case is a test marked ``fault(fault=..., where=..., expected=...)`` that records
what it observed with the ``fault_case`` fixture.

``make test-faults`` (``python -m bench.faults``) runs the suite with ``GLC_FAULTS_OUT`` set: each case writes one
JSON record there (fault, where, expected, observed, survived, data_lost, seconds, test), and the bench collects
them, with the pytest outcome of each test, into ``bench/results/faults.json``. Without ``GLC_FAULTS_OUT`` (plain
``pytest``) nothing is written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest


class FaultCase:
    """What one fault case saw; :meth:`record` is called once the outcome is checked (before the asserts that could
    fail, so a failing case still leaves its observation)."""

    def __init__(self, node: pytest.Item) -> None:
        marker = node.get_closest_marker("fault")
        if marker is None:
            raise RuntimeError(
                f"{node.nodeid}: a fault case needs @pytest.mark.fault(fault=..., where=..., expected=...)"
            )
        self.test = node.nodeid
        self.meta = {k: marker.kwargs[k] for k in ("fault", "where", "expected")}
        self.t0 = time.monotonic()
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """Add one line to the observation (printed too: ``pytest -s`` shows the case's story)."""
        print(f"[fault] {text}")
        self.notes.append(text)

    def record(self, observed: str, survived: bool, data_lost: bool, **extra: Any) -> None:
        """Write this case's record when ``GLC_FAULTS_OUT`` is set."""
        out = os.environ.get("GLC_FAULTS_OUT")
        rec = {
            **self.meta,
            "observed": observed,
            "survived": bool(survived),
            "data_lost": bool(data_lost),
            "seconds": round(time.monotonic() - self.t0, 1),
            "test": self.test,
            "notes": self.notes,
            **extra,
        }
        print(f"[fault] record: {json.dumps(rec)}")
        if out:
            from glc.io import write_json

            name = self.test.replace("/", "_").replace("::", "__").replace("[", "_").replace("]", "")
            write_json(Path(out) / f"{name}.json", rec)


@pytest.fixture()
def fault_case(request: pytest.FixtureRequest) -> FaultCase:
    """The recorder of the running fault case (its ``fault`` marker gives fault, where and expected)."""
    return FaultCase(request.node)
