"""Train a :class:`~glc.training.module.MultiLabelModule` reproducibly, resumably and with W&B run files.

:func:`fit_model` is the one trainer entry point used by every model family; :class:`FitSettings` says how it
trains (built from an experiment's resolved config by :meth:`FitSettings.from_config`):

* ``seed_everything(seed, workers=True)``, ``Trainer(deterministic=True)``, one device (GPU when present with
  ``accelerator="auto"``, else CPU).
* ``ModelCheckpoint`` (monitor ``val/sample_f1``, mode max, top 1) and ``EarlyStopping`` on the same metric, plus
  ``last.ckpt`` rewritten at **every** epoch end (a second, monitor-less ``ModelCheckpoint``: Lightning 2.6's
  ``save_last=True`` skips epochs without a new best), all under ``out_dir/checkpoints/`` and written atomically
  (:class:`AtomicCheckpointIO`).
* Resume: when ``out_dir/checkpoints/last.ckpt`` exists and ``resume=True`` training continues from it (weights,
  optimiser, scheduler, loop counters, callback states). A run that already stopped early or ran its ``max_epochs`` is
  not trained again (its best checkpoint is found by name when the run folder has moved).
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
  coordinate noise) is made a function of ``(seed, epoch, batch)`` by :class:`~glc.training.callbacks.EpochSeed`,
  which reseeds torch/numpy/random at every epoch start and before every batch. A ``DataLoader(shuffle=True)``
  without a generator draws from the global RNG before that hook and is therefore not resume-exact (a warning says
  so). Worker processes (``num_workers > 0``) are seeded by Lightning from the global seed.
* Loggers: a ``CSVLogger`` always keeps the metrics locally (``out_dir/csv/version_N/metrics.csv``, one version per
  fit attempt), plus a ``WandbLogger`` from :func:`~glc.training.tracking.make_logger` unless W&B is disabled.

W&B: :mod:`glc.training.tracking` (modes, the logger, reports, artifacts); the callbacks:
:mod:`glc.training.callbacks`.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from glc.training.callbacks import TIMING_FILE, EpochSeed, EpochTimer
from glc.training.checkpoint import AtomicCheckpointIO, last_checkpoint
from glc.training.tracking import finish_logger, make_logger, resolve_wandb_mode, wandb_settings

__all__ = ["MONITOR", "FitSettings", "fit_model", "local_checkpoint", "predict_probs"]

log = logging.getLogger(__name__)

#: The metric every checkpoint/early-stopping decision is made on.
MONITOR = "val/sample_f1"


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


def local_checkpoint(path: str | os.PathLike[str] | None, ckpt_dir: str | os.PathLike[str]) -> Path | None:
    """A checkpoint path an earlier run recorded, as a file of this run folder: ``ckpt_dir/<its name>`` when that
    exists (the folder may have moved or been copied since), else the recorded path when it exists, else None."""
    if not path:
        return None
    here = Path(ckpt_dir) / Path(path).name
    if here.is_file():
        return here
    return Path(path) if Path(path).is_file() else None


def _epochs_processed(ckpt: Mapping[str, Any]) -> int:
    """Epochs the checkpointed run had finished training: Lightning's own count
    (``fit_loop.epoch_progress.current.processed``, the one it compares with ``max_epochs``). A mid-epoch save counts
    only the epochs before the one it was saved in; a checkpoint without loop state counts 0."""
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return 0


def _load_for_resume(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:
        raise RuntimeError(
            f"{path}: cannot read the checkpoint to resume from ({type(e).__name__}: {e}); "
            "delete it to restart training from scratch, or pass resume=False with a new out_dir"
        ) from e


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_model` trains, checked when it is made.

    Attributes:
        max_epochs: epochs at most (>= 1).
        patience: epochs without improvement of ``monitor`` before stopping (>= 1).
        seed: global seed (``seed_everything(seed, workers=True)``; per-epoch and per-batch reseeding, see
            :class:`~glc.training.callbacks.EpochSeed`).
        monitor: the validation metric of early stopping and the best checkpoint (the model kind's, see
            :mod:`glc.models.registry`; ``val/sample_f1`` for multi-label models).
        mode: ``"max"`` or ``"min"`` (whether a larger ``monitor`` is better).
        accelerator: Lightning accelerator ("auto" uses a GPU when present, "cpu" forces CPU).
        devices: processes of a DDP run (this process is one of them, started by ``torchrun``: see
            :mod:`glc.training.ddp`); 1 = a single process.
        strategy: Lightning strategy (``"auto"``, or ``"ddp"``, which ``devices > 1`` implies).
        precision: Lightning precision (``"32-true"``; ``"bf16-mixed"`` on a GPU).
        deterministic: passed to ``Trainer`` (``"warn"`` tolerates ops without a deterministic kernel).
        resume: continue from ``out_dir/checkpoints/last.ckpt`` when it exists.
        progress: show the progress bar and the model summary.
        log_every_n_steps: step-metric logging interval.
        checkpoint_minutes: also rewrite ``last.ckpt`` after the training batch that ends each such interval of
            training time (mid-epoch; see the module docstring); None or 0 = at epoch ends only.
        checkpoint_every_n_steps: the same every n optimiser steps instead (tests; exclusive with
            ``checkpoint_minutes``).
        wandb_cfg: the ``[wandb]`` table (see :func:`~glc.training.tracking.make_logger`); None = offline defaults.
        run_name: W&B display name.
        config: hyper-parameters / experiment config logged to W&B.

    Raises:
        ValueError: a value out of range, both mid-epoch triggers, or a bad ``wandb_cfg``.
    """

    max_epochs: int
    patience: int
    seed: int
    monitor: str = MONITOR
    mode: str = "max"
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: bool | str = True
    resume: bool = True
    progress: bool = True
    log_every_n_steps: int = 20
    checkpoint_minutes: float | None = None
    checkpoint_every_n_steps: int | None = None
    wandb_cfg: Mapping[str, Any] | None = None
    run_name: str | None = None
    config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if int(self.max_epochs) < 1:
            raise ValueError(f"max_epochs={self.max_epochs!r} must be >= 1")
        if int(self.patience) < 1:
            raise ValueError(
                f"patience={self.patience!r} must be >= 1 (epochs without val/sample_f1 improvement before stopping)"
            )
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode={self.mode!r} must be 'max' or 'min'")
        if int(self.log_every_n_steps) < 1:
            raise ValueError(f"log_every_n_steps={self.log_every_n_steps!r} must be >= 1")
        _mid_epoch_trigger(self.checkpoint_minutes, self.checkpoint_every_n_steps)
        resolve_wandb_mode(self.wandb_cfg)  # validate before any work

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        *,
        monitor: str = MONITOR,
        mode: str = "max",
        wandb: bool = True,
        run_name: str | None = None,
        **overrides: Any,
    ) -> FitSettings:
        """The settings of a resolved experiment config (:func:`glc.config.resolve`): its ``[train]`` epochs,
        patience, precision, strategy and mid-epoch checkpoint interval, its seed, its W&B settings
        (:func:`~glc.training.tracking.wandb_settings`; ``wandb=False`` disables W&B) and the config itself to log;
        ``overrides`` set any other field (``accelerator``, ``devices``, ``deterministic``, ``progress``, ...)."""
        t = cfg["train"]
        fields: dict[str, Any] = {
            "max_epochs": int(t["max_epochs"]),
            "patience": int(t["patience"]),
            "seed": int(cfg["seed"]),
            "monitor": monitor,
            "mode": mode,
            "precision": str(t.get("precision", "32-true")),
            "strategy": str(t.get("strategy", "auto")),
            "wandb_cfg": wandb_settings(cfg, wandb),
            "run_name": run_name,
            "config": dict(cfg),
        }
        if t.get("checkpoint_minutes") is not None:
            fields["checkpoint_minutes"] = float(t["checkpoint_minutes"])
        return cls(**{**fields, **overrides})


