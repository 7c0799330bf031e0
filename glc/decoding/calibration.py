"""Probability calibration of multi-label logits on validation: temperature scaling and Platt scaling.

Threshold and expected-F1 decoders assume calibrated probabilities; models trained with ``pos_weight`` or
asymmetric losses are not (models.md A6). Both scalers fit by minimising the mean binary cross-entropy over all
(survey, species) entries with scipy.optimize:

* :class:`TemperatureScaler`: ``p = sigmoid(z / T)``, one temperature ``T > 0`` (keeps the ranking).
* :class:`PlattScaler`: ``p = sigmoid(a * z + b)``, one slope and one intercept shared by all species.

**Subsampling.** A GLC-size matrix (thousands of surveys x 11,255 species) is mostly negatives. Above
``max_entries`` entries the loss is estimated on *every* positive entry plus ``max_entries - n_pos`` entries drawn
uniformly (with replacement, seeded) from the whole matrix, of which those that are positive are dropped; each kept
draw is weighted ``n*C / n_draws``. This is an unbiased (Horvitz-Thompson) estimate of the full-matrix loss, so the
fitted parameters do not drift with the sample size. (Keeping only columns seen in the truth would bias ``T``: the
never-seen columns are exactly where over-confident models lose the most.) Truth indices outside the matrix's
columns (species not in the vocabulary) cannot be calibrated and are ignored.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import expit

from glc.decoding.prefix import check_scores, truth_csr

__all__ = ["PlattScaler", "TemperatureScaler"]

log = logging.getLogger(__name__)


def _entries(logits: Any, Y: Any, max_entries: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, y, w): logits, 0/1 labels and weights of the entries the loss is computed on (see module docstring)."""
    z = check_scores(logits, "logits")
    n, c = z.shape
    if n == 0 or c == 0:
        raise ValueError(f"logits has shape {z.shape}; calibration needs at least one survey and one species")
    indptr, indices, _ = truth_csr(Y, n, c)
    if indices.size == 0:
        raise ValueError(
            "the calibration truth Y has no positive entry inside the logits' columns; cannot fit a calibration"
        )
    if int(max_entries) < 1:
        raise ValueError(f"max_entries={max_entries!r} must be >= 1")
    rows = np.repeat(np.arange(n), np.diff(indptr))
    pos_keys = rows * c + indices  # sorted
    if n * c <= max_entries:
        y = np.zeros(n * c, dtype=np.float64)
        y[pos_keys] = 1.0
        return z.reshape(-1).astype(np.float64), y, np.ones(n * c)
    m = max(int(max_entries) - pos_keys.size, 1)
    draws = np.random.default_rng(seed).integers(0, n * c, size=m)
    neg = draws[~np.isin(draws, pos_keys, assume_unique=False)]
    zf = z.reshape(-1)
    zz = np.concatenate([zf[pos_keys], zf[neg]]).astype(np.float64)
    yy = np.concatenate([np.ones(pos_keys.size), np.zeros(neg.size)])
    ww = np.concatenate([np.ones(pos_keys.size), np.full(neg.size, n * c / m)])
    return zz, yy, ww


def _bce(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean BCE of logits ``x`` (stable: softplus(x) - y*x)."""
    return float(np.sum(w * (np.logaddexp(0.0, x) - y * x)) / np.sum(w))


class TemperatureScaler:
    """``p = sigmoid(logits / T)`` with ``T`` minimising the validation BCE.

    Args:
        max_entries: above this many (survey, species) entries, fit on a weighted subsample (module docstring).
        bounds: search interval for ``T``.
        seed: subsampling seed.

    Attributes:
        temperature_: the fitted ``T``.
        loss_: the BCE at ``T``; ``loss_at_1_``: the BCE at ``T = 1`` (uncalibrated), for reports.
    """

    def __init__(
        self, max_entries: int = 2_000_000, bounds: tuple[float, float] = (0.01, 100.0), seed: int = 0
    ) -> None:
        if not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"bounds={bounds!r} must satisfy 0 < low < high")
        self.max_entries = int(max_entries)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.seed = int(seed)
        self.temperature_: float | None = None

    def fit(self, logits: Any, Y: Any) -> TemperatureScaler:
        """Fit ``T`` on (n x C) logits and truth ``Y`` (0/1 matrix or per-survey column-index lists)."""
        from scipy.optimize import minimize_scalar

        z, y, w = _entries(logits, Y, self.max_entries, self.seed)
        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = minimize_scalar(
            lambda lt: _bce(z * np.exp(-lt), y, w), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}
        )
        if not res.success:
            raise RuntimeError(f"temperature fit did not converge: {res.message}")
        self.temperature_ = float(np.exp(res.x))
        if min(abs(res.x - lo), abs(res.x - hi)) < 1e-3:
            log.warning(
                "fitted temperature %.4g lies at the search bound %s; widen `bounds`", self.temperature_, self.bounds
            )
        self.loss_ = float(res.fun)
        self.loss_at_1_ = _bce(z, y, w)
        return self

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``sigmoid(logits / T)``."""
        if self.temperature_ is None:
            raise RuntimeError("TemperatureScaler.transform called before fit(logits, Y)")
        return expit(check_scores(logits, "logits") / self.temperature_)


class PlattScaler:
    """``p = sigmoid(a * logits + b)`` with ``(a, b)`` minimising the validation BCE (L-BFGS-B, analytic gradient).

    Args:
        max_entries: above this many entries, fit on a weighted subsample (module docstring).
        seed: subsampling seed.

    Attributes:
        a_, b_: fitted slope and intercept; ``loss_``: the BCE at the optimum.
    """

    def __init__(self, max_entries: int = 2_000_000, seed: int = 0) -> None:
        self.max_entries = int(max_entries)
        self.seed = int(seed)
        self.a_: float | None = None
        self.b_: float | None = None

    def fit(self, logits: Any, Y: Any) -> PlattScaler:
        """Fit ``(a, b)`` on (n x C) logits and truth ``Y`` (0/1 matrix or per-survey column-index lists)."""
        from scipy.optimize import minimize

        z, y, w = _entries(logits, Y, self.max_entries, self.seed)
        sw = np.sum(w)

        def fun(ab: np.ndarray) -> tuple[float, np.ndarray]:
            x = ab[0] * z + ab[1]
            g = w * (expit(x) - y) / sw
            return float(np.sum(w * (np.logaddexp(0.0, x) - y * x)) / sw), np.array([np.sum(g * z), np.sum(g)])

        res = minimize(fun, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        if not res.success:
            raise RuntimeError(f"Platt fit did not converge: {res.message}")
        self.a_, self.b_ = float(res.x[0]), float(res.x[1])
        self.loss_ = float(res.fun)
        return self

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``sigmoid(a * logits + b)``."""
        if self.a_ is None or self.b_ is None:
            raise RuntimeError("PlattScaler.transform called before fit(logits, Y)")
        return expit(self.a_ * check_scores(logits, "logits") + self.b_)
