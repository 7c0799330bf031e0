"""``torch.compile``'s work, carried from one machine to the next.

A compiled net's first epoch is mostly compilation: on an H100 the paper-width fusion spends ~290 s compiling on a
fresh machine and ~13 s on one whose Inductor cache (``TORCHINDUCTOR_CACHE_DIR``, ``/tmp`` by default) is warm.
Machines that are lent for minutes (preemptible VMs, a GPU lease) always start cold. PyTorch serialises what a
process compiled into one blob (``torch.compiler.save_cache_artifacts``: Inductor's FX graphs and kernels,
AOTAutograd's graphs, autotuning results) and loads such a blob into the caches of another process
(``load_cache_artifacts``): its graphs are then cache hits, not compiled again, where the torch version, the device
and the graphs match (anything else just compiles, as without the blob).

This module writes the blob as ``compile-cache-<j>.bin`` shards of at most ``shard_bytes`` (small enough for
whatever carries files between machines) and ``compile-cache.json`` last (count, bytes, SHA-256, what it holds):
a folder with that file holds a whole blob. :class:`CompileCacheSaver` writes it from inside a fit, after the first
training epoch (when the validation and training graphs exist; a machine lost later keeps them). Written here
because no library does it: the two PyTorch calls are the whole of the caching, this is only the file layout around
them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback

from glc.io import atomic_file, write_json

__all__ = ["INDEX", "SHARD_BYTES", "CompileCacheSaver", "load_compile_cache", "save_compile_cache"]

log = logging.getLogger(__name__)

#: The index written after the shards: its presence means the blob is whole.
INDEX = "compile-cache.json"
#: Default shard size (45 MiB: two fit what one device call carries).
SHARD_BYTES = 45 * 2**20


def _shard(j: int) -> str:
    return f"compile-cache-{j:03d}.bin"


def save_compile_cache(folder: str | Path, shard_bytes: int = SHARD_BYTES) -> dict[str, Any] | None:
    """Write what this process compiled so far as ``folder/compile-cache-*.bin`` + ``compile-cache.json`` (see the
    module docstring), replacing an earlier blob there. Returns the index, or None when nothing was compiled (no
    file is written then).

    Raises:
        ValueError: ``shard_bytes`` < 1.
    """
    import torch

    if shard_bytes < 1:
        raise ValueError(f"shard_bytes = {shard_bytes}: expected a positive number of bytes")
    saved = torch.compiler.save_cache_artifacts()
    if saved is None or not saved[0]:
        log.info("compile cache: nothing compiled in this process, nothing written to %s", folder)
        return None
    blob, info = saved
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX).unlink(missing_ok=True)  # the old blob stops being whole before its shards change
    count = max(1, -(-len(blob) // shard_bytes))
    for j in range(count):
        with atomic_file(folder / _shard(j), "wb") as f:
            f.write(blob[j * shard_bytes : (j + 1) * shard_bytes])
    for stale in sorted(folder.glob("compile-cache-*.bin"))[count:]:
        stale.unlink()
    index = {
        "count": count,
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "artifacts": {kind: len(keys) for kind, keys in getattr(info, "artifacts", {}).items()},
    }
    write_json(folder / INDEX, index)
    log.info("compile cache: %.1f MiB in %d shard(s) written to %s (%s)", len(blob) / 2**20, count, folder,
             index["artifacts"])  # fmt: skip
    return index


def load_compile_cache(folders: Sequence[str | Path]) -> dict[str, Any] | None:
    """Load the blob of the first of ``folders`` holding a whole one (its ``compile-cache.json``; the shards may
    lie in any of ``folders``, as when two transfers carried them) into this process's compile caches, before
    anything is compiled. Returns its index, or None when no folder holds one.

    Raises:
        FileNotFoundError: a shard the index names is in none of ``folders``.
        ValueError: the shards do not make the blob the index describes (size or SHA-256): a shard from another
            blob or cut short; ship the folder again.
    """
    import torch

    index_path = next((Path(f) / INDEX for f in folders if (Path(f) / INDEX).is_file()), None)
    if index_path is None:
        log.info("compile cache: none in %s; compiling from scratch", [str(f) for f in folders])
        return None
    index = json.loads(index_path.read_text())
    parts = []
    for j in range(int(index["count"])):
        found = next((Path(f) / _shard(j) for f in folders if (Path(f) / _shard(j)).is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{index_path} names {index['count']} shards but {_shard(j)} is in none of "
                f"{[str(f) for f in folders]}: carry every compile-cache-*.bin with it"
            )
        parts.append(found.read_bytes())
    blob = b"".join(parts)
    sha = hashlib.sha256(blob).hexdigest()
    if len(blob) != int(index["bytes"]) or sha != index["sha256"]:
        raise ValueError(
            f"{index_path}: its shards make {len(blob)} bytes (SHA-256 {sha[:16]}), "
            f"not the {index['bytes']} bytes (SHA-256 {index['sha256'][:16]}) it describes: a shard is from "
            "another blob or cut short; copy the folder again"
        )
    torch.compiler.load_cache_artifacts(blob)
    log.info("compile cache: loaded %.1f MiB from %s (written by torch %s on %s)", len(blob) / 2**20,
             index_path.parent, index.get("torch"), index.get("device"))  # fmt: skip
    return index


class CompileCacheSaver(Callback):
    """Writes :func:`save_compile_cache` to ``folder`` once, at the end of the first training epoch of a fit (by then
    the sanity check and the epoch have compiled the validation and training graphs; a run stopped later keeps
    them), or at the end of a fit that ended no epoch. Only on global rank 0. ``saved``: the index written."""

    def __init__(self, folder: str | Path, shard_bytes: int = SHARD_BYTES) -> None:
        self.folder = Path(folder)
        self.shard_bytes = int(shard_bytes)
        self.saved: dict[str, Any] | None = None
        self._done = False

    def _save(self, trainer: Any) -> None:
        if self._done:
            return
        self._done = True
        if trainer.global_rank == 0:
            self.saved = save_compile_cache(self.folder, self.shard_bytes)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._save(trainer)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._save(trainer)
