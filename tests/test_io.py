"""Atomic writes: a failed or killed writer never leaves something that looks complete."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from glc.io import TMP_MARK, atomic_dir, atomic_file, is_complete, remove_stale_temps


def test_atomic_file_commits_only_on_success(tmp_path):
    p = tmp_path / "a.txt"
    with atomic_file(p) as fh:
        fh.write("ok")
    assert p.read_text() == "ok"
    with pytest.raises(RuntimeError), atomic_file(p) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert p.read_text() == "ok"  # the old content survives a failed rewrite
    assert not [q for q in tmp_path.iterdir() if TMP_MARK in q.name]


def test_atomic_dir_flag_written_last_and_failure_leaves_nothing(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(ValueError), atomic_dir(out) as tmp:
        (tmp / "part-0").write_text("x")
        raise ValueError("crash mid-write")
    assert not out.exists() and not is_complete(out)
    with atomic_dir(out, summary={"rows": 1}) as tmp:
        (tmp / "part-0").write_text("x")
        assert not is_complete(out)
    assert is_complete(out) and (out / "part-0").read_text() == "x"


def test_concurrent_writers_of_one_dir_all_succeed_and_leave_one_complete_copy(tmp_path):
    """Writers racing to install the same artifact (two --no-lock runs on one out-root) never fail on the rename
    and never leave a mixed or partial directory."""
    import threading

    out = tmp_path / "art"
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(i: int) -> None:
        try:
            start.wait()
            for j in range(25):
                with atomic_dir(out, summary={"writer": i}) as tmp:
                    for k in range(3):
                        (tmp / f"part-{k}").write_text(f"{i}-{j}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert is_complete(out)
    parts = {(out / f"part-{k}").read_text() for k in range(3)}
    assert len(parts) == 1, parts  # one writer's complete directory, never a mix
    assert sorted(q.name for q in out.iterdir()) == ["_SUCCESS", "part-0", "part-1", "part-2"]
    assert not [q for q in tmp_path.iterdir() if TMP_MARK in q.name]


def test_sigkilled_writer_leaves_only_debris_that_is_collected(tmp_path):
    out = tmp_path / "art"
    code = textwrap.dedent(
        f"""
        import os, signal
        from glc.io import atomic_dir
        with atomic_dir({str(out)!r}) as tmp:
            (tmp / "part-0").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd())
    assert r.returncode == -9
    assert not out.exists()
    debris = [q for q in tmp_path.iterdir() if TMP_MARK in q.name]
    assert len(debris) == 1
    assert remove_stale_temps(tmp_path) == 1
    assert not any(TMP_MARK in q.name for q in tmp_path.iterdir())


def test_live_writers_temp_is_not_collected(tmp_path):
    with atomic_dir(tmp_path / "art") as tmp:
        assert remove_stale_temps(tmp_path) == 0
        assert tmp.exists()


def test_a_zombie_writers_temp_is_collected(tmp_path):
    """A writer killed while its parent has not reaped it yet (a zombie) will never finish: its debris goes at the
    next run, not only once the zombie disappears."""
    import psutil

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        debris = tmp_path / f"art{TMP_MARK}{child.pid}-deadbeef"
        debris.mkdir()
        assert remove_stale_temps(tmp_path) == 0  # its writer runs
        child.kill()
        for _ in range(100):  # not waited for: the child stays a zombie
            if psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE:
                break
            import time

            time.sleep(0.05)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert remove_stale_temps(tmp_path) == 1 and not debris.exists()
    finally:
        child.wait()


def test_out_root_writability_is_checked_before_work(tmp_path):
    from glc.io import check_writable

    assert check_writable(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: a plain file where the folder must be instead
            ro.chmod(0o755)
            ro.rmdir()
            ro.write_text("not a folder")
        with pytest.raises(PermissionError, match=r"out-root .*ro.* is not writable .*choose a writable --out-root"):
            check_writable(ro)
    finally:
        if ro.is_dir():
            ro.chmod(0o755)


def test_a_full_disk_is_an_error_naming_the_artifact_and_the_space(tmp_path: Path) -> None:
    """ENOSPC inside an atomic write (raised by Python, or only in the text of a JVM error) becomes a DiskFullError
    naming the artifact, the space written and free, and what to do; the temporary is removed."""
    import errno

    from glc.io import DiskFullError, atomic_dir, atomic_file

    final = tmp_path / "art"
    full = r"art: no space left on the disk.*written 2 KB.*free.*rerun"
    with pytest.raises(DiskFullError, match=full), atomic_dir(final) as tmp:
        (tmp / "part-0").write_bytes(b"x" * 2048)
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not final.exists() and not list(tmp_path.iterdir())

    class JvmError(Exception):  # what py4j raises: the errno survives only in the text
        pass

    with pytest.raises(DiskFullError, match="file.json: no space left"), atomic_file(tmp_path / "file.json") as fh:
        fh.write("{}")
        raise JvmError("java.io.IOException: No space left on device\n\tat org.apache...")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="other"), atomic_dir(final):  # other errors pass through unchanged
        raise ValueError("other")
