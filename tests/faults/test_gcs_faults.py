"""gs:// roots through gcsfs against a real GCS JSON-API server (``gcp-storage-emulator``) on 127.0.0.1.

* The tiny DAG runs end to end with ``gs://`` data and out roots and writes the submission of a local run.
* Transient failures (503 answers, connections dropped mid-upload and mid-download) are retried by gcsfs with
  backoff; the run completes and writes the same bytes.
* The server stopped during an upload: the task fails within gcsfs's retry budget with an error naming the object;
  no remote ``_SUCCESS`` appears for an incomplete artifact; started again, the next run resumes (the artifact built
  before the failure is uploaded, not rebuilt; finished ones are not touched) and finishes, with no upload debris.
"""

from __future__ import annotations

import os

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # the emulator has no bucket-type API

import time
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

from glc.io import SUCCESS, TMP_MARK
from glc.tasks import Submission
from tests.faults.conftest import FaultCase
from tests.faults.gcs import FaultPlan, FaultProxy, GcsEmulator, is_download, is_upload
from tests.faults.harness import BuildEvents, build

pytest.importorskip("gcsfs")
EXPERIMENT = "frequency"
BUCKET = "glc"


class Store:
    """The emulator, the proxy in front of it and a gcsfs filesystem talking to the proxy."""

    def __init__(self, folder: Path) -> None:
        self.emulator = GcsEmulator(folder, BUCKET)
        self.emulator.start()
        self.proxy = FaultProxy(self.emulator.url)
        self.proxy.start()

    @property
    def fs(self):
        import gcsfs

        return gcsfs.GCSFileSystem(endpoint_url=self.proxy.url, token="anon", skip_instance_cache=True)

    def objects(self, prefix: str = BUCKET) -> list[str]:
        return sorted(self.fs.find(prefix))

    def stop(self) -> None:
        self.proxy.stop()
        self.emulator.stop()


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    import gcsfs

    s = Store(tmp_path / "gcs")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", s.proxy.url)
    monkeypatch.setenv("GLC_CACHE", str(tmp_path / "cache"))
    gcsfs.GCSFileSystem.clear_instance_cache()
    try:
        yield s
    finally:
        gcsfs.GCSFileSystem.clear_instance_cache()
        s.stop()


@pytest.fixture(scope="module")
def local_submission(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory, spark) -> bytes:
    task = Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(tmp_path_factory.mktemp("lo")))
    assert luigi.build([task], local_scheduler=True, log_level="WARNING")
    return Path(task.output().path).read_bytes()


#: Folders of the tiny world the frequency DAG does not read (1,920 of its 1,997 files): left out of the bucket, the
#: emulator answers in ~85 ms a request, so the suite stays minutes long.
UNREAD = ("PA_Train_SatellitePatches", "PA_Test_SatellitePatches", "TimeSeries-Cubes")


def _upload_world(store: Store, tiny_world: Path) -> str:
    files = [
        p
        for p in sorted(tiny_world.rglob("*"))
        if p.is_file() and not p.relative_to(tiny_world).parts[0].startswith(UNREAD)
    ]
    store.fs.put([str(p) for p in files], [f"{BUCKET}/data/tiny/{p.relative_to(tiny_world).as_posix()}" for p in files])
    return f"gs://{BUCKET}/data/tiny"


def _run(data_root: str, out_root: str) -> tuple[bool, BuildEvents]:
    return build(Submission(experiment=EXPERIMENT, data_root=data_root, out_root=out_root))


def _remote_submission(store: Store, data_root: str, out_root: str) -> bytes | None:
    task = Submission(experiment=EXPERIMENT, data_root=data_root, out_root=out_root)
    path = task.remote_of(task.output().path).removeprefix("gs://")
    return store.fs.cat(path) if store.fs.exists(path) else None


def _marked_but_incomplete(store: Store, out_root: str, cache: Path) -> list[str]:
    """Remote artifacts with a ``_SUCCESS`` whose files differ from the local copy they were published from."""
    bad = []
    prefix = out_root.removeprefix("gs://")
    remote = store.objects(prefix)
    for marker in [o for o in remote if o.endswith(f"/{SUCCESS}")]:
        folder = marker.rsplit("/", 1)[0]
        rel = folder[len(prefix) + 1 :]
        locals_ = [p for p in cache.glob(f"out/*/{rel}") if (p / SUCCESS).is_file()]
        if not locals_:
            bad.append(f"{folder}: no local copy to compare")
            continue
        want = sorted(p.relative_to(locals_[0]).as_posix() for p in locals_[0].rglob("*") if p.is_file())
        got = sorted(o[len(folder) + 1 :] for o in remote if o.startswith(folder + "/"))
        if want != got:
            bad.append(f"{folder}: remote {len(got)} files vs local {len(want)}")
    return bad


@pytest.mark.fault(
    fault="none (baseline): the DAG with gs:// data and out roots",
    where="GCS JSON API (gcp-storage-emulator) via gcsfs",
    expected="the submission of a local run; every remote artifact has its _SUCCESS; no upload debris",
)
def test_gcs_emulator_runs_the_dag_end_to_end(
    spark, store: Store, tiny_world: Path, local_submission: bytes, fault_case: FaultCase
) -> None:
    data_root = _upload_world(store, tiny_world)
    ok, rec = _run(data_root, f"gs://{BUCKET}/out")
    got = _remote_submission(store, data_root, f"gs://{BUCKET}/out")
    debris = [o for o in store.objects() if TMP_MARK in o]
    fault_case.note(f"ran {rec.ran}; {store.proxy.requests} requests through the proxy")
    fault_case.record(
        observed=f"completed={ok}, same submission={got == local_submission}, debris={len(debris)}",
        survived=ok and got == local_submission and not debris,
        data_lost=got != local_submission,
    )
    assert ok, rec.failed
    assert got == local_submission
    assert not debris
    assert "MirrorData" in rec.ran and "Submission" in rec.ran


