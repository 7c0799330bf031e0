"""glc.metrics: the competition metric and its companions, cross-checked against sklearn and torchmetrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score, precision_score, recall_score

from glc.metrics import (
    adaptive_topk_accuracy,
    macro_prf,
    micro_prf,
    per_survey_f1,
    per_survey_f1_matrix,
    sample_f1,
    sample_f1_matrix,
    score_submission,
    topk_accuracy,
)


def _random_lists(
    rng: np.random.Generator, n: int, c: int, empty_every: int = 7
) -> tuple[list[list[int]], list[list[int]]]:
    """Random truth/prediction lists with empty rows, duplicates and both-empty rows."""
    y_true, y_pred = [], []
    for i in range(n):
        t = rng.choice(c, size=rng.integers(0, 8), replace=True).tolist()  # with replacement: duplicates
        p = rng.choice(c, size=rng.integers(0, 8), replace=True).tolist()
        if i % empty_every == 0:
            p = []
        if i % (2 * empty_every) == 1:
            t, p = [], []
        y_true.append(t)
        y_pred.append(p)
    return y_true, y_pred


def _onehot(lists: list[list[int]], c: int) -> np.ndarray:
    m = np.zeros((len(lists), c), dtype=int)
    for i, lst in enumerate(lists):
        m[i, lst] = 1
    return m


def test_sample_f1_hand_example() -> None:
    # survey 0: TP=1 FP=0 FN=1 -> 1/(1+0.5)=2/3; survey 1: TP=1 FP=1 FN=0 -> 2/3; survey 2: TP=0 FP=1 FN=1 -> 0
    y_true = [[1, 2], [3], [5]]
    y_pred = [[2], [3, 4], [6]]
    assert per_survey_f1(y_true, y_pred) == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert sample_f1(y_true, y_pred) == pytest.approx(4 / 9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_f1_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = 30
    y_true, y_pred = _random_lists(rng, 200, c)
    expected = f1_score(_onehot(y_true, c), _onehot(y_pred, c), average="samples", zero_division=0)
    assert sample_f1(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
    expected1 = f1_score(_onehot(y_true, c), _onehot(y_pred, c), average="samples", zero_division=1)
    assert sample_f1(y_true, y_pred, zero_division=1.0) == pytest.approx(expected1, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_per_survey_f1_matches_torchmetrics(seed: int) -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multilabel_f1_score

    rng = np.random.default_rng(seed)
    c = 25
    y_true, y_pred = _random_lists(rng, 120, c)
    t = torch.tensor(_onehot(y_true, c))
    p = torch.tensor(_onehot(y_pred, c)).float()
    # (N, C, 1) + samplewise + micro: one F1 per survey over its labels
    tm_micro = multilabel_f1_score(
        p.unsqueeze(-1), t.unsqueeze(-1), num_labels=c, average="micro", multidim_average="samplewise"
    )
    # (1, N, C) + samplewise + average=None: each "label" is a survey, each "sample dim" a species
    tm_none = multilabel_f1_score(
        p.unsqueeze(0), t.unsqueeze(0), num_labels=len(y_true), average=None, multidim_average="samplewise"
    ).reshape(-1)
    ours = per_survey_f1(y_true, y_pred)
    np.testing.assert_allclose(ours, tm_micro.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours, tm_none.numpy(), atol=1e-6)


def test_duplicates_count_once() -> None:
    assert sample_f1([[1, 1, 2, 2]], [[1, 1, 1]]) == sample_f1([[1, 2]], [[1]]) == pytest.approx(2 / 3)
    assert per_survey_f1([np.array([4, 4, 4])], [np.array([4])])[0] == 1.0


def test_empty_cases() -> None:
    # empty truth and empty prediction: zero_division (0 by default)
    assert sample_f1([[]], [[]]) == 0.0
    assert sample_f1([[]], [[]], zero_division=1.0) == 1.0
    # empty prediction with non-empty truth, and the reverse: 0 whatever zero_division says
    assert sample_f1([[1, 2]], [[]], zero_division=1.0) == 0.0
    assert sample_f1([[]], [[3]], zero_division=1.0) == 0.0
    # sets, tuples and numpy arrays are accepted alike
    assert sample_f1([{1, 2}, (3,)], [np.array([1, 2]), [3]]) == 1.0


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="y_true has 2 surveys but y_pred has 1"):
        sample_f1([[1], [2]], [[1]])
    with pytest.raises(ValueError, match=r"y_pred\[1\]: species ids must be >= 0, found -3"):
        sample_f1([[1], [2]], [[1], [-3]])
    with pytest.raises(ValueError, match=r"y_true\[0\]: species ids must be integer-valued, found 2.5"):
        sample_f1([[1.0, 2.5]], [[1]])
    with pytest.raises(TypeError, match=r"y_true\[0\]: species list is a string"):
        sample_f1(["1 2"], [[1]])
    with pytest.raises(ValueError, match="at least one survey"):
        sample_f1([], [])
    with pytest.raises(ValueError, match="zero_division"):
        sample_f1([[1]], [[1]], zero_division=2)


def test_integer_valued_floats_are_ids() -> None:
    # GLC24 metadata stores speciesId as float text (6310.0)
    assert sample_f1([[6310.0, 12.0]], [[6310, 12]]) == 1.0


def test_score_submission_missing_extra_and_out_of_vocabulary() -> None:
    solution = {10: [1, 2, 2], 11: [3, 20000], 12: [5]}  # 20000 lies outside 0..11254; 2 is duplicated
    submission = {10: [2, 1], 11: [3], 99: [1]}  # 12 missing, 99 extra
    res = score_submission(solution, submission)
    # 10: F1 1; 11: TP=1 FN=1 -> 2/3; 12: missing -> 0
    assert res["sample_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert (res["n_surveys"], res["n_missing"], res["n_extra"]) == (3, 1, 1)
    # micro: TP = 3, |pred| = 3 (the extra survey is ignored), |true| = 2 + 2 + 1 = 5
    assert res["micro_precision"] == pytest.approx(1.0)
    assert res["micro_recall"] == pytest.approx(3 / 5)
    assert res["micro_f1"] == pytest.approx(2 * 3 / (3 + 5))
    # predicting the out-of-vocabulary id makes it a true positive
    assert score_submission({11: [3, 20000]}, {11: [3, 20000]})["sample_f1"] == 1.0


def test_score_submission_errors_name_the_survey() -> None:
    with pytest.raises(ValueError, match="submission surveyId=42: species ids must be >= 0"):
        score_submission({41: [1], 42: [2]}, {41: [1], 42: [-1]})
    with pytest.raises(ValueError, match="solution has no surveys"):
        score_submission({}, {1: [1]})


def test_score_submission_on_real_solution(shared_data) -> None:
    path = shared_data / "glc24-real" / "GLC24_SOLUTION_FILE.csv"
    df = pd.read_csv(path)
    sol = {int(s): [int(t) for t in str(v).split()] for s, v in zip(df["surveyId"], df["target_species_ids"])}
    assert any(len(v) != len(set(v)) for v in sol.values()), "the real solution is expected to repeat some ids"
    assert any(max(v) > 11254 for v in sol.values()), "the real solution is expected to hold ids > 11254"
    perfect = score_submission(sol, sol)
    assert perfect["sample_f1"] == 1.0 and perfect["n_surveys"] == 4716 and perfect["n_missing"] == 0
    # dropping the out-of-vocabulary ids (what a model must do) costs exactly those false negatives
    in_vocab = {s: [t for t in v if t <= 11254] for s, v in sol.items()}
    res = score_submission(sol, in_vocab)
    exp = np.mean([2 * len(set(p)) / (len(set(p)) + len(set(t))) for t, p in zip(sol.values(), in_vocab.values())])
    assert res["sample_f1"] == pytest.approx(exp) and res["sample_f1"] < 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_micro_and_macro_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = 20
    y_true, y_pred = _random_lists(rng, 150, c)
    T, P = _onehot(y_true, c), _onehot(y_pred, c)
    m = micro_prf(y_true, y_pred)
    assert m.precision == pytest.approx(precision_score(T, P, average="micro", zero_division=0))
    assert m.recall == pytest.approx(recall_score(T, P, average="micro", zero_division=0))
    assert m.f1 == pytest.approx(f1_score(T, P, average="micro", zero_division=0))
    # macro over classes present in truth or prediction: make some classes absent
    keep = [i for i in range(c) if i % 4 != 3]
    y_true2 = [[t for t in row if t in keep] for row in y_true]
    y_pred2 = [[t for t in row if t in keep] for row in y_pred]
    T2, P2 = _onehot(y_true2, c), _onehot(y_pred2, c)
    present = np.flatnonzero((T2 + P2).sum(axis=0) > 0)
    assert len(present) < c
    M = macro_prf(y_true2, y_pred2, num_classes=c)
    assert M.precision == pytest.approx(precision_score(T2, P2, average="macro", labels=present, zero_division=0))
    assert M.recall == pytest.approx(recall_score(T2, P2, average="macro", labels=present, zero_division=0))
    assert M.f1 == pytest.approx(f1_score(T2, P2, average="macro", labels=present, zero_division=0))


def test_macro_rejects_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match="id 20000 >= num_classes=11255"):
        macro_prf([[1, 20000]], [[1]], num_classes=11255)


@pytest.mark.parametrize("sparse", [False, True])
def test_sample_f1_matrix_matches_sklearn_and_lists(sparse: bool) -> None:
    rng = np.random.default_rng(3)
    c = 40
    y_true, y_pred = _random_lists(rng, 300, c)
    T, P = _onehot(y_true, c).astype(bool), _onehot(y_pred, c).astype(bool)
    A, B = (sp.csr_matrix(T), sp.csr_matrix(P)) if sparse else (T, P)
    expected = f1_score(T, P, average="samples", zero_division=0)
    assert sample_f1_matrix(A, B) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(per_survey_f1_matrix(A, B), per_survey_f1(y_true, y_pred))


def test_sample_f1_matrix_errors() -> None:
    with pytest.raises(ValueError, match=r"Y has shape \(2, 3\) but P has shape \(2, 4\)"):
        sample_f1_matrix(np.zeros((2, 3), bool), np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="0/1 indicator matrix"):
        sample_f1_matrix(np.full((2, 3), 0.7), np.zeros((2, 3), bool))


def _brute_rank(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")


def test_topk_accuracy_against_sorting_with_ties() -> None:
    rng = np.random.default_rng(4)
    s = np.round(rng.random((60, 15)), 1)  # many ties
    y = [rng.choice(15, size=rng.integers(0, 3), replace=False).tolist() for _ in range(60)]
    order = _brute_rank(s)
    for k in (1, 3, 7, 15):
        expected = np.mean([len(set(order[i, :k]) & set(t)) > 0 for i, t in enumerate(y)])
        assert topk_accuracy(s, y, k) == pytest.approx(expected)
    # a tie is broken by the lower column index
    assert topk_accuracy(np.array([[0.5, 0.5]]), [[0]], 1) == 1.0
    assert topk_accuracy(np.array([[0.5, 0.5]]), [[1]], 1) == 0.0


def test_adaptive_topk_accuracy_definition() -> None:
    rng = np.random.default_rng(5)
    n, c, k = 50, 40, 3
    s = rng.random((n, c)) ** rng.uniform(0.3, 3, size=(n, 1))  # rows with very different score levels
    y = [rng.choice(c, size=2, replace=False).tolist() for _ in range(n)]
    flat = np.sort(s.reshape(-1))[::-1]
    t = flat[n * k]
    assert (s > t).sum() <= n * k < (s >= t).sum()  # t is the smallest threshold leaving <= n*k strictly above
    expected = np.mean([(s[i, yi] > t).any() for i, yi in enumerate(y)])
    assert adaptive_topk_accuracy(s, y, k) == pytest.approx(expected)
    # it differs from the plain top-k accuracy here (scores are not comparable across rows)
    assert adaptive_topk_accuracy(s, y, k) != pytest.approx(topk_accuracy(s, y, k))
    # k >= C: everything counts as above the threshold
    assert adaptive_topk_accuracy(s, y, c) == 1.0


def test_ranking_metric_errors() -> None:
    with pytest.raises(ValueError, match="column index 5 but scores has only 3 columns"):
        topk_accuracy(np.zeros((1, 3)), [[5]], 1)
    with pytest.raises(ValueError, match="finite"):
        adaptive_topk_accuracy(np.array([[np.nan, 1.0]]), [[0]], 1)
