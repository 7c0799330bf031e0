"""The oracle's own expected-F1 decoder and sample-F1, checked against brute force, and the tiny world's oracle."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from glc.synth.oracle import (
    decode_expected_f1,
    expected_f1_curves,
    frequency_baseline_sample_f1,
    load_truth,
    oracle_sample_f1,
    sample_f1,
)


def brute_force_curve(p: np.ndarray) -> np.ndarray:
    """E[F1(top-k)] for k = 0..n by enumerating all 2^n outcomes (F1 = 1 when both sets are empty)."""
    n = len(p)
    out = np.zeros(n + 1)
    for y in itertools.product([0, 1], repeat=n):
        y = np.array(y)
        weight = np.prod(np.where(y, p, 1.0 - p))
        for k in range(n + 1):
            denom = k + y.sum()
            out[k] += weight * (1.0 if denom == 0 else 2.0 * y[:k].sum() / denom)
    return out


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    d = np.zeros(len(p) + 1)
    d[0] = 1.0
    for x in p:
        d[1:] = d[1:] * (1.0 - x) + d[:-1] * x
        d[0] *= 1.0 - x
    return d


@pytest.mark.parametrize("seed", range(6))
def test_expected_f1_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.sort(rng.beta(0.5, 0.8, size=int(rng.integers(1, 10))))[::-1]
    np.testing.assert_allclose(expected_f1_curves([p])[0], brute_force_curve(p), atol=1e-12)


def test_expected_f1_handles_certain_and_impossible_species() -> None:
    p = np.array([1.0, 0.7, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(expected_f1_curves([p])[0], brute_force_curve(p), atol=1e-12)


def test_expected_f1_is_exact_beyond_brute_force_size() -> None:
    """Against an independent double sum over the (TP, rest) count distributions, with 305 species."""
    rng = np.random.default_rng(3)
    p = np.sort(np.concatenate([rng.beta(0.3, 3, size=300), rng.uniform(0.6, 1, size=5)]))[::-1]
    ref = np.empty(len(p) + 1)
    for k in range(len(p) + 1):
        tp, rest = poisson_binomial(p[:k]), poisson_binomial(p[k:])
        t, r = np.arange(len(tp))[:, None], np.arange(len(rest))[None, :]
        with np.errstate(invalid="ignore"):
            m = np.where(k + t + r == 0, 1.0, 2.0 * t / np.maximum(k + t + r, 1))
        ref[k] = (tp[:, None] * rest[None, :] * m).sum()
    got = expected_f1_curves([p])[0]
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert int(np.argmax(got)) == int(np.argmax(ref))


def test_top_k_is_the_best_subset() -> None:
    """Under independence no subset beats the best top-k set (checked over all subsets of 7 species)."""
    rng = np.random.default_rng(11)
    p = rng.beta(0.6, 0.9, size=7)
    chosen = decode_expected_f1(p)
    best = expected_f1_curves([np.sort(p)[::-1]])[0].max()
    for size in range(8):
        for subset in itertools.combinations(range(7), size):
            order = np.array(list(subset) + [j for j in range(7) if j not in subset], dtype=np.int64)
            # E[F1] of `subset` = value at k=|subset| of the curve of probabilities listed subset-first
            value = brute_force_curve(p[order])[size]
            assert value <= best + 1e-12
    assert set(chosen) == set(np.argsort(-p)[: len(chosen)])


def test_batched_curves_equal_single_curves() -> None:
    rng = np.random.default_rng(5)
    probs = [np.sort(rng.beta(0.2, 2, size=n))[::-1] for n in (0, 3, 40, 400)]
    batched = expected_f1_curves(probs)
    for p, curve in zip(probs, batched):
        np.testing.assert_allclose(curve, expected_f1_curves([p])[0], atol=1e-12)
    assert batched[0].tolist() == [1.0]


def test_expected_f1_rejects_unsorted_probabilities() -> None:
    with pytest.raises(ValueError, match="sorted in decreasing order"):
        expected_f1_curves([np.array([0.1, 0.9])])


def test_sample_f1() -> None:
    pred = [np.array([1, 2, 3]), np.array([], dtype=int), np.array([5]), np.array([7, 7])]
    true = [np.array([2, 3, 4, 5]), np.array([], dtype=int), np.array([6]), np.array([7])]
    assert sample_f1(pred, true) == pytest.approx((2 * 2 / 7 + 1.0 + 0.0 + 1.0) / 4)
    with pytest.raises(ValueError, match="must align"):
        sample_f1(pred, true[:2])


def test_tiny_world_oracle(tiny_world: Path) -> None:
    truth = load_truth(tiny_world)
    assert len(truth.survey_id) == len(np.unique(truth.survey_id))
    assert np.all(np.diff(truth.prob_indptr) > 0) and np.all(np.diff(truth.label_indptr) >= 1)
    oracle = oracle_sample_f1(tiny_world)
    k, freq = frequency_baseline_sample_f1(tiny_world)
    assert 0.4 < oracle < 0.95
    assert 0.0 < freq < oracle and 1 <= k <= 100


def test_oracle_needs_a_synthetic_world(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no synthetic truth"):
        oracle_sample_f1(tmp_path)
