"""The DAG through a central ``luigid`` scheduler.

* ``--workers 2`` through luigid writes the submission of the local scheduler, byte for byte.
* Two processes started at once on one out-root (``--no-lock``, so Luigi's per-command-line pid lock does not turn
  the second away) share the DAG through the scheduler: each task is run by one worker; a process whose remaining
  tasks are being run by the other waits (``--worker-keep-alive``) until they are done, then exits with
  ``[retcode] already_running`` (10, conf/luigi.cfg; both may, each having run part of the DAG). Nothing is
  corrupted: same submission, no temporary debris.
* Task ids include both roots, so runs into different out-roots never share a task in one scheduler.
* An unreachable scheduler fails in seconds with a message naming its URL (not Luigi's minutes of retries).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pytest

from glc.io import TMP_MARK
from glc.tasks import Submission
from glc.tasks.base import check_scheduler, normalize_root
from tests.spark_cluster import free_port

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "knn"


def _wait_listening(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    t0 = time.monotonic()
    while True:
        try:
            check_scheduler(url, timeout_s=2)
            return
        except SystemExit:
            if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"luigid did not answer at {url} (exit {proc.poll()})") from None
            time.sleep(0.3)


@pytest.fixture()
def luigid(tmp_path: Path):
    """A ``luigid`` on a free 127.0.0.1 port (state and logs in tmp), stopped in teardown; yields the port."""
    port = free_port()
    exe = Path(sys.executable).with_name("luigid")
    logs = tmp_path / "luigid-logs"
    logs.mkdir()
    proc = subprocess.Popen(
        [
            str(exe),
            "--address",
            "127.0.0.1",
            "--port",
            str(port),
            "--state-path",
            str(tmp_path / "luigid.pickle"),
            "--logdir",
            str(logs),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(f"http://127.0.0.1:{port}", proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _launch(port: int, data_root: Path, out_root: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "glc.tasks",
        "Submission",
        "--experiment",
        EXPERIMENT,
        "--data-root",
        str(data_root),
        "--out-root",
        str(out_root),
        "--workers",
        "2",
        "--scheduler-host",
        "127.0.0.1",
        "--scheduler-port",
        str(port),
        "--worker-keep-alive",
        "--worker-wait-interval",
        "1",
        *extra,
    ]
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(REPO / "conf" / "luigi.cfg"), "PYTHONHASHSEED": "0"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _submission_path(data_root: Path, out_root: Path) -> Path:
    return Path(Submission(experiment=EXPERIMENT, data_root=str(data_root), out_root=str(out_root)).output().path)


def test_luigid_two_workers_and_two_concurrent_processes(spark, luigid: int, tiny_world: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    assert luigi.build(
        [Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(local))], local_scheduler=True
    )
    expected = _submission_path(tiny_world, local).read_bytes()

    one = _launch(luigid, tiny_world, tmp_path / "central")
    out, _ = one.communicate(timeout=900)
    assert one.returncode == 0, out[-4000:]
    assert _submission_path(tiny_world, tmp_path / "central").read_bytes() == expected

    shared = tmp_path / "shared"
    procs = [_launch(luigid, tiny_world, shared, "--no-lock") for _ in range(2)]
    exited_at: dict[int, float] = {}
    deadline = time.monotonic() + 900
    while len(exited_at) < 2 and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if i not in exited_at and p.poll() is not None:
                exited_at[i] = time.time()
        time.sleep(0.2)
    outs = [p.communicate(timeout=60)[0] for p in procs]
    codes = [p.returncode for p in procs]
    # 0: it ran all it scheduled; 10: it ran part of the DAG (or none) and waited while the other ran the rest
    assert all(c in (0, 10) for c in codes), (codes, [o[-3000:] for o in outs])
    sub = _submission_path(tiny_world, shared)
    assert sub.read_bytes() == expected
    for i, code in enumerate(codes):
        if code == 10:  # it waited for the other process's tasks, and left only once they were done
            assert "run by another worker" in outs[i], outs[i][-3000:]
            assert sub.stat().st_mtime <= exited_at[i] + 1
    assert any("ran successfully" in o for o in outs)
    assert not [p for p in shared.rglob("*") if TMP_MARK in p.name], "temporary debris left behind"

    # the waiting side's command, run again, finds everything done and exits 0 without work
    again = _launch(luigid, tiny_world, shared, "--no-lock")
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert "Did not run any tasks" in out


def test_task_ids_include_both_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Different out-roots are different tasks for a central scheduler; a relative and an absolute spelling of one
    root are the same task; URLs are kept as given."""
    monkeypatch.chdir(tmp_path)
    a = Submission(experiment=EXPERIMENT, data_root="world", out_root="out-a")
    b = Submission(experiment=EXPERIMENT, data_root="world", out_root="out-b")
    same = Submission(experiment=EXPERIMENT, data_root=str(tmp_path / "world"), out_root=str(tmp_path / "out-a"))
    assert a.task_id != b.task_id
    assert a.task_id == same.task_id
    assert a.out_root == str(tmp_path / "out-a")
    assert normalize_root("gs://bucket/glc/") == "gs://bucket/glc"
    assert normalize_root("~/x") == os.path.expanduser("~/x")


def test_unreachable_scheduler_fails_fast_naming_the_url(tiny_world: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    p = _launch(port, tiny_world, tmp_path / "out")
    out, _ = p.communicate(timeout=120)
    elapsed = time.monotonic() - t0
    assert p.returncode != 0
    assert f"http://127.0.0.1:{port}" in out and "--local-scheduler" in out, out[-3000:]
    assert elapsed < 60, elapsed
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("_SUCCESS"))
