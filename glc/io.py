"""Atomic writes: every artifact glc produces appears complete or not at all.

Files are written to a temporary sibling and renamed into place (``os.replace`` is atomic on one filesystem).
Directory artifacts (parquet written by Spark or pyarrow) are built in a temporary sibling directory, completed
with a ``_SUCCESS`` flag, and renamed into place; the flag is the only thing a Luigi task's ``output()`` returns,
so a directory without it is never mistaken for done. A crash (even SIGKILL) leaves only ``*.glc-tmp-*`` debris,
which :func:`remove_stale_temps` deletes (counting what it removed) at the start of the next run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TMP_MARK = ".glc-tmp-"
SUCCESS = "_SUCCESS"


class DiskFullError(OSError):
    """An artifact write ran out of disk space; the message names the artifact, the space it had used and the space
    left, and what to do. The temporary it was written into is removed, so nothing partial is left."""


def _disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or an exception it was raised from, or a JVM error's text) is ENOSPC / EDQUOT."""
    import errno

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(cur)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _mb(n: float) -> str:
    """``n`` bytes for a person: KB below 1 MB, MB below 1 GB, else GB."""
    for unit, size in (("GB", 2**30), ("MB", 2**20)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 2**10:,.0f} KB"


def disk_full_error(final: Path, tmp: Path, e: BaseException) -> DiskFullError:
    """The :class:`DiskFullError` for writing ``final`` through ``tmp`` (measured before ``tmp`` is removed)."""
    written = _size(tmp)
    usage = shutil.disk_usage(final.parent)
    return DiskFullError(
        f"{final}: no space left on the disk while writing it ({type(e).__name__}). It had written "
        f"{_mb(written)} when the disk filled; {_mb(usage.free)} of {_mb(usage.total)} is free on the filesystem of "
        f"{final.parent}, so it needs more than {_mb(written + usage.free)} there in all. Free space there, or put "
        f"the out-root (--out-root) or the cache (GLC_CACHE) on a larger disk, then rerun: the partial write was "
        f"removed, and the artifacts already complete are kept."
    )


def _raise_if_disk_full(e: BaseException, final: Path, tmp: Path) -> None:
    """Raise the :class:`DiskFullError` of ``e`` when it is a full disk (called before ``tmp`` is removed, so the
    space it took can be measured); otherwise return and let the caller re-raise ``e``."""
    if _disk_full(e) and not isinstance(e, DiskFullError):
        raise disk_full_error(final, tmp, e) from e


def tmp_sibling(path: str | Path) -> Path:
    """A fresh temporary path next to ``path`` (same folder, so the final rename is atomic)."""
    p = Path(path)
    return p.with_name(f"{p.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", **open_kw: Any) -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(final)
    try:
        with open(tmp, mode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except Exception as e:
        _raise_if_disk_full(e, final, tmp)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it (a file written by a library) onto ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write of {final}: the writer produced nothing at {tmp}")
        os.replace(tmp, final)
    except Exception as e:
        _raise_if_disk_full(e, final, tmp)
        raise
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path, summary: dict[str, Any] | None = None) -> Iterator[Path]:
    """Yield a temporary directory; on success write ``_SUCCESS`` (JSON ``summary``) last and rename it to ``path``.

    An existing ``path`` without ``_SUCCESS`` (a leftover of an older, non-atomic writer) is replaced; an existing
    complete ``path`` is replaced too (the caller decided to rebuild it).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
        info = dict(summary or {})
        write_json(tmp / SUCCESS, {"written_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}, atomic=False)
        _swap_dir_into_place(tmp, final)
    except Exception as e:
        _raise_if_disk_full(e, final, tmp)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_dir_into_place(tmp: Path, final: Path, attempts: int = 20) -> None:
    """Rename the finished directory ``tmp`` onto ``final``, moving an existing ``final`` aside first.

    Two processes may finish the same artifact at once (e.g. two ``--local-scheduler --no-lock`` runs on one
    out-root): a rename onto a non-empty directory fails, and the other side may move ``final`` away between our
    check and our rename; both are retried, so each writer installs a complete directory and the last one stays.
    """
    import errno

    for _ in range(attempts):
        try:
            os.replace(tmp, final)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                raise
        old = tmp_sibling(final)
        try:
            os.replace(final, old)
        except FileNotFoundError:
            continue  # the other writer moved it away first: try our rename again
        shutil.rmtree(old, ignore_errors=True)
    raise OSError(f"could not move {tmp} onto {final} after {attempts} attempts (other writers keep replacing it)")


def is_complete(path: str | Path) -> bool:
    """True when a directory artifact carries its ``_SUCCESS`` flag."""
    return (Path(path) / SUCCESS).exists()


def write_json(path: str | Path, obj: Any, atomic: bool = True) -> None:
    """Write ``obj`` as pretty, key-sorted JSON (atomically by default)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    if atomic:
        with atomic_file(path) as fh:
            fh.write(text)
    else:
        Path(path).write_text(text)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def check_writable(root: str | Path, what: str = "out-root") -> Path:
    """Create ``root`` if needed and prove it is writable (a probe file written and removed), before any work.

    Raises:
        PermissionError: naming ``root`` and what to do, when nothing can be written there.
    """
    r = Path(root)
    try:
        r.mkdir(parents=True, exist_ok=True)
        probe = tmp_sibling(r / ".write-probe")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(
            f"{what} {r} is not writable ({e.strerror or e}); choose a writable --out-root (or fix its permissions) "
            "before running: no work was started"
        ) from None
    return r


def remove_stale_temps(root: str | Path) -> int:
    """Delete ``*.glc-tmp-*`` debris left below ``root`` by crashed writers; return how many were removed.

    The writer's pid is part of every temporary name; entries whose writer is still running are left alone, so a
    concurrent writer's work in progress is never deleted. A writer that is a zombie (killed but not yet reaped) or
    gone counts as dead: its debris is removed at any later run.
    """
    root = Path(root)
    if not root.exists():
        return 0
    removed = 0
    for p in sorted(root.rglob(f"*{TMP_MARK}*")):
        if not p.exists():
            continue
        pid = _pid_of(p.name)
        if pid is not None and _pid_alive(pid):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d stale temporary artifact(s) left by crashed writers under %s", removed, root)
    return removed


def _pid_of(name: str) -> int | None:
    try:
        return int(name.split(TMP_MARK, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs: a zombie (killed, exited, not yet reaped by its parent) or dead process
    is not — its temporary artifacts will never be finished."""
    import psutil

    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
