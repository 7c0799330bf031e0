"""Self-supervised pretraining of the registered encoders (tile2vec, SatCLIP): objectives, fit, publish, embed.

* :data:`OBJECTIVES`: per objective, the training loss and the validation metrics of a batch (a lookup table; an
  encoder kind names its objective in :class:`glc.models.registry.EncoderSpec`);
* :class:`PretrainModule`: the LightningModule around an encoder net and its objective;
* :func:`pretrain`: fit with early stopping on the encoder's monitor (:func:`glc.training.fit.fit_model`: resumable,
  atomic checkpoints, W&B offline), then the objective's **evaluation** (:data:`EVALUATIONS`: held-out triplet
  accuracy; SatCLIP retrieval geo-localisation against random embeddings and the similarity heatmap) and the
  encoder file (:func:`save_encoder`);
* :func:`load_encoder` and :func:`embed`: the published encoder and its embeddings of any :class:`PretrainData`.

Nothing here imports Spark or Luigi: ``python -m glc.training.pretrain --data data.npz --encoder tile2vec --out DIR``
pretrains from a carried :meth:`PretrainData.save` file (e.g. on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from glc.loaders.pretrain import PretrainData, PretrainDataModule

log = logging.getLogger(__name__)

__all__ = ["EVALUATIONS", "OBJECTIVES", "PretrainModule", "embed", "load_encoder", "pretrain", "save_encoder"]

ENCODER_FILE = "encoder.pt"
Batch = Mapping[str, Tensor]


# ------------------------------------------------------------------------------------------------ objectives
def _triplet_latents(module: PretrainModule, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    n = len(batch["anchor"])
    z = module.net(torch.cat([batch["anchor"], batch["neighbour"], batch["distant"]]))
    return z[:n], z[n : 2 * n], z[2 * n :]


def _triplet_loss(module: PretrainModule, batch: Batch) -> Tensor:
    from glc.models.tile2vec import triplet_margin_loss

    return triplet_margin_loss(*_triplet_latents(module, batch), module.margin)


def _triplet_val(module: PretrainModule, batch: Batch) -> dict[str, Tensor]:
    from glc.models.tile2vec import triplet_accuracy, triplet_margin_loss

    a, n, d = _triplet_latents(module, batch)
    return {"triplet_loss": triplet_margin_loss(a, n, d, module.margin), "triplet_acc": triplet_accuracy(a, n, d)}


def _clip_loss(module: PretrainModule, batch: Batch) -> Tensor:
    return module.net.loss(batch)


def _clip_val(module: PretrainModule, batch: Batch) -> dict[str, Tensor]:
    from glc.models.satclip import clip_logits, clip_loss

    img, loc = module.net.image(batch), module.net.locate(batch["lon"], batch["lat"])
    logits = clip_logits(img, loc, module.net.t)
    target = torch.arange(len(logits), device=logits.device)
    top1 = 0.5 * ((logits.argmax(1) == target).float().mean() + (logits.argmax(0) == target).float().mean())
    return {"clip_loss": clip_loss(img, loc, module.net.t), "clip_top1": top1}


@dataclass(frozen=True)
class Objective:
    """``loss(module, batch) -> scalar``; ``validate(module, batch) -> {metric: scalar}`` (logged as
    ``val/<metric>``)."""

    loss: Callable[[PretrainModule, Batch], Tensor]
    validate: Callable[[PretrainModule, Batch], dict[str, Tensor]]


#: Every pretraining objective by name (:attr:`glc.models.registry.EncoderSpec.objective`).
OBJECTIVES: dict[str, Objective] = {
    "triplet": Objective(_triplet_loss, _triplet_val),
    "clip": Objective(_clip_loss, _clip_val),
}


class PretrainModule(pl.LightningModule):
    """An encoder net trained with an objective of :data:`OBJECTIVES`.

    Args:
        net: the encoder (:attr:`EncoderSpec.build`).
        objective: a key of :data:`OBJECTIVES`.
        lr, weight_decay: AdamW.
        margin: triplet margin (triplet objective).
        datamodule: its :class:`PretrainDataModule` (told the epoch at each epoch start, for the sampling seed).
        timing: a JSON-lines file that gets one ``{"epoch", "seconds", "samples"}`` line per finished training epoch
            (kept across resumed runs, so the throughput of a run finished earlier is still known).
    """

    def __init__(
        self,
        net: nn.Module,
        objective: str,
        lr: float,
        weight_decay: float,
        margin: float = 1.0,
        datamodule: PretrainDataModule | None = None,
        timing: str | Path | None = None,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise KeyError(f"objective {objective!r} is unknown; known objectives are {sorted(OBJECTIVES)}")
        self.net = net
        self.objective = objective
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.margin = float(margin)
        self._dm = datamodule
        self._timing = Path(timing) if timing else None
        self._t0 = 0.0
        self._samples = 0

    def on_train_epoch_start(self) -> None:
        """Tell the data module which epoch it samples; start the epoch clock."""
        if self._dm is not None:
            self._dm.set_epoch(self.current_epoch)
        self._t0, self._samples = time.perf_counter(), 0

    def on_train_epoch_end(self) -> None:
        """Append the epoch's training time and sample count to the timing file."""
        if self._timing is not None:
            with self._timing.open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "epoch": int(self.current_epoch),
                            "seconds": time.perf_counter() - self._t0,
                            "samples": int(self._samples),
                        }
                    )
                    + "\n"
                )

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """The objective's loss (a non-finite loss raises naming the batch)."""
        loss = OBJECTIVES[self.objective].loss(self, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"pretraining loss is {loss.item()} at epoch {self.current_epoch}, batch {batch_idx}; lower train lr"
            )
        n = len(next(iter(batch.values())))
        self._samples += n
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """``val/<metric>`` of the objective, averaged over the fixed validation batches (weighted by size)."""
        n = len(next(iter(batch.values())))
        for name, value in OBJECTIVES[self.objective].validate(self, batch).items():
            self.log(f"val/{name}", value, on_epoch=True, prog_bar=name.endswith(("acc", "loss")), batch_size=n)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW."""
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


# ------------------------------------------------------------------------------------------------ files
def save_encoder(path: str | Path, net: nn.Module, cfg: Mapping[str, Any], data_meta: Mapping[str, Any]) -> Path:
    """The encoder file: kind, resolved encoder config, data meta (shapes, statistics) and the net's weights."""
    from glc.training.checkpoint import atomic_torch_save

    return atomic_torch_save(
        {
            "kind": cfg["encoder"]["kind"],
            "cfg": dict(cfg),
            "data_meta": dict(data_meta),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        },
        path,
    )


