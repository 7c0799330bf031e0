"""The central scheduler fails under running workers: ``luigid`` SIGKILLed and started again with the same
``--state-path``, or SIGKILLed for good, while two worker processes (``--workers 2`` each, ``--no-lock``) run the
knn DAG on one out-root.

Expected, restarted: every process finishes or exits with a documented ``[retcode]`` (``conf/luigi.cfg``), and a
rerun completes with the submission of a local run, rebuilding nothing that was already complete (each artifact's
``_SUCCESS`` keeps its time). Gone for good: the processes exit within a bounded time with a message naming the
scheduler's URL, and no artifact is half-written (an artifact folder without ``_SUCCESS``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import luigi
import pytest

from glc.io import SUCCESS, TMP_MARK
from glc.tasks import Submission
from tests.faults.conftest import FaultCase
from tests.faults.harness import ChildServer
from tests.spark_cluster import free_port
from tests.tasks.test_luigid import EXPERIMENT, _launch, _submission_path, _wait_listening

#: ``[retcode]`` of conf/luigi.cfg: 0 all done; 10 waited for another process; 25 not run; 30 task failed;
#: 35 scheduling error; 40 unhandled exception (e.g. the scheduler gone).
DOCUMENTED = {0, 10, 25, 30, 35, 40}
#: Seconds a worker process may take to give up on a scheduler that is gone.
GONE_BOUND_S = 300


class Luigid(ChildServer):
    """``luigid`` on a fixed port with a state file, that can be SIGKILLed and started again."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.state = folder / "luigid.pickle"
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = Path(sys.executable).with_name("luigid")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "--address",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--state-path",
                str(self.state),
                "--logdir",
                str(self.folder / "logs"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait_listening(self.url, self.proc)


@pytest.fixture()
def luigid(tmp_path: Path):
    d = Luigid(tmp_path / "luigid")
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _markers(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob(SUCCESS) if TMP_MARK not in str(p)}


def _half_written(out: Path) -> list[Path]:
    """Artifact folders (they hold the input fingerprint ``_INPUTS``) without their ``_SUCCESS``, outside temps."""
    return [
        d.parent for d in out.rglob("_INPUTS") if not (d.parent / SUCCESS).exists() and TMP_MARK not in str(d.parent)
    ]


def _wait_for_work_then(out: Path, procs: list[subprocess.Popen], timeout_s: float = 600) -> bool:
    """Wait until one artifact is complete under ``out`` while the processes still run."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if any(p.poll() is not None for p in procs):
            return False
        if _markers(out):
            return True
        time.sleep(0.2)
    return False


def _finish(procs: list[subprocess.Popen], timeout_s: float) -> tuple[list[int | None], list[str], float]:
    t0 = time.monotonic()
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=max(1.0, timeout_s - (time.monotonic() - t0)))[0])
        except subprocess.TimeoutExpired:
            p.kill()
            outs.append(p.communicate()[0] + "\n[killed by the test: no exit within the bound]")
    return [p.returncode for p in procs], outs, time.monotonic() - t0


@pytest.fixture(scope="module")
def expected(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("local")
    assert luigi.build(
        [Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(out))], local_scheduler=True
    )
    return _submission_path(tiny_world, out).read_bytes()


def _kill_mid_run(luigid: Luigid, world: Path, out: Path) -> tuple[list[subprocess.Popen], bool]:
    """Two worker processes on ``out``; luigid SIGKILLed once an artifact is complete while they still run. Returns
    the processes and whether the kill landed mid-run."""
    procs = [_launch(luigid.port, world, out, "--no-lock") for _ in range(2)]
    injected = _wait_for_work_then(out, procs)
    luigid.kill()
    return procs, injected


@pytest.mark.slow
@pytest.mark.fault(
    fault="luigid SIGKILLed and started again (same --state-path) while two worker processes run the DAG",
    where="central scheduler (luigid) with 2 processes x --workers 2 on one out-root",
    expected="each process finishes or exits with a documented [retcode]; the rerun completes with the local "
    "run's submission and rebuilds nothing that was complete",
)
def test_luigid_restarted_under_running_workers(
    expected: bytes, luigid: Luigid, tiny_world: Path, tmp_path: Path, fault_case: FaultCase
) -> None:
    out = tmp_path / "shared"
    procs, injected = _kill_mid_run(luigid, tiny_world, out)
    fault_case.note(f"luigid SIGKILLed with {len(_markers(out))} artifact(s) complete")
    time.sleep(3)
    luigid.start()
    codes, outs, took = _finish(procs, 900)
    fault_case.note(f"processes exited {codes} {took:.0f} s after the restart")
    before = _markers(out)
    again = _launch(luigid.port, tiny_world, out)
    out2, _ = again.communicate(timeout=900)
    after = _markers(out)
    rebuilt = sorted(k for k in before if after.get(k) != before[k])
    sub = _submission_path(tiny_world, out)
    same = sub.is_file() and sub.read_bytes() == expected
    debris = [p for p in out.rglob("*") if TMP_MARK in p.name]
    ok = injected and all(c in DOCUMENTED for c in codes) and again.returncode == 0 and same and not rebuilt
    fault_case.record(
        observed=f"processes exited {codes}; the rerun exited {again.returncode}, built "
        f"{len(after) - len(before)} more artifact(s), rebuilt {len(rebuilt)}; same submission={same}; "
        f"temporaries left: {len(debris)}",
        survived=ok and not debris,
        data_lost=not same,
    )
    assert injected, "the processes ended before luigid could be killed"
    assert all(c in DOCUMENTED for c in codes), (codes, [o[-2000:] for o in outs])
    assert again.returncode == 0, out2[-3000:]
    assert same
    assert not rebuilt, rebuilt
    assert not debris, debris


@pytest.mark.slow
@pytest.mark.fault(
    fault="luigid SIGKILLed for good while two worker processes run the DAG",
    where="central scheduler (luigid) with 2 processes x --workers 2 on one out-root",
    expected="the processes exit within a bounded time with a message naming the scheduler's URL; no "
    "half-written artifact",
)
def test_luigid_gone_for_good(
    expected: bytes, luigid: Luigid, tiny_world: Path, tmp_path: Path, fault_case: FaultCase
) -> None:
    out = tmp_path / "shared"
    procs, injected = _kill_mid_run(luigid, tiny_world, out)
    codes, outs, took = _finish(procs, GONE_BOUND_S)
    named = all(luigid.url in o or f"127.0.0.1:{luigid.port}" in o for o, c in zip(outs, codes) if c != 0)
    half = _half_written(out)
    fault_case.note(f"processes exited {codes} {took:.0f} s after the kill")
    fault_case.record(
        observed=f"processes exited {codes} within {took:.0f} s; the message names the URL: {named}; "
        f"half-written artifacts: {len(half)}",
        survived=injected
        and all(c is not None and c != 0 or c == 0 for c in codes)
        and took < GONE_BOUND_S
        and named
        and not half,
        data_lost=bool(half),
    )
    assert injected
    assert took < GONE_BOUND_S, [o[-2000:] for o in outs]
    assert named, [o[-3000:] for o in outs]
    assert not half, half