def fit_model(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    out_dir: str | os.PathLike[str],
    settings: FitSettings,
    wandb_logger: WandbLogger | None = None,
    callbacks: Sequence[Callback] = (),
) -> Path:
    """Fit ``module`` on ``datamodule`` as ``settings`` say, with early stopping on ``settings.monitor``, and return
    the best checkpoint.

    Args:
        module: the LightningModule (normally :class:`~glc.training.module.MultiLabelModule`); it must log
            ``settings.monitor`` in validation.
        datamodule: provides ``train_dataloader`` and ``val_dataloader`` (called again at every epoch).
        out_dir: run folder: ``checkpoints/`` (``last.ckpt`` + the best ``epochNNN-f1X.XXXX.ckpt``), ``csv/`` and
            ``wandb/``.
        settings: epochs, patience, seed, device, precision, checkpoints and W&B (:class:`FitSettings`).
        wandb_logger: an existing logger from :func:`~glc.training.tracking.make_logger` to use instead of creating
            one from ``settings.wandb_cfg``; it is **not** finished here (the caller can still log a report and then
            finish it).
        callbacks: more Lightning callbacks, after the fit's own (e.g.
            :class:`~glc.training.compile_cache.CompileCacheSaver`).

    Returns:
        Path of the best checkpoint (best ``monitor``).

    Raises:
        FileExistsError: ``resume=False`` but ``out_dir/checkpoints`` already holds checkpoints.
        RuntimeError: ``last.ckpt`` cannot be read, or training produced no best checkpoint.
    """
    s = settings
    monitor, mode = s.monitor, s.mode
    mid_epoch = _mid_epoch_trigger(s.checkpoint_minutes, s.checkpoint_every_n_steps)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    existing = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    ckpt_path: Path | None = None
    if existing and not s.resume:
        raise FileExistsError(
            f"{ckpt_dir} already holds {len(existing)} checkpoint(s) ({existing[0].name}, ...); pass resume=True to "
            "continue that run or choose a new out_dir"
        )
    if s.resume and last.is_file():
        ck = _load_for_resume(last)
        es, mc = _callback_state(ck, "EarlyStopping", monitor), _callback_state(ck, "ModelCheckpoint", monitor)
        best = local_checkpoint(mc.get("best_model_path"), ckpt_dir)
        done = _epochs_processed(ck) >= int(s.max_epochs)
        if (int(es.get("stopped_epoch", 0) or 0) > 0 or done) and best is not None:
            log.info(
                "%s: training already finished (%s); best checkpoint %s",
                last,
                f"stopped early at epoch {es['stopped_epoch']}" if not done else f"{s.max_epochs} epochs",
                best,
            )
            return best
        ckpt_path = last
        log.info("resuming from %s (epoch %s, step %s)", last, ck.get("epoch"), ck.get("global_step"))
        del ck
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(s.seed), workers=True, verbose=False)

    own_wandb = wandb_logger is None
    wlogger = make_logger(s.wandb_cfg, out, s.run_name, s.config) if own_wandb else wandb_logger
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
        # A "last" checkpoint rewritten at every epoch end (:func:`last_checkpoint`); it runs after ckpt_cb, so it
        # holds ckpt_cb's best path. The same file again mid-epoch with a time or step trigger.
        last_cb = last_checkpoint(ckpt_dir)
        mid_cbs = [last_checkpoint(ckpt_dir, **mid_epoch)] if mid_epoch else []
        callbacks: list[Callback] = [
            ckpt_cb,
            last_cb,
            *mid_cbs,
            EarlyStopping(monitor=monitor, mode=mode, patience=int(s.patience), check_finite=True),
            EpochSeed(int(s.seed)),
            LearningRateMonitor(logging_interval="epoch"),
            EpochTimer(out / TIMING_FILE),
            *callbacks,
        ]
        trainer = pl.Trainer(
            accelerator=s.accelerator,
            devices=int(s.devices),
            strategy="ddp" if int(s.devices) > 1 else s.strategy,
            deterministic=s.deterministic,
            precision=s.precision,
            max_epochs=int(s.max_epochs),
            callbacks=callbacks,
            logger=loggers,
            default_root_dir=out,
            log_every_n_steps=int(s.log_every_n_steps),
            enable_progress_bar=bool(s.progress),
            enable_model_summary=bool(s.progress),
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
    # a run resumed in a moved folder: Lightning reloads the best path as it was written (the old folder's)
    best_path = local_checkpoint(ckpt_cb.best_model_path, ckpt_dir)
    if best_path is None:
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
                        f"batch {i}: probs of shape {p.shape} for {sid.shape[0]} surveyIds; predict_step must return "
                        "[B, C] probs for B ids"
                    )
                if not np.isfinite(p).all():
                    raise ValueError(
                        f"batch {i}: NaN/inf probabilities (surveyIds {sid[:5].tolist()}...); check the inputs and "
                        "the checkpoint"
                    )
                ids.append(sid)
                probs.append(p)
    finally:
        module.to(prev_dev).train(was_training)
    if not ids:
        raise ValueError("predict_probs: the dataloader yielded no batches; check the split is not empty")
    return np.concatenate(ids), np.concatenate(probs, axis=0)
