"""Synthetic calibrated probabilities for decoder tests: long-tailed species prevalence, varied survey richness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit


def make_world(n: int, c: int, seed: int, noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``(P, Y)``: probabilities ``P`` (n x c) and labels ``Y ~ Bernoulli(P)`` (bool), so ``P`` is calibrated by
    construction.

    Species prevalence is Pareto-distributed (a few common species, a long tail of rare ones); a survey-level
    richness effect makes the number of species per survey vary about tenfold between surveys (5th to 95th
    percentile, e.g. 1..17 for 600 x 300 with seed 0).
    """
    rng = np.random.default_rng(seed)
    tail = np.sort(rng.pareto(1.0, size=c))[::-1]
    prevalence = np.clip(tail / tail.sum() * 5.0, 1e-5, 0.95)
    richness = rng.normal(0.0, 1.0, size=n)
    P = expit(logit(prevalence)[None, :] + richness[:, None] + rng.normal(0.0, noise, size=(n, c)))
    Y = rng.random((n, c)) < P
    return P, Y


@pytest.fixture(scope="module")
def world() -> tuple[np.ndarray, np.ndarray]:
    """600 surveys x 300 species."""
    return make_world(600, 300, seed=0)


def as_lists(Y: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(r) for r in Y]
