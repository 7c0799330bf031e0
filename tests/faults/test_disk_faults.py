"""The disk fills up during an artifact write: the out-root is a small tmpfs mounted by the test, filled by a file
to leave less free space than the run needs (half of it, or 8 KB: the first artifact, written by Spark's JVM).

Expected: the task fails with :class:`glc.io.DiskFullError` naming the artifact's path, the space it had used and
the space free; no partial artifact (every artifact folder present has its ``_SUCCESS``; no temporaries); once space
is freed (the filler removed) the rerun completes, writes the submission of an undisturbed run and does not
rebuild what was complete. Needs root (``mount``); skipped, saying so, where mounting is not allowed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from glc.io import SUCCESS, TMP_MARK
from glc.tasks import Submission
from tests.faults.conftest import FaultCase
from tests.faults.harness import BuildEvents, build

EXPERIMENT = "frequency"


class Tmpfs:
    """A tmpfs of ``size_kb`` at ``where`` (unmounted in :meth:`close`)."""

    def __init__(self, where: Path, size_kb: int) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.where = where
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)], capture_output=True, text=True
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {res.stderr.strip()}")

    def resize(self, size_kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(self.where)], check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], capture_output=True)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Tmpfs]:
    fs = Tmpfs(tmp_path / "small", 256)
    try:
        yield fs
    finally:
        fs.close()


def _build(world: Path, out: Path) -> tuple[bool, BuildEvents]:
    return build(Submission(experiment=EXPERIMENT, data_root=str(world), out_root=str(out)))


def _du_kb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


@pytest.mark.slow
@pytest.mark.parametrize("free", ["half", "8KB"])
@pytest.mark.fault(
    fault="the disk fills up during an artifact write (out-root on a tmpfs with half the run's size free, or 8 KB)",
    where="local out-root: the frequency DAG (Spark-written survey table, pyarrow/JSON/PNG artifacts)",
    expected="DiskFullError naming the path and the space used and free; no partial artifact; after space is freed "
    "the rerun completes with the same submission, rebuilding nothing that was complete",
)
def test_disk_full_during_an_artifact_write(
    spark, free: str, tiny_world: Path, tmp_path: Path, small_disk: Tmpfs, fault_case: FaultCase
) -> None:
    reference = tmp_path / "reference"
    ok, _ = _build(tiny_world, reference)
    assert ok
    total_kb = _du_kb(reference)
    want = Path(Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(reference)).output().path)

    out = small_disk.where
    small_disk.resize(total_kb * 2)
    free_kb = total_kb // 2 if free == "half" else 8
    filler = out / "filler"
    with open(filler, "wb") as fh:  # leave free_kb free (tmpfs counts whole pages)
        fh.write(b"\0" * ((total_kb * 2 - free_kb) * 1024))
    out_free = shutil.disk_usage(out).free // 1024
    fault_case.note(f"the undisturbed run writes {total_kb} KB; the out-root tmpfs has {out_free} KB free")
    ok1, ev1 = _build(tiny_world, out)
    errors = list(zip([f for f, _ in ev1.failed], ev1.messages))
    fault_case.note(f"first run: ok={ok1}; ran {ev1.ran}; failed {[f for f, _ in errors]}")
    named = bool(errors) and all(
        "DiskFullError" in m and str(out) in m and "free" in m and "rerun" in m for _, m in errors
    )
    partial = [d for d in out.rglob("*") if d.is_dir() and (d / "_INPUTS").exists() and not (d / SUCCESS).exists()]
    temps = [p for p in out.rglob("*") if TMP_MARK in p.name]

    filler.unlink()  # space freed
    ok2, ev2 = _build(tiny_world, out)
    got = Path(Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(out)).output().path)
    same = ok2 and got.read_bytes() == want.read_bytes()
    rebuilt = [t for t in ev2.ran if t in ev1.ran]
    fault_case.record(
        observed=f"failed with {errors[0][1][:240] if errors else 'no error'}...; partial artifacts: {len(partial)}, "
        f"temporaries: {len(temps)}; after space was freed the rerun completed={ok2} (ran {ev2.ran}), same "
        f"submission={same}, rebuilt {rebuilt}",
        survived=not ok1 and named and not partial and not temps and same and not rebuilt,
        data_lost=not same,
    )
    assert not ok1, "the run must fail on a full disk"
    assert named, errors
    assert not partial and not temps, (partial, temps)
    assert same
    assert not rebuilt, rebuilt
