"""Fixed-size and global-threshold decoders.

Both return, per survey, a prefix of the survey's ranking (decreasing score, ties by lower column index) as an
int64 array of column indices in rank order; callers map columns to species ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glc.decoding.prefix import PrefixF1, check_scores, prefix_sets, ranked_topk

__all__ = ["decode_threshold", "decode_topk", "fit_threshold", "fit_topk", "threshold_lengths"]


def decode_topk(P: Any, k: int) -> list[np.ndarray]:
    """The ``k`` highest-scoring columns of every survey (``k`` is clipped to the number of columns).

    Raises:
        ValueError: ``k < 1`` or a bad score matrix.
    """
    P = check_scores(P)
    if int(k) != k or k < 1:
        raise ValueError(f"k={k!r} must be an integer >= 1")
    cols, _ = ranked_topk(P, int(k))
    return list(cols)


def threshold_lengths(P: np.ndarray, theta: float, min_k: int = 1) -> np.ndarray:
    """Set size per row of :func:`decode_threshold`: ``max(#{j: P_ij >= theta}, min_k)`` (clipped to C)."""
    return np.minimum(np.maximum((theta <= P).sum(axis=1), min_k), P.shape[1])


def decode_threshold(P: Any, theta: float, min_k: int = 1) -> list[np.ndarray]:
    """Columns scoring ``>= theta``; a survey with fewer than ``min_k`` such columns gets its top-``min_k`` instead.

    The set is never empty (``min_k >= 1``), since an empty prediction scores F1 0 whatever the truth.

    Raises:
        ValueError: ``min_k < 1``, a non-finite ``theta`` or a bad score matrix.
    """
    P = check_scores(P)
    if int(min_k) != min_k or min_k < 1:
        raise ValueError(f"min_k={min_k!r} must be an integer >= 1 (decode_threshold never returns an empty set)")
    if not np.isfinite(theta):
        raise ValueError(f"theta={theta!r} must be a finite number")
    lengths = threshold_lengths(P, float(theta), int(min_k))
    cols, _ = ranked_topk(P, int(lengths.max(initial=0)))
    return prefix_sets(cols, lengths)


def fit_topk(P_val: Any, Y_val: Any, ks: Any = range(1, 101)) -> dict[str, Any]:
    """The fixed ``k`` maximising validation sample-F1 (ties: the smallest ``k``)."""
    pf = PrefixF1(P_val, Y_val)
    ks = np.asarray(list(ks), dtype=np.int64)
    if ks.size == 0 or ks.min() < 1:
        raise ValueError(f"ks must be a non-empty range of integers >= 1, got {ks.tolist()[:5]}")
    f1 = np.asarray(pf.mean(np.broadcast_to(ks[:, None], (ks.size, pf.n))))
    best = int(np.argmax(f1))
    return {"k": int(ks[best]), "f1": float(f1[best])}


def fit_threshold(P_val: Any, Y_val: Any, thetas: Any = None, min_k: int = 1) -> dict[str, Any]:
    """The global threshold maximising validation sample-F1 (``decode_threshold`` with ``min_k``; ties: smallest theta).

    Args:
        P_val: validation scores (n x C).
        Y_val: validation truth (see :func:`glc.decoding.prefix.truth_csr`).
        thetas: candidate thresholds; default ``0.01, 0.02, ..., 0.99``.
        min_k: as in :func:`decode_threshold`.
    """
    pf = PrefixF1(P_val, Y_val)
    th = (
        np.round(np.arange(0.01, 0.99001, 0.01), 10)
        if thetas is None
        else np.asarray(list(np.atleast_1d(thetas)), dtype=np.float64)
    )
    if th.size == 0 or not np.all(np.isfinite(th)):
        raise ValueError("thetas must be a non-empty list of finite numbers")
    lengths = np.minimum(np.maximum(pf.count_at_least(th), int(min_k)), pf.c)
    f1 = np.asarray(pf.mean(lengths))
    best = int(np.argmax(f1))
    return {"theta": float(th[best]), "min_k": int(min_k), "f1": float(f1[best])}
