"""A Spark standalone worker lost mid-job, and executors capped far below the default memory.

A master and two workers (one core each) run on 127.0.0.1 (:class:`tests.spark_cluster.StandaloneCluster`); the job
runs in a child process on that cluster (the test session owns the local SparkSession), with the driver's UI on a
known port (the UI is off in ``conf/spark-defaults.conf``; the child turns it on). The parent watches the driver's
REST API and, as soon as an executor has a running task of the job, SIGKILLs that executor's worker with its whole
process tree (a lost machine). Expected: the driver reschedules the lost tasks on the surviving executor and the job
completes; the artifact then has exactly the files of an undisturbed local run, byte for byte where glc writes them
itself (the executor-written ``data/`` of the tile jobs: a retried task must not leave a second copy of a bucket or
a stale temporary), row for row where Spark does.

Memory: the same cluster with executors of 512 MB (the default is 1 GB; glc's conf asks 4 GB for the driver) runs
PatchTiles on the demo world (11,000 surveys): it completes with the files of a local run, or fails with a message
naming the setting to raise; never a partial artifact.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

from glc.io import SUCCESS, TMP_MARK
from glc.tasks import PatchTiles, RasterTiles
from glc.tasks.neighbours import Neighbours
from tests.faults.conftest import FaultCase
from tests.spark_cluster import StandaloneCluster, free_port
from tests.tasks.test_cluster import _rows

REPO = Path(__file__).resolve().parents[2]
#: A job (child process) that neither completes nor fails within this is a hang: the case fails.
JOB_TIMEOUT_S = 600


def make_task(family: str, root: Path, out: Path) -> luigi.Task:
    common = {"data_root": str(root), "out_root": str(out)}
    if family == "PatchTiles":
        return PatchTiles(partitions=8, batch_size=16, **common)
    if family == "RasterTiles":
        return RasterTiles(raster_group="human_footprint", k=2, tile_size=8, partitions=8, **common)
    return Neighbours(**common)


_CHILD = """
import sys, luigi
from pathlib import Path
from tests.faults.test_spark_faults import make_task
from glc.spark import get_spark
master = get_spark("glc-fault-test").sparkContext.master
assert master.startswith("spark://"), master
ok = luigi.build([make_task(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))], local_scheduler=True, workers=1)
sys.exit(0 if ok else 3)
"""


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[StandaloneCluster]:
    c = StandaloneCluster(tmp_path / "cluster", cores=1, memory="2g", workers=2)
    try:
        c.start()
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop()


def _json(url: str) -> object | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def _busy_executor(ui: int) -> str | None:
    """The id of an executor of the driver at ``ui`` that is running a task now, or None."""
    apps = _json(f"http://127.0.0.1:{ui}/api/v1/applications")
    if not apps:
        return None
    for e in _json(f"http://127.0.0.1:{ui}/api/v1/applications/{apps[0]['id']}/executors") or []:
        if e["id"] != "driver" and e.get("activeTasks", 0) > 0:
            return str(e["id"])
    return None


def _launch(family: str, world: Path, out: Path, master: str, ui: int, *conf: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "GLC_SPARK_MASTER": master,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "GLC_SPARK_CONF": ",".join(
            [
                "spark.driver.host=127.0.0.1",
                "spark.driver.bindAddress=127.0.0.1",
                "spark.ui.enabled=true",
                f"spark.ui.port={ui}",
                "spark.executor.memory=1g",
                *conf,
            ]
        ),
    }
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, family, str(world), str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _names(files: dict[str, bytes]) -> list[str]:
    """File names with Spark's per-job UUID masked (``part-00000-<uuid>-c000``): a second copy of a part file, or a
    stale one, still shows as an extra name."""
    return sorted(_UUID.sub("<job>", k) for k in files)


FAMILIES = ["PatchTiles", "RasterTiles", "Neighbours"]


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=[] if f == "PatchTiles" else [pytest.mark.slow]) for f in FAMILIES],
)
@pytest.mark.fault(
    fault="a Spark standalone worker SIGKILLed with its executor while that executor runs a task of the job",
    where="Spark standalone cluster (master + 2 workers on 127.0.0.1): PatchTiles, RasterTiles, Neighbours",
    expected="the lost tasks rerun on the surviving worker and the job completes; no partial artifact; the files "
    "of an undisturbed run (executor-written data/ byte for byte, Spark-written rows equal); no stale temporaries",
)
def test_worker_killed_mid_job(
    spark, family: str, cluster: StandaloneCluster, tiny_world: Path, tmp_path: Path, fault_case: FaultCase
) -> None:
    local = make_task(family, tiny_world, tmp_path / "local")
    assert luigi.build([local], local_scheduler=True, workers=1)
    ui = free_port()
    out = tmp_path / "cluster-out"
    t0 = time.monotonic()
    proc = _launch(family, tiny_world, out, cluster.url, ui)
    killed: list[int] = []
    instance = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < JOB_TIMEOUT_S:
            busy = _busy_executor(ui)
            if busy is not None and not killed:
                instance = cluster.executor_instance(busy)
                if instance is not None:
                    killed = cluster.kill_worker(instance)
                    fault_case.note(
                        f"{time.monotonic() - t0:.1f} s: executor {busy} had a running task; SIGKILLed worker "
                        f"{instance} and its tree (pids {killed})"
                    )
            time.sleep(0.05)
        output, _ = proc.communicate(timeout=JOB_TIMEOUT_S - (time.monotonic() - t0) + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - t0
    lost = [line for line in output.splitlines() if "Lost executor" in line or "ExecutorLost" in line]
    fault_case.note(f"child exit {proc.returncode} after {elapsed:.0f} s; driver log lines on the loss: {lost[:3]}")

    ldir = Path(local.output().path).parent
    cdir = Path(make_task(family, tiny_world, out).output().path).parent
    complete = proc.returncode == 0 and (cdir / SUCCESS).is_file()
    temps = [p for p in out.rglob("*") if TMP_MARK in p.name or p.name == "staging"]
    lfiles, cfiles = _files(ldir), _files(cdir) if cdir.is_dir() else {}
    same_names = _names(lfiles) == _names(cfiles)
    data_equal = False
    if complete and same_names:
        if family == "Neighbours":
            data_equal = _rows(ldir / "data").equals(_rows(cdir / "data"))
        else:
            data_equal = all(lfiles[k] == cfiles[k] for k in lfiles if k.startswith("data/"))
    survived = bool(killed) and complete and same_names and data_equal and not temps
    fault_case.record(
        observed=f"worker {instance} killed mid-job; completed={complete} in {elapsed:.0f} s; files as the "
        f"undisturbed run={same_names}; data equal={data_equal}; stale temporaries={len(temps)}",
        survived=survived,
        data_lost=complete and not data_equal,
        family=family,
    )
    assert killed, f"no executor of the job was seen running a task (job took {elapsed:.0f} s): fault not injected"
    assert proc.returncode == 0, output[-6000:]
    assert complete
    assert same_names, sorted(set(lfiles) ^ set(cfiles))
    assert data_equal
    assert not temps, temps


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from glc.synth import generate_world

    root = tmp_path_factory.mktemp("demo") / "demo-seed0"
    generate_world(root, scale="demo", seed=0, progress=False)
    return root


@pytest.mark.slow
@pytest.mark.fault(
    fault="executors capped at 512 MB (spark.executor.memory=512m; default 1g)",
    where="Spark standalone cluster (2 workers): PatchTiles on the demo world (11,000 surveys)",
    expected="completes with the bytes of a local run, or fails naming the setting to raise; no partial artifact",
)
def test_executors_capped_far_below_the_default_memory(
    spark, cluster: StandaloneCluster, demo_world: Path, tmp_path: Path, fault_case: FaultCase
) -> None:
    local = make_task("PatchTiles", demo_world, tmp_path / "local")
    assert luigi.build([local], local_scheduler=True, workers=1)
    out = tmp_path / "cluster-out"
    t0 = time.monotonic()
    proc = _launch("PatchTiles", demo_world, out, cluster.url, free_port(), "spark.executor.memory=512m")
    try:
        output, _ = proc.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - t0
    ldir = Path(local.output().path).parent
    cdir = Path(make_task("PatchTiles", demo_world, out).output().path).parent
    complete = proc.returncode == 0 and (cdir / SUCCESS).is_file()
    temps = [p for p in out.rglob("*") if TMP_MARK in p.name or p.name == "staging"]
    if complete:
        lfiles, cfiles = _files(ldir), _files(cdir)
        equal = _names(lfiles) == _names(cfiles) and all(
            lfiles[k] == cfiles[k] for k in lfiles if k.startswith("data/")
        )
        observed = f"completed in {elapsed:.0f} s with the data/ bytes of a local run: {equal}"
        survived, lost = equal and not temps, not equal
    else:
        named = "spark.executor.memory" in output
        partial = cdir.is_dir() and not (cdir / SUCCESS).is_file()
        observed = f"failed (exit {proc.returncode}) in {elapsed:.0f} s; names spark.executor.memory: {named}"
        survived, lost = named and not partial, partial
    fault_case.record(observed=observed, survived=survived, data_lost=lost, temporaries=len(temps))
    assert survived, output[-6000:]
