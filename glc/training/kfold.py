"""K-fold cross fusion (Tighnari, GLC24 3rd place): ``k`` models on the spatial folds of the training split, the
later folds fine-tuned from the first one's weights, their logits averaged.

``[train] kfold = k > 1``:

1. The training split of the model-input table (the training surveys outside the validation hold-out) is cut into
   ``k`` spatial folds of whole ``validation.block_km`` blocks, seeded by the experiment seed
   (:func:`glc.eval.split.training_folds` — the folds the out-of-fold graph features of the same table were built
   with, so no fold's GFV carries labels across the fold boundary the model validates on).
2. Fold 1 trains from the net's initial weights on folds ``2..k`` and stops early on fold 1 (``max_epochs``,
   ``patience``, ``lr``).
3. Folds ``f = 2..k`` start from fold 1's best weights (the paper's time saving) and fine-tune on the other folds,
   stopping early on fold ``f`` (at most ``kfold_epochs`` epochs, ``lr * kfold_lr_scale``).
4. The published model is a :class:`FoldEnsemble` of the ``k`` best checkpoints: its logits are the mean of the
   folds' logits (then the sigmoid), and it scores the validation hold-out and the test surveys like any model, so
   the decoder is still fitted on surveys no fold saw.

Each fold trains in ``<work>/fold<f>/`` (resumable like any fit: a rerun after a crash continues the fold it was in).
A finished fold leaves its summary in ``<work>/fold<f>/fold_summary.json`` (written atomically after its fit), and a
rerun takes a fold with that summary and its best checkpoint as done without entering it: no data module, net or
PO sites table is built for it (at full scale, loading a fold's PO sites alone takes minutes). The ensemble
checkpoint is written atomically to ``<work>/kfold/model.ckpt``.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = [
    "FOLD_SUMMARY",
    "FoldEnsemble",
    "ensemble_state",
    "finished_fold",
    "fold_assignment",
    "fold_config",
    "train_kfold",
]

#: A finished fold's summary (its ``train_one`` summary), in ``<work>/fold<f>/``.
FOLD_SUMMARY = "fold_summary.json"


class FoldEnsemble(nn.Module):
    """``k`` nets of one architecture; ``forward(batch)`` is the mean of their logits."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        if len(nets) < 2:
            raise ValueError(f"FoldEnsemble needs at least 2 fold nets, got {len(nets)}")
        self.nets = nn.ModuleList(nets)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Batch keys the fold nets read."""
        return tuple(getattr(self.nets[0], "input_columns", ()))

    @property
    def po_feature_dim(self) -> int | None:
        """The fold nets' PO feature width (:mod:`glc.training.po_pretrain`), so the ensemble's module has the
        folds' PO head; None where they have none."""
        return getattr(self.nets[0], "po_feature_dim", None)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Mean logits ``[B, C]`` over the folds."""
        return torch.stack([net(batch) for net in self.nets]).mean(dim=0)


def fold_assignment(inputs_dir: str | Path, cfg: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(surveyIds, fold ids)`` of the training split of a model-input table (see the module docstring)."""
    import pyarrow.parquet as pq

    from glc.eval.split import training_folds

    t = pq.read_table(Path(inputs_dir) / "train", columns=["surveyId", "x", "y"])
    ids = t.column("surveyId").to_numpy().astype(np.int64)
    k = int(cfg["train"]["kfold"])
    folds = training_folds(
        t.column("x").to_numpy(), t.column("y").to_numpy(), k, float(cfg["validation"]["block_km"]), int(cfg["seed"])
    )
    return ids, np.asarray(folds, np.int64)


