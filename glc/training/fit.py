"""Train a :class:`~glc.training.module.MultiLabelModule` reproducibly, resumably and with W&B run files.

:func:`fit_model` is the one trainer entry point used by every model family:

* ``seed_everything(seed, workers=True)``, ``Trainer(deterministic=True)``, one device (GPU when present with
  ``accelerator="auto"``, else CPU).
* ``ModelCheckpoint`` (monitor ``val/sample_f1``, mode max, top 1) and ``EarlyStopping`` on the same metric, plus
  ``last.ckpt`` rewritten at **every** epoch end (a second, monitor-less ``ModelCheckpoint``: Lightning 2.6's
  ``save_last=True`` skips epochs without a new best), all under ``out_dir/checkpoints/`` and written atomically
  (:class:`AtomicCheckpointIO`).
* Resume: when ``out_dir/checkpoints/last.ckpt`` exists and ``resume=True`` training continues from it (weights,
  optimiser, scheduler, loop counters, callback states). A run that already stopped early is not trained again.
* Mid-epoch checkpoints: with ``checkpoint_minutes`` (``[train] checkpoint_minutes``, 30 by default in experiments)
  ``last.ckpt`` is also rewritten after the training batch that ends each such interval, so a run killed inside a
  long epoch (a step timeout, a lost machine) loses at most that much work. Resumed from it, the epoch goes on after
  the batches it had finished, exactly as the uninterrupted run (the train loader is stateful, see
  :class:`glc.loaders.readers.EpochDataLoader`; a loader that is not gets Lightning's warning and restarts the
  epoch's order).
* **Exact resume.** An interrupted run resumed from ``last.ckpt`` ends with the same weights as an uninterrupted run
  (tested on CPU), provided the data module shuffles with its *own* generator seeded by ``(seed, epoch)`` and reads
  ``self.trainer.current_epoch`` in ``train_dataloader()``: :func:`fit_model` sets
  ``reload_dataloaders_every_n_epochs=1`` so that method is called at every epoch. Model-side randomness (dropout,
  coordinate noise) is made a function of ``(seed, epoch, batch)`` by :class:`EpochSeed`, which reseeds
  torch/numpy/random at every epoch start and before every batch. A ``DataLoader(shuffle=True)`` without a generator draws from the global RNG before that
  hook and is therefore not resume-exact (a warning says so). Worker processes (``num_workers > 0``) are seeded by
  Lightning from the global seed.
* Loggers: a ``CSVLogger`` always keeps the metrics locally (``out_dir/csv/version_N/metrics.csv``, one version per
  fit attempt), plus a ``WandbLogger`` from :func:`make_logger` unless W&B is disabled.

W&B modes (``wandb_cfg["mode"]``): ``"offline"`` (default; run files in ``out_dir/wandb/offline-run-*``, upload later
with ``wandb sync``), ``"online"`` (needs ``wandb login``) or ``"disabled"`` (no W&B at all). The environment variable
``WANDB_MODE=offline|disabled`` can only *lower* the mode (a safety switch for tests and CI); it never turns a run
online. The run id is kept in ``out_dir/wandb/glc-run-id`` so a resumed fit continues the same W&B run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import secrets
import string
import time
import warnings
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_warn

from glc.training.checkpoint import AtomicCheckpointIO

__all__ = [
    "MONITOR",
    "TIMING_FILE",
    "EpochTimer",
    "throughput",
    "WANDB_KEYS",
    "EpochSeed",
    "finish_logger",
    "fit_model",
    "log_report",
    "log_artifact",
    "make_logger",
    "wandb_settings",
    "predict_probs",
    "resolve_wandb_mode",
]

log = logging.getLogger(__name__)

#: The metric every checkpoint/early-stopping decision is made on.
MONITOR = "val/sample_f1"
#: Keys accepted in ``wandb_cfg`` (the experiment's ``[wandb]`` table).
WANDB_KEYS = frozenset({"mode", "project", "entity", "group", "tags", "notes", "job_type"})
_MODES = ("online", "offline", "disabled")
_RUN_ID_FILE = "glc-run-id"


# ---------------------------------------------------------------------------------------------- W&B
def resolve_wandb_mode(wandb_cfg: Mapping[str, Any] | None) -> str:
    """The effective W&B mode: ``wandb_cfg["mode"]`` (default ``"offline"``), lowered by ``WANDB_MODE``.

    Raises:
        ValueError: an unknown key in ``wandb_cfg`` or an unknown mode.
    """
    cfg = dict(wandb_cfg or {})
    unknown = sorted(set(cfg) - WANDB_KEYS)
    if unknown:
        raise ValueError(f"wandb_cfg has unknown keys {unknown}; valid keys are {sorted(WANDB_KEYS)}")
    mode = str(cfg.get("mode", "offline")).strip().lower()
    if mode not in _MODES:
        raise ValueError(f"wandb_cfg['mode']={cfg.get('mode')!r} must be one of {list(_MODES)}")
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    env = "offline" if env == "dryrun" else env
    if env in _MODES and _MODES.index(env) > _MODES.index(mode):
        log.info("W&B mode %r lowered to %r by WANDB_MODE", mode, env)
        mode = env
    return mode


def _run_id(save_dir: Path) -> str:
    """The W&B run id stored under ``save_dir/wandb`` (created once, reused on resume)."""
    path = save_dir / "wandb" / _RUN_ID_FILE
    if path.is_file():
        rid = path.read_text().strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", rid):
            raise ValueError(f"{path}: holds {rid!r}, not a W&B run id; delete the file to start a new W&B run")
        return rid
    rid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's id alphabet
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(rid + "\n")
    os.replace(tmp, path)
    return rid


def wandb_settings(cfg: Mapping[str, Any], enabled: bool = True) -> dict[str, Any]:
    """The W&B settings of a resolved experiment config: runs are grouped **per experiment** (W&B group = the
    experiment name, so its training run, report and artifacts sit together), and the ``[wandb] group`` of the
    experiment file (its model family, e.g. ``tile_cnn``) becomes a tag, as filterable across experiments."""
    if not enabled:
        return {"mode": "disabled"}
    w = dict(cfg.get("wandb", {}))
    family = w.get("group")
    w["group"] = str(cfg.get("name") or family or "glc")
    w["tags"] = list(dict.fromkeys([*(w.get("tags") or []), *([family] if family else [])]))
    return w


def log_artifact(
    logger: Logger | None,
    name: str,
    kind: str,
    files: Mapping[str, str | os.PathLike[str]],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Log ``files`` (name in the artifact -> local path) as one W&B artifact of type ``kind`` on ``logger``'s run
    (offline runs keep it for ``wandb sync``). Missing files raise; a non-W&B logger or None does nothing."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    missing = [str(p) for p in files.values() if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"W&B artifact {name!r}: file(s) {missing} do not exist")
    art = wandb.Artifact(re.sub(r"[^A-Za-z0-9._-]+", "-", name), type=kind, metadata=_to_builtin(dict(metadata or {})))
    for arc, p in files.items():
        art.add_file(os.fspath(p), name=arc)
    logger.experiment.log_artifact(art)


def make_logger(
    wandb_cfg: Mapping[str, Any] | None,
    save_dir: str | os.PathLike[str],
    run_name: str | None,
    config: Mapping[str, Any] | None,
) -> WandbLogger | None:
    """A ``WandbLogger`` writing under ``save_dir/wandb/``, with ``config`` logged; None when W&B is disabled.

    Args:
        wandb_cfg: the experiment's ``[wandb]`` table: ``mode`` (offline | online | disabled, default offline),
            ``project`` (default "glc"), ``entity`` ("" = default), ``group``, ``tags``, ``notes``, ``job_type``.
            None means all defaults (offline).
        save_dir: run folder; W&B files go to ``save_dir/wandb/`` (offline runs: ``offline-run-*``).
        run_name: display name of the run.
        config: hyper-parameters / the experiment config, logged with ``logger.log_hyperparams``.

    Returns:
        The logger (its W&B run already started), or None for mode ``disabled``. Call :func:`finish_logger` when
        done (``fit_model`` does it for loggers it creates).

    Raises:
        ValueError: bad ``wandb_cfg`` (see :func:`resolve_wandb_mode`) or ``tags`` not a list of strings.
    """
    mode = resolve_wandb_mode(wandb_cfg)
    if mode == "disabled":
        return None
    cfg = dict(wandb_cfg or {})
    tags = cfg.get("tags") or []
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"wandb_cfg['tags']={tags!r} must be a list of strings")
    save = Path(save_dir)
    save.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        name=run_name,
        save_dir=os.fspath(save),
        project=str(cfg.get("project") or "glc"),
        entity=cfg.get("entity") or None,
        group=cfg.get("group") or None,
        tags=list(tags),
        notes=cfg.get("notes") or None,
        job_type=cfg.get("job_type") or None,
        mode=mode,
        id=_run_id(save),
        resume="allow",
        log_model=False,
    )
    if config:
        logger.log_hyperparams(dict(config))
    return logger


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def log_report(logger: Logger | Iterable[Logger] | None, report: Mapping[str, Any]) -> None:
    """Record a final report (benchmark scores, sizes, timings) in the run summary.

    For a ``WandbLogger`` every key of ``report`` goes into ``run.summary`` (nested mappings stay nested); for other
    loggers the numeric scalars are logged as metrics with ``/``-joined names. ``None`` does nothing.

    Raises:
        ValueError: a numeric report value is NaN or infinite (a silent NaN in a report hides a failure).
    """
    if logger is None:
        return
    loggers = [logger] if isinstance(logger, Logger) else list(logger)
    flat = _flatten(report)
    bad = [k for k, v in flat.items() if isinstance(v, (float, np.floating)) and not np.isfinite(v)]
    if bad:
        raise ValueError(f"report values {bad} are NaN or infinite; fix the computation instead of logging it")
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.summary.update(_to_builtin(dict(report)))
        else:
            nums = {
                k: float(v)
                for k, v in flat.items()
                if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            }
            if nums:
                lg.log_metrics(nums)
                lg.save()


def _to_builtin(v: Any) -> Any:
    """numpy scalars/arrays and Paths as JSON-able builtins (W&B summaries must be JSON)."""
    if isinstance(v, Mapping):
        return {str(k): _to_builtin(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_builtin(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


def finish_logger(logger: Logger | None) -> None:
    """Finish the W&B run of ``logger`` so its files are complete on return and the process does not wait at exit.

    ``run.finish()`` alone returns before wandb 0.31's background service has written the offline transaction log
    (``run-<id>.wandb`` can still hold only its 7-byte header), so when no other run is active the W&B service is
    shut down too (``wandb.teardown()``, ~10 ms; the next run starts a new service, ~0.5 s). Other loggers and None:
    nothing to do.
    """
    if not isinstance(logger, WandbLogger) or logger._experiment is None:
        return
    import wandb

    logger.experiment.finish()
    if wandb.run is None:
        wandb.teardown()


# ---------------------------------------------------------------------------------------------- seeding
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
                    "run will not repeat the uninterrupted run's batches. Pass a torch.Generator seeded by (seed, epoch)."
                )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Reseed for this batch's training step."""
        self._reseed(self.derived_seed(self.seed, trainer.current_epoch, batch_idx + 1))


