"""Tabular survey features for tree models (random forest, gradient-boosted trees, the species-count model).

One row per survey, float64, ``NaN`` = missing (the tree learners split on it; nothing is imputed to zero):

* **survey columns** (every survey table, synthetic or real): ``lon``, ``lat``, ``x_km``, ``y_km``, ``year``
  (NaN when unknown), ``log_area`` (``log1p(areaInM2)``), ``log_uncertainty`` (``log1p(geoUncertaintyInM)``),
  ``region`` and ``country`` as integer codes of the *training* frame's sorted categories (an unseen category is
  NaN and counted in :attr:`TabularEncoder.n_unseen_`);
* **feature-set vectors** the caller joined into the frame as array columns (``env``: the 46 cleaned
  environmental values of ``EnvFeatures``; any other array column listed in ``arrays``), one feature per element;
* **extra scalar columns** named ``feat_<name>`` (e.g. real human-footprint raster values sampled at the survey,
  :func:`glc.data.rasters`); their missing values stay NaN (counted per column in :attr:`TabularEncoder.n_missing_`);
* **neighbour context** (:func:`context_features`): distance to the nearest training survey, the number of training
  surveys within 10 and 50 km, and the distance-weighted mean species count of the 10 nearest — computed without
  the survey itself or repeat visits of its site.

For the training rows of a model that is scored on *held-out spatial blocks*, context features are computed
out-of-fold over spatial blocks (:func:`oof_context_features`) so their distribution matches the queries' (a
training survey's nearest neighbour is otherwise much closer than a held-out survey's).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from glc.features.neighbours import query_tree

log = logging.getLogger(__name__)

__all__ = [
    "CONTEXT_NAMES",
    "TabularEncoder",
    "context_features",
    "join_feature_sets",
    "oof_context_features",
    "survey_counts",
]

#: Prefix of extra scalar feature columns a caller may add to a survey frame.
EXTRA_PREFIX = "feat_"
#: Names of :func:`context_features` columns.
CONTEXT_NAMES: tuple[str, ...] = ("nearest_km", "n_within_10km", "n_within_50km", "nbr_mean_richness")


def _num(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.full(len(frame), np.nan)
    v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
    v[~np.isfinite(v)] = np.nan
    return v


class TabularEncoder:
    """Survey frame -> float64 feature matrix (see the module docstring); categories fitted on the training frame.

    Args:
        arrays: array columns to expand (one feature per element) when present in the frames.
    """

    def __init__(self, arrays: Sequence[str] = ("env",)) -> None:
        self.arrays = tuple(arrays)
        self.names_: list[str] = []
        self.n_unseen_: dict[str, int] = {}
        self.n_missing_: dict[str, int] = {}

    def fit(self, train: pd.DataFrame) -> TabularEncoder:
        """Record the category codes, the array widths and the extra columns of ``train``."""
        self.categories_ = {
            c: sorted(train[c].astype(str).unique()) if c in train.columns else [] for c in ("region", "country")
        }
        self.widths_: dict[str, int] = {}
        for a in self.arrays:
            if a in train.columns and len(train):
                w = {len(np.asarray(v)) for v in train[a]}
                if len(w) != 1:
                    raise ValueError(
                        f"array column {a!r} has rows of different lengths "
                        f"{sorted(w)}; every survey needs the same vector length"
                    )
                self.widths_[a] = w.pop()
        self.extras_ = sorted(c for c in train.columns if c.startswith(EXTRA_PREFIX))
        self.names_ = (
            ["lon", "lat", "x_km", "y_km", "year", "log_area", "log_uncertainty", "region", "country"]
            + [f"{a}[{i}]" for a, w in self.widths_.items() for i in range(w)]
            + self.extras_
        )
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The (n, len(names_)) float64 matrix of ``frame``.

        Raises:
            ValueError: a fitted array column or extra column is absent from ``frame``, or has another length, or
                holds a non-finite value (feature-set vectors are cleaned upstream: a NaN there is a bug, not data).
        """
        if not self.names_:
            raise RuntimeError("TabularEncoder.transform called before fit")
        year = _num(frame, "year")
        year[year <= 0] = np.nan
        cols = [
            _num(frame, "lon"),
            _num(frame, "lat"),
            _num(frame, "x") / 1000.0,
            _num(frame, "y") / 1000.0,
            year,
            np.log1p(np.maximum(_num(frame, "areaInM2"), 0)),
            np.log1p(np.maximum(_num(frame, "geoUncertaintyInM"), 0)),
        ]
        for c in ("region", "country"):
            cats = self.categories_[c]
            codes = (
                pd.Categorical(frame[c].astype(str), categories=cats).codes.astype(np.float64)
                if c in frame.columns
                else np.full(len(frame), -1.0)
            )
            self.n_unseen_[c] = int((codes < 0).sum())
            codes[codes < 0] = np.nan
            cols.append(codes)
        X = np.column_stack(cols) if len(frame) else np.zeros((0, len(cols)))
        blocks = [X]
        for a, w in self.widths_.items():
            if a not in frame.columns:
                raise ValueError(
                    f"feature column {a!r} was in the training frame but "
                    "is absent from this one; join the same feature sets"
                )
            A = np.stack([np.asarray(v, np.float64) for v in frame[a]]) if len(frame) else np.zeros((0, w))
            if A.shape[1] != w:
                raise ValueError(f"feature column {a!r}: vectors of length {A.shape[1]}, the training frame had {w}")
            bad = ~np.isfinite(A)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise ValueError(
                    f"feature column {a!r}: survey {frame['surveyId'].iloc[i]} element {j} is {A[i, j]}; the feature "
                    "set must be cleaned upstream (EnvFeatures imputes and counts its missing values)"
                )
            blocks.append(A)
        for c in self.extras_:
            if c not in frame.columns:
                raise ValueError(f"extra feature column {c!r} was in the training frame but is absent from this one")
            v = _num(frame, c)
            self.n_missing_[c] = int(np.isnan(v).sum())
            blocks.append(v[:, None])
        return np.hstack(blocks).astype(np.float64)


