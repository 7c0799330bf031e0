"""Expected-F1 decoding: per survey, the set size ``k`` that maximises the expected F1 of the top-``k`` set.

Treat each column's score as the probability that the species is present, independently across species (the
scores must be calibrated probabilities; see :mod:`glc.decoding.calibration`). For independent labels the
F1-optimal set is a top-``k`` set of the ranking (Lewis 1995), so only ``k`` is chosen. Three estimators of
``E[F1(k)]``, ``F1(k) = 2 TP_k / (k + |Y|)``:

* ``"approx"``: the ratio of expectations ``2 * sum_{i<=k} p_(i) / (k + S)`` with ``S = sum_j p_j`` (plus
  ``prob_rest``, the mass of columns a top-N score table dropped). Deterministic, O(C log C) per survey.
* ``"mc"``: Monte Carlo with ``n_samples`` Bernoulli draws (common random numbers for every ``k``; seeded). The top
  ``n_candidates`` columns are drawn exactly; the number of positives among the remaining columns is drawn from a
  Poisson with their total mass (Le Cam: the error is at most the sum of their squared probabilities, tiny for the
  low-probability tail). Vectorised over batches of surveys.
* ``"exact"``: the exact expectation under independence (Jansche 2007; Ye et al. 2012) by dynamic programming on the
  top ``n_candidates`` columns, O(L^2) per survey: with ``TP_k`` the positives among the top ``k`` and ``R_k`` those
  after rank ``k``, ``E[F1(k)] = sum_a P(TP_k = a) * 2a * W_k(k + a)`` with ``W_k(s) = E[1 / (s + R_k)]``, computed
  backwards by ``W_k(s) = p_{k+1} W_{k+1}(s+1) + (1 - p_{k+1}) W_{k+1}(s)`` from a Poisson tail as in ``"mc"``
  (exact when there is no tail).

Ties between ``k`` values are broken towards the smaller ``k``. An optional affine correction fitted on validation
(:func:`fit_expected_f1`) gives the final size ``k = clip(round(a * k* + b), k_min, k_max)`` (round half up).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from glc.decoding.prefix import PrefixF1, check_scores, prefix_sets, ranked_topk

__all__ = ["METHODS", "affine_k", "decode_expected_f1", "expected_f1_curve", "fit_expected_f1", "optimal_k"]

METHODS = ("approx", "mc", "exact")
Method = Literal["approx", "mc", "exact"]


def _check_probs(P: Any, prob_rest: Any) -> tuple[np.ndarray, np.ndarray]:
    P = check_scores(P)
    if P.size and (P.min() < 0 or P.max() > 1) and P.min() > -1e-5 and P.max() < 1 + 1e-5:
        P = np.clip(P, 0.0, 1.0)  # float32 round-off of averaged weights, not a scale error
    if P.size and (P.min() < 0 or P.max() > 1):
        raise ValueError(
            f"expected-F1 decoding needs probabilities in [0, 1]; P spans [{P.min():.8g}, {P.max():.8g}]. "
            "Apply a sigmoid / calibration (glc.decoding.calibration) first"
        )
    n = P.shape[0]
    rest = np.zeros(n) if prob_rest is None else np.asarray(prob_rest, dtype=np.float64).reshape(-1)
    if rest.shape != (n,) or not np.all(np.isfinite(rest)) or (rest.size and rest.min() < 0):
        raise ValueError(
            f"prob_rest must be {n} finite non-negative numbers (the "
            f"probability mass not in P per survey), got shape {rest.shape}"
        )
    return P.astype(np.float64, copy=False), rest


def _check_common(k_max: int, method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not an expected-F1 estimator; valid: {METHODS}")
    if int(k_max) != k_max or k_max < 1:
        raise ValueError(f"k_max={k_max!r} must be an integer >= 1")


def _n_candidates(n_candidates: int | None, k_max: int, c: int) -> int:
    L = max(k_max, 150) if n_candidates is None else int(n_candidates)
    if k_max > L:
        raise ValueError(f"n_candidates={n_candidates} must be >= k_max={k_max}")
    return min(L, c)


def _curve_approx(vals: np.ndarray, S: np.ndarray) -> np.ndarray:
    k = np.arange(1, vals.shape[1] + 1)
    return 2.0 * np.cumsum(vals, axis=1) / (k[None, :] + S[:, None])


def _curve_mc(vals: np.ndarray, tail: np.ndarray, k_max: int, n_samples: int, seed: int) -> np.ndarray:
    n, L = vals.shape
    out = np.empty((n, k_max))
    k = np.arange(1, k_max + 1)
    # Rows are processed in fixed blocks (a function of the parameters only, never of free memory), each with its own
    # generators seeded from (seed, first row), so the result is reproducible for a given seed and row order.
    block = max(1, (1 << 23) // (n_samples * L))
    for b0 in range(0, n, block):
        g_bern, g_tail = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, b0]).spawn(2))
        v = vals[b0 : b0 + block]
        y = g_bern.random((v.shape[0], n_samples, L)) < v[:, None, :]
        tp = np.cumsum(y[:, :, :k_max], axis=2, dtype=np.int32)
        total = y.sum(axis=2, dtype=np.int64) + g_tail.poisson(
            tail[b0 : b0 + block, None], size=(v.shape[0], n_samples)
        )
        out[b0 : b0 + block] = (2.0 * tp / (k[None, None, :] + total[:, :, None])).mean(axis=1)
    return out


def _poisson_inv_moment(lam: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``E[1 / (s + R)]`` for ``R ~ Poisson(lam)`` (rows) and every ``s >= 1`` (columns); ``s = 0`` gives 0."""
    from scipy.stats import poisson

    lam = np.maximum(lam, 0.0)
    r_max = int(np.ceil(lam.max(initial=0.0) + 12.0 * np.sqrt(lam.max(initial=0.0)) + 30.0))
    r = np.arange(r_max + 1)
    pmf = poisson.pmf(r[None, :], lam[:, None])  # (B, R)
    inv = np.zeros((s.size, r.size))
    ok = s >= 1
    inv[ok] = 1.0 / (s[ok, None] + r[None, :])
    return pmf @ inv.T


