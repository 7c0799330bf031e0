"""glc.decoding.expected_f1: the three estimators of E[F1(k)] and the acceptance check against fixed top-k."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from glc.decoding.expected_f1 import decode_expected_f1, expected_f1_curve, fit_expected_f1, optimal_k
from glc.decoding.topk import decode_topk, fit_topk
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists, make_world


def _brute_expected_f1(p: np.ndarray) -> np.ndarray:
    """E[F1(k)] of the top-k set by enumerating every label vector (independent Bernoulli(p))."""
    c = p.size
    ps = p[np.argsort(-p, kind="stable")]
    out = np.zeros(c)
    for bits in itertools.product((0, 1), repeat=c):
        y = np.array(bits)
        prob = np.prod(np.where(y == 1, ps, 1 - ps))
        k = np.arange(1, c + 1)
        out += prob * 2 * np.cumsum(y) / (k + y.sum())
    return out


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.random((4, 9)) ** rng.uniform(0.5, 3, size=(4, 1))


def test_exact_equals_enumeration(small: np.ndarray) -> None:
    curve, cols = expected_f1_curve(small, k_max=9, method="exact")
    for i in range(small.shape[0]):
        np.testing.assert_allclose(curve[i], _brute_expected_f1(small[i]), atol=1e-12)
    np.testing.assert_array_equal(cols, np.argsort(-small, axis=1, kind="stable"))


def test_exact_with_poisson_tail_is_close(small: np.ndarray) -> None:
    # only 4 candidates modelled exactly; the other 5 columns' count is Poisson: an approximation, close here
    curve, _ = expected_f1_curve(small, k_max=4, method="exact", n_candidates=4)
    for i in range(small.shape[0]):
        np.testing.assert_allclose(curve[i], _brute_expected_f1(small[i])[:4], atol=0.02)


def test_mc_converges_and_is_seeded(small: np.ndarray) -> None:
    exact, _ = expected_f1_curve(small, k_max=9, method="exact")
    mc, _ = expected_f1_curve(small, k_max=9, method="mc", n_samples=20000, seed=3)
    np.testing.assert_allclose(mc, exact, atol=0.01)
    again, _ = expected_f1_curve(small, k_max=9, method="mc", n_samples=20000, seed=3)
    np.testing.assert_array_equal(mc, again)
    other, _ = expected_f1_curve(small, k_max=9, method="mc", n_samples=20000, seed=4)
    assert not np.array_equal(mc, other)


def test_approx_formula_and_prob_rest(small: np.ndarray) -> None:
    curve, _ = expected_f1_curve(small, k_max=5, method="approx")
    ps = -np.sort(-small, axis=1)
    k = np.arange(1, 6)
    np.testing.assert_allclose(curve, 2 * np.cumsum(ps, axis=1)[:, :5] / (k + small.sum(axis=1, keepdims=True)))
    # dropping low columns and passing their mass as prob_rest leaves the approx curve unchanged
    order = np.argsort(-small, axis=1, kind="stable")
    top = np.take_along_axis(small, order[:, :6], axis=1)
    rest = small.sum(axis=1) - top.sum(axis=1)
    curve_rest, _ = expected_f1_curve(top, k_max=5, method="approx", prob_rest=rest)
    np.testing.assert_allclose(curve_rest, curve)


def test_expected_f1_beats_best_fixed_topk() -> None:
    """Acceptance: on calibrated long-tailed probabilities, per-survey k* beats the best single k (chosen on the same
    data)."""
    P, Y = make_world(600, 300, seed=5)
    y = as_lists(Y)
    best_fixed = fit_topk(P, Y, ks=range(1, 101))  # oracle: k tuned on the very labels it is scored on
    assert best_fixed["f1"] == pytest.approx(sample_f1(y, decode_topk(P, best_fixed["k"])))
    for method in ("approx", "exact", "mc"):
        f1 = sample_f1(y, decode_expected_f1(P, k_max=100, method=method))
        assert f1 > best_fixed["f1"] + 0.03, (
            f"{method}: {f1:.4f} vs best fixed top-{best_fixed['k']} {best_fixed['f1']:.4f}"
        )


def test_affine_correction_and_fit(world) -> None:
    P, Y = world
    k_star, _ = optimal_k(P, k_max=50)
    sets = decode_expected_f1(P, k_max=50, a=1.0, b=2.0)
    np.testing.assert_array_equal([len(s) for s in sets], np.clip(k_star + 2, 1, 50))
    sets = decode_expected_f1(P, k_max=50, a=0.0, b=-3.0, k_min=2)
    assert {len(s) for s in sets} == {2}
    fit = fit_expected_f1(P, Y, k_max=50, offsets=range(-3, 4))
    brute = {b: sample_f1(as_lists(Y), decode_expected_f1(P, k_max=50, b=b)) for b in range(-3, 4)}
    assert fit["b"] == max(brute, key=lambda b: (brute[b], -b))
    assert fit["f1"] == pytest.approx(max(brute.values()))
    assert fit["f1_uncorrected"] == pytest.approx(brute[0])


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"needs probabilities in \[0, 1\]; P spans \[-2, 3\]"):
        decode_expected_f1(np.array([[-2.0, 3.0]]))
    with pytest.raises(ValueError, match="prob_rest must be 1 finite non-negative numbers"):
        decode_expected_f1(np.array([[0.2, 0.3]]), prob_rest=[0.1, 0.2])
    with pytest.raises(ValueError, match="method='bayes' is not an expected-F1 estimator"):
        decode_expected_f1(np.array([[0.2, 0.3]]), method="bayes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_candidates=3 must be >= k_max=5"):
        decode_expected_f1(np.full((1, 10), 0.2), k_max=5, method="exact", n_candidates=3)
