"""glc.decoding.threshold_topk: both readings of Tighnari's rule, and a fast exact grid search."""

from __future__ import annotations

import time

import numpy as np
import pytest

from glc.decoding.threshold_topk import decode_threshold_topk, fit_threshold_topk
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists, make_world

P_SMALL = np.array(
    [
        [0.90, 0.80, 0.40, 0.30, 0.10],  # 4 columns >= 0.25
        [0.20, 0.10, 0.05, 0.01, 0.00],  # none >= 0.25
    ]
)


def test_union_and_filter_semantics() -> None:
    union = decode_threshold_topk(P_SMALL, K=2, theta=0.25, mode="union")
    assert [s.tolist() for s in union] == [[0, 1, 2, 3], [0, 1]]  # top-2 or >= theta
    filt = decode_threshold_topk(P_SMALL, K=2, theta=0.25, mode="filter")
    assert [s.tolist() for s in filt] == [[0, 1], [0]]  # top-2 and >= theta, never empty
    filt3 = decode_threshold_topk(P_SMALL, K=3, theta=0.25, mode="filter", min_k=2)
    assert [s.tolist() for s in filt3] == [[0, 1, 2], [0, 1]]


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="mode='both' is not a threshold-top-K reading"):
        decode_threshold_topk(P_SMALL, 2, 0.2, mode="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="K=0 must be an integer >= 1"):
        decode_threshold_topk(P_SMALL, 0, 0.2)
    with pytest.raises(ValueError, match="Ks must be a non-empty"):
        fit_threshold_topk(P_SMALL, [[0], [1]], Ks=[])


def test_fit_equals_brute_force(world) -> None:
    P, Y = world
    y = as_lists(Y)
    Ks, thetas = [1, 3, 5, 10, 20, 44], [0.1, 0.2, 0.23, 0.3, 0.45]
    fit = fit_threshold_topk(P, Y, Ks=Ks, thetas=thetas)
    brute = {}
    for mode in ("union", "filter"):
        for K in Ks:
            for t in thetas:
                brute[(mode, K, t)] = sample_f1(y, decode_threshold_topk(P, K, t, mode))
    best = max(brute.values())
    assert fit["f1"] == pytest.approx(best, abs=1e-12)
    assert brute[(fit["mode"], fit["K"], fit["theta"])] == pytest.approx(best, abs=1e-12)
    for mode in ("union", "filter"):
        assert fit["f1_by_mode"][mode] == pytest.approx(max(v for k, v in brute.items() if k[0] == mode))


def test_fit_is_fast_on_1000_by_2000() -> None:
    P, Y = make_world(1000, 2000, seed=7)
    t0 = time.perf_counter()
    fit = fit_threshold_topk(P, Y)  # default grid: K = 1..100 x theta = 0.10..0.50, both modes
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0, f"fit_threshold_topk took {elapsed:.1f} s on 1000 x 2000 (budget 10 s)"
    assert fit["mode"] in ("union", "filter") and 1 <= fit["K"] <= 100 and 0.1 <= fit["theta"] <= 0.5
    assert fit["f1"] == pytest.approx(
        sample_f1(as_lists(Y), decode_threshold_topk(P, fit["K"], fit["theta"], fit["mode"]))
    )
