"""Count-model decoding (BernIgen, GLC24: top-(N_hat + offset) with N_hat from a species-count regressor).

:class:`CountModel` regresses the number of species per survey on a feature matrix (environment, location, ...; whatever
the caller supplies) with a Poisson loss: either scikit-learn's ``HistGradientBoostingRegressor(loss="poisson")``
(``kind="hgb"``, the default; handles NaN features natively) or a standardised Poisson GLM (``kind="glm"``).
:func:`decode_count` then takes the top-``(round(N_hat) + offset)`` columns per survey, and :func:`fit_count_offset`
picks the offset on validation (BernIgen found +3..4 best: a slight upward bias helps F1).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from glc.decoding.prefix import PrefixF1, check_scores, prefix_sets, ranked_topk

__all__ = ["CountModel", "count_lengths", "decode_count", "fit_count_offset"]

KINDS = ("hgb", "glm")


class CountModel:
    """Regressor from survey features to the number of species present.

    Args:
        kind: ``"hgb"`` (HistGradientBoostingRegressor, Poisson loss) or ``"glm"`` (StandardScaler + PoissonRegressor).
        seed: random state of the gradient-boosting model.
        **params: passed to the underlying scikit-learn estimator (e.g. ``max_iter=300``, ``alpha=1e-3``).

    Example:
        >>> m = CountModel().fit(X_train, n_species_train)          # doctest: +SKIP
        >>> sets = decode_count(P_test, m.predict(X_test), offset=3)  # doctest: +SKIP
    """

    def __init__(self, kind: Literal["hgb", "glm"] = "hgb", seed: int = 0, **params: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"CountModel kind={kind!r} is not known; valid: {KINDS}")
        self.kind = kind
        self.seed = int(seed)
        self.params = params
        self.model_: Any = None
        self.n_features_: int | None = None

    def _make(self) -> Any:
        if self.kind == "hgb":
            from sklearn.ensemble import HistGradientBoostingRegressor

            return HistGradientBoostingRegressor(loss="poisson", random_state=self.seed, **self.params)
        from sklearn.linear_model import PoissonRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), PoissonRegressor(**{"max_iter": 1000, **self.params}))

    def _check_X(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"features must be a 2-D (surveys x features) array, got shape {X.shape}")
        if self.kind == "glm" and not np.all(np.isfinite(X)):
            i, j = np.argwhere(~np.isfinite(X))[0]
            raise ValueError(
                f"features[{i}, {j}] = {X[i, j]}: the Poisson GLM needs finite features; impute them or use kind='hgb'"
            )
        if self.kind == "hgb" and np.isinf(X).any():
            i, j = np.argwhere(np.isinf(X))[0]
            raise ValueError(f"features[{i}, {j}] is infinite; replace it by NaN (missing) or a finite value")
        return X

    def fit(self, X: Any, n_species: Any) -> CountModel:
        """Fit on features ``X`` (n x d) and species counts (n,), non-negative."""
        X = self._check_X(X)
        y = np.asarray(n_species, dtype=np.float64).reshape(-1)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"features have {X.shape[0]} rows but n_species has {y.shape[0]} values")
        if not np.all(np.isfinite(y)) or (y.size and y.min() < 0):
            raise ValueError("n_species must be finite and >= 0 (species counts per survey)")
        if X.shape[0] < 2:
            raise ValueError(f"CountModel needs at least 2 surveys to fit, got {X.shape[0]}")
        self.model_ = self._make().fit(X, y)
        self.n_features_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted species count per survey (float, >= 0)."""
        if self.model_ is None:
            raise RuntimeError("CountModel.predict called before fit(X, n_species)")
        X = self._check_X(X)
        if X.shape[1] != self.n_features_:
            raise ValueError(f"features have {X.shape[1]} columns but the model was fitted on {self.n_features_}")
        return np.maximum(np.asarray(self.model_.predict(X), dtype=np.float64), 0.0)