# ---------------------------------------------------------------------------------------------- timing
#: The per-epoch timing file of a fit (one JSON line per finished training epoch), in its run folder.
TIMING_FILE = "timing.jsonl"


class EpochTimer(Callback):
    """Appends ``{"epoch", "seconds", "samples", "gpu_peak_mb"}`` to a JSON-lines file at every training epoch end.

    ``seconds`` is the wall time of the epoch's training steps (validation excluded), ``samples`` the rows they saw,
    ``gpu_peak_mb`` the peak CUDA memory allocated so far (None on CPU). The file is appended to across resumed runs
    (the last record of an epoch wins in :func:`throughput`), so the throughput of a finished run is still known. The
    epoch's running totals are part of every checkpoint (``state_dict``), so an epoch resumed from a mid-epoch
    checkpoint is recorded whole: the seconds and rows before the interruption plus those after the resume.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self._t0 = 0.0
        self._n = 0
        self._epoch = -1
        self._carried: dict[str, Any] | None = None  # a mid-epoch checkpoint's totals, applied at on_train_start

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock."""
        self._t0, self._n, self._epoch = time.perf_counter(), 0, int(trainer.current_epoch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Resuming inside an epoch (Lightning calls no epoch-start hook then): go on from the checkpoint's totals."""
        carried, self._carried = self._carried, None
        if carried is not None and int(carried["epoch"]) == int(trainer.current_epoch):
            self._t0 = time.perf_counter() - float(carried["seconds"])
            self._n, self._epoch = int(carried["samples"]), int(carried["epoch"])

    def state_dict(self) -> dict[str, Any]:
        """The current epoch's totals so far (saved in checkpoints)."""
        return {
            "epoch": self._epoch,
            "seconds": time.perf_counter() - self._t0 if self._epoch >= 0 else 0.0,
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

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Append the epoch's record (rank 0 of a DDP run, counting every rank's rows)."""
        if not trainer.is_global_zero:
            return
        gpu = None
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
            gpu = round(torch.cuda.max_memory_allocated(pl_module.device) / 2**20, 1)
        rec = {
            "epoch": int(trainer.current_epoch),
            "seconds": round(time.perf_counter() - self._t0, 4),
            "samples": self._n * int(trainer.world_size),
            "gpu_peak_mb": gpu,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def throughput(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Training samples/s over every recorded epoch of a timing file (resumed runs included; the last record of an
    epoch wins), the mean epoch time, and the peak GPU memory when one was used."""
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
    return {
        "epochs_trained": len(rows),
        "train_seconds": round(secs, 2),
        "train_samples": int(n),
        "train_samples_per_s": round(n / secs, 1) if secs > 0 else None,
        "epoch_seconds": round(secs / len(rows), 2) if rows else None,
        "gpu_peak_mb": max(peaks) if peaks else None,
    }


# ---------------------------------------------------------------------------------------------- fit
def _mid_epoch_trigger(minutes: float | None, steps: int | None) -> dict[str, Any]:
    """The ``ModelCheckpoint`` trigger of the mid-epoch ``last.ckpt`` ({} = none).

    Raises:
        ValueError: a negative interval, or both given.
    """
    if minutes is not None and float(minutes) < 0 or steps is not None and int(steps) < 1:
        raise ValueError(
            f"checkpoint_minutes={minutes!r} must be >= 0 (0 = off) and checkpoint_every_n_steps={steps!r} >= 1"
        )
    if minutes and steps:
        raise ValueError("pass checkpoint_minutes or checkpoint_every_n_steps, not both")
    if minutes:
        return {"train_time_interval": timedelta(minutes=float(minutes))}
    return {"every_n_train_steps": int(steps)} if steps else {}


def _callback_state(ckpt: Mapping[str, Any], prefix: str, monitor: str = MONITOR) -> dict[str, Any]:
    """State of the first callback of type ``prefix`` that monitors ``monitor`` ({} if none)."""
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).startswith(prefix) and f"'monitor': '{monitor}'" in str(key):
            return dict(state)
    return {}