def survey_counts(frame: pd.DataFrame) -> np.ndarray:
    """Number of distinct species of each survey (``speciesIds``)."""
    return np.array([len(np.unique(np.asarray(s))) for s in frame["speciesIds"]], dtype=np.float64)


def context_features(train: pd.DataFrame, query: pd.DataFrame, exclude_self: bool = True) -> np.ndarray:
    """(n_query, 4) neighbour context of each query among ``train`` (:data:`CONTEXT_NAMES`).

    The query itself (same surveyId) and sources within 1 m (repeat visits of its site) are never used.
    """
    tree = cKDTree(np.column_stack([train["x"].to_numpy(np.float64), train["y"].to_numpy(np.float64)]))
    src = train["surveyId"].to_numpy(np.int64)
    qx, qy = query["x"].to_numpy(np.float64), query["y"].to_numpy(np.float64)
    qids = query["surveyId"].to_numpy(np.int64) if exclude_self else None
    rich = survey_counts(train)
    n = len(query)
    out = np.full((n, 4), np.nan)
    ip, j, d = query_tree(tree, src, qx, qy, qids, 1.0e5, 10, True, 1.0)
    cnt = np.diff(ip)
    rows = np.repeat(np.arange(n), cnt)
    has = cnt > 0
    first = ip[:-1][has]
    out[has, 0] = d[first]
    w = 1.0 / (d + 1.0)
    out[:, 3] = np.bincount(rows, weights=w * rich[j], minlength=n) / np.maximum(
        np.bincount(rows, weights=w, minlength=n), 1e-12
    )
    out[~has, 3] = np.nan
    for col, r in ((1, 10.0), (2, 50.0)):
        ipr, _, _ = query_tree(tree, src, qx, qy, qids, r, None, True, 1.0)
        out[:, col] = np.diff(ipr)
    return out


def oof_context_features(train: pd.DataFrame, n_folds: int = 4, block_km: float = 10.0, seed: int = 0) -> np.ndarray:
    """:func:`context_features` of every training survey computed from the *other* spatial-block folds of ``train``
    (so training rows look like held-out queries); falls back to leave-one-out when there are too few blocks."""
    from glc.eval.split import spatial_block_folds

    train = train.reset_index(drop=True)
    try:
        folds = spatial_block_folds(
            train["x"].to_numpy(), train["y"].to_numpy(), n_folds=n_folds, block_km=block_km, seed=seed
        )
    except ValueError as e:
        log.warning("out-of-fold context features: %s; using leave-one-out instead", e)
        return context_features(train, train)
    out = np.empty((len(train), len(CONTEXT_NAMES)))
    for f in range(n_folds):
        m = folds == f
        out[m] = context_features(train[~m], train[m])
    return out


def describe(names: Sequence[str], importances: Any, top: int = 15) -> list[dict[str, Any]]:
    """The ``top`` features by importance (for summaries and reports)."""
    imp = np.asarray(importances, np.float64)
    order = np.argsort(-imp, kind="stable")[:top]
    return [{"feature": str(names[i]), "importance": round(float(imp[i]), 6)} for i in order]


def join_feature_sets(frame: pd.DataFrame, features: dict[str, Any]) -> pd.DataFrame:
    """``frame`` with the columns of feature sets read from their artifacts (``{set name: artifact folder}``,
    :mod:`glc.features.sets`), joined on ``surveyId``; array cells are float64 numpy vectors.

    A survey without a row follows the set's missing-row policy: ``"error"`` raises naming the surveys and the
    artifact; ``"fill"`` leaves NaN vectors (tree models split on them) and logs the count.
    """
    import pyarrow.parquet as pq

    from glc.features.sets import feature_set
    from glc.io import is_complete

    out = frame.copy()
    for name, folder in sorted(features.items()):
        fs = feature_set(name)
        d = Path(folder)
        if not is_complete(d):
            raise FileNotFoundError(
                f"feature set {name!r}: artifact {d} is incomplete (no _SUCCESS); rerun {fs.artifact}"
            )
        cols = {c.artifact_column: c.name for c in fs.columns}
        t = pq.read_table(d / fs.data_dir, columns=["surveyId", *cols]).to_pandas()
        t = t.drop_duplicates("surveyId").set_index("surveyId")
        ids = out["surveyId"].to_numpy(np.int64)
        have = np.isin(ids, t.index.to_numpy())
        if not have.all():
            missing = ids[~have]
            if fs.missing == "error":
                raise ValueError(
                    f"feature set {name!r}: {len(missing)} survey(s) have no row in {d} (e.g. {missing[:5].tolist()}); "
                    f"rebuild {fs.artifact} for this survey table"
                )
            log.warning(
                "feature set %r: %d survey(s) without a row get NaN features (missing policy 'fill')",
                name,
                len(missing),
            )
        for src, dst in cols.items():
            vals = t[src].reindex(ids)
            width = next((len(v) for v in vals if isinstance(v, (list, np.ndarray))), 1)
            out[dst] = [
                np.asarray(v, np.float64) if isinstance(v, (list, np.ndarray)) else np.full(width, np.nan) for v in vals
            ]
    return out