def fold_config(cfg: Mapping[str, Any], f: int) -> dict[str, Any]:
    """The config of fold ``f`` (0-based): one net (``kfold = 1``); folds after the first fine-tune."""
    c = copy.deepcopy(dict(cfg))
    t = c["train"] = dict(c["train"])
    t["kfold"] = 1
    if f > 0:
        t["max_epochs"] = int(cfg["train"]["kfold_epochs"])
        t["patience"] = min(int(cfg["train"]["patience"]), int(cfg["train"]["kfold_epochs"]))
        t["lr"] = float(cfg["train"]["lr"]) * float(cfg["train"]["kfold_lr_scale"])
    return c


def ensemble_state(fold_checkpoints: list[str | Path], template: nn.Module) -> dict[str, Tensor]:
    """The state dict of a module whose net is a :class:`FoldEnsemble` (``template``), from the folds' best
    Lightning checkpoints: fold ``f``'s ``net.*`` tensors become ``net.nets.<f>.*``; other entries (the loss) come
    from fold 1.

    Raises:
        ValueError: if a tensor of the template is missing from the fold checkpoints, or one is left over.
    """
    state: dict[str, Tensor] = {}
    for f, path in enumerate(fold_checkpoints):
        ck = torch.load(path, map_location="cpu", weights_only=False)
        for key, value in ck["state_dict"].items():
            if key.startswith("net."):
                state[f"net.nets.{f}.{key[4:]}"] = value
            elif f == 0:
                state[key] = value
    want = set(template.state_dict())
    missing, extra = sorted(want - set(state)), sorted(set(state) - want)
    if missing or extra:
        raise ValueError(f"fold checkpoints do not fit the ensemble: missing {missing[:3]}, unexpected {extra[:3]}")
    return state


