"""The Lightning module shared by the multi-label species trainers.

:class:`MultiLabelModule` wraps any plain ``nn.Module`` that maps a batch dict (see ``glc.loaders``) to logits
``[B, C]`` and any loss ``loss(logits, target) -> scalar``. It owns the optimiser (AdamW, optionally a cosine
schedule) and the per-epoch validation metrics; it never opens files (the data module does).

Logged keys:

* ``train/loss`` (every step) and ``train/loss_epoch`` (epoch mean).
* ``val/loss`` (epoch mean, weighted by batch size).
* ``val/sample_f1``: the competition metric on the **top-``val_k``** classes of every validation survey, averaged
  over all validation surveys of the epoch (sums are accumulated, not batch means). It equals
  ``glc.metrics.sample_f1(true_sets, top_k_sets)``; since ``val_k >= 1`` a prediction is never empty, so the
  0/0 case of ``glc.metrics`` (empty truth *and* empty prediction) cannot arise and an empty truth scores 0.
* ``val/f1_torchmetrics``: torchmetrics ``MultilabelF1Score(threshold=0.5, average="micro")`` on the sigmoid
  probabilities (a threshold-based companion, pooled over all (survey, class) pairs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MultilabelF1Score

__all__ = ["MultiLabelModule", "topk_sample_f1"]

Batch = Mapping[str, torch.Tensor]


def topk_sample_f1(scores: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample F1 of the top-``k`` predicted classes against a multi-hot target.

    ``F1_i = 2 |P_i & T_i| / (|P_i| + |T_i|)`` with ``P_i`` the ``k`` highest-scoring columns of row ``i`` and
    ``T_i = {j : target[i, j] > 0.5}``. ``|P_i| = min(k, C) >= 1``, so the denominator is never zero.

    Args:
        scores: ``[B, C]`` logits or probabilities (only the order within a row matters).
        target: ``[B, C]`` multi-hot 0/1 tensor.
        k: number of classes predicted per sample, ``>= 1``.

    Returns:
        float32 tensor ``[B]`` with values in [0, 1].

    Raises:
        ValueError: shapes differ or are not 2-D, or ``k < 1``.
    """
    if scores.ndim != 2 or scores.shape != target.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and target {tuple(target.shape)} must both be [batch, num_classes]"
        )
    if int(k) < 1:
        raise ValueError(f"k={k!r} must be >= 1 (classes predicted per sample)")
    k = min(int(k), scores.shape[1])
    idx = scores.topk(k, dim=1).indices
    positive = target > 0.5
    hits = positive.gather(1, idx).sum(dim=1, dtype=torch.float32)
    n_true = positive.sum(dim=1, dtype=torch.float32)
    return 2.0 * hits / (n_true + float(k))


