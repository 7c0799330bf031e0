"""The generic Lightning trainer: any ``runner = "lightning"`` model kind, trained and scored from a model-input table.

The network comes from the model registry (:func:`glc.models.registry.get_model` ``.build_net(model_cfg, meta)``),
the loss from :func:`glc.training.losses.build_loss`, the data from :class:`glc.loaders.SurveyDataModule` over the
``ModelInputs`` folder (the columns of the feature sets the kind reads), the fit from :func:`glc.training.fit.fit_model`
(early stopping and the best checkpoint on the kind's ``monitor``). Nothing here knows a model kind.

The Luigi tasks (``TrainModel``, ``Predict``) and the CV benchmarks (through :mod:`glc.training.runners`) call
:func:`train_model` and :func:`predict_splits`. This module imports neither Spark nor Luigi (it runs on a machine
that has only torch and pyarrow, e.g. a GPU box fed with a carried ``ModelInputs`` folder).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)


def input_columns(cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> list[str]:
    """Columns of the table the configured model reads: those of its feature sets (``location``/``meta`` always),
    ``_mask`` columns included; ``labels`` is not a column here (it becomes ``target``).

    Raises:
        KeyError: if the table lacks a feature set the model needs (naming it and the table's sets).
    """
    from glc.features.sets import resolve_feature_sets
    from glc.models.registry import get_model

    sets = resolve_feature_sets(get_model(cfg["model"]["kind"]).features(cfg["model"]))
    have = set(meta.get("feature_sets", ()))
    lacking = [s for s in sets if s not in have]
    if lacking:
        raise KeyError(
            f"model.kind={cfg['model']['kind']!r} reads feature set(s) {lacking}, which the model-input table does not "
            f"hold (it has {sorted(have)}); build ModelInputs with features={list(sets)}"
        )
    return [c for c, spec in meta["columns"].items() if spec.get("feature_set") in sets]


def val_k(cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> int:
    """Top-k of the per-epoch validation sample-F1: ``train.val_k`` or the mean training richness."""
    k = int(cfg["train"]["val_k"])
    return k if k > 0 else max(1, int(round(float(meta.get("mean_richness", 10.0)))))


def build_module(cfg: Mapping[str, Any], meta: Mapping[str, Any]):
    """The configured net (model registry) + loss wrapped in a :class:`glc.training.module.MultiLabelModule`; with
    ``[train] kfold = k > 1`` the net is a :class:`glc.training.kfold.FoldEnsemble` of ``k`` such nets (the published
    k-fold model); with ``[train.pretrain_po] aux_weight > 0`` the module is a
    :class:`glc.training.po_pretrain.POJointModule` (the PO loss as a term of the PA fit)."""
    from glc.models.registry import get_model
    from glc.training.losses import build_loss
    from glc.training.module import MultiLabelModule

    spec = get_model(cfg["model"]["kind"])
    if spec.build_net is None:
        raise ValueError(f"model.kind={spec.kind!r} runs with runner {spec.runner!r}, not the Lightning trainer")
    C = int(meta["num_classes"])
    k = int(cfg["train"].get("kfold", 1))
    if k > 1:
        from glc.training.kfold import FoldEnsemble

        net = FoldEnsemble([spec.build_net(cfg["model"], meta) for _ in range(k)])
    else:
        net = spec.build_net(cfg["model"], meta)
    t = cfg["train"]
    po = t.get("pretrain_po", {})
    joint: dict[str, Any] = {}
    cls: Any = MultiLabelModule
    if po.get("enabled") and float(po.get("aux_weight", 0.0)) > 0:  # the PO loss as a term of the PA fit
        from glc.training.po_pretrain import POJointModule, po_objective

        cls = POJointModule
        joint = {
            "objective": po_objective(net, po, C),
            "aux_weight": float(po["aux_weight"]),
            "po_batch_size": int(po["batch_size"]),
        }
    return cls(
        net,
        build_loss(dict(t["loss"])),
        lr=scaled_lr(cfg),
        weight_decay=float(t["weight_decay"]),
        val_k=val_k(cfg, meta),
        num_classes=C,
        cosine=bool(t.get("cosine", False)),
        optimizer=str(t.get("optimizer", "adamw")),
        step_epochs=int(t.get("step_epochs", 0)),
        step_gamma=float(t.get("step_gamma", 0.1)),
        mixup_alpha=float(t.get("mixup_alpha", 0.0)),
        channels_last=bool(t.get("channels_last", False)),
        compile_mode=str(t.get("compile", "off")),
        compile_backend=str(t.get("compile_backend", "inductor")),
        fused_optimizer=bool(t.get("fused_optimizer", False)),
        compile_short_batches=str(t.get("compile_short_batches", "eager")),
        batch_size=int(t["batch_size"]),
        finite_check_every=int(t.get("finite_check_every", 1)),
        **joint,
    )


#: ``[train] lr_scaling``: the learning rate's factor from ``rows per step / lr_base_batch``.
LR_SCALINGS = {"none": lambda r: 1.0, "linear": lambda r: r, "sqrt": lambda r: r**0.5}


def scaled_lr(cfg: Mapping[str, Any]) -> float:
    """``[train] lr`` times the ``lr_scaling`` factor of ``batch_size x devices / lr_base_batch`` (the rows one
    optimiser step sees; ``none``: ``lr`` as given)."""
    t = cfg["train"]
    rows = int(t["batch_size"]) * int(t.get("devices", 1))
    return float(t["lr"]) * LR_SCALINGS[str(t.get("lr_scaling", "none"))](rows / int(t.get("lr_base_batch", 256)))


def datamodule(
    inputs_dir: str | Path,
    cfg: Mapping[str, Any],
    reader: str | None = None,
    subsets: Mapping[str, tuple[str, Any]] | None = None,
):
    """The :class:`~glc.loaders.SurveyDataModule` over ``inputs_dir`` with the columns the model reads (``subsets``:
    split views, e.g. a k-fold fold)."""
    from glc.loaders.datamodule import SurveyDataModule
    from glc.loaders.tables import read_meta

    t = cfg["train"]
    meta = read_meta(inputs_dir)
    return SurveyDataModule(
        inputs_dir,
        columns=input_columns(cfg, meta),
        batch_size=int(t["batch_size"]),
        reader=reader or t["reader"],
        num_workers=int(t["num_workers"]),
        seed=int(cfg["seed"]),
        subsets=subsets,
        pin_memory=bool(t.get("pin_memory", False)),
    )


def _accelerator(cfg: Mapping[str, Any]) -> tuple[str, bool | str]:
    """The Lightning accelerator and the ``deterministic`` flag: exact on CPU; on a GPU ``"warn"`` (some CUDA kernels,
    e.g. pooling backward, have no deterministic implementation); False with ``[train] deterministic = false``."""
    import torch

    acc = str(cfg["train"]["accelerator"])
    if not bool(cfg["train"].get("deterministic", True)):
        return acc, False
    gpu = acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())
    return acc, ("warn" if gpu else True)


def train_model(
    inputs_dir: str | Path,
    work_dir: str | Path,
    cfg: Mapping[str, Any],
    run_name: str,
    progress: bool = True,
    wandb: bool = True,
    reader: str | None = None,
    pretrained: Mapping[str, str] | None = None,
    subsets: Mapping[str, tuple[str, Any]] | None = None,
    init: str | Path | None = None,
    po_sites: str | Path | None = None,
    po_inputs: Mapping[str, str | Path] | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train the configured model on ``inputs_dir`` (train split; early stopping on val) in ``work_dir``.

    ``pretrained``: encoder name -> encoder file (``PretrainEncoder``) for nets initialised from one
    (``ModelSpec.encoders``); passed to ``build_net`` as ``meta["pretrained"]``. ``subsets``: split views of the
    data module (a k-fold fold). ``init``: a Lightning checkpoint whose net weights the net starts from (k-fold folds
    after the first). With ``[train] kfold > 1`` the k-fold trainer runs instead
    (:func:`glc.training.kfold.train_kfold`). ``po_sites``: the ``POSites`` artifact, required with
    ``[train.pretrain_po] enabled``: the net is pretrained on it first (:mod:`glc.training.po_pretrain`) and/or keeps
    the PO loss as a term of the fit (``aux_weight``; every k-fold fold keeps it);
    ``po_inputs``: feature set -> its PO artifact (``POPatchTiles``, ``PORasterTiles``), for nets that read patch or
    raster tiles at the PO sites. ``callbacks``: more Lightning callbacks for the fit (every fold's, with k-fold;
    e.g. :class:`~glc.training.compile_cache.CompileCacheSaver`).

    ``work_dir`` keeps ``checkpoints/`` (resumed from ``last.ckpt`` when present) and the W&B run files.

    Returns:
        A JSON-able summary: best checkpoint path, best monitor value, epochs, seconds, throughput, sizes.
    """
    import pytorch_lightning as pl
    import torch

    from glc.models.registry import get_model
    from glc.training.callbacks import TIMING_FILE, throughput
    from glc.training.fit import FitSettings, fit_model

    pcfg = cfg["train"].get("pretrain_po", {})
    po = bool(pcfg.get("enabled", False))
    if po and int(cfg["train"].get("devices", 1)) > 1:
        raise ValueError("[train.pretrain_po] is not supported with devices > 1 (DDP); disable it or set devices = 1")
    if po and int(pcfg.get("epochs", 0)) > 0 and (int(cfg["train"].get("kfold", 1)) > 1 or init is not None):
        raise ValueError(
            f"[train.pretrain_po] epochs = {pcfg['epochs']}: pretraining runs before a fit from scratch, so it is not "
            "supported with kfold > 1 or an init checkpoint; use the joint term alone (epochs = 0, aux_weight > 0), "
            "which every fold keeps, or train one model (kfold = 1)"
        )
    if po and po_sites is None:
        raise ValueError("[train.pretrain_po] is enabled: pass the POSites artifact folder (po_sites=...)")
    if int(cfg["train"].get("kfold", 1)) > 1:
        if subsets is not None or init is not None:
            raise ValueError("train_model: a k-fold config trains its own folds; pass neither subsets nor init")
        from glc.training.kfold import train_kfold

        return train_kfold(
            inputs_dir,
            work_dir,
            cfg,
            run_name,
            train_one=train_model,
            build=build_module,
            progress=progress,
            wandb=wandb,
            reader=reader,
            pretrained=pretrained,
            po_sites=po_sites,
            po_inputs=po_inputs,
            callbacks=callbacks,
        )
    from glc.training.ddp import in_distributed_run, launch

    devices = int(cfg["train"].get("devices", 1))
    if devices > 1 and not in_distributed_run():
        if subsets is not None or init is not None:
            raise ValueError(
                "[train] devices > 1 (DDP) with k-fold folds is not supported: set devices = 1 or kfold = 1"
            )
        if callbacks:
            raise ValueError("train_model: callbacks cannot travel to the processes of a DDP run (devices > 1)")
        return launch(
            inputs_dir, work_dir, cfg, run_name, progress=progress, wandb=wandb, reader=reader, pretrained=pretrained
        )
    t0 = time.time()
    dm = datamodule(inputs_dir, cfg, reader, subsets)
    spec = get_model(cfg["model"]["kind"])
    need = spec.encoders(cfg["model"])
    lacking = [n for n in need if n not in (pretrained or {})]
    if lacking:
        raise ValueError(
            f"model.kind={spec.kind!r} initialises from encoder(s) {lacking}: pass their encoder files (pretrained=...)"
        )
    meta = {**dm.meta, "pretrained": dict(pretrained or {})} if need else dm.meta
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)  # the net's initial weights depend on it
    module = build_module(cfg, meta)
    if init is not None:
        load_weights(module, init)
        log.info("initialised the net from %s", init)
    accelerator, deterministic = _accelerator(cfg)
    po_info: dict[str, Any] | None = None
    if po:
        from glc.training.po_pretrain import POJointModule, joint_sites, pretrain_on_po

        assert po_sites is not None
        pcfg = cfg["train"]["pretrain_po"]
        po_info = {"epochs": 0, "loss": str(pcfg["loss"])}
        if int(pcfg["epochs"]) > 0:
            ck_po, po_info = pretrain_on_po(
                module.net,
                po_sites,
                cfg,
                meta,
                Path(work_dir) / "po_pretrain",
                (accelerator, deterministic),
                progress,
                po_inputs,
            )
            # the net trained in place, or an earlier run's pretrained weights; a joint term goes on with the
            # pretrained offsets (and PO head)
            if po_info.get("reused") or isinstance(module, POJointModule):
                load_weights(module, ck_po, net=bool(po_info.get("reused")))
        if isinstance(module, POJointModule):
            batches, report = joint_sites(module.net, po_sites, cfg, meta, po_inputs)
            module.attach(batches)
            po_info = {
                **report,
                **po_info,
                "aux_weight": float(pcfg["aux_weight"]),
                "aux_batch_size": int(pcfg["batch_size"]),
            }
    settings = FitSettings.from_config(
        cfg,
        monitor=spec.monitor,
        mode=spec.monitor_mode,
        wandb=wandb,
        run_name=run_name,
        accelerator=accelerator,
        deterministic=deterministic,
        progress=progress,
        devices=devices if in_distributed_run() else 1,
    )
    best = fit_model(module, dm, Path(work_dir), settings, callbacks=callbacks)
    if po_info is not None and isinstance(module, POJointModule):
        # the PO sites' table (GBs at full scale) goes now, not whenever the garbage collector reaches the
        # module's reference cycles with the Lightning trainer: a k-fold fit loads the next fold's table next
        module.attach(None)
    seconds = time.time() - t0
    ck = torch.load(best, map_location="cpu", weights_only=False)
    best_score = None
    for key, state in (ck.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            best_score = float(state["best_model_score"])
    epochs_run = int(ck.get("epoch", -1)) + 1
    return {
        "best_checkpoint": str(best),
        "monitor": spec.monitor,
        "best_monitor": best_score,
        "best_val_sample_f1_topk": best_score if spec.monitor == "val/sample_f1" else None,
        "val_k": val_k(cfg, meta),
        "epoch": int(ck.get("epoch", -1)),
        "global_step": int(ck.get("global_step", -1)),
        "num_classes": int(meta["num_classes"]),
        "splits": meta["splits"]
        if subsets is None
        else {**meta["splits"], **{k: len(v[1]) for k, v in subsets.items()}},
        "feature_sets": meta.get("feature_sets", []),
        "shuffled": meta.get("shuffled", []),
        "parameters": int(sum(p.numel() for p in module.net.parameters())),
        "seconds": round(seconds, 2),
        "epochs_to_best": epochs_run,
        "device": torch.cuda.get_device_name(0) if accelerator != "cpu" and torch.cuda.is_available() else "cpu",
        "processes": devices if in_distributed_run() else 1,
        **throughput(Path(work_dir) / TIMING_FILE),
        **({"pretrain_po": {**po_info, "pa_epochs": epochs_run}} if po_info else {}),
    }


def load_weights(module: Any, ckpt: str | Path, net: bool = True) -> None:
    """Start ``module`` from a Lightning (or PO-pretraining) checkpoint, read once: the ``net.*`` weights into its net
    (``net=True``) and, for a joint module, its PO objective (species offsets, PO head) from the ``po.*`` ones where
    the checkpoint has them: a k-fold fold after the first starts from fold 1's, the joint term after pretraining
    from the pretraining's. A checkpoint without ``po.*`` (no PO term) leaves the objective as built.

    Raises:
        ValueError: the checkpoint's ``po.*`` tensors are not the objective's (another loss or PO head).
    """
    import torch

    from glc.training.po_pretrain import POJointModule

    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    if net:
        module.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
    if isinstance(module, POJointModule):
        _load_po_objective(module.po, {k[3:]: v for k, v in state.items() if k.startswith("po.")}, ckpt)


def _load_po_objective(po: Any, state: Mapping[str, Any], ckpt: str | Path) -> None:
    """Load ``state`` (a checkpoint's ``po.*`` tensors, prefix stripped) into the objective ``po``; none: no-op."""
    if not state:
        return
    if set(state) != set(po.state_dict()):
        raise ValueError(
            f"{ckpt}: its PO objective holds {sorted(state)}, this config's holds {sorted(po.state_dict())}; "
            "the checkpoint comes from another [train.pretrain_po] loss or net: delete it and retrain"
        )
    po.load_state_dict(state)


def load_module(ckpt: str | Path, cfg: Mapping[str, Any], meta: Mapping[str, Any]):
    """Rebuild the module from the config and load the checkpoint's weights (eval mode, CPU)."""
    import torch

    module = build_module(cfg, meta)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if "state_dict" not in state:
        raise ValueError(f"{ckpt}: not a Lightning checkpoint (no 'state_dict'); rerun TrainModel")
    module.load_state_dict(state["state_dict"])
    return module.eval()


def score_split(module: Any, dm: Any, split: str, top: int) -> ScoreTable:
    """Top-N score table of one split of the model inputs."""
    from glc.training.fit import predict_probs

    ids, probs = predict_probs(module, dm.loader(split, shuffle=False))
    order = np.argsort(ids, kind="stable")
    return top_n(ids[order], probs[order], np.asarray(dm.meta["vocab"], np.int64), top)


def predict_splits(
    inputs_dir: str | Path, ckpt: str | Path, cfg: Mapping[str, Any]
) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    """Validation and test score tables of a trained model (``Predict`` for trained models)."""
    dm = datamodule(inputs_dir, cfg, reader="arrow")
    module = load_module(ckpt, cfg, dm.meta)
    top = int(cfg["model"]["top_n"])
    val, test = score_split(module, dm, "val", top), score_split(module, dm, "test", top)
    info = {
        "n_train": int(dm.meta["splits"]["train"]),
        "n_val": len(val),
        "n_test": len(test),
        "model": cfg["model"]["kind"],
        "checkpoint": str(ckpt),
    }
    return val, test, info
