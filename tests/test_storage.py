"""URL data and out roots through fsspec (``memory://`` and ``file://`` stand in for ``gs://``; no network here).

* A DAG with a URL out-root writes the submission a local out-root gets; the remote artifacts carry ``_SUCCESS``.
* A second machine (an empty local copy) finds the DAG complete remotely and does no work; a task whose output was
  removed remotely reruns there, downloading its inputs first, and writes the same bytes.
* Publishing is atomic by the marker: an upload that dies part way leaves no ``_SUCCESS``; readers (``complete()``)
  require it.
* A URL data root is mirrored once (the mirror's ``_SUCCESS`` last; a second call downloads nothing).
* A scheme without its package, or without credentials / permission, is an error naming the scheme.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import luigi
import pytest

from glc.io import SUCCESS
from glc.storage import StorageError, check_writable_url, filesystem, mirror, publish
from glc.tasks import Submission, SurveyTable

EXPERIMENT = "frequency"


@pytest.fixture()
def bucket() -> str:
    """A fresh ``memory://`` prefix (the memory filesystem is process-wide), removed afterwards."""
    name = f"memory://bucket-{uuid.uuid4().hex[:8]}/glc"
    yield name
    fs, path = filesystem(name)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _build(task: luigi.Task) -> bool:
    return luigi.build([task], local_scheduler=True, log_level="WARNING")


def test_url_out_root_end_to_end_and_a_second_machine(
    spark, tiny_world: Path, tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(tmp_path / "local-out"))
    assert _build(local)
    expected = Path(local.output().path).read_bytes()

    monkeypatch.setenv("GLC_CACHE", str(tmp_path / "cache-a"))
    remote = Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=bucket)
    assert not remote.complete()
    assert _build(remote)
    fs, _ = filesystem(bucket)
    sub_url = remote.remote_of(remote.output().path)
    with fs.open(filesystem(sub_url)[1], "rb") as f:
        assert f.read() == expected
    surveys = SurveyTable(data_root=str(tiny_world), out_root=bucket)
    assert fs.exists(filesystem(surveys.remote_of(surveys.output().path))[1])  # the remote marker
    assert not [p for p in fs.find(filesystem(bucket)[1]) if ".glc-tmp-" in p]

    # a second machine: nothing local, everything complete remotely -> no work, nothing downloaded
    monkeypatch.setenv("GLC_CACHE", str(tmp_path / "cache-b"))
    again = Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=bucket)
    assert again.complete()
    assert _build(again)
    assert not Path(again.output().path).exists()

    # its submission removed remotely: only Submission reruns there, from inputs it downloads first
    fs.rm(filesystem(sub_url)[1])
    assert not again.complete()
    ran: list[str] = []
    handler = luigi.Task.event_handler(luigi.Event.SUCCESS)(lambda task: ran.append(task.task_family))
    try:
        assert _build(again)
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.SUCCESS].discard(handler)
    assert ran == ["Submission"]  # upstream artifacts were downloaded, not rebuilt
    assert Path(again.output().path).read_bytes() == expected
    with fs.open(filesystem(sub_url)[1], "rb") as f:
        assert f.read() == expected

    # readers require the marker: without the remote _SUCCESS the survey table is not done
    fs.rm(filesystem(surveys.remote_of(surveys.output().path))[1])
    assert not SurveyTable(data_root=str(tiny_world), out_root=bucket).complete()