#: Optimisers by ``[train] optimizer``: ``(parameters, lr, weight_decay) -> torch optimiser``.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda params, lr, wd, fused=None: torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=fused),
    "sgd": lambda params, lr, wd, fused=None: torch.optim.SGD(
        params, lr=lr, weight_decay=wd, momentum=0.9, nesterov=True, fused=fused
    ),
}
#: ``[train] compile`` modes (``"off"``: the net runs eagerly).
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def compile_net(net: nn.Module, mode: str, backend: str = "inductor") -> nn.Module:
    """``net`` compiled in place with ``torch.compile``: its ``__call__`` and, when it has a ``forward_prepared``
    (which mixup calls), a compiled copy of it as ``net.compiled_forward_prepared``. ``net.forward`` and
    ``net.forward_prepared`` stay eager (what a batch kept off the compiled graphs runs: ``compile_short_batches``).
    In place, so the state-dict keys, and with them the checkpoints, are those of the eager net.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"[train] compile = {mode!r}: expected one of {COMPILE_MODES}")
    if mode == "off":
        return net
    kw: dict[str, Any] = {"backend": backend}
    if backend == "inductor":
        kw["mode"] = mode
    net.compile(**kw)
    prepared = getattr(net, "forward_prepared", None)
    if prepared is not None:
        net.compiled_forward_prepared = torch.compile(prepared, **kw)
    return net


def mark_batch_dynamic(batch: Mapping[str, Any]) -> None:
    """Mark dim 0 of every tensor of ``batch`` as possibly dynamic for ``torch.compile``
    (``torch._dynamo.maybe_mark_dynamic``): the compiled net then keeps one graph for every batch size instead of
    compiling again for each new one. Sizes 0 and 1 are still specialised by dynamo."""
    import torch._dynamo

    for v in batch.values():
        if isinstance(v, torch.Tensor) and v.ndim >= 1:
            torch._dynamo.maybe_mark_dynamic(v, 0)


#: ``[train] compile_short_batches``: what a compiled net does with a batch of another size than ``batch_size`` (each
#: loader worker's last batch of an epoch, a split's tail). ``"eager"``: that batch runs the eager net (same weights,
#: same maths), so the compiled graphs keep one static shape (the cheapest compile, and what CUDA graphs need);
#: ``"dynamic"``: the batch dimension is marked dynamic (:func:`mark_batch_dynamic`), one symbolic-shape graph for
#: every size. On an H100 the paper fusion's symbolic-shape compile of the full world's table had not finished its
#: first epoch and a half after 7 minutes, where the static one compiles in about 100 s.
COMPILE_SHORT_BATCHES = ("eager", "dynamic")


def _rows(batch: Mapping[str, Any]) -> int | None:
    """Dim 0 of the batch's first tensor (None: no tensor)."""
    for v in batch.values():
        if isinstance(v, torch.Tensor) and v.ndim >= 1:
            return int(v.shape[0])
    return None