def _load_for_resume(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:
        raise RuntimeError(
            f"{path}: cannot read the checkpoint to resume from ({type(e).__name__}: {e}); "
            "delete it to restart training from scratch, or pass resume=False with a new out_dir"
        ) from e


def fit_model(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    out_dir: str | os.PathLike[str],
    *,
    max_epochs: int,
    patience: int,
    seed: int,
    wandb_cfg: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    config: Mapping[str, Any] | None = None,
    resume: bool = True,
    accelerator: str = "auto",
    progress: bool = True,
    log_every_n_steps: int = 20,
    deterministic: bool | str = True,
    wandb_logger: WandbLogger | None = None,
    monitor: str = MONITOR,
    mode: str = "max",
    precision: str = "32-true",
    devices: int = 1,
    strategy: str = "auto",
    checkpoint_minutes: float | None = None,
    checkpoint_every_n_steps: int | None = None,
) -> Path:
    """Fit ``module`` on ``datamodule`` with early stopping on ``monitor`` and return the best checkpoint.

    Args:
        module: the LightningModule (normally :class:`~glc.training.module.MultiLabelModule`); it must log
            ``val/sample_f1`` in validation.
        datamodule: provides ``train_dataloader`` and ``val_dataloader`` (called again at every epoch).
        out_dir: run folder: ``checkpoints/`` (``last.ckpt`` + the best ``epochNNN-f1X.XXXX.ckpt``), ``csv/`` and
            ``wandb/``.
        max_epochs: epochs at most (>= 1).
        patience: epochs without improvement of ``val/sample_f1`` before stopping (>= 1).
        seed: global seed (``seed_everything(seed, workers=True)``; per-epoch and per-batch reseeding, see :class:`EpochSeed`).
        wandb_cfg: the ``[wandb]`` table (see :func:`make_logger`); None = offline defaults.
        run_name: W&B display name.
        config: hyper-parameters / experiment config logged to W&B.
        resume: continue from ``out_dir/checkpoints/last.ckpt`` when it exists.
        accelerator: Lightning accelerator ("auto" uses a GPU when present, "cpu" forces CPU).
        progress: show the progress bar and the model summary.
        log_every_n_steps: step-metric logging interval.
        deterministic: passed to ``Trainer`` (``"warn"`` tolerates ops without a deterministic kernel).
        wandb_logger: an existing logger from :func:`make_logger` to use instead of creating one from
            ``wandb_cfg``; it is **not** finished here (the caller can still :func:`log_report` and then
            :func:`finish_logger`).
        monitor: the validation metric of early stopping and the best checkpoint (the model kind's, see
            :mod:`glc.models.registry`; ``val/sample_f1`` for multi-label models).
        mode: ``"max"`` or ``"min"`` (whether a larger ``monitor`` is better).
        precision: Lightning precision (``"32-true"``; ``"bf16-mixed"`` on a GPU).
        devices: processes of a DDP run (this process is one of them, started by ``torchrun``: see
            :mod:`glc.training.ddp`); 1 = a single process.
        strategy: Lightning strategy (``"auto"``, or ``"ddp"``, which ``devices > 1`` implies).
        checkpoint_minutes: also rewrite ``last.ckpt`` after the training batch that ends each such interval of
            training time (mid-epoch; see the module docstring); None or 0 = at epoch ends only.
        checkpoint_every_n_steps: the same every n optimiser steps instead (tests; exclusive with
            ``checkpoint_minutes``).

    Returns:
        Path of the best checkpoint (best ``monitor``).

    Raises:
        ValueError: bad ``max_epochs``/``patience``/``wandb_cfg``.
        FileExistsError: ``resume=False`` but ``out_dir/checkpoints`` already holds checkpoints.
        RuntimeError: ``last.ckpt`` cannot be read, or training produced no best checkpoint.
    """
    if int(max_epochs) < 1:
        raise ValueError(f"max_epochs={max_epochs!r} must be >= 1")
    if int(patience) < 1:
        raise ValueError(
            f"patience={patience!r} must be >= 1 (epochs without val/sample_f1 improvement before stopping)"
        )
    if mode not in ("max", "min"):
        raise ValueError(f"mode={mode!r} must be 'max' or 'min'")
    if int(log_every_n_steps) < 1:
        raise ValueError(f"log_every_n_steps={log_every_n_steps!r} must be >= 1")
    mid_epoch = _mid_epoch_trigger(checkpoint_minutes, checkpoint_every_n_steps)
    resolve_wandb_mode(wandb_cfg)  # validate before any work
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    existing = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    ckpt_path: Path | None = None
    if existing and not resume:
        raise FileExistsError(
            f"{ckpt_dir} already holds {len(existing)} checkpoint(s) ({existing[0].name}, ...); pass resume=True to "
            "continue that run or choose a new out_dir"
        )
    if resume and last.is_file():
        ck = _load_for_resume(last)
        es, mc = _callback_state(ck, "EarlyStopping", monitor), _callback_state(ck, "ModelCheckpoint", monitor)
        best = Path(str(mc.get("best_model_path") or ""))
        if int(es.get("stopped_epoch", 0) or 0) > 0 and best.is_file():
            log.info(
                "%s: training already stopped early at epoch %s; best checkpoint %s", last, es["stopped_epoch"], best
            )
            return best
        ckpt_path = last
        log.info("resuming from %s (epoch %s, step %s)", last, ck.get("epoch"), ck.get("global_step"))
        del ck
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(seed), workers=True, verbose=False)

    own_wandb = wandb_logger is None
    wlogger = make_logger(wandb_cfg, out, run_name, config) if own_wandb else wandb_logger
    try:
        loggers: list[Logger] = [CSVLogger(out, name="csv")]
        if wlogger is not None:
            loggers.append(wlogger)
        ckpt_cb = ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="epoch{epoch:03d}-"
            + ("f1" if monitor == MONITOR else monitor.split("/")[-1])
            + "{"
            + monitor
            + ":.4f}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=False,
        )
        # Lightning 2.6 writes save_last=True's last.ckpt only in steps where a top-k file was written, so an epoch
        # without improvement would leave a stale last.ckpt (a resume would replay epochs). A monitor-less checkpoint
        # named "last" is rewritten at every epoch end instead; it runs after ckpt_cb, so it holds ckpt_cb's best path.
        last_cb = ModelCheckpoint(
            dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
        )
        # The same file again, mid-epoch (a checkpoint with a time or step trigger saves at no epoch end).
        mid_cbs = (
            [
                ModelCheckpoint(
                    dirpath=ckpt_dir,
                    filename="last",
                    monitor=None,
                    save_top_k=1,
                    enable_version_counter=False,
                    **mid_epoch,
                )
            ]
            if mid_epoch
            else []
        )
        callbacks: list[Callback] = [
            ckpt_cb,
            last_cb,
            *mid_cbs,
            EarlyStopping(monitor=monitor, mode=mode, patience=int(patience), check_finite=True),
            EpochSeed(int(seed)),
            LearningRateMonitor(logging_interval="epoch"),
            EpochTimer(out / TIMING_FILE),
        ]
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=int(devices),
            strategy="ddp" if int(devices) > 1 else strategy,
            deterministic=deterministic,
            precision=precision,
            max_epochs=int(max_epochs),
            callbacks=callbacks,
            logger=loggers,
            default_root_dir=out,
            log_every_n_steps=int(log_every_n_steps),
            enable_progress_bar=bool(progress),
            enable_model_summary=bool(progress),
            reload_dataloaders_every_n_epochs=1,
            plugins=[AtomicCheckpointIO()],
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            if ckpt_path is not None:  # expected when resuming: the folder holds the run's own checkpoints
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    finally:
        if own_wandb:
            finish_logger(wlogger)
    if trainer.interrupted:
        raise RuntimeError(
            f"training in {out} was interrupted at epoch {trainer.current_epoch}; rerun to resume from {last}"
        )
    best_path = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    if best_path is None or not best_path.is_file():
        raise RuntimeError(
            f"no best checkpoint in {ckpt_dir}: {monitor} was never logged (does the data module have a non-empty "
            f"val split and does the module log {monitor}?)"
        )
    log.info(
        "fit done in %.1f s: best %s = %s (%s)", time.perf_counter() - t0, monitor, ckpt_cb.best_model_score, best_path
    )
    return best_path