def test_url_data_root_runs_the_dag_and_fingerprints_agree_across_machines(
    spark, tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = Submission(experiment=EXPERIMENT, data_root=str(tiny_world), out_root=str(tmp_path / "out"))
    assert _build(local)
    url = f"file://{tiny_world}"
    monkeypatch.setenv("GLC_CACHE", str(tmp_path / "cache-a"))
    remote_data = Submission(experiment=EXPERIMENT, data_root=url, out_root=str(tmp_path / "out"))
    assert _build(remote_data)  # MirrorData, then the DAG on the mirror
    assert Path(remote_data.output().path).read_bytes() == Path(local.output().path).read_bytes()
    fp_a = SurveyTable(data_root=url, out_root=str(tmp_path / "out")).input_fingerprint()
    # another machine (another cache): the same fingerprints, so the artifacts built on the first count as done
    monkeypatch.setenv("GLC_CACHE", str(tmp_path / "cache-b"))
    mirror(url, Path(SurveyTable(data_root=url, out_root=str(tmp_path / "out")).local_data_root))
    assert SurveyTable(data_root=url, out_root=str(tmp_path / "out")).input_fingerprint() == fp_a
    assert Submission(experiment=EXPERIMENT, data_root=url, out_root=str(tmp_path / "out")).complete()


def test_publish_that_dies_part_way_leaves_no_marker(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = tmp_path / "art"
    art.mkdir()
    for i in range(4):
        (art / f"part-{i}").write_text(str(i))
    (art / SUCCESS).write_text("{}")
    url = f"{bucket}/features/art"
    fs, path = filesystem(url)
    publish(art, url)
    assert fs.exists(f"{path}/{SUCCESS}") and fs.cat(f"{path}/part-3") == b"3"

    real_put = type(fs).put_file
    calls = {"n": 0}

    def dying_put(self, lpath, rpath, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("connection reset")
        return real_put(self, lpath, rpath, **kw)

    monkeypatch.setattr(type(fs), "put_file", dying_put)
    (art / "part-0").write_text("new")
    with pytest.raises(OSError, match="connection reset"):
        publish(art, url)
    assert not fs.exists(f"{path}/{SUCCESS}")  # the old marker went first; no new one: not complete
    monkeypatch.setattr(type(fs), "put_file", real_put)
    publish(art, url)
    assert fs.exists(f"{path}/{SUCCESS}") and fs.cat(f"{path}/part-0") == b"new"


def test_url_data_root_is_mirrored_once(tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glc.data.layout import detect_layout

    url = f"file://{tiny_world}"
    local = mirror(url, tmp_path / "mirror")
    assert (local / SUCCESS).is_file()
    assert (
        detect_layout(local).pa_metadata("test").read_bytes()
        == detect_layout(tiny_world).pa_metadata("test").read_bytes()
    )
    n_src = sum(1 for p in tiny_world.rglob("*") if p.is_file() and p.name != SUCCESS)
    assert sum(1 for p in local.rglob("*") if p.is_file() and p.name != SUCCESS) == n_src
    # an interrupted mirror (no marker) resumes without downloading what it already has
    (local / SUCCESS).unlink()
    fs, _ = filesystem(url)
    monkeypatch.setattr(type(fs), "get_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("downloaded again")))
    mirror(url, local)
    assert (local / SUCCESS).is_file()


def test_scheme_without_package_or_credentials_is_named(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is None:
        with pytest.raises(StorageError, match=r"gs://.*gcsfs"):
            filesystem("gs://some-bucket/glc")
    fs, _ = filesystem(bucket)

    def denied(*a, **k):
        raise PermissionError("401 Anonymous caller does not have storage.objects.create access")

    monkeypatch.setattr(type(fs), "open", denied)
    with pytest.raises(StorageError, match=r"memory://.*credentials"):
        check_writable_url(bucket)
    task = SurveyTable(data_root="data/synthetic/tiny-seed0", out_root=bucket)
    with pytest.raises(StorageError, match=r"memory://"):
        task.complete()


def test_a_store_that_does_not_answer_is_not_blamed_on_credentials(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The out-root probe, an upload and a download failing on the network (after the client's retries) are a
    TransferError naming the object; only a refusal is reported as credentials / permission."""
    from glc.storage import TransferError, fetch, remote_exists

    fs, path = filesystem(bucket)

    def refused(*a, **k):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(type(fs), "open", refused)
    with pytest.raises(TransferError, match=r"probe object.*ConnectionResetError.*rerun") as e:
        check_writable_url(bucket)
    assert "credentials" not in str(e.value)
    monkeypatch.setattr(type(fs), "exists", refused)
    with pytest.raises(TransferError, match=f"checking {bucket}/x"):
        remote_exists(f"{bucket}/x")
    with pytest.raises(TransferError, match=f"listing {bucket}/art"):
        fetch(f"{bucket}/art", Path("/nonexistent/never-written"))


def test_publish_removes_this_machines_dead_upload_temporaries(tmp_path: Path, bucket: str) -> None:
    """A prefix left by an upload that died (this host, a pid that no longer runs, or this process's own failed
    attempt) is removed by the next publish; another machine's, and a running upload's, are kept."""
    from glc import storage
    from glc.io import TMP_MARK
    from glc.storage import _host_tag, remote_tmp_name

    art = tmp_path / "art"
    art.mkdir()
    (art / "part-0").write_text("0")
    (art / SUCCESS).write_text("{}")
    url = f"{bucket}/features/art"
    fs, path = filesystem(url)
    dead = f"{path}{TMP_MARK}999999999-deadbeef-h{_host_tag()}"
    other_host = f"{path}{TMP_MARK}999999999-deadbeef-h00000000"
    own_failed = remote_tmp_name(path)  # this process, an attempt that is over
    running = remote_tmp_name(path)  # this process, uploading now (another thread)
    for p in (dead, other_host, own_failed, running):
        fs.pipe(f"{p}/part-0", b"partial")
    storage._active_uploads.add(running)
    try:
        publish(art, url)
    finally:
        storage._active_uploads.discard(running)
    left = {p.rsplit("/", 1)[-1] for p in fs.ls(fs._parent(path), detail=False)}
    assert dead.rsplit("/", 1)[-1] not in left and own_failed.rsplit("/", 1)[-1] not in left
    assert other_host.rsplit("/", 1)[-1] in left and running.rsplit("/", 1)[-1] in left
    assert fs.exists(f"{path}/{SUCCESS}")