def train_kfold(
    inputs_dir: str | Path,
    work_dir: str | Path,
    cfg: Mapping[str, Any],
    run_name: str,
    *,
    train_one: Callable[..., dict[str, Any]],
    build: Callable[..., Any],
    **kw: Any,
) -> dict[str, Any]:
    """Train the ``k`` fold models and publish their ensemble (see the module docstring).

    ``train_one`` trains one net (:func:`glc.training.trainer.train_model`, which calls this function for k-fold
    configs and passes itself, so this module does not import it); ``build`` builds the module of a config
    (:func:`glc.training.trainer.build_module`). ``kw`` are ``train_one``'s keywords (``progress``, ``wandb``,
    ``reader``, ``pretrained``, ``po_sites``, ``po_inputs``: each fold keeps the PO joint term).

    Returns:
        The summary of :func:`~glc.training.trainer.train_model` for the ensemble (``best_checkpoint`` is the
        ensemble checkpoint, ``best_monitor`` the mean of the folds' early-stopping values) plus ``folds``: one entry
        per fold (rows, epochs, best value, seconds, the checkpoint it started from).
    """
    from glc.io import write_json
    from glc.loaders.tables import read_meta
    from glc.training.checkpoint import atomic_torch_save

    t0 = time.time()
    k = int(cfg["train"]["kfold"])
    ids, folds = fold_assignment(inputs_dir, cfg)
    sizes = np.bincount(folds, minlength=k)
    if (sizes == 0).any():
        raise ValueError(
            f"train.kfold = {k}: fold(s) {np.flatnonzero(sizes == 0).tolist()} "
            "of the training split are empty; use fewer folds"
        )
    work = Path(work_dir)
    summaries: list[dict[str, Any]] = []
    first: str | None = None
    for f in range(k):
        fold_dir = work / f"fold{f}"
        done = finished_fold(fold_dir)
        if done is not None:
            s = done
            log.info("k-fold: fold %d/%d was finished by an earlier run (%s); not entered again", f + 1, k, fold_dir)
        else:
            subsets = {"train": ("train", ids[folds != f]), "val": ("train", ids[folds == f])}
            s = train_one(
                inputs_dir, fold_dir, fold_config(cfg, f), f"{run_name}-fold{f}", subsets=subsets, init=first, **kw
            )
            write_json(fold_dir / FOLD_SUMMARY, s)
        summaries.append(
            {
                "fold": f,
                "n_train": int((folds != f).sum()),
                "n_val": int((folds == f).sum()),
                "init": first,
                "best_checkpoint": s["best_checkpoint"],
                "best_monitor": s["best_monitor"],
                "epochs_to_best": s["epochs_to_best"],
                "seconds": s["seconds"],
                "epochs_trained": s.get("epochs_trained"),
                "epoch_seconds": s.get("epoch_seconds"),
                "train_samples": s.get("train_samples"),
                "train_seconds": s.get("train_seconds"),
                "gpu_peak_mb": s.get("gpu_peak_mb"),
            }
        )
        first = first or s["best_checkpoint"]
        gc.collect()  # the fold's trainer, module and loaders live in reference cycles: free them before the next
        log.info("k-fold: fold %d/%d done (%s = %s, %.0f s)", f + 1, k, s["monitor"], s["best_monitor"], s["seconds"])
    meta = read_meta(inputs_dir)
    template = build(cfg, meta)
    state = ensemble_state([s["best_checkpoint"] for s in summaries], template)
    template.load_state_dict(state)
    out = work / "kfold" / "model.ckpt"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"state_dict": state, "kfold": summaries}, out)
    best = [s["best_monitor"] for s in summaries if s["best_monitor"] is not None]
    secs = sum(float(x["train_seconds"] or 0.0) for x in summaries)
    samples = sum(int(x["train_samples"] or 0) for x in summaries)
    peaks = [x["gpu_peak_mb"] for x in summaries if x.get("gpu_peak_mb") is not None]
    return {
        **s,
        "best_checkpoint": str(out),
        "best_monitor": float(np.mean(best)) if best else None,
        "best_val_sample_f1_topk": None,  # the folds' values are on their own folds; the hold-out is scored by Predict
        "parameters": int(sum(p.numel() for p in template.net.parameters())),
        "seconds": round(time.time() - t0, 2),
        "epochs_to_best": int(sum(x["epochs_to_best"] for x in summaries)),
        "epochs_trained": int(sum(int(x["epochs_trained"] or 0) for x in summaries)),
        "train_seconds": round(secs, 2),
        "train_samples": samples,
        "train_samples_per_s": round(samples / secs, 1) if secs > 0 else None,
        "epoch_seconds": summaries[0]["epoch_seconds"],  # fold 1: (k - 1) / k of the training split per epoch
        "gpu_peak_mb": max(peaks) if peaks else None,
        "folds": summaries,
        "kfold": k,
        "splits": meta["splits"],
        **_po_summary(s, summaries),
    }


def finished_fold(fold_dir: str | Path) -> dict[str, Any] | None:
    """The summary of a fold an earlier run finished (``fold_dir/``:data:`FOLD_SUMMARY` and the best checkpoint it
    names, looked up by name under ``fold_dir/checkpoints/`` so a moved work folder still counts), else ``None``."""
    from glc.training.fit import local_checkpoint

    path = Path(fold_dir) / FOLD_SUMMARY
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    best = local_checkpoint(s.get("best_checkpoint"), Path(fold_dir) / "checkpoints")
    if best is None:
        log.warning(
            "%s names %s, which is gone: the fold is entered again (resuming from its last.ckpt where there is one)",
            path,
            s.get("best_checkpoint"),
        )
        return None
    return {**s, "best_checkpoint": str(best)}


def _po_summary(last: Mapping[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The PO term's summary of a k-fold fit (the folds share the sites and settings; the last fold's, with the PA
    epochs of every fold: ``pa_epochs`` their sum, as ``epochs_to_best``, and ``pa_epochs_by_fold``)."""
    if "pretrain_po" not in last:
        return {}
    by_fold = [int(x["epochs_to_best"]) for x in summaries]
    return {"pretrain_po": {**last["pretrain_po"], "pa_epochs": sum(by_fold), "pa_epochs_by_fold": by_fold}}
