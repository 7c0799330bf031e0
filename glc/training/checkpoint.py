"""Atomic checkpoint files: a crash during a save never leaves a half-written ``*.ckpt``.

Lightning's own ``TorchCheckpointIO`` writes through an fsspec transaction whose atomicity depends on the version
(a known Lightning limitation). :class:`AtomicCheckpointIO` makes the guarantee explicit for local paths:

1. serialise into a temporary file in the **same folder** (``.<name>.<random>.tmp`` - hidden, and never matching
   ``*.ckpt``), flush and ``fsync`` it;
2. ``os.replace`` it onto the final path (atomic on POSIX and Windows within one filesystem);
3. ``fsync`` the folder so the rename itself survives a power loss (best effort).

On an exception the temporary file is removed and the previous file at the final path (e.g. the last good
``last.ckpt``) is untouched. After a hard kill (SIGKILL, OOM) only a ``.*.tmp`` file may remain; nothing that
globs ``*.ckpt`` picks it up. Remote (fsspec URL) paths fall back to Lightning's implementation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

__all__ = ["TMP_SUFFIX", "AtomicCheckpointIO", "atomic_torch_save", "last_checkpoint"]

log = logging.getLogger(__name__)

#: Suffix of in-progress checkpoint files (anything but ``.ckpt``).
TMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (no-op where directories cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)`` through a same-folder temporary file and ``os.replace``.

    Args:
        obj: anything ``torch.save`` accepts.
        path: final file path; its parent folders are created.

    Returns:
        The final path.

    Raises:
        Exception: whatever ``torch.save`` or the filesystem raised; the temporary file is removed first and the
            previous content of ``path`` (if any) is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=TMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)
    return final


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose ``save_checkpoint`` is atomic for local files (see the module docstring).

    Use as ``Trainer(plugins=[AtomicCheckpointIO()])``; loading and removal are Lightning's.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically.

        Args:
            checkpoint: the state dict Lightning dumps.
            path: target file.
            storage_options: not supported (must be None).

        Raises:
            TypeError: ``storage_options`` was given.
        """
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO.save_checkpoint got "
                f"storage_options={storage_options!r}; it takes none (local files only)"
            )
        fs = get_filesystem(path)
        if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            log.debug("non-local checkpoint path %s: using Lightning's fsspec transaction", path)
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, os.fspath(path).removeprefix("file://"))


def last_checkpoint(dirpath: str | os.PathLike[str], **trigger: Any) -> ModelCheckpoint:
    """A callback that rewrites ``dirpath/last.ckpt`` (what a resume reads) at every epoch end, or with ``trigger``
    (``train_time_interval`` / ``every_n_train_steps``) mid-epoch instead: a monitor-less ``ModelCheckpoint`` named
    "last". Lightning 2.6's ``save_last=True`` writes ``last.ckpt`` only in steps where a top-k file was written, so an
    epoch without improvement would leave a stale one (a resume would replay epochs)."""
    return ModelCheckpoint(
        dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False, **trigger
    )
