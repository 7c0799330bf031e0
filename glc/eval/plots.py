"""The report's figures (matplotlib, Agg backend): each function takes plain arrays and returns PNG bytes.

* :func:`f1_by_model`: validation sample-F1 of the model and its reference lines, with a 90 % interval from a
  bootstrap over spatial blocks (resampling whole blocks, as the hold-out is drawn);
* :func:`decoder_comparison`: sample-F1 of each set decoder on the same validation scores;
* :func:`reliability_diagram`: predicted probability vs observed frequency (calibration) over the top-N scores;
* :func:`species_count`: predicted vs true number of species per validation survey;
* :func:`f1_map`: per-survey F1 of the validation surveys on a lon/lat map;
* :func:`training_curves`: per-epoch validation sample-F1 and losses of a trained model (its ``metrics.csv``);
* :func:`dct_strip`: a satellite patch and its reconstructions from the top-left k x k DCT block (k = 4, 8, 16).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def block_bootstrap(
    values: np.ndarray, blocks: np.ndarray, n: int = 200, seed: int = 0, q: tuple[float, float] = (5, 95)
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` when whole ``blocks`` are resampled with replacement."""
    values = np.asarray(values, np.float64)
    _, inv = np.unique(np.asarray(blocks), return_inverse=True)
    sums = np.bincount(inv, weights=values)
    counts = np.bincount(inv).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n, len(sums)))
    means = sums[draws].sum(axis=1) / np.maximum(counts[draws].sum(axis=1), 1.0)
    lo, hi = np.percentile(means, q)
    return float(lo), float(hi)


def f1_by_model(
    per_survey: Mapping[str, np.ndarray], blocks: np.ndarray, highlight: str | None = None, seed: int = 0
) -> bytes:
    """Bar per model: mean per-survey F1 (= sample-F1) with the block-bootstrap 90 % interval."""
    plt = _plt()
    names = list(per_survey)
    means = [float(np.mean(per_survey[m])) for m in names]
    ci = [block_bootstrap(per_survey[m], blocks, seed=seed) for m in names]
    err = np.array([[m - lo for m, (lo, _) in zip(means, ci)], [hi - m for m, (_, hi) in zip(means, ci)]])
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.55 * len(names)))
    colors = ["#1f77b4" if n == highlight else "#9aa5b1" for n in names]
    ax.barh(names, means, xerr=err, color=colors, capsize=3)
    for i, m in enumerate(means):
        ax.text(m + 0.005, i, f"{m:.3f}", va="center", fontsize=8)
    ax.set_xlabel("validation sample-F1 (90 % interval: bootstrap over spatial blocks)")
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(means) * 1.25, 0.05))
    return _png(fig)


