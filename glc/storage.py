"""Remote data and output roots (``gs://bucket/path`` on GCP) through fsspec, with the atomic-output rules kept.

glc's readers and writers (Spark, pyarrow, rasterio, Pillow, torch) work on local POSIX paths, so a URL root is
paired with a local working copy under the cache (``GLC_CACHE``, default ``~/.cache/glc``; one folder per root):

* **Out-root URL** (the store of record): a task builds its artifact in the local copy exactly as for a local
  out-root (temporary sibling, ``_SUCCESS`` last, input fingerprint ``_INPUTS``), then :func:`publish` uploads it
  under a temporary prefix (``<artifact>.glc-tmp-<pid>-<hex>/``), moves it to the artifact's prefix, and writes the
  remote ``_SUCCESS`` marker last (and removes an older marker first, so a half-replaced prefix is never complete).
  A task is complete when the remote marker and fingerprint are there (:func:`remote_exists`, :func:`read_text`);
  a task whose input artifact is complete remotely but absent (or stale) in its local copy downloads it first
  (:func:`fetch`): a second machine, or a fresh VM, picks up where the first left off.
* **Data-root URL**: mirrored once into the cache by :func:`mirror` (files already there with the same size are
  kept; the mirror's own ``_SUCCESS`` is written last), and the tasks read the mirror.

The filesystem comes from ``fsspec.url_to_fs`` (``gs://`` needs ``gcsfs``: ``pip install gcsfs``; credentials from
``gcloud auth application-default login`` or ``GOOGLE_APPLICATION_CREDENTIALS``). Before any work a URL out-root
is proven writable (:func:`check_writable_url`): no package, no credentials or no permission is an error naming
the scheme and what to do. Tests use fsspec's ``memory://`` and ``file://`` filesystems as stand-ins.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from glc.io import SUCCESS, TMP_MARK

log = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Schemes and the package that serves them (for the error when it is missing).
SCHEME_PACKAGES = {"gs": "gcsfs", "gcs": "gcsfs", "s3": "s3fs", "az": "adlfs", "abfs": "adlfs"}


class StorageError(RuntimeError):
    """A remote root cannot be used (package, credentials, permission); the message names the scheme and the fix."""


def is_url(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` is a URL (``scheme://...``) rather than a local path."""
    return bool(_URL.match(str(root)))