def _curve_exact(vals: np.ndarray, tail: np.ndarray, k_max: int) -> np.ndarray:
    n, L = vals.shape
    out = np.empty((n, k_max))
    s_max = k_max + L + 1
    s = np.arange(s_max + 1)
    a = np.arange(k_max + 1)
    block = 256
    for b0 in range(0, n, block):
        p = vals[b0 : b0 + block]
        B = p.shape[0]
        W = _poisson_inv_moment(tail[b0 : b0 + block], s)  # W_L(s), (B, s_max+1)
        Wq = np.zeros((B, k_max + 1, k_max + 1))  # Wq[:, k, a] = W_k(k + a)
        for kk in range(L, 0, -1):  # W currently holds W_kk
            if kk <= k_max:
                Wq[:, kk, : kk + 1] = W[:, kk : 2 * kk + 1]
            pk = p[:, kk - 1 : kk]  # p_kk moves from the "after" to the "top" part going to W_{kk-1}
            shifted = np.concatenate([W[:, 1:], W[:, -1:]], axis=1)  # W(s+1); the top entry is never queried
            W = pk * shifted + (1.0 - pk) * W
            W[:, 0] = 0.0
        dist = np.zeros((B, k_max + 1))
        dist[:, 0] = 1.0
        for kk in range(1, k_max + 1):
            pk = p[:, kk - 1 : kk]
            dist[:, 1:] = (1.0 - pk) * dist[:, 1:] + pk * dist[:, :-1]
            dist[:, 0] *= 1.0 - pk[:, 0]
            out[b0 : b0 + block, kk - 1] = (dist * 2.0 * a[None, :] * Wq[:, kk, :]).sum(axis=1)
    return out


