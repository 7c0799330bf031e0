"""Threshold-top-K decoding (Tighnari, GLC24 3rd place: K=44, theta=0.23), under both readings of the rule.

The paper's rule "top-K and p > theta" is ambiguous (models.md A4), so both readings are implemented and the fit
keeps the better one on validation:

* ``"union"``: every column in the top-``K`` **or** scoring ``>= theta``: size ``max(K, n_theta)``.
* ``"filter"``: the top-``K`` columns **filtered** by ``>= theta`` (``K`` is a cap): size ``min(K, n_theta)``, at least
  ``min_k`` (default 1, so the set is never empty).

where ``n_theta = #{j: P_ij >= theta}``. Both are prefixes of the ranking (decreasing score, ties by lower column
index), so the fit evaluates the whole ``(mode, K, theta)`` grid from one sort with prefix counts
(:class:`glc.decoding.prefix.PrefixF1`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from glc.decoding.prefix import PrefixF1, check_scores, prefix_sets, ranked_topk

__all__ = ["MODES", "decode_threshold_topk", "fit_threshold_topk", "threshold_topk_lengths"]

MODES = ("union", "filter")


def _check(K: int, theta: float, mode: str, min_k: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not a threshold-top-K reading; valid: {MODES}")
    if int(K) != K or K < 1:
        raise ValueError(f"K={K!r} must be an integer >= 1")
    if int(min_k) != min_k or min_k < 1:
        raise ValueError(f"min_k={min_k!r} must be an integer >= 1")
    if not np.isfinite(theta):
        raise ValueError(f"theta={theta!r} must be a finite number")


def threshold_topk_lengths(n_theta: np.ndarray, K: int, mode: str, min_k: int = 1) -> np.ndarray:
    """Set sizes from ``n_theta = #{j: P_ij >= theta}`` (any shape) for one ``K`` and mode (not clipped to C)."""
    if mode == "union":
        return np.maximum(n_theta, K)
    return np.minimum(np.maximum(n_theta, min_k), K)


def decode_threshold_topk(
    P: Any, K: int, theta: float, mode: Literal["union", "filter"] = "filter", min_k: int = 1
) -> list[np.ndarray]:
    """Decode every survey with the threshold-top-K rule (see the module docstring for the two modes).

    Args:
        P: (n x C) scores (probabilities, for ``theta`` to mean anything).
        K: top-K size (union) or cap (filter).
        theta: probability threshold (inclusive).
        mode: ``"union"`` or ``"filter"``.
        min_k: smallest set in ``"filter"`` mode (>= 1).

    Returns:
        Column-index arrays (int64, rank order), one per survey.
    """
    _check(K, theta, mode, min_k)
    P = check_scores(P)
    n_theta = (theta <= P).sum(axis=1)
    lengths = np.minimum(threshold_topk_lengths(n_theta, int(K), mode, int(min_k)), P.shape[1])
    cols, _ = ranked_topk(P, int(lengths.max(initial=0)))
    return prefix_sets(cols, lengths)


def fit_threshold_topk(
    P_val: Any,
    Y_val: Any,
    Ks: Iterable[int] = range(1, 101),
    thetas: Iterable[float] = np.arange(0.10, 0.5001, 0.01),
    modes: Iterable[str] = MODES,
    min_k: int = 1,
) -> dict[str, Any]:
    """Grid-search ``(mode, K, theta)`` for the best validation sample-F1.

    Ties are broken by the grid order: modes as given, then the smallest ``K``, then the smallest ``theta``.

    Args:
        P_val: validation scores (n x C).
        Y_val: validation truth (0/1 matrix or per-survey column-index lists; see
            :func:`glc.decoding.prefix.truth_csr`).
        Ks: candidate K values (>= 1).
        thetas: candidate thresholds.
        modes: readings to search, subset of ``("union", "filter")``.
        min_k: smallest set in ``"filter"`` mode.

    Returns:
        ``{"mode", "K", "theta", "f1", "min_k", "f1_by_mode": {mode: best F1 of that reading}}``.
    """
    ks = np.asarray(list(Ks), dtype=np.int64)
    th = np.round(np.asarray(list(np.atleast_1d(thetas)), dtype=np.float64), 10)
    modes = tuple(modes)
    if ks.size == 0 or ks.min() < 1:
        raise ValueError(f"Ks must be a non-empty list of integers >= 1, got {ks.tolist()[:5]}")
    if th.size == 0 or not np.all(np.isfinite(th)):
        raise ValueError("thetas must be a non-empty list of finite numbers")
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"modes={modes!r} must be a non-empty subset of {MODES}")
    pf = PrefixF1(P_val, Y_val)
    counts = pf.count_at_least(th)  # (T, n)
    f1 = np.empty((len(modes), ks.size, th.size))
    for m, mode in enumerate(modes):
        for t in range(th.size):
            lengths = threshold_topk_lengths(counts[t][None, :], ks[:, None], mode, int(min_k))  # (|K|, n)
            f1[m, :, t] = pf.mean(lengths)
    m, a, t = np.unravel_index(int(np.argmax(f1)), f1.shape)
    return {
        "mode": modes[m],
        "K": int(ks[a]),
        "theta": float(th[t]),
        "f1": float(f1[m, a, t]),
        "min_k": int(min_k),
        "f1_by_mode": {mode: float(f1[i].max()) for i, mode in enumerate(modes)},
    }
