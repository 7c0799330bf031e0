"""glc.decoding.topk: fixed top-k and global threshold."""

from __future__ import annotations

import numpy as np
import pytest

from glc.decoding.topk import decode_threshold, decode_topk, fit_threshold, fit_topk
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists


def test_decode_topk_ranks_and_breaks_ties_by_column() -> None:
    P = np.array([[0.2, 0.9, 0.2, 0.5], [0.3, 0.3, 0.3, 0.3]])
    sets = decode_topk(P, 3)
    assert [s.tolist() for s in sets] == [[1, 3, 0], [0, 1, 2]]
    assert all(s.dtype == np.int64 for s in sets)
    assert [len(s) for s in decode_topk(P, 10)] == [4, 4]  # clipped to the number of columns
    with pytest.raises(ValueError, match="k=0 must be an integer >= 1"):
        decode_topk(P, 0)


def test_decode_threshold_inclusive_and_never_empty() -> None:
    P = np.array([[0.1, 0.5, 0.3], [0.05, 0.02, 0.01], [0.6, 0.6, 0.6]])
    sets = decode_threshold(P, 0.3)
    assert [s.tolist() for s in sets] == [[1, 2], [0], [0, 1, 2]]  # row 1: nothing >= 0.3 -> top-1
    assert [len(s) for s in decode_threshold(P, 0.99, min_k=2)] == [2, 2, 2]
    with pytest.raises(ValueError, match="min_k=0 must be an integer >= 1"):
        decode_threshold(P, 0.3, min_k=0)
    with pytest.raises(ValueError, match="theta=nan"):
        decode_threshold(P, float("nan"))


def test_fit_topk_and_threshold_equal_brute_force(world) -> None:
    P, Y = world
    y = as_lists(Y)
    brute_k = max(range(1, 31), key=lambda k: (sample_f1(y, decode_topk(P, k)), -k))
    fit = fit_topk(P, Y, ks=range(1, 31))
    assert fit["k"] == brute_k
    assert fit["f1"] == pytest.approx(sample_f1(y, decode_topk(P, brute_k)))
    thetas = np.round(np.arange(0.05, 0.95, 0.05), 10)
    scores = [sample_f1(y, decode_threshold(P, t)) for t in thetas]
    fit = fit_threshold(P, Y, thetas=thetas)
    assert fit["theta"] == pytest.approx(thetas[int(np.argmax(scores))])
    assert fit["f1"] == pytest.approx(max(scores))
    # with calibrated probabilities the best threshold is near F1*/2 (Lipton et al. 2014)
    assert abs(fit["theta"] - fit["f1"] / 2) < 0.15


def test_decoders_are_deterministic(world) -> None:
    P, _ = world
    a = decode_threshold(P, 0.3)
    b = decode_threshold(P.copy(), 0.3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