def expected_f1_curve(
    P: Any,
    k_max: int = 100,
    method: Method = "approx",
    n_samples: int = 400,
    seed: int = 0,
    prob_rest: Any = None,
    n_candidates: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimated ``E[F1(k)]`` for ``k = 1..k_max`` and the ranked columns.

    Args:
        P: (n x C) probabilities in [0, 1].
        k_max: largest set size considered (clipped to C).
        method: ``"approx"``, ``"mc"`` or ``"exact"`` (module docstring).
        n_samples: Monte Carlo draws per survey (``"mc"``).
        seed: Monte Carlo seed (``"mc"``).
        prob_rest: (n,) probability mass of species not in ``P`` (e.g. ``ScoreTable.prob_rest``), added to the tail.
        n_candidates: columns modelled exactly by ``"mc"``/``"exact"`` (default ``max(k_max, 150)``).

    Returns:
        ``(curve, cols)``: curve (n, k_max') with ``curve[i, k-1] = E[F1_i(k)]``, and the ranked columns (n, k_max').
    """
    _check_common(k_max, method)
    P, rest = _check_probs(P, prob_rest)
    n, c = P.shape
    k_max = min(int(k_max), c)
    if k_max < 1:
        raise ValueError("P has no columns")
    S = P.sum(axis=1) + rest
    if method == "approx":
        cols, vals = ranked_topk(P, k_max)
        return _curve_approx(vals, S), cols
    if int(n_samples) < 1:
        raise ValueError(f"n_samples={n_samples!r} must be >= 1")
    L = _n_candidates(n_candidates, k_max, c)
    cols, vals = ranked_topk(P, L)
    tail = np.maximum(S - vals.sum(axis=1), 0.0)
    curve = (
        _curve_mc(vals, tail, k_max, int(n_samples), int(seed)) if method == "mc" else _curve_exact(vals, tail, k_max)
    )
    return curve, cols[:, :k_max]


def optimal_k(P: Any, k_max: int = 100, method: Method = "approx", **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(k*, cols)``: the expected-F1-maximising set size per survey (smallest on ties) and the ranked columns."""
    curve, cols = expected_f1_curve(P, k_max, method, **kw)
    return np.argmax(curve, axis=1).astype(np.int64) + 1, cols


def affine_k(k_star: np.ndarray, a: float = 1.0, b: float = 0.0, k_min: int = 1, k_max: int = 100) -> np.ndarray:
    """``clip(floor(a * k* + b + 0.5), k_min, k_max)``: the affine set-size correction."""
    if int(k_min) != k_min or k_min < 1 or k_max < k_min:
        raise ValueError(f"need 1 <= k_min <= k_max, got k_min={k_min!r}, k_max={k_max!r}")
    return np.clip(np.floor(a * np.asarray(k_star, dtype=np.float64) + b + 0.5), k_min, k_max).astype(np.int64)


def decode_expected_f1(
    P: Any,
    k_max: int = 100,
    method: Method = "approx",
    n_samples: int = 400,
    seed: int = 0,
    a: float = 1.0,
    b: float = 0.0,
    k_min: int = 1,
    prob_rest: Any = None,
    n_candidates: int | None = None,
) -> list[np.ndarray]:
    """Per survey, the top-``k`` columns with ``k`` maximising the expected F1, after the affine correction.

    See the module docstring for the estimators and :func:`expected_f1_curve` for the arguments; ``a``/``b`` and
    ``k_min`` define the correction ``k = clip(round(a*k* + b), k_min, k_max)``.

    Returns:
        Column-index arrays (int64, rank order), one per survey.
    """
    k_star, cols = optimal_k(
        P, k_max, method, n_samples=n_samples, seed=seed, prob_rest=prob_rest, n_candidates=n_candidates
    )
    k = affine_k(k_star, a, b, k_min, cols.shape[1])
    return prefix_sets(cols, k)


def fit_expected_f1(
    P_val: Any,
    Y_val: Any,
    k_max: int = 100,
    method: Method = "approx",
    offsets: Any = range(-5, 16),
    slopes: Any = (1.0,),
    k_min: int = 1,
    **kw: Any,
) -> dict[str, Any]:
    """Fit the affine correction ``(a, b)`` on validation by grid search (ties: first slope, then smallest offset).

    Args:
        P_val: validation probabilities (n x C).
        Y_val: validation truth (see :func:`glc.decoding.prefix.truth_csr`).
        k_max: as in :func:`decode_expected_f1`.
        method: estimator.
        offsets: candidate ``b`` values.
        slopes: candidate ``a`` values.
        k_min: smallest set size.
        **kw: ``n_samples``, ``seed``, ``prob_rest``, ``n_candidates``.

    Returns:
        ``{"method", "k_max", "k_min", "a", "b", "f1", "f1_uncorrected"}`` (+ ``n_samples``/``seed`` for ``"mc"``).
    """
    k_star, cols = optimal_k(P_val, k_max, method, **kw)
    km = cols.shape[1]
    pf = PrefixF1(P_val, Y_val)
    bs = np.asarray(list(offsets), dtype=np.float64)
    as_ = np.asarray(list(slopes), dtype=np.float64)
    if bs.size == 0 or as_.size == 0:
        raise ValueError("offsets and slopes must be non-empty")
    grid = np.array([[pf.mean(affine_k(k_star, a, b, k_min, km)) for b in bs] for a in as_])
    i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
    out = {
        "method": method,
        "k_max": int(k_max),
        "k_min": int(k_min),
        "a": float(as_[i]),
        "b": float(bs[j]),
        "f1": float(grid[i, j]),
        "f1_uncorrected": float(pf.mean(affine_k(k_star, 1.0, 0.0, k_min, km))),
    }
    if method == "mc":
        out.update(n_samples=int(kw.get("n_samples", 400)), seed=int(kw.get("seed", 0)))
    if kw.get("n_candidates") is not None:
        out["n_candidates"] = int(kw["n_candidates"])
    return out