def load_encoder(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(net in eval mode on CPU, the file's cfg)`` of an encoder file."""
    from glc.models.registry import get_encoder

    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, Mapping) or "state_dict" not in state or "kind" not in state:
        raise ValueError(f"{path}: not a glc encoder file (no kind/state_dict); rerun PretrainEncoder")
    spec = get_encoder(state["kind"])
    net = spec.build(state["cfg"]["encoder"], state["data_meta"])
    net.load_state_dict(state["state_dict"])
    return net.eval(), dict(state["cfg"])


@torch.no_grad()
def embed(
    net: nn.Module, kind: str, data: PretrainData, batch_size: int = 1024, device: str | None = None
) -> dict[str, np.ndarray]:
    """Every embedding column of encoder ``kind`` for every site of ``data`` (eval mode), ``{column: [n, D] float32}``.

    Raises:
        ValueError: if an embedding is not finite (naming the column and survey).
    """
    from glc.models.registry import get_encoder

    spec = get_encoder(kind)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = net.to(dev).eval()
    out: dict[str, list[np.ndarray]] = {c: [] for c in spec.embeddings}
    for s in range(0, len(data), batch_size):
        sl = slice(s, s + batch_size)
        b = {
            "tile": torch.from_numpy(data.tiles[sl]).to(dev),
            "lon": torch.from_numpy(data.lon[sl]).to(dev),
            "lat": torch.from_numpy(data.lat[sl]).to(dev),
            **{c: torch.from_numpy(v[sl]).to(dev) for c, v in data.cubes.items()},
        }
        for col, fn in spec.embeddings.items():
            out[col].append(fn(net, b).float().cpu().numpy())
    res = {c: np.concatenate(v).astype(np.float32) for c, v in out.items()}
    for c, v in res.items():
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            raise ValueError(
                f"embedding {c!r} is not finite for {int(bad.sum())} site(s), e.g. survey {int(data.ids[bad][0])}"
            )
    return res


# ------------------------------------------------------------------------------------------------ evaluations
def _haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance on the 6371.0088 km mean-radius sphere (a metric for retrieval errors)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def lonlat_grid(
    bbox: tuple[float, float, float, float], min_points: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A regular lon/lat grid over ``bbox = (lon_min, lat_min, lon_max, lat_max)`` with at least ``min_points``
    cell centres (square cells in degrees); returns flat lon, lat and ``(rows, cols)`` (row 0 = north)."""
    lo0, la0, lo1, la1 = bbox
    step = math.sqrt((lo1 - lo0) * (la1 - la0) / float(min_points))
    while True:
        nx, ny = max(1, int(math.ceil((lo1 - lo0) / step))), max(1, int(math.ceil((la1 - la0) / step)))
        if nx * ny >= min_points:
            break
        step *= 0.99
    lon = lo0 + (np.arange(nx) + 0.5) * (lo1 - lo0) / nx
    lat = la1 - (np.arange(ny) + 0.5) * (la1 - la0) / ny
    glon, glat = np.meshgrid(lon, lat)
    return glon.ravel(), glat.ravel(), (ny, nx)


@torch.no_grad()
def _locate_all(net: nn.Module, lon: np.ndarray, lat: np.ndarray, dev: torch.device, chunk: int = 8192) -> Tensor:
    out = [
        torch.nn.functional.normalize(
            net.locate(
                torch.from_numpy(lon[s : s + chunk]).to(dev), torch.from_numpy(lat[s : s + chunk]).to(dev)
            ).float(),
            dim=-1,
        )
        for s in range(0, len(lon), chunk)
    ]
    return torch.cat(out)


@torch.no_grad()
def retrieval(
    net: nn.Module, data: PretrainData, rows: np.ndarray, grid: tuple[np.ndarray, np.ndarray], dev: torch.device
) -> dict[str, Any]:
    """Geo-localise the images of ``rows``: the nearest (cosine) of the grid's location embeddings; errors in km."""
    glon, glat = grid
    locs = _locate_all(net, glon, glat, dev)
    pred = []
    for s in range(0, len(rows), 512):
        r = rows[s : s + 512]
        b = {
            "tile": torch.from_numpy(data.tiles[r]).to(dev),
            **{c: torch.from_numpy(v[r]).to(dev) for c, v in data.cubes.items()},
        }
        img = torch.nn.functional.normalize(net.image(b).float(), dim=-1)
        pred.append((img @ locs.T).argmax(1).cpu().numpy())
    p = np.concatenate(pred)
    err = _haversine_km(data.lon[rows], data.lat[rows], glon[p], glat[p])
    return {
        "n": int(len(rows)),
        "median_km": float(np.median(err)),
        "p90_km": float(np.percentile(err, 90)),
        "mean_km": float(err.mean()),
    }


@torch.no_grad()
def similarity_heatmap(
    net: nn.Module,
    ref: tuple[float, float],
    bbox: tuple[float, float, float, float],
    path: Path,
    dev: torch.device,
    title: str = "",
    points: int = 120_000,
) -> Path:
    """PNG of the cosine similarity of every grid location's embedding to the embedding at ``ref`` (lon, lat)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    glon, glat, (ny, nx) = lonlat_grid(bbox, points)
    locs = _locate_all(net, glon, glat, dev)
    r = _locate_all(net, np.array([ref[0]]), np.array([ref[1]]), dev)
    sim = (locs @ r.T).squeeze(1).cpu().numpy().reshape(ny, nx)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    im = ax.imshow(
        sim, extent=(bbox[0], bbox[2], bbox[1], bbox[3]), origin="upper", cmap="magma", vmin=-1, vmax=1, aspect="auto"
    )
    ax.plot([ref[0]], [ref[1]], marker="*", color="cyan", markersize=14, markeredgecolor="black")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title(title or f"SatCLIP location-embedding similarity to ({ref[0]:.2f}, {ref[1]:.2f})")
    fig.colorbar(im, ax=ax, label="cosine similarity")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _eval_triplet(
    net: nn.Module, module: PretrainModule, dm: PretrainDataModule, cfg: Mapping[str, Any], out: Path, dev: torch.device
) -> dict[str, Any]:
    net.eval().to(dev)
    accs, n = 0.0, 0
    with torch.no_grad():
        for b in dm.val_batches():
            b = {k: v.to(dev) for k, v in b.items()}
            m = _triplet_val(module, b)
            accs += float(m["triplet_acc"]) * len(b["anchor"])
            n += len(b["anchor"])
    return {"heldout_triplet_acc": accs / max(n, 1), "heldout_triplets": n}


def _eval_clip(
    net: nn.Module, module: PretrainModule, dm: PretrainDataModule, cfg: Mapping[str, Any], out: Path, dev: torch.device
) -> dict[str, Any]:
    from glc.data.layout import GLC_BBOX
    from glc.models.registry import get_encoder

    enc = cfg["encoder"]
    data = dm.data
    rows = np.flatnonzero(data.mask("test"))
    if not len(rows):
        rows = np.flatnonzero(data.mask("val"))
    bbox = tuple(float(v) for v in GLC_BBOX)
    glon, glat, shape = lonlat_grid(bbox, int(enc["grid_points"]))
    net.eval().to(dev)
    res = {
        "grid_points": int(len(glon)),
        "grid_shape": list(shape),
        "bbox": list(bbox),
        "trained": retrieval(net, data, rows, (glon, glat), dev),
    }
    torch.manual_seed(int(cfg["seed"]) + 1)
    rand = get_encoder(enc["kind"]).build(enc, data.meta()).to(dev).eval()
    res["random"] = retrieval(rand, data, rows, (glon, glat), dev)
    res["median_ratio"] = res["trained"]["median_km"] / max(res["random"]["median_km"], 1e-9)
    ref = tuple(float(v) for v in enc["heatmap_lonlat"])
    similarity_heatmap(net, ref, bbox, out / "heatmap.png", dev, points=int(enc["grid_points"]))  # type: ignore[arg-type]
    res["heatmap"] = "heatmap.png"
    return res


#: objective -> evaluation after training: ``(net, module, datamodule, cfg, out_dir, device) -> JSON-able dict``.
EVALUATIONS: dict[str, Callable[..., dict[str, Any]]] = {"triplet": _eval_triplet, "clip": _eval_clip}


# ------------------------------------------------------------------------------------------------ pretrain
def _device(cfg: Mapping[str, Any]) -> tuple[str, torch.device, bool | str]:
    acc = str(cfg["pretrain"]["accelerator"])
    gpu = acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())
    return acc, torch.device("cuda" if gpu else "cpu"), ("warn" if gpu else True)


def pretrain(
    data: PretrainData,
    cfg: Mapping[str, Any],
    work_dir: str | Path,
    out_dir: str | Path,
    progress: bool = True,
    wandb: bool = True,
) -> dict[str, Any]:
    """Pretrain the configured encoder on ``data`` and write ``out_dir/encoder.pt`` (+ evaluation files).

    ``work_dir`` keeps the Lightning run (``checkpoints/last.ckpt``: an interrupted run resumes). ``max_epochs = 0``
    publishes the seeded initial network (the untrained control) without fitting.

    Returns:
        A JSON-able summary: data counts, best monitor, epochs, seconds, samples/s, the evaluation, the per-epoch
        validation curve.
    """
    from glc.models.registry import get_encoder
    from glc.training.fit import FitSettings, fit_model
    from glc.training.tracking import wandb_settings

    t0 = time.time()
    enc, p = cfg["encoder"], cfg["pretrain"]
    spec = get_encoder(enc["kind"])
    work, out = Path(work_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dm = PretrainDataModule(
        data,
        spec.objective,
        int(p["batch_size"]),
        int(cfg["seed"]),
        float(enc.get("distant_km", 300.0)),
        int(enc.get("val_triplets", 4096)),
        tuple(enc.get("cubes", ())),
    )
    meta = data.meta()
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    net = spec.build(enc, meta)
    work.mkdir(parents=True, exist_ok=True)
    timing = work / "epoch_times.jsonl"
    module = PretrainModule(
        net, spec.objective, float(p["lr"]), float(p["weight_decay"]), float(enc.get("margin", 1.0)), dm, timing
    )
    acc, dev, deterministic = _device(cfg)
    summary: dict[str, Any] = {
        "kind": spec.kind,
        "objective": spec.objective,
        "monitor": spec.monitor,
        "sites": meta["roles"],
        "parameters": int(sum(q.numel() for q in net.parameters())),
    }
    fit_seconds = 0.0
    if int(p["max_epochs"]) > 0:
        t1 = time.time()
        settings = FitSettings(
            max_epochs=int(p["max_epochs"]),
            patience=int(p["patience"]),
            seed=int(cfg["seed"]),
            wandb_cfg=wandb_settings(cfg, wandb),
            run_name=f"pretrain-{cfg['name']}",
            config=dict(cfg),
            accelerator=acc,
            progress=progress,
            monitor=spec.monitor,
            mode=spec.monitor_mode,
            precision=str(p["precision"]),
            deterministic=deterministic,
        )
        best = fit_model(module, _LightningDM(dm), work, settings)
        fit_seconds = time.time() - t1
        ck = torch.load(best, map_location="cpu", weights_only=False)
        module.load_state_dict(ck["state_dict"])
        summary.update(
            best_checkpoint=str(best),
            epochs_to_best=int(ck.get("epoch", -1)) + 1,
            global_step=int(ck.get("global_step", -1)),
        )
        summary["curve"] = _curve(work)
        for key, state in (ck.get("callbacks") or {}).items():
            if str(key).startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
                summary["best_monitor"] = float(state["best_model_score"])
        summary.update(_throughput(timing))
    summary["counts"] = {k: int(v) for k, v in dm.counts.items()}
    summary["evaluation"] = EVALUATIONS[spec.objective](module.net, module, dm, cfg, out, dev)
    save_encoder(out / ENCODER_FILE, module.net, cfg, meta)
    summary["seconds"] = round(time.time() - t0, 2)
    summary["fit_seconds"] = round(fit_seconds, 2)
    summary["device"] = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    return summary


def _throughput(timing: Path) -> dict[str, Any]:
    """Training samples/s over every recorded epoch (:func:`glc.training.callbacks.throughput`)."""
    from glc.training.callbacks import throughput

    t = throughput(timing)
    return {k: t[k] for k in ("epochs_trained", "train_seconds", "train_samples", "train_samples_per_s")}


def _curve(work: Path) -> list[dict[str, float]]:
    """Per-epoch validation metrics from the CSV logger (``csv/version_*/metrics.csv``)."""
    import pandas as pd

    files = sorted(work.glob("csv/version_*/metrics.csv"))
    if not files:
        return []
    df = pd.concat([pd.read_csv(f) for f in files])
    cols = [c for c in df.columns if c.startswith("val/")]
    if not cols or "epoch" not in df:
        return []
    ep = df.dropna(subset=cols[:1]).groupby("epoch")[cols].last().reset_index()
    return [{k: float(v) for k, v in row.items()} for row in ep.to_dict("records")]


class _LightningDM(pl.LightningDataModule):
    """Lightning's view of a :class:`PretrainDataModule`."""

    def __init__(self, dm: PretrainDataModule) -> None:
        super().__init__()
        self.dm = dm

    def train_dataloader(self) -> Any:
        return self.dm.train_dataloader()

    def val_dataloader(self) -> Any:
        return self.dm.val_dataloader()


def main(argv: list[str] | None = None) -> int:
    """``python -m glc.training.pretrain --data data.npz --encoder tile2vec --out DIR`` (no Spark / Luigi)."""
    from glc.config import load_encoder_config

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--data", required=True, help="a PretrainData .npz (PretrainEncoder writes one: pretrain_data.npz)")
    ap.add_argument("--encoder", required=True, help="encoder name in tasks/encoders or a .toml path")
    ap.add_argument("--out", required=True, help="output folder (encoder.pt, summary.json, training/)")
    ap.add_argument("--max-epochs", type=int, default=None, help="override pretrain.max_epochs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_encoder_config(args.encoder)
    if args.max_epochs is not None:
        cfg["pretrain"]["max_epochs"] = int(args.max_epochs)
    out = Path(args.out)
    summary = pretrain(PretrainData.load(args.data), cfg, out / "training", out, progress=False, wandb=False)
    from glc.io import write_json

    write_json(out / "summary.json", summary)  # temp + rename
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=2, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