def count_lengths(n_hat: Any, offset: int, n: int, c: int, k_min: int = 1) -> np.ndarray:
    """Set sizes ``clip(round(n_hat) + offset, k_min, C)`` (round half up); validates ``n_hat``."""
    nh = np.asarray(n_hat, dtype=np.float64).reshape(-1)
    if nh.shape != (n,):
        raise ValueError(
            f"n_hat has {nh.shape[0]} values but the scores have {n} rows; pass one predicted count per survey"
        )
    if not np.all(np.isfinite(nh)):
        raise ValueError(
            f"n_hat[{int(np.argmax(~np.isfinite(nh)))}] is not finite; the count model output must be finite"
        )
    if int(k_min) != k_min or k_min < 1:
        raise ValueError(f"k_min={k_min!r} must be an integer >= 1")
    return np.clip(np.floor(nh + 0.5).astype(np.int64) + int(offset), k_min, c)


def decode_count(P: Any, n_hat: Any, offset: int = 0, k_min: int = 1) -> list[np.ndarray]:
    """Top-``(round(n_hat_i) + offset)`` columns per survey, at least ``k_min`` and at most C.

    Returns:
        Column-index arrays (int64, rank order), one per survey.
    """
    P = check_scores(P)
    lengths = count_lengths(n_hat, offset, P.shape[0], P.shape[1], k_min)
    cols, _ = ranked_topk(P, int(lengths.max(initial=0)))
    return prefix_sets(cols, lengths)


def fit_count_offset(
    P_val: Any, Y_val: Any, n_hat: Any, offsets: Any = range(-10, 21), k_min: int = 1
) -> dict[str, Any]:
    """The offset maximising validation sample-F1 of :func:`decode_count` (ties: the smallest offset).

    Returns:
        ``{"offset", "k_min", "f1"}``.
    """
    pf = PrefixF1(P_val, Y_val)
    offs = np.asarray(list(offsets), dtype=np.int64)
    if offs.size == 0:
        raise ValueError("offsets must be non-empty")
    f1 = np.array([pf.mean(count_lengths(n_hat, int(o), pf.n, pf.c, k_min)) for o in offs])
    best = int(np.argmax(f1))
    return {"offset": int(offs[best]), "k_min": int(k_min), "f1": float(f1[best])}


def count_features(train: Any, query: Any, oof: bool, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Survey features of the species-count model: :class:`glc.features.tabular.TabularEncoder` columns (location,
    year, area, region/country, ``feat_*``) + neighbour context (:func:`glc.features.tabular.context_features`;
    out-of-fold over spatial blocks when ``oof``, i.e. for the training surveys themselves)."""
    from glc.features.tabular import CONTEXT_NAMES, TabularEncoder, context_features, oof_context_features

    enc = TabularEncoder(arrays=()).fit(train)
    ctx = oof_context_features(train, seed=seed) if oof else context_features(train, query)
    return np.hstack([enc.transform(train if oof else query), ctx]), enc.names_ + list(CONTEXT_NAMES)


def fit_predict_counts(train: Any, query: Any, seed: int = 0, **params: Any) -> np.ndarray:
    """BernIgen's species-count model: a Poisson gradient-boosted regressor (:class:`CountModel`, ``hgb``) of the
    number of species per survey, fitted on the labelled ``train`` surveys (survey frames with ``speciesIds``) and
    predicting one count per ``query`` survey (the ``n_hat`` of the ``count`` decoder)."""
    from glc.features.tabular import survey_counts

    if len(train) < 2:
        raise ValueError(f"the species-count model needs at least 2 training surveys, got {len(train)}")
    train = train.reset_index(drop=True)
    X, _ = count_features(train, train, oof=True, seed=seed)
    Xq, _ = count_features(train, query.reset_index(drop=True), oof=False, seed=seed)
    m = CountModel("hgb", seed=seed, **{"max_iter": 200, "learning_rate": 0.05, **params}).fit(X, survey_counts(train))
    return m.predict(Xq)
