"""Frequency baselines: every survey gets the species frequencies of its biogeographic region (or of all surveys).

``frequency``: the fraction of training surveys holding each species, the same for every survey.
``region_frequency``: the same fraction among training surveys of the survey's region; regions with fewer than
``min_region_surveys`` training surveys (or unseen regions) fall back to the global frequency, and the fallback
count is reported. Scores are empirical probabilities, so they are calibrated for the expected-F1 decoders.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

log = logging.getLogger(__name__)


def label_matrix(
    label_lists: Sequence[np.ndarray], vocab: np.ndarray | None = None
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """CSR (surveys x species) 0/1 matrix of label lists and its sorted species vocabulary."""
    lists = [np.unique(np.asarray(x, dtype=np.int64)) for x in label_lists]
    if vocab is None:
        vocab = np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.int64)
    vocab = np.asarray(vocab, dtype=np.int64)
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    cols = []
    for i, x in enumerate(lists):
        pos = np.searchsorted(vocab, x)
        ok = (
            (pos < len(vocab)) & (vocab[np.minimum(pos, len(vocab) - 1)] == x) if len(vocab) else np.zeros(len(x), bool)
        )
        cols.append(pos[ok])
        indptr[i + 1] = indptr[i] + ok.sum()
    idx = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return sparse.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(lists), len(vocab))), vocab


def _frequency(Y: Any) -> np.ndarray:
    """Column means of a 0/1 (sparse) matrix, summed in float64 (a float32 mean can exceed 1 by round-off)."""
    return (np.asarray(Y.sum(axis=0), dtype=np.float64).ravel() / Y.shape[0]).astype(np.float32)


class FrequencyModel:
    """Species frequency per region (``by_region=True``) or overall."""

    def __init__(self, by_region: bool = True, min_region_surveys: int = 20) -> None:
        self.by_region = by_region
        self.min_region_surveys = min_region_surveys
        self.vocab: np.ndarray | None = None
        self.global_freq: np.ndarray | None = None
        self.region_freq: dict[str, np.ndarray] = {}
        self.n_fallback = 0

    def fit(self, regions: Sequence[str], labels: Sequence[np.ndarray]) -> FrequencyModel:
        """Count species per region from training surveys (``labels``: species id arrays)."""
        if len(regions) != len(labels):
            raise ValueError(f"fit: {len(regions)} regions but {len(labels)} label lists")
        if len(labels) == 0:
            raise ValueError("fit: no training surveys")
        Y, self.vocab = label_matrix(labels)
        self.global_freq = _frequency(Y)
        self.region_freq = {}
        if self.by_region:
            reg = pd.Series(list(regions)).astype(str).to_numpy()
            for r in np.unique(reg):
                rows = np.flatnonzero(reg == r)
                if len(rows) >= self.min_region_surveys:
                    self.region_freq[str(r)] = _frequency(Y[rows])
        return self

    def predict(self, regions: Sequence[str]) -> np.ndarray:
        """Dense (surveys x vocab) scores."""
        if self.global_freq is None:
            raise RuntimeError("FrequencyModel.predict called before fit")
        out = np.empty((len(regions), len(self.global_freq)), dtype=np.float32)
        self.n_fallback = 0
        for i, r in enumerate(regions):
            f = self.region_freq.get(str(r)) if self.by_region else None
            if f is None:
                f = self.global_freq
                self.n_fallback += int(self.by_region)
            out[i] = f
        if self.n_fallback:
            log.info(
                "region frequency: %d survey(s) used the global frequency (region unseen or too rare)", self.n_fallback
            )
        return out


# ------------------------------------------------------------------------------------------------ registry
def fit_predict_frequency(train: pd.DataFrame, query: pd.DataFrame, model_cfg: Any, by_region: bool = False) -> Any:
    """Fit on ``train`` (``region``, ``speciesIds``) and score ``query``: its top ``model_cfg["top_n"]`` table."""
    from glc.predict.scores import top_n

    m = FrequencyModel(by_region=by_region).fit(train["region"].tolist(), list(train["speciesIds"]))
    return top_n(query["surveyId"].to_numpy(), m.predict(query["region"].tolist()), m.vocab, int(model_cfg["top_n"]))


def _register() -> None:
    from functools import partial

    from glc.models.registry import ModelSpec, register

    register(
        ModelSpec(
            "frequency",
            "global species frequency (the same scores for every survey)",
            runner="memory",
            fit_predict=fit_predict_frequency,
            benchmarks={"frequency": {}},
        )
    )
    register(
        ModelSpec(
            "region_frequency",
            "species frequency of the survey's biogeographic region (global as fallback)",
            runner="memory",
            fit_predict=partial(fit_predict_frequency, by_region=True),
            benchmarks={"region_frequency": {}},
        )
    )


_register()
