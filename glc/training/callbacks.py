"""The Lightning callbacks every glc fit uses beside checkpointing and early stopping.

* :class:`EpochSeed`: model-side randomness (dropout, training-time noise) of batch ``b`` of epoch ``e`` as a
  function of ``(seed, e, b)`` only, so a resumed run ends with the weights of an uninterrupted one;
* :class:`EpochTimer`: one JSON line per training epoch (seconds, rows, peak GPU memory) in ``timing.jsonl``, kept
  across resumes; :func:`throughput` summarises it.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_warn

__all__ = ["TIMING_FILE", "EpochSeed", "EpochTimer", "throughput"]


class EpochSeed(Callback):
    """Reseed torch, numpy and ``random`` from ``(seed, epoch)`` at every epoch start and before every batch.

    Makes model-side randomness (dropout, training-time noise) of batch ``b`` of epoch ``e`` a function of
    ``(seed, e, b)`` only, whether or not the run was resumed, so an interrupted + resumed run ends with the same
    weights as an uninterrupted one. (Reseeding once per epoch is not enough: when Lightning resumes it creates the
    DataLoader iterator a second time after the epoch-start hooks, and that draws from the global RNG.) The seeds
    are words of ``numpy.random.SeedSequence([seed, epoch, batch_idx + 1])`` (``0`` instead of ``batch_idx + 1`` at
    the epoch start); reseeding costs a few microseconds per batch.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = int(seed)
        self._warned = False

    @staticmethod
    def derived_seed(seed: int, epoch: int, slot: int = 0) -> int:
        """The 32-bit seed of ``slot`` (0 = epoch start, ``b + 1`` = before batch ``b``) of ``epoch``."""
        return int(np.random.SeedSequence([int(seed), int(epoch), int(slot)]).generate_state(1)[0])

    @staticmethod
    def _reseed(s: int) -> None:
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)  # also seeds every CUDA device

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Reseed for the epoch-start hooks; warn once if the train loader shuffles with the global RNG."""
        self._reseed(self.derived_seed(self.seed, trainer.current_epoch))
        if not self._warned:
            self._warned = True
            sampler = getattr(trainer.train_dataloader, "sampler", None)
            if isinstance(sampler, torch.utils.data.RandomSampler) and sampler.generator is None:
                rank_zero_warn(
                    "the train DataLoader shuffles with the global RNG (shuffle=True without generator=); a resumed "
                    "run will not repeat the uninterrupted run's batches. Pass a torch.Generator seeded by "
                    "(seed, epoch)."
                )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Reseed for this batch's training step."""
        self._reseed(self.derived_seed(self.seed, trainer.current_epoch, batch_idx + 1))


#: The per-epoch timing file of a fit (one JSON line per finished training epoch), in its run folder.
TIMING_FILE = "timing.jsonl"