class MultiLabelModule(pl.LightningModule):
    """Multi-label training/validation/prediction around an injected network and loss.

    Args:
        net: ``nn.Module`` with ``forward(batch: dict[str, Tensor]) -> logits [B, C]``.
        loss: callable ``loss(logits [B, C], target [B, C]) -> scalar`` (an ``nn.Module`` is saved with the weights).
        lr: AdamW learning rate (> 0).
        weight_decay: AdamW decoupled weight decay (>= 0).
        val_k: number of top classes per survey used by ``val/sample_f1`` (>= 1).
        num_classes: ``C``, the number of output columns (checked against the logits).
        cosine: when True, the learning rate follows a cosine schedule from ``lr`` down to ``lr * min_lr_ratio``
            over ``trainer.max_epochs`` epochs (stepped once per epoch, so it works with loaders of unknown length).
        min_lr_ratio: final learning rate of the cosine schedule as a fraction of ``lr`` (in [0, 1]).
        optimizer: a key of :data:`OPTIMIZERS`.
        step_epochs, step_gamma: step decay of the learning rate (``step_epochs = 0``: off).
        mixup_alpha: mixup in training (:mod:`glc.training.mixup`; 0 = off): every input and the target are mixed
            with one ``lambda ~ Beta(alpha, alpha)`` and one permutation per step. A net with ``prepare(batch)`` /
            ``forward_prepared(inputs)`` is mixed on its prepared float inputs; otherwise the batch's input columns
            are mixed as they are (integer columns are refused).
        channels_last: the net's 4-D weights, and every floating 4-D tensor of a batch (of a net's prepared
            inputs, on the mixup path) as the net gets it, in channels-last memory order.
        compile_mode, compile_backend: :func:`compile_net` (``"off"``: eager).
        compile_short_batches: with a compiled net, what a batch of another size than ``batch_size`` does (a key of
            :data:`COMPILE_SHORT_BATCHES`: run eagerly, or one dynamic-shape graph for every size).
        batch_size: the rows of a full batch (the compiled net's shape with ``compile_short_batches = "eager"``;
            0: every batch is compiled).
        fused_optimizer: the optimiser's fused implementation (``fused=True``).
        finite_check_every: the loss is checked for NaN/inf every step (1, the default) or, to spare the GPU a sync
            per step, recorded on the device and checked every this many steps, before a checkpoint and at the end of
            each epoch (see :meth:`_checked_loss`).

    Raises:
        ValueError: a hyper-parameter is out of range.
        TypeError: ``net`` is not an ``nn.Module`` or ``loss`` is not callable.

    Batches are dicts with at least ``target`` (float ``[B, C]``, training/validation) and ``surveyId`` (int64
    ``[B]``, prediction); every other key is for the net.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        val_k: int = 20,
        num_classes: int | None = None,
        cosine: bool = False,
        min_lr_ratio: float = 0.0,
        optimizer: str = "adamw",
        step_epochs: int = 0,
        step_gamma: float = 0.1,
        mixup_alpha: float = 0.0,
        channels_last: bool = False,
        compile_mode: str = "off",
        compile_backend: str = "inductor",
        fused_optimizer: bool = False,
        compile_short_batches: str = "eager",
        batch_size: int = 0,
        finite_check_every: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module mapping a batch dict to logits, got {type(net).__name__}")
        if not callable(loss):
            raise TypeError(f"loss must be callable as loss(logits, target), got {type(loss).__name__}")
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f"num_classes={num_classes!r} must be a positive int (meta.json 'num_classes')")
        if not (math.isfinite(float(lr)) and float(lr) > 0):
            raise ValueError(f"lr={lr!r} must be a finite number > 0")
        if not (math.isfinite(float(weight_decay)) and float(weight_decay) >= 0):
            raise ValueError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
        if int(val_k) < 1:
            raise ValueError(f"val_k={val_k!r} must be >= 1 (species predicted per survey for val/sample_f1)")
        if not 0.0 <= float(min_lr_ratio) <= 1.0:
            raise ValueError(f"min_lr_ratio={min_lr_ratio!r} must be in [0, 1]")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not one of {tuple(OPTIMIZERS)}")
        if int(step_epochs) < 0 or (int(step_epochs) and cosine):
            raise ValueError(f"step_epochs={step_epochs!r} must be >= 0 and cannot be combined with cosine=True")
        if not (math.isfinite(float(mixup_alpha)) and float(mixup_alpha) >= 0):
            raise ValueError(f"mixup_alpha={mixup_alpha!r} must be a finite number >= 0 (0 = no mixup)")
        if compile_short_batches not in COMPILE_SHORT_BATCHES:
            raise ValueError(f"compile_short_batches={compile_short_batches!r} is not one of {COMPILE_SHORT_BATCHES}")
        if int(finite_check_every) < 1:
            raise ValueError(f"finite_check_every={finite_check_every!r} must be >= 1 (1: every step)")
        if int(batch_size) < 0:
            raise ValueError(f"batch_size={batch_size!r} must be >= 0 (0: no full batch size known)")
        if bool(channels_last):
            net = net.to(memory_format=torch.channels_last)
        self.net = compile_net(net, str(compile_mode), str(compile_backend))
        self.loss = loss
        self.num_classes = int(num_classes)
        self.save_hyperparameters(ignore=["net", "loss", "objective"])  # modules: saved as weights
        self.val_sample_f1 = MeanMetric(nan_strategy="error")
        self.val_f1_tm = MultilabelF1Score(num_labels=self.num_classes, threshold=0.5, average="micro")
        self._nonfinite: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _net_input(self, batch: Batch) -> Batch:
        """The batch as the net takes it: with ``channels_last`` its floating 4-D tensors in channels-last order;
        with a compiled net and ``compile_short_batches = "dynamic"`` its batch dimension marked dynamic."""
        if self.hparams.get("channels_last"):
            batch = {
                k: v.contiguous(memory_format=torch.channels_last)
                if isinstance(v, torch.Tensor) and v.ndim == 4 and v.is_floating_point()
                else v
                for k, v in batch.items()
            }
        if self.hparams.get("compile_mode", "off") != "off" and self._short_batches() == "dynamic":
            mark_batch_dynamic(batch)
        return batch

    def _short_batches(self) -> str:
        return str(self.hparams.get("compile_short_batches", "eager"))

    def _eager(self, inputs: Batch) -> bool:
        """Whether this batch bypasses the compiled graphs: a compiled net, ``compile_short_batches = "eager"`` and a
        batch size other than ``batch_size``."""
        full = int(self.hparams.get("batch_size", 0))
        return (
            self.hparams.get("compile_mode", "off") != "off"
            and self._short_batches() == "eager"
            and full > 0
            and _rows(inputs) not in (None, full)
        )

    def _run_net(self, inputs: Batch, prepared: bool = False) -> torch.Tensor:
        """The net on ``inputs`` (a batch, or with ``prepared`` its ``prepare``d inputs): compiled, or eagerly for a
        batch :meth:`_eager` keeps off the compiled graphs."""
        inputs = self._net_input(inputs)
        if self._eager(inputs):
            return (self.net.forward_prepared if prepared else self.net.forward)(inputs)
        if prepared:
            return getattr(self.net, "compiled_forward_prepared", self.net.forward_prepared)(inputs)
        return self.net(inputs)

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits ``[B, C]`` of the wrapped net."""
        return self._run_net(batch)

    def _logits(self, batch: Batch) -> torch.Tensor:
        return self._checked_logits(self(batch))

    def _checked_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"net returned logits of shape {tuple(logits.shape)}; expected [batch, {self.num_classes}] "
                "(num_classes from meta.json); check the net's output layer"
            )
        return logits

    def _target(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        if "target" not in batch:
            raise KeyError(
                f"batch has no 'target' (keys: {sorted(batch)}); build the data module with with_target=True"
            )
        target = batch["target"]
        if target.shape != logits.shape:
            raise ValueError(
                f"batch 'target' has shape {tuple(target.shape)} but the logits "
                f"have {tuple(logits.shape)}; both must be [batch, num_classes]"
            )
        return target.to(logits.dtype)

    def _checked_loss(self, logits: torch.Tensor, target: torch.Tensor, stage: str, batch_idx: int) -> torch.Tensor:
        """The loss, refused when it is not finite. With ``finite_check_every = 1`` every step is checked at once
        (a device sync per step); with ``n > 1`` the first non-finite step of the stage is recorded on the device and
        looked at every ``n`` steps, before a checkpoint is written and at the end of the epoch, so the GPU is not
        stalled each step and the error still names the batch."""
        loss = self.loss(logits, target)
        every = int(self.hparams.get("finite_check_every", 1))
        if every <= 1:
            if not bool(torch.isfinite(loss)):
                self._raise_nonfinite(stage, float(loss.detach()), self.current_epoch, batch_idx)
            return loss
        value = loss.detach().float()
        first, first_loss = self._nonfinite.get(stage) or (
            torch.full((), -1, dtype=torch.int64, device=value.device),
            torch.zeros((), device=value.device),
        )
        new = ~torch.isfinite(value) & (first < 0)
        self._nonfinite[stage] = (torch.where(new, batch_idx, first), torch.where(new, value, first_loss))
        if (batch_idx + 1) % every == 0:
            self._check_nonfinite(stage)
        return loss

    def _check_nonfinite(self, stage: str) -> None:
        """Raise for the first non-finite ``stage`` loss recorded since the last check (one device sync)."""
        recorded = self._nonfinite.pop(stage, None)
        if recorded is not None and int(recorded[0]) >= 0:
            self._raise_nonfinite(stage, float(recorded[1]), self.current_epoch, int(recorded[0]))

    @staticmethod
    def _raise_nonfinite(stage: str, value: float, epoch: int, batch_idx: int) -> None:
        raise FloatingPointError(
            f"{stage}/loss is {value} at epoch {epoch}, batch {batch_idx}; "
            "check the inputs for NaN/inf, lower the learning rate or the loss' extreme settings"
        )

    def on_train_epoch_end(self) -> None:
        """Look at the deferred finiteness record (``finite_check_every``) before the epoch counts as done."""
        self._check_nonfinite("train")

    def on_validation_epoch_start(self) -> None:
        """A non-finite training step before this validation is reported as that step (its NaN weights would
        otherwise first show as a validation loss)."""
        self._check_nonfinite("train")

    def on_validation_epoch_end(self) -> None:
        """Look at the deferred finiteness record (``finite_check_every``) before the epoch's metrics are used."""
        self._check_nonfinite("val")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Never write a checkpoint after a non-finite step (``finite_check_every > 1``)."""
        self._check_nonfinite("train")

    # ------------------------------------------------------------------------------------------- steps
    def _mixed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and target of a mixup step (see :mod:`glc.training.mixup`)."""
        from glc.training.mixup import mixup, mixup_draw

        if "target" not in batch:
            raise KeyError(
                f"batch has no 'target' (keys: {sorted(batch)}); build the data module with with_target=True"
            )
        target = batch["target"].float()
        lam, perm = mixup_draw(float(self.hparams.mixup_alpha), target.shape[0], target.device)
        prepare = getattr(self.net, "prepare", None)
        if prepare is not None:
            inputs, mixed_target = mixup(prepare(batch), target, lam, perm)
            logits = self._run_net(inputs, prepared=True)  # after mixup: its tensors are new ones
        else:
            keys = getattr(self.net, "input_columns", None) or [k for k in batch if k not in ("target", "surveyId")]
            inputs, mixed_target = mixup({k: batch[k] for k in keys}, target, lam, perm)
            logits = self._run_net({**batch, **inputs})
        logits = self._checked_logits(logits)
        return logits, mixed_target.to(logits.dtype)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Loss of one batch (mixed with mixup when ``mixup_alpha > 0``); logs ``train/loss`` (step) and
        ``train/loss_epoch``."""
        if float(self.hparams.get("mixup_alpha", 0.0)) > 0:
            logits, target = self._mixed(batch)
        else:
            logits = self._logits(batch)
            target = self._target(batch, logits)
        loss = self._checked_loss(logits, target, "train", batch_idx)
        bs = logits.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """Accumulates ``val/loss``, ``val/sample_f1`` (top-``val_k``) and ``val/f1_torchmetrics``."""
        logits = self._logits(batch)
        target = self._target(batch, logits)
        loss = self._checked_loss(logits, target, "val", batch_idx)
        bs = logits.shape[0]
        probs = torch.sigmoid(logits.float())
        self.val_sample_f1.update(topk_sample_f1(logits.detach(), target, self.hparams.val_k))
        self.val_f1_tm.update(probs, (target > 0.5).long())
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("val/sample_f1", self.val_sample_f1, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/f1_torchmetrics", self.val_f1_tm, on_step=False, on_epoch=True)

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """``{"surveyId": int64 [B], "probs": float32 [B, C]}`` (sigmoid of the logits)."""
        if "surveyId" not in batch:
            raise KeyError(f"batch has no 'surveyId' (keys: {sorted(batch)}); the loader must pass surveyId through")
        return {"surveyId": batch["surveyId"], "probs": torch.sigmoid(self._logits(batch).float())}

    # ------------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        """The optimiser (:data:`OPTIMIZERS`: AdamW, or SGD with Nesterov momentum 0.9) over all trainable parameters,
        plus a per-epoch cosine schedule (``cosine=True``) or a step decay (``lr *= step_gamma`` every
        ``step_epochs``)."""
        hp = self.hparams
        params = (p for p in self.parameters() if p.requires_grad)
        fused = True if hp.get("fused_optimizer") else None
        opt = OPTIMIZERS[hp.get("optimizer", "adamw")](params, hp.lr, hp.weight_decay, fused)
        if int(hp.get("step_epochs", 0)):
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(hp.step_epochs), gamma=float(hp.step_gamma))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "frequency": 1}}
        if not hp.cosine:
            return opt
        max_epochs = getattr(self.trainer, "max_epochs", None) if self._trainer is not None else None
        if max_epochs is None or max_epochs < 1:
            raise ValueError(
                f"cosine=True needs a Trainer with max_epochs >= 1 (got {max_epochs!r}); set max_epochs or cosine=False"
            )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs, eta_min=hp.lr * hp.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "frequency": 1}}
