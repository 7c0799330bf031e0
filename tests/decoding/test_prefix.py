"""glc.decoding.prefix: deterministic ranking and the prefix-F1 engine every fit relies on."""

from __future__ import annotations

import numpy as np
import pytest

from glc.decoding.prefix import TABLE_CAP, PrefixF1, check_scores, prefix_sets, ranked_topk, truth_csr
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists, make_world


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ranked_topk_equals_stable_sort_with_ties(dtype: type) -> None:
    rng = np.random.default_rng(0)
    for trial in range(12):
        P = np.round(rng.random((9, 60)) * rng.integers(1, 5), 1).astype(dtype)  # heavy ties
        if trial % 2:
            P += (rng.random(P.shape) * 1e-9).astype(dtype)  # near-ties only representable in float64
        P[0] = 0.0
        P[1, ::2] = -0.0  # -0.0 ties with 0.0
        if trial % 3 == 0:
            P = -P
        ref = np.argsort(-P, axis=1, kind="stable")
        for k in (1, 2, 7, 30, 59, 60, 100):
            cols, vals = ranked_topk(P, k)
            np.testing.assert_array_equal(cols, ref[:, : min(k, 60)])
            np.testing.assert_array_equal(vals, np.take_along_axis(P, ref[:, : min(k, 60)], axis=1))


def test_check_scores_names_bad_entry() -> None:
    P = np.zeros((3, 4))
    P[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"P\[2, 1\] = nan: scores must be finite"):
        check_scores(P)
    with pytest.raises(ValueError, match="2-D"):
        check_scores(np.zeros(3))


@pytest.mark.parametrize("c", [50, TABLE_CAP + 300])  # the second exercises the binary-search path for long prefixes
def test_prefix_f1_equals_metric_on_decoded_prefixes(c: int) -> None:
    P, Y = make_world(80, c, seed=1)
    pf = PrefixF1(P, Y)
    rng = np.random.default_rng(2)
    cols, _ = ranked_topk(P, c)
    for _ in range(5):
        k = rng.integers(0, c + 1, size=80)
        sets = prefix_sets(cols, k)
        assert pf.mean(k) == pytest.approx(sample_f1(as_lists(Y), sets), abs=1e-12)
    # a grid of lengths at once
    grid = rng.integers(1, c + 1, size=(4, 80))
    np.testing.assert_allclose(pf.mean(grid), [sample_f1(as_lists(Y), prefix_sets(cols, g)) for g in grid])


def test_truth_lists_with_unreachable_species() -> None:
    P = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    # row 0 truth: column 0 and a species outside the score matrix (index 7) and -1: both unreachable FNs
    Y = [[0, 7, -1, 0], [1]]
    indptr, indices, n_true = truth_csr(Y, 2, 3)
    assert indices.tolist() == [0, 1] and n_true.tolist() == [3, 1]
    pf = PrefixF1(P, Y)
    # k=1: row 0 predicts {0}: TP 1, |Y|=3 -> 2/4; row 1 predicts {1}: 1
    assert pf.per_survey(np.array([1, 1])).tolist() == pytest.approx([0.5, 1.0])


def test_truth_matrix_shape_checked() -> None:
    with pytest.raises(ValueError, match=r"Y has shape \(2, 4\) but the scores are \(2, 3\)"):
        PrefixF1(np.zeros((2, 3)), np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="Y has 1 surveys but the scores have 2 rows"):
        PrefixF1(np.zeros((2, 3)), [[0]])


def test_count_at_least() -> None:
    P, _ = make_world(30, 40, seed=3)
    pf = PrefixF1(P, np.zeros_like(P, bool))
    th = np.array([0.0, 0.1, 0.37, 0.9, 1.0])
    np.testing.assert_array_equal(pf.count_at_least(th), (P[None, :, :] >= th[:, None, None]).sum(axis=2))