@pytest.mark.slow
@pytest.mark.fault(
    fault="503 answers (3 uploads, 2 downloads) and connections dropped mid-object (2 uploads, 2 downloads)",
    where="GCS JSON API via gcsfs: artifact uploads (publish), mirror and fetch downloads",
    expected="retried by gcsfs with backoff; the run completes with the bytes of an undisturbed run",
)
def test_gcs_transient_errors_are_retried(
    spark, store: Store, tiny_world: Path, local_submission: bytes, fault_case: FaultCase, tmp_path: Path
) -> None:
    data_root = _upload_world(store, tiny_world)
    uploads = FaultPlan(match=is_upload, status_left=3, drop_left=2, spacing=3)
    downloads = FaultPlan(match=is_download, status_left=2, drop_left=2, spacing=3)
    store.proxy.plans = [uploads, downloads]
    t0 = time.monotonic()
    ok, rec = _run(data_root, f"gs://{BUCKET}/out")
    got = _remote_submission(store, data_root, f"gs://{BUCKET}/out")
    seen = uploads.seen + downloads.seen
    fault_case.note(f"injected: {seen}")
    survived = ok and got == local_submission and len(uploads.seen) == 5 and len(downloads.seen) == 4
    fault_case.record(
        observed=f"{len(seen)} faults injected ({len(uploads.seen)} on uploads, {len(downloads.seen)} on downloads) "
        f"and retried; completed={ok} in {time.monotonic() - t0:.0f} s; same submission={got == local_submission}",
        survived=survived,
        data_lost=got != local_submission,
    )
    assert len(uploads.seen) == 5 and len(downloads.seen) == 4, seen
    assert sum(s.startswith("503") for s in seen) == 5 and sum(s.startswith("drop") for s in seen) == 4
    assert ok, rec.failed
    assert got == local_submission


@pytest.mark.fault(
    fault="the server stopped (SIGKILL) during an artifact upload",
    where="GCS JSON API via gcsfs: publish of an artifact",
    expected="the task fails after gcsfs's retries with an error naming the object; no remote _SUCCESS for an "
    "incomplete artifact; after a restart the rerun uploads what was built (no rebuild) and finishes",
)
def test_gcs_server_stopped_during_an_upload(
    spark, store: Store, tiny_world: Path, local_submission: bytes, fault_case: FaultCase, tmp_path: Path
) -> None:
    data_root = _upload_world(store, tiny_world)
    out_root = f"gs://{BUCKET}/out"
    plan = store.proxy.plan
    uploads = {"n": 0}

    def nth_upload(method: str, path: str) -> bool:
        if is_upload(method, path):
            uploads["n"] += 1
            return uploads["n"] >= 12
        return False

    def server_goes_away() -> None:
        plan.down = True
        store.emulator.kill()

    plan.match, plan.on_match = nth_upload, server_goes_away
    t0 = time.monotonic()
    ok, rec = _run(data_root, out_root)
    failed_after = time.monotonic() - t0
    messages = rec.messages
    fault_case.note(f"first run: ok={ok} after {failed_after:.0f} s; ran {rec.ran}; failed {rec.failed}")
    assert not ok and rec.failed, "the run must fail while the server is gone"
    named = all("TransferError" in m and "gs://" in m and "rerun" in m for m in messages)

    store.emulator.start()  # same port, same objects on disk
    plan.down, plan.match = False, lambda m, p: False
    incomplete_marked = _marked_but_incomplete(store, out_root, tmp_path / "cache")
    before = {o for o in store.objects() if o.endswith(SUCCESS)}
    ok2, rec2 = _run(data_root, out_root)
    got = _remote_submission(store, data_root, out_root)
    debris = [o for o in store.objects() if TMP_MARK in o]
    rebuilt = [t for t in rec2.ran if t in rec.ran]
    fault_case.note(
        f"rerun: ok={ok2}; ran {rec2.ran}, of which {rec2.published_only} only uploaded the copy built before the "
        f"failure; {len(before)} artifacts were complete before it"
    )
    resumed = "Predict" in rec2.published_only  # built in the first run, its upload cut: uploaded, not rebuilt
    survived = (
        named and not incomplete_marked and ok2 and got == local_submission and not debris and not rebuilt and resumed
    )
    fault_case.record(
        observed=f"failed in {failed_after:.0f} s naming the object ({messages[0][:160]}...); "
        f"markers on incomplete artifacts: {len(incomplete_marked)}; rerun completed={ok2}, re-ran {rec2.ran}, "
        f"same submission={got == local_submission}, debris={len(debris)}",
        survived=survived,
        data_lost=got != local_submission or bool(incomplete_marked),
    )
    assert named, messages
    assert failed_after < 180
    assert not incomplete_marked, incomplete_marked
    assert ok2, rec2.failed
    assert got == local_submission
    assert not debris, debris
    assert not rebuilt, f"tasks that had succeeded ran again: {rebuilt}"
    assert resumed, rec2.published_only