def scheme(url: str) -> str:
    """The URL's scheme (``gs``)."""
    return str(url).split("://", 1)[0].lower()


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)`` for ``url``.

    Raises:
        StorageError: the scheme's package is not installed (named, with the pip command).
    """
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        s = scheme(url)
        pkg = SCHEME_PACKAGES.get(s, f"the fsspec implementation of {s}://")
        raise StorageError(
            f"{url}: the {s}:// scheme needs {pkg} ({e}); install it (pip install {pkg}) in the venv"
        ) from e


def cache_root() -> Path:
    """Where the local copies of URL roots live (``GLC_CACHE``, default ``~/.cache/glc``)."""
    return Path(os.environ.get("GLC_CACHE", "~/.cache/glc")).expanduser().resolve()


def local_copy(url: str, kind: str) -> Path:
    """The local working copy of the URL root ``url``: ``<cache>/<kind>/<last part>-<12 hex of the URL>``."""
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rstrip("/").rsplit("/", 1)[-1]) or "root"
    return cache_root() / kind / f"{tail}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def local_root(root: str | os.PathLike[str], kind: str = "data") -> Path:
    """A root as a local path: itself, or for a URL its local copy (the data mirror, the out-root working copy)."""
    return local_copy(str(root), kind) if is_url(root) else Path(root)


def join(url: str, *parts: str) -> str:
    """``url/part/...`` (parts may contain ``/``)."""
    return "/".join([url.rstrip("/"), *(str(p).strip("/") for p in parts if str(p))])


def _credentials_hint(url: str) -> str:
    s = scheme(url)
    if s in ("gs", "gcs"):
        return (
            "give this VM's service account Storage Object Admin on the bucket, or run `gcloud auth "
            "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file"
        )
    return f"configure credentials for {s}:// (see the {SCHEME_PACKAGES.get(s, 'fsspec')} documentation)"


def check_writable_url(url: str) -> None:
    """Prove ``url`` is writable: write and delete a probe object.

    Raises:
        StorageError: naming the scheme: its package is missing, no credentials, or no permission.
    """
    fs, path = filesystem(url)
    probe = join(path, f".glc-probe-{uuid.uuid4().hex[:8]}")
    try:
        if "file" in fs.protocol or "local" in fs.protocol:  # object stores have no folders (and gcsfs.makedirs
            fs.makedirs(path, exist_ok=True)  # would create a mistyped bucket)
        with fs.open(probe, "wb") as f:
            f.write(b"glc")
        fs.rm(probe)
    except Exception as e:
        if is_transient(e):
            raise _transfer_error(
                "writing the probe object", join(url, probe.rsplit("/", 1)[-1]), url, e, "no work was started"
            ) from e
        raise StorageError(
            f"out-root {url}: cannot write to this {scheme(url)}:// location ({type(e).__name__}: {e}); no credentials "
            f"or no permission? {_credentials_hint(url)}"
        ) from e


def remote_exists(url: str) -> bool:
    """Whether the object/file ``url`` exists."""
    fs, path = filesystem(url)
    with transfer("checking", url, url, "nothing was changed"):
        return bool(fs.exists(path))


def read_text(url: str) -> str | None:
    """The text of ``url``, or None when it does not exist."""
    fs, path = filesystem(url)
    try:
        with transfer("reading", url, url, "nothing was changed"), fs.open(path, "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        return None


class TransferError(StorageError, OSError):
    """An upload or download failed after the filesystem's own retries; the message names the object, the artifact
    and what the failure left behind (never a complete-looking artifact)."""


#: What the object stores' clients already do about transient errors (so glc does not add a second retry layer).
CLIENT_RETRIES = {
    "gs": "gcsfs retries 408/429/5xx answers and dropped or refused connections 6 times with exponential backoff "
    "(1, 2, 4, 8, 16 s, each plus up to 1 s of jitter)",
}


def is_transient(e: BaseException) -> bool:
    """Whether ``e`` is the store not answering (refused / dropped connection, timeout, HTTP 408/429/5xx) rather than
    a refusal (credentials, permission, missing bucket): the two call for different fixes."""
    code = getattr(e, "code", None) or getattr(e, "status", None)
    if isinstance(code, int) and (code in (408, 429) or 500 <= code < 600):
        return True
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    return type(e).__module__.split(".")[0] == "aiohttp"


def _transfer_error(action: str, obj: str, url: str, e: BaseException, left: str) -> TransferError:
    retried = CLIENT_RETRIES.get(scheme(url), "the filesystem's own retries")
    what = " ".join(x for x in (action, obj) if x)
    return TransferError(
        f"{what} failed ({type(e).__name__}: {e}) after {retried}; {left}. Check the connection and the "
        f"bucket, then rerun: the run resumes from the artifacts that are complete."
    )


@contextlib.contextmanager
def transfer(action: str, obj: str, url: str, left: str) -> Iterator[None]:
    """Turn a store failure inside the block (after the client's retries) into a :class:`TransferError` naming
    ``action obj``; a missing object (``FileNotFoundError``) and glc's own errors pass through unchanged."""
    try:
        yield
    except (FileNotFoundError, StorageError):
        raise
    except Exception as e:
        if _store_failure(e):
            raise _transfer_error(action, obj, url, e, left) from e
        raise


def _store_failure(e: BaseException) -> bool:
    """Whether ``e``, raised by a filesystem call, is the store failing (an I/O or client error, or a transient
    answer) rather than a bug or a bad argument, which pass through unchanged."""
    return isinstance(e, (OSError, RuntimeError)) or is_transient(e)


@functools.cache
def _host_tag() -> str:
    """8 hex of this machine's host name: remote temporary names carry it, so a later publish from this machine can
    tell its own dead uploads (collectable) from another machine's (left alone: their pids mean nothing here)."""
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


#: The remote temporaries this process is uploading now (its own older ones are dead: removed by the next publish).
_active_uploads: set[str] = set()


def remote_tmp_name(path: str) -> str:
    """A temporary sibling name of the remote ``path``: ``<path>.glc-tmp-<pid>-<hex>-h<host tag>``."""
    return f"{path}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}-h{_host_tag()}"


def remove_stale_remote_temps(fs: Any, path: str) -> int:
    """Remove the temporary siblings of the remote ``path`` left by a dead upload from this machine (its process no
    longer runs, or it is this process and the upload is over: a failed earlier attempt); returns how many were
    removed. Another machine's temporaries, and a running upload's, are kept."""
    from glc.io import _pid_alive, _pid_of

    parent = fs._parent(path)
    base = path.rstrip("/").rsplit("/", 1)[-1]
    try:
        names = fs.ls(parent, detail=False, refresh=True)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        leaf = name.rstrip("/").rsplit("/", 1)[-1]
        if not leaf.startswith(f"{base}{TMP_MARK}") or not leaf.endswith(f"-h{_host_tag()}"):
            continue
        pid = _pid_of(leaf)
        if pid == os.getpid():
            if name.rstrip("/") in _active_uploads:
                continue
        elif pid is not None and _pid_alive(pid):
            continue
        fs.rm(name, recursive=True)
        removed += 1
        log.info("removed the temporary upload %s of a process that no longer runs", name)
    return removed


def _upload_tree(fs: Any, local: Path, dest: str, url: str, skip: frozenset[str] = frozenset()) -> int:
    n = 0
    for p in sorted(local.rglob("*")):
        if p.is_file() and p.relative_to(local).as_posix() not in skip:
            target = join(dest, p.relative_to(local).as_posix())
            with transfer("upload of", f"{p} -> {target}", url, f"{url} has no {SUCCESS}, so it is not complete"):
                fs.put_file(str(p), target)
            n += 1
    return n


def publish(local: Path, url: str) -> None:
    """Upload the finished local artifact ``local`` (a directory with ``_SUCCESS``, or a file) to ``url``.

    Directory: the old remote marker is removed first, the files go to a temporary prefix, the prefix is moved onto
    ``url`` and the remote ``_SUCCESS`` is written last. File: uploaded to a temporary name and moved.

    Transient store errors are retried by the filesystem client (:data:`CLIENT_RETRIES`); what still fails is a
    :class:`TransferError` naming the object, and leaves no remote ``_SUCCESS`` (a file: its old fingerprint is
    removed by the caller first). Temporary prefixes of this machine's dead uploads are removed first.

    Raises:
        TransferError: an object could not be uploaded, moved or removed.
    """
    fs, path = filesystem(url)
    tmp = remote_tmp_name(path)
    step = f"cleaning up before {url}"
    _active_uploads.add(tmp)
    try:
        remove_stale_remote_temps(fs, path)
        if local.is_dir():
            if not (local / SUCCESS).is_file():
                raise ValueError(f"publish {local}: no {SUCCESS}; only complete artifacts are published")
            step = f"removing the old marker {join(url, SUCCESS)}"
            if fs.exists(join(path, SUCCESS)):
                fs.rm(join(path, SUCCESS))
            _upload_tree(fs, local, tmp, url, skip={SUCCESS})
            step = f"replacing {url} with its upload {tmp}"
            if fs.exists(path):
                fs.rm(path, recursive=True)
            fs.mv(tmp, path, recursive=True)
            step = f"writing the marker {join(url, SUCCESS)}"
            fs.put_file(str(local / SUCCESS), join(path, SUCCESS))  # last: the prefix is complete from here on
        else:
            step = f"upload of {local} -> {tmp}"
            fs.makedirs(fs._parent(path), exist_ok=True)
            fs.put_file(str(local), tmp)
            step = f"moving {tmp} -> {url}"
            fs.mv(tmp, path)
    except StorageError:
        raise
    except Exception as e:
        if _store_failure(e):
            raise _transfer_error(step, "", url, e, f"{url} is not complete (no {SUCCESS} / fingerprint)") from e
        raise
    finally:
        _active_uploads.discard(tmp)
    log.info("published %s -> %s", local, url)


@contextlib.contextmanager
def local_lock(local: Path) -> Iterator[None]:
    """An exclusive lock on ``local``'s working copy (a ``.<name>.lock`` file beside it), held while it is checked and
    downloaded: two worker processes that need the same input download it once, and never replace a copy the other
    is reading."""
    import fcntl

    local.parent.mkdir(parents=True, exist_ok=True)
    with open(local.with_name(f".{local.name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch(url: str, local: Path) -> None:
    """Download the remote artifact ``url`` into ``local`` (atomically: a temporary sibling renamed into place).

    Raises:
        FileNotFoundError: ``url`` does not exist.
    """
    import shutil

    from glc.io import atomic_path

    fs, path = filesystem(url)
    with transfer("listing", url, url, "the local copy is unchanged"):
        if not fs.exists(path):
            raise FileNotFoundError(f"{url}: not found; the task that builds it must run first")
        is_dir, names = (True, sorted(fs.find(path))) if fs.isdir(path) else (False, [])
    if is_dir:
        with atomic_path(local) as tmp:
            tmp.mkdir(parents=True)
            for rel in names:
                sub = rel[len(path.rstrip("/")) + 1 :]
                target = tmp / sub
                target.parent.mkdir(parents=True, exist_ok=True)
                _download(fs, rel, target, url)
            if local.exists():
                shutil.rmtree(local) if local.is_dir() else local.unlink()
    else:
        with atomic_path(local) as tmp:
            _download(fs, path, tmp, url)
    log.info("fetched %s -> %s", url, local)


def _download(fs: Any, obj: str, target: Path, url: str) -> None:
    """``fs.get_file(obj, target)``; a failure after the client's retries is a :class:`TransferError` naming it."""
    with transfer(
        "download of", f"{obj} -> {target}", url, "the local copy is unchanged (the partial file is removed)"
    ):
        fs.get_file(obj, str(target))


def _remote_mtime_ns(info: dict[str, Any]) -> int | None:
    """The modification time of a listed object in ns (``mtime``, ``updated``, ``LastModified`` or ``created``), or
    None when the backend gives none."""
    import datetime as dt

    for key in ("mtime", "updated", "LastModified", "last_modified", "created"):
        v = info.get(key)
        if v is None:
            continue
        if isinstance(v, (int, float)):
            return int(round(float(v) * 1e9))
        if isinstance(v, dt.datetime):
            return int(round(v.timestamp() * 1e9))
        try:
            return int(round(dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp() * 1e9))
        except ValueError:
            continue
    return None


def mirror(url: str, local: Path, progress_every: int = 1000) -> Path:
    """Mirror the data root ``url`` into ``local`` (kept files of equal size are not downloaded again); the mirror's
    ``_SUCCESS`` is written last, so an interrupted mirror is resumed, never used. Returns ``local``.

    Raises:
        StorageError: the scheme's package is missing or the root cannot be listed (names the scheme).
        FileNotFoundError: nothing at ``url``.
    """
    from glc.io import atomic_file

    if (local / SUCCESS).is_file():
        return local
    fs, path = filesystem(url)
    try:
        files = fs.find(path, detail=True)
    except FileNotFoundError:
        files = {}
    except Exception as e:
        if is_transient(e):
            raise _transfer_error("listing", url, url, e, "nothing was mirrored yet") from e
        raise StorageError(
            f"data-root {url}: cannot list it ({type(e).__name__}: {e}); {_credentials_hint(url)}"
        ) from e
    if not files:
        raise FileNotFoundError(f"data-root {url}: no files there; check the URL")
    base = path.rstrip("/")
    got = 0
    for i, (name, info) in enumerate(sorted(files.items()), 1):
        rel = name[len(base) + 1 :]
        if rel == SUCCESS:
            continue
        target = local / rel
        mtime_ns = _remote_mtime_ns(info)
        if target.is_file():
            st = target.stat()
            if st.st_size == int(info.get("size") or -1) and (mtime_ns is None or st.st_mtime_ns == mtime_ns):
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            _download(fs, name, tmp, url)
        except TransferError:
            tmp.unlink(missing_ok=True)
            raise
        if mtime_ns is not None:  # the remote object's time: input fingerprints agree on every machine
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, target)
        got += 1
        if i % progress_every == 0:
            log.info("mirroring %s: %d/%d files", url, i, len(files))
    with atomic_file(local / SUCCESS) as fh:
        fh.write(f"mirror of {url}: {len(files)} files ({got} downloaded now)\n")
    log.info("mirrored %s -> %s (%d files, %d downloaded)", url, local, len(files), got)
    return local
