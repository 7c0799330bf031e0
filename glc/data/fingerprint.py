"""Fingerprints of raw inputs: what a task's output was built from, so a changed input reruns what depends on it.

* a **file** (metadata and environmental CSVs): its size, modification time and a content hash (BLAKE2b of the whole
  file up to :data:`FULL_HASH_BYTES`, beyond that of its first, middle and last :data:`SAMPLE_BYTES`). Content
  hashes are cached by ``(path, size, mtime)``, so an unchanged file is read once per process;
* a **folder** of large binaries (patch JPEGs, ``.pt`` cubes): the sorted list of its files' relative paths, sizes
  and modification times (no content read), cached for :data:`TREE_TTL_S` seconds so that scheduling a DAG walks
  each folder once;
* a missing path: the marker ``"missing"`` (a task whose input appears later reruns).

The Luigi tasks record the combined fingerprint of their raw inputs and of their dependencies' fingerprints beside
their output (:class:`glc.tasks.base.GlcTask`), and count as complete only when it matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["FULL_HASH_BYTES", "combine", "file_fingerprint", "path_fingerprint", "tree_fingerprint"]

#: Files up to this size are hashed whole; larger ones are sampled (first / middle / last SAMPLE_BYTES) + size + mtime.
FULL_HASH_BYTES = 256 * 2**20
SAMPLE_BYTES = 4 * 2**20
#: Seconds a folder's fingerprint is reused within one process.
TREE_TTL_S = 60.0
_tree_cache: dict[str, tuple[float, str]] = {}


@lru_cache(maxsize=4096)
def _content_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if size <= FULL_HASH_BYTES:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            for off in (0, size // 2, max(0, size - SAMPLE_BYTES)):
                fh.seek(off)
                h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def file_fingerprint(path: str | Path) -> str:
    """``size:mtime_ns:content hash`` of a file (``"missing"`` if absent)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{_content_hash(str(path), st.st_size, st.st_mtime_ns)}"


def tree_fingerprint(path: str | Path) -> str:
    """Hash of the sorted ``(relative path, size, mtime_ns)`` of every file below a folder (``"missing"`` if absent)."""
    key = str(Path(path).resolve())
    now = time.monotonic()
    hit = _tree_cache.get(key)
    if hit is not None and now - hit[0] < TREE_TTL_S:
        return hit[1]
    if not os.path.isdir(key):
        return "missing"
    entries = []
    for dirpath, dirnames, filenames in os.walk(key):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            entries.append((os.path.relpath(p, key), st.st_size, st.st_mtime_ns))
    fp = hashlib.blake2b(json.dumps(entries).encode(), digest_size=16).hexdigest() + f":{len(entries)}"
    _tree_cache[key] = (now, fp)
    return fp


def path_fingerprint(path: str | Path) -> str:
    """:func:`file_fingerprint` of a file, :func:`tree_fingerprint` of a folder, ``"missing"`` otherwise."""
    return tree_fingerprint(path) if os.path.isdir(path) else file_fingerprint(path)


def combine(parts: Iterable[Any]) -> str:
    """One short hash of JSON-able parts (order matters)."""
    return hashlib.blake2b(json.dumps(list(parts), sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def clear_caches() -> None:
    """Forget cached folder fingerprints (tests that change a folder within :data:`TREE_TTL_S`)."""
    _tree_cache.clear()