# ---------------------------------------------------------------------------------------------- predict
def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def predict_probs(
    module: pl.LightningModule, dataloader: Iterable[Mapping[str, Any]], device: str | torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid probabilities of every row of ``dataloader``, in loader order.

    A plain ``torch.inference_mode`` loop over ``module.predict_step`` (no Trainer: no loggers, callbacks or
    progress bars, and the order is exactly the loader's). The module is put in eval mode on ``device`` for the
    loop and returned to its previous device and train/eval mode afterwards.

    Args:
        module: a module whose ``predict_step(batch, i)`` returns ``{"surveyId", "probs"}``.
        dataloader: iterable of batch dicts (not shuffled, for a stable order).
        device: where to run; None = CUDA when available, else CPU.

    Returns:
        ``(surveyIds int64 [N], probs float32 [N, C])``.

    Raises:
        ValueError: the loader is empty, a batch's outputs disagree in length, or a probability is NaN/inf.
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    params = list(module.parameters())
    prev_dev = params[0].device if params else torch.device("cpu")
    was_training = module.training
    ids: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    module.to(dev).eval()
    try:
        with torch.inference_mode():
            for i, batch in enumerate(dataloader):
                pred = module.predict_step(_to_device(batch, dev), i)
                sid = pred["surveyId"].detach().to("cpu", torch.int64).numpy().reshape(-1)
                p = pred["probs"].detach().to("cpu", torch.float32).numpy()
                if p.ndim != 2 or p.shape[0] != sid.shape[0]:
                    raise ValueError(
                        f"batch {i}: probs of shape {p.shape} for {sid.shape[0]} surveyIds; predict_step must return [B, C] probs for B ids"
                    )
                if not np.isfinite(p).all():
                    raise ValueError(
                        f"batch {i}: NaN/inf probabilities (surveyIds {sid[:5].tolist()}...); check the inputs and the checkpoint"
                    )
                ids.append(sid)
                probs.append(p)
    finally:
        module.to(prev_dev).train(was_training)
    if not ids:
        raise ValueError("predict_probs: the dataloader yielded no batches; check the split is not empty")
    return np.concatenate(ids), np.concatenate(probs, axis=0)