class EpochTimer(Callback):
    """Appends ``{"epoch", "seconds", "samples", "gpu_peak_mb", "wall_start", "wall_end"}`` to a JSON-lines file at
    every training epoch end.

    ``seconds`` is the wall time of the epoch's training steps (the clock stops while Lightning validates, which it
    does inside the training epoch), ``samples`` the rows they saw, ``gpu_peak_mb`` the peak CUDA memory allocated so
    far (None on CPU), ``wall_start`` / ``wall_end`` the epoch's first step's start and last step's end (Unix time:
    the window in which a GPU-utilisation sampler's readings belong to training). The file is appended to across
    resumed runs (the last record of an epoch wins in :func:`throughput`), so the throughput of a finished run is
    still known. The epoch's running totals are part of every checkpoint (``state_dict``), so an epoch resumed from a
    mid-epoch checkpoint is recorded whole: the seconds and rows before the interruption plus those after the resume.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self._t0 = 0.0
        self._n = 0
        self._epoch = -1
        self._carried: dict[str, Any] | None = None  # a mid-epoch checkpoint's totals, applied at on_train_start
        self._paused: float | None = None  # when the validation inside the epoch began
        self._wall = [0.0, 0.0]  # the epoch's first step's start, its last step's end (time.time())

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock."""
        self._t0, self._n, self._epoch = time.perf_counter(), 0, int(trainer.current_epoch)
        self._wall = [time.time(), time.time()]

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop the clock while the training epoch validates (not in the sanity check before it)."""
        if not trainer.sanity_checking and self._epoch == int(trainer.current_epoch):
            self._paused = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restart the clock: the validation's time is not the epoch's."""
        if self._paused is not None:
            self._t0 += time.perf_counter() - self._paused
            self._paused = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Resuming inside an epoch (Lightning calls no epoch-start hook then): go on from the checkpoint's totals."""
        carried, self._carried = self._carried, None
        if carried is not None and int(carried["epoch"]) == int(trainer.current_epoch):
            self._t0 = time.perf_counter() - float(carried["seconds"])
            self._n, self._epoch = int(carried["samples"]), int(carried["epoch"])

    def state_dict(self) -> dict[str, Any]:
        """The current epoch's totals so far (saved in checkpoints)."""
        now = self._paused if self._paused is not None else time.perf_counter()
        return {
            "epoch": self._epoch,
            "seconds": now - self._t0 if self._epoch >= 0 else 0.0,
            "samples": self._n,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep a checkpoint's totals for :meth:`on_train_start`."""
        self._carried = dict(state_dict) if {"epoch", "seconds", "samples"} <= set(state_dict) else None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count the batch's rows."""
        first = next(iter(batch.values())) if isinstance(batch, Mapping) and batch else None
        self._n += int(len(first)) if first is not None else 0
        self._wall[1] = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Append the epoch's record (rank 0 of a DDP run, counting every rank's rows)."""
        if not trainer.is_global_zero:
            return
        gpu = None
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
            gpu = round(torch.cuda.max_memory_allocated(pl_module.device) / 2**20, 1)
        now = self._paused if self._paused is not None else time.perf_counter()
        rec = {
            "epoch": int(trainer.current_epoch),
            "seconds": round(now - self._t0, 4),
            "samples": self._n * int(trainer.world_size),
            "gpu_peak_mb": gpu,
            "wall_start": round(self._wall[0], 3),
            "wall_end": round(self._wall[1], 3),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def throughput(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Training samples/s over every recorded epoch of a timing file (resumed runs included; the last record of an
    epoch wins), the mean epoch time, and the peak GPU memory when one was used. ``train_samples_per_s_steady`` leaves
    the first epoch out (warm-up, ``torch.compile``); None with a single epoch. ``epoch_windows``: each epoch's
    ``[wall_start, wall_end]`` (Unix seconds; records written before they were kept have none)."""
    rows: dict[int, dict[str, Any]] = {}
    p = Path(path)
    if p.is_file():
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[int(r["epoch"])] = r
    secs = sum(float(r["seconds"]) for r in rows.values())
    n = sum(int(r["samples"]) for r in rows.values())
    peaks = [r["gpu_peak_mb"] for r in rows.values() if r.get("gpu_peak_mb") is not None]
    later = [rows[e] for e in sorted(rows)[1:]]
    later_s = sum(float(r["seconds"]) for r in later)
    return {
        "epochs_trained": len(rows),
        "train_seconds": round(secs, 2),
        "train_samples": int(n),
        "train_samples_per_s": round(n / secs, 1) if secs > 0 else None,
        "epoch_seconds": round(secs / len(rows), 2) if rows else None,
        "epoch_seconds_each": [round(float(rows[e]["seconds"]), 2) for e in sorted(rows)],
        "epoch_windows": [[rows[e]["wall_start"], rows[e]["wall_end"]] for e in sorted(rows) if "wall_end" in rows[e]],
        "train_samples_per_s_steady": round(sum(int(r["samples"]) for r in later) / later_s, 1)
        if later_s > 0
        else None,
        "gpu_peak_mb": max(peaks) if peaks else None,
    }
