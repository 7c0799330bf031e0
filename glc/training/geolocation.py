"""Geolocation experiment: train, predict and score as pure functions over a model-input folder.

The Luigi tasks (:class:`glc.tasks.training.TrainModel`, :class:`glc.tasks.experiment.Predict`) are glue over
:func:`train_model` and :func:`predict_splits`; the cross-validation benchmarks call :func:`fit_predict_frames`,
which writes the same model-input layout from in-memory survey frames (pyarrow) and runs the same trainer.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glc.predict.scores import ScoreTable, top_n

log = logging.getLogger(__name__)

COORD_COLUMNS = ("x", "y", "lon", "lat")
EXTRAS = ("year", "region", "env", "gfv")


def input_columns(cfg: dict[str, Any]) -> list[str]:
    """Parquet columns the configured model reads (coordinates + extras)."""
    extras = list(cfg["model"]["extras"])
    bad = [e for e in extras if e not in EXTRAS]
    if bad:
        raise ValueError(f"model.extras contains {bad}; valid extras are {list(EXTRAS)}")
    return [*COORD_COLUMNS, *extras]


def extra_dims(meta: dict[str, Any]) -> dict[str, int]:
    """Input sizes of the extras from the model-input meta (``gfv`` is 0 for tables without ``gfv_dim``)."""
    return {"region": int(meta["n_regions"]), "env": int(meta["env_dim"]), "gfv": int(meta.get("gfv_dim", 0)), "year": 1}


def val_k(cfg: dict[str, Any], meta: dict[str, Any]) -> int:
    """Top-k of the per-epoch validation sample-F1: ``train.val_k`` or the mean training richness."""
    k = int(cfg["train"]["val_k"])
    return k if k > 0 else max(1, int(round(float(meta.get("mean_richness", 10.0)))))


def build_module(cfg: dict[str, Any], meta: dict[str, Any]):  # noqa: ANN201 - MultiLabelModule
    """The configured net + loss wrapped in a :class:`glc.training.module.MultiLabelModule`."""
    from glc.models.geolocation import build_geolocation_net
    from glc.training.losses import build_loss
    from glc.training.module import MultiLabelModule

    C = int(meta["num_classes"])
    net = build_geolocation_net(cfg["model"], C, extra_dims(meta))
    t = cfg["train"]
    return MultiLabelModule(net, build_loss(dict(t["loss"])), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]), val_k=val_k(cfg, meta), num_classes=C)


def _datamodule(inputs_dir: str | Path, cfg: dict[str, Any], reader: str | None = None):  # noqa: ANN202
    from glc.loaders.datamodule import SurveyDataModule

    t = cfg["train"]
    return SurveyDataModule(
        inputs_dir, columns=input_columns(cfg), batch_size=int(t["batch_size"]), reader=reader or t["reader"],
        num_workers=int(t["num_workers"]), seed=int(cfg["seed"]),
    )


def train_model(inputs_dir: str | Path, work_dir: str | Path, cfg: dict[str, Any], run_name: str, progress: bool = True, wandb: bool = True, reader: str | None = None) -> dict[str, Any]:
    """Train the configured model on ``inputs_dir`` (train split; early stopping on val) in ``work_dir``.

    ``work_dir`` keeps ``checkpoints/`` (resumed from ``last.ckpt`` when present) and the W&B run files.

    Returns:
        A JSON-able summary: best checkpoint path, best validation sample-F1, epochs, seconds, sizes.
    """
    import torch

    from glc.training.fit import fit_model

    import pytorch_lightning as pl

    t0 = time.time()
    dm = _datamodule(inputs_dir, cfg, reader)
    meta = dm.meta
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)  # the net's initial weights depend on it
    module = build_module(cfg, meta)
    t = cfg["train"]
    best = fit_model(
        module, dm, Path(work_dir), max_epochs=int(t["max_epochs"]), patience=int(t["patience"]), seed=int(cfg["seed"]),
        wandb_cfg=dict(cfg["wandb"]) if wandb else {"mode": "disabled"}, run_name=run_name, config=cfg, resume=True,
        accelerator=str(t["accelerator"]), progress=progress,
    )
    ck = torch.load(best, map_location="cpu", weights_only=False)
    best_score = None
    for key, state in (ck.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            best_score = float(state["best_model_score"])
    return {
        "best_checkpoint": str(best),
        "best_val_sample_f1_topk": best_score,
        "val_k": val_k(cfg, meta),
        "epoch": int(ck.get("epoch", -1)),
        "global_step": int(ck.get("global_step", -1)),
        "num_classes": int(meta["num_classes"]),
        "splits": meta["splits"],
        "parameters": int(sum(p.numel() for p in module.net.parameters())),
        "seconds": round(time.time() - t0, 2),
    }


def load_module(ckpt: str | Path, cfg: dict[str, Any], meta: dict[str, Any]):  # noqa: ANN201
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


def predict_splits(inputs_dir: str | Path, ckpt: str | Path, cfg: dict[str, Any]) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    """Validation and test score tables of a trained model (``Predict`` for trained models)."""
    dm = _datamodule(inputs_dir, cfg, reader="arrow")
    module = load_module(ckpt, cfg, dm.meta)
    top = int(cfg["model"]["top_n"])
    val, test = score_split(module, dm, "val", top), score_split(module, dm, "test", top)
    info = {"n_train": int(dm.meta["splits"]["train"]), "n_val": len(val), "n_test": len(test), "model": cfg["model"]["kind"], "checkpoint": str(ckpt)}
    return val, test, info


# ------------------------------------------------------------------------------------------ in-memory frames
def frames_to_inputs(train: pd.DataFrame, query: pd.DataFrame, cfg: dict[str, Any], root: str | Path) -> dict[str, Any]:
    """Write the model-input layout for an in-memory fit: ``train``'s spatial hold-out is ``val``, ``query`` is
    ``test``. Frames need surveyId, x, y, lon, lat, year, region and (train) speciesIds; env and gfv are not
    supported here."""
    from glc.experiment import validation_mask
    from glc.loaders.tables import write_input_table, write_meta

    if "env" in cfg["model"]["extras"]:
        raise ValueError("model.extras 'env' needs the EnvFeatures artifact; the in-memory path (benchmarks) has no env vector")
    if "gfv" in cfg["model"]["extras"]:
        raise ValueError(
            "model.extras 'gfv' needs the GraphFeatures artifact (ModelInputs gfv=True); the in-memory path "
            "(benchmarks) has no graph feature vector"
        )
    train = train.reset_index(drop=True)
    vocab = np.unique(np.concatenate([np.asarray(s, np.int64) for s in train["speciesIds"]]))
    regions = sorted({str(r) for r in pd.concat([train["region"], query["region"]]).fillna("UNKNOWN")})
    code = {r: i for i, r in enumerate(regions)}
    pos = {int(s): i for i, s in enumerate(vocab)}
    labels = [np.array(sorted(pos[int(s)] for s in np.unique(np.asarray(sp, np.int64))), np.int32) for sp in train["speciesIds"]]
    width = max(1, max(len(l) for l in labels))

    def table(df: pd.DataFrame, lab: list[np.ndarray] | None) -> pd.DataFrame:
        out = pd.DataFrame({
            "surveyId": df["surveyId"].to_numpy(np.int64),
            "x": df["x"].to_numpy(np.float64), "y": df["y"].to_numpy(np.float64),
            "lon": df["lon"].to_numpy(np.float64), "lat": df["lat"].to_numpy(np.float64),
            "year": df["year"].fillna(0).to_numpy().astype(np.int32),
            "region": np.array([code[str(r)] for r in df["region"].fillna("UNKNOWN")], np.int32),
        })
        pad = np.full((len(df), width), -1, np.int32)
        for i, l in enumerate(lab or []):
            pad[i, : len(l)] = l
        out["labels"] = list(pad)
        return out

    val = validation_mask(train, cfg)
    Path(root).mkdir(parents=True, exist_ok=True)
    idx = np.flatnonzero(~val), np.flatnonzero(val)
    write_input_table(table(train.iloc[idx[0]], [labels[i] for i in idx[0]]), Path(root) / "train")
    write_input_table(table(train.iloc[idx[1]], [labels[i] for i in idx[1]]), Path(root) / "val")
    write_input_table(table(query.reset_index(drop=True), None), Path(root) / "test")
    meta = {
        "num_classes": len(vocab), "vocab": [int(v) for v in vocab], "label_width": width,
        "mean_richness": float(np.mean([len(l) for l in labels])), "env_dim": 0, "env_columns": [], "gfv_dim": 0,
        "n_regions": len(regions), "regions": regions,
        "splits": {"train": int((~val).sum()), "val": int(val.sum()), "test": len(query)},
    }
    write_meta(root, meta)
    return meta


def fit_predict_frames(train: pd.DataFrame, query: pd.DataFrame, cfg: dict[str, Any]) -> ScoreTable:
    """Train on in-memory ``train`` surveys (early stopping on its spatial hold-out) and score ``query``."""
    with tempfile.TemporaryDirectory(prefix="glc-geoloc-") as d:
        root = Path(d) / "inputs"
        frames_to_inputs(train, query, cfg, root)
        summary = train_model(root, Path(d) / "work", cfg, run_name="cv", progress=False, wandb=False, reader="memory")
        dm = _datamodule(root, cfg, reader="memory")
        module = load_module(summary["best_checkpoint"], cfg, dm.meta)
        return score_split(module, dm, "test", int(cfg["model"]["top_n"]))