def decoder_comparison(scores: Mapping[str, float], used: str | None = None) -> bytes:
    """Bar per decoder (cross-fitted validation sample-F1); the experiment's decoder highlighted."""
    plt = _plt()
    items = sorted(scores.items(), key=lambda kv: -kv[1])
    fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(items)))
    ax.barh(
        [k for k, _ in items], [v for _, v in items], color=["#d62728" if k == used else "#9aa5b1" for k, _ in items]
    )
    for i, (_, v) in enumerate(items):
        ax.text(v + 0.003, i, f"{v:.3f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("validation sample-F1 (decoder cross-fitted on block halves)")
    ax.set_xlim(0, max(v for _, v in items) * 1.2 if items else 1)
    return _png(fig)


def reliability_diagram(prob: np.ndarray, hit: np.ndarray, bins: int = 10) -> bytes:
    """Mean predicted probability vs observed frequency per probability bin (top-N scores of every validation
    survey); bar heights below show how many scores fall in each bin (log scale)."""
    plt = _plt()
    p = np.asarray(prob, np.float64).ravel()
    h = np.asarray(hit, np.float64).ravel()
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    mean_p = np.bincount(idx, weights=p, minlength=bins) / np.maximum(n, 1)
    freq = np.bincount(idx, weights=h, minlength=bins) / np.maximum(n, 1)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5.5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    ax.plot(mean_p[n > 0], freq[n > 0], "o-", color="#1f77b4", label="model")
    ax.set_ylabel("observed frequency")
    ax.legend(loc="upper left")
    ax2.bar((edges[:-1] + edges[1:]) / 2, np.maximum(n, 1), width=1 / bins * 0.9, color="#9aa5b1", log=True)
    ax2.set_xlabel("predicted probability")
    ax2.set_ylabel("scores")
    return _png(fig)


def species_count(true_n: np.ndarray, pred_n: np.ndarray) -> bytes:
    """Predicted vs true number of species per validation survey (hexbin counts, diagonal)."""
    plt = _plt()
    t, p = np.asarray(true_n, np.float64), np.asarray(pred_n, np.float64)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    m = max(t.max(initial=1), p.max(initial=1))
    hb = ax.hexbin(t, p, gridsize=30, mincnt=1, cmap="Blues", extent=(0, m, 0, m))
    ax.plot([0, m], [0, m], "k--", lw=0.8)
    fig.colorbar(hb, ax=ax, label="surveys")
    ax.set_xlabel("true number of species")
    ax.set_ylabel("predicted set size")
    ax.set_title(f"mean true {t.mean():.1f}, mean predicted {p.mean():.1f}")
    return _png(fig)


def f1_map(lon: np.ndarray, lat: np.ndarray, f1: np.ndarray) -> bytes:
    """Per-survey F1 of the validation surveys at their locations."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sc = ax.scatter(lon, lat, c=f1, s=6, cmap="viridis", vmin=0, vmax=1, linewidths=0)
    fig.colorbar(sc, ax=ax, label="per-survey F1")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(1.0 / np.cos(np.deg2rad(np.nanmean(lat) if len(lat) else 45.0)))
    return _png(fig)


def training_curves(metrics_csv: str | Path) -> bytes:
    """Per-epoch ``val/sample_f1`` and the training / validation losses from a Lightning ``metrics.csv``."""
    import pandas as pd

    plt = _plt()
    df = pd.read_csv(metrics_csv)
    if "epoch" not in df.columns:
        raise ValueError(f"{metrics_csv}: no 'epoch' column; not a Lightning CSVLogger file")
    by_epoch = df.dropna(subset=["epoch"]).groupby("epoch").last()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if "val/sample_f1" in by_epoch:
        v = by_epoch["val/sample_f1"].dropna()
        ax.plot(v.index + 1, v.values, "o-", color="#1f77b4", label="validation sample-F1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("sample-F1")
    ax2 = ax.twinx()
    for col, style in (("train/loss_epoch", "--"), ("val/loss", ":")):
        if col in by_epoch:
            s = by_epoch[col].dropna()
            ax2.plot(s.index + 1, s.values, style, color="#d62728", label=col)
    ax2.set_ylabel("loss")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    return _png(fig)


def pretraining_curve(curve: Sequence[dict[str, float]], title: str) -> bytes:
    """Per-epoch validation metrics of an encoder's pretraining (``summary.json`` ``curve``): accuracy-like metrics on
    the left axis, losses on the right."""
    plt = _plt()
    if not curve:
        raise ValueError(f"{title}: empty pretraining curve")
    epochs = [int(c["epoch"]) + 1 for c in curve]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax2 = ax.twinx()
    for key in sorted({k for c in curve for k in c if k.startswith("val/")}):
        ys = [c.get(key, np.nan) for c in curve]
        (ax2 if key.endswith("loss") else ax).plot(epochs, ys, "--" if key.endswith("loss") else "o-", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax2.set_ylabel("loss")
    ax.set_title(title)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    return _png(fig)


def dct_strip(image: np.ndarray, ks: Sequence[int] = (4, 8, 16)) -> bytes:
    """``image`` (H, W, 3 uint8 RGB) and its reconstruction from each top-left ``k x k`` DCT block."""
    from glc.features.dct import dct2, idct2

    plt = _plt()
    img = np.asarray(image, np.float64)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"dct_strip: expected an (H, W, 3) RGB image, got shape {img.shape}")
    chw = np.moveaxis(img[..., :3], -1, 0)
    panels = [("original", img[..., :3])]
    for k in ks:
        rec = idct2(dct2(chw, k), chw.shape[-2:])
        panels.append((f"k = {k} ({3 * k * k} coefficients)", np.moveaxis(rec, 0, -1)))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (title, a) in zip(np.atleast_1d(axes), panels):
        ax.imshow(np.clip(a, 0, 255).astype(np.uint8))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return _png(fig)
