"""Set decoding: from a (surveys x species) score matrix to one predicted species set per survey.

Every decoder takes a dense score matrix ``P`` (rows = surveys, columns = indices into the caller's species
vocabulary) and returns a list of int64 arrays of **column indices** in rank order (decreasing score, ties broken by
the lower column index, so every decoder is deterministic); callers map them to species ids (e.g.
``ScoreTable.sets_to_ids``). All decoders return a prefix of the ranking and never an empty set.

Uniform interface for reports and benchmarks::

    from glc.decoding import DECODERS, decode, fit_decoder

    for name in DECODERS:
        params = fit_decoder(name, P_val, Y_val, **extras_val)   # JSON-able dict, includes "name"
        sets = decode(name, P_test, params, **extras_test)

``Y_val`` is a 0/1 (n x C) matrix (dense or scipy.sparse) or per-survey column-index lists; in the list form an
index outside ``0..C-1`` counts as a species that can never be predicted (see :func:`glc.decoding.prefix.truth_csr`).
Extras: ``n_hat`` (predicted species counts; required by ``"count"``) and ``prob_rest`` (probability mass not in
``P``; optional for the expected-F1 decoders). Fitting keyword arguments per decoder:

========================  ====================================================  =====================================
name                      fitted on validation                                  fit keywords (defaults)
========================  ====================================================  =====================================
``topk``                  ``k``                                                 ``ks=range(1, 101)``
``threshold``             ``theta`` (set never empty: ``min_k``)                ``thetas=0.01..0.99``, ``min_k=1``
``threshold_topk``        ``mode``, ``K``, ``theta`` (Tighnari)                 ``Ks``, ``thetas``, ``modes``, ``min_k``
``expected_f1``           affine offset ``b`` (slope ``a``) of the approx k*    ``k_max=100``, ``offsets``, ``slopes``
``expected_f1_mc``        same, Monte Carlo k*                                  + ``n_samples=400``, ``seed=0``
``expected_f1_exact``     same, exact k* under independence                     + ``n_candidates``
``expected_f1_platt``     Platt scaling ``platt_a``, ``platt_b``, then as above  ``k_max=100``, ``offsets``, ``slopes``
``count``                 offset of top-(round(n_hat) + offset) (BernIgen)      ``offsets=range(-10, 21)``, ``n_hat``
========================  ====================================================  =====================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit

from glc.decoding.calibration import PlattScaler, TemperatureScaler
from glc.decoding.correction import apply_corrections
from glc.decoding.count import CountModel, decode_count, fit_count_offset
from glc.decoding.expected_f1 import decode_expected_f1, fit_expected_f1
from glc.decoding.prefix import PrefixF1
from glc.decoding.threshold_topk import decode_threshold_topk, fit_threshold_topk
from glc.decoding.topk import decode_threshold, decode_topk, fit_threshold, fit_topk

__all__ = [
    "DECODERS",
    "CountModel",
    "Decoder",
    "PlattScaler",
    "PrefixF1",
    "TemperatureScaler",
    "apply_corrections",
    "decode",
    "decode_count",
    "decode_expected_f1",
    "decode_threshold",
    "decode_threshold_topk",
    "decode_topk",
    "fit_decoder",
    "fit_threshold_topk",
]


@dataclass(frozen=True)
class Decoder:
    """One registered decoder: ``decoder(P, params, **extras)`` decodes; ``decoder.fit(P_val, Y_val, **kw)`` fits.

    Attributes:
        name: registry key.
        apply: ``(P, params, **extras) -> sets``.
        fitter: ``(P_val, Y_val, **kw) -> params`` (without ``"name"``).
        extras: keyword inputs that are per-matrix data (e.g. ``n_hat``) rather than fitted parameters.
        required: the subset of ``extras`` that must be given.
    """

    name: str
    apply: Callable[..., list[np.ndarray]]
    fitter: Callable[..., dict[str, Any]]
    extras: tuple[str, ...] = ()
    required: tuple[str, ...] = field(default=())

    def _check_extras(self, kw: dict[str, Any], where: str) -> None:
        missing = [e for e in self.required if kw.get(e) is None]
        if missing:
            raise ValueError(
                f"decoder {self.name!r} {where} needs {missing} (per-survey inputs aligned with the rows of P)"
            )

    def __call__(self, P: Any, params: dict[str, Any], **extras: Any) -> list[np.ndarray]:
        """Decode ``P`` with fitted ``params``."""
        unknown = set(extras) - set(self.extras)
        if unknown:
            raise TypeError(
                f"decoder {self.name!r} does not take {sorted(unknown)} at "
                f"decode time; it takes {list(self.extras) or 'no extras'}"
            )
        self._check_extras(extras, "decode")
        if params.get("name", self.name) != self.name:
            raise ValueError(f"params were fitted for decoder {params['name']!r}, not {self.name!r}")
        return self.apply(P, params, **extras)

    def fit(self, P_val: Any, Y_val: Any, **kw: Any) -> dict[str, Any]:
        """Fit on validation scores and truth; returns JSON-able params including ``"name"``."""
        self._check_extras(kw, "fit")
        return {"name": self.name, **self.fitter(P_val, Y_val, **kw)}


def _need(params: dict[str, Any], *keys: str, name: str) -> list[Any]:
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(
            f"params for decoder {name!r} lack {missing}; fit them "
            f"with fit_decoder({name!r}, P_val, Y_val) or pass them"
        )
    return [params[k] for k in keys]


def _apply_ef1(method: str) -> Callable[..., list[np.ndarray]]:
    def apply(P: Any, params: dict[str, Any], prob_rest: Any = None) -> list[np.ndarray]:
        p = {"k_max": 100, "a": 1.0, "b": 0.0, "k_min": 1, **params}
        kw = {k: p[k] for k in ("n_samples", "seed", "n_candidates") if k in p}
        return decode_expected_f1(
            P, k_max=p["k_max"], method=method, a=p["a"], b=p["b"], k_min=p["k_min"], prob_rest=prob_rest, **kw
        )  # type: ignore[arg-type]

    return apply


def _fit_ef1(method: str) -> Callable[..., dict[str, Any]]:
    def fit(P_val: Any, Y_val: Any, **kw: Any) -> dict[str, Any]:
        return fit_expected_f1(P_val, Y_val, method=method, **kw)  # type: ignore[arg-type]

    return fit


def _logit(P: Any) -> np.ndarray:
    P = np.clip(np.asarray(P, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(P) - np.log1p(-P)


def _in_matrix(Y: Any, n_cols: int) -> Any:
    """Truth column lists without the 'outside the top-N' index (``n_cols``), which no calibration can see."""
    if isinstance(Y, list):
        return [np.asarray(y)[np.asarray(y) < n_cols] for y in Y]
    return Y


def _platt(P: Any, params: dict[str, Any]) -> np.ndarray:
    a, b = _need(params, "platt_a", "platt_b", name="expected_f1_platt")
    return expit(a * _logit(P) + b)


def _apply_ef1_platt(P: Any, params: dict[str, Any], prob_rest: Any = None) -> list[np.ndarray]:
    p = {"k_max": 100, "a": 1.0, "b": 0.0, "k_min": 1, **params}
    return decode_expected_f1(_platt(P, p), k_max=p["k_max"], method="approx", a=p["a"], b=p["b"], k_min=p["k_min"])


def _fit_ef1_platt(P_val: Any, Y_val: Any, prob_rest: Any = None, seed: int = 0, **kw: Any) -> dict[str, Any]:
    """Platt-scale the scores on validation (``sigmoid(a*logit(p)+b)``, BCE-optimal), then fit expected-F1.

    For scores that are not probabilities (ASL, Hill, sigmoidF1 push them away from calibrated values), expected-F1
    decoding needs calibration first. The mass outside the top-N columns (``prob_rest``) is not on the calibrated
    scale and is ignored by this variant.
    """
    from glc.decoding.calibration import PlattScaler

    P = np.asarray(P_val)
    sc = PlattScaler(seed=seed).fit(_logit(P), _in_matrix(Y_val, P.shape[1]))
    out = fit_expected_f1(expit(sc.a_ * _logit(P) + sc.b_), Y_val, method="approx", **kw)
    return {**out, "platt_a": float(sc.a_), "platt_b": float(sc.b_)}


def _apply_threshold_topk(P: Any, params: dict[str, Any]) -> list[np.ndarray]:
    mode, K, theta = _need(params, "mode", "K", "theta", name="threshold_topk")
    return decode_threshold_topk(P, K, theta, mode, params.get("min_k", 1))


DECODERS: dict[str, Decoder] = {
    d.name: d
    for d in (
        Decoder("topk", lambda P, p: decode_topk(P, *_need(p, "k", name="topk")), fit_topk),
        Decoder(
            "threshold",
            lambda P, p: decode_threshold(P, *_need(p, "theta", name="threshold"), p.get("min_k", 1)),
            fit_threshold,
        ),
        Decoder("threshold_topk", _apply_threshold_topk, fit_threshold_topk),
        Decoder("expected_f1", _apply_ef1("approx"), _fit_ef1("approx"), extras=("prob_rest",)),
        Decoder("expected_f1_mc", _apply_ef1("mc"), _fit_ef1("mc"), extras=("prob_rest",)),
        Decoder("expected_f1_exact", _apply_ef1("exact"), _fit_ef1("exact"), extras=("prob_rest",)),
        Decoder("expected_f1_platt", _apply_ef1_platt, _fit_ef1_platt, extras=("prob_rest",)),
        Decoder(
            "count",
            lambda P, p, n_hat=None: decode_count(P, n_hat, *_need(p, "offset", name="count"), p.get("k_min", 1)),
            lambda P, Y, n_hat=None, **kw: fit_count_offset(P, Y, n_hat, **kw),
            extras=("n_hat",),
            required=("n_hat",),
        ),
    )
}


def _get(name: str) -> Decoder:
    try:
        return DECODERS[name]
    except KeyError:
        raise ValueError(f"decoder {name!r} is not registered; valid: {sorted(DECODERS)}") from None


def fit_decoder(name: str, P_val: Any, Y_val: Any, **kw: Any) -> dict[str, Any]:
    """Fit decoder ``name`` on validation scores ``P_val`` and truth ``Y_val``; returns JSON-able params.

    The returned dict holds ``"name"``, the fitted parameters and the validation sample-F1 they reached (``"f1"``;
    in-sample, so optimistic: score held-out surveys for an honest number).
    """
    return _get(name).fit(P_val, Y_val, **kw)


def decode(name: str, P: Any, params: dict[str, Any], **extras: Any) -> list[np.ndarray]:
    """Decode scores ``P`` with decoder ``name`` and its (fitted or hand-set) ``params``; extras as in the table
    above."""
    return _get(name)(P, params, **extras)
