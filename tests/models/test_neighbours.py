"""Neighbour predictors on tiny hand-built data: weights, fallback, and no leak of a query's own site labels."""

from __future__ import annotations

import numpy as np
import pytest

from glc.features.neighbours import neighbours_numpy
from glc.models.neighbours import KNNPredictor, RadiusPredictor, neighbour_scores, neighbour_weights

# Four labelled training sites on the x axis (EPSG:3035 metres) and one query 2 km north of the first.
IDS = np.array([1, 2, 3, 4])
X = np.array([0.0, 1000.0, 3000.0, 20000.0])
Y = np.zeros(4)
LABELS = [np.array([10, 11]), np.array([11]), np.array([12]), np.array([13])]
VOCAB = np.array([10, 11, 12, 13])
QX, QY = np.array([0.0]), np.array([2000.0])


def dense(m) -> np.ndarray:
    return np.asarray(m.todense())


def test_knn_inverse_distance_scores_match_hand_computation():
    d1, d2 = 2.0, np.hypot(1.0, 2.0)  # km to sites 1 and 2, the two nearest
    w1, w2 = 1 / (d1 + 1.0), 1 / (d2 + 1.0)  # weighting="inverse", eps_km=1
    want = np.array([[w1 / (w1 + w2), 1.0, 0.0, 0.0]])  # 10 only at site 1; 11 at both
    got = KNNPredictor(k=2).fit(IDS, X, Y, LABELS).predict(QX, QY)
    np.testing.assert_allclose(dense(got), want, rtol=1e-6)
    uniform = KNNPredictor(k=2, weighting="uniform").fit(IDS, X, Y, LABELS).predict(QX, QY)
    np.testing.assert_allclose(dense(uniform), [[0.5, 1.0, 0.0, 0.0]], rtol=1e-6)


def test_radius_gaussian_scores_match_hand_computation():
    d = np.array([2.0, np.hypot(1.0, 2.0), np.hypot(3.0, 2.0)])  # sites 1..3 within 5 km; site 4 is 20 km away
    w = np.exp(-(d**2) / (2 * 2.0**2))
    want = np.array([[w[0], w[0] + w[1], w[2], 0.0]]) / w.sum()
    got = RadiusPredictor(radius_km=5, weighting="gaussian", bandwidth_km=2.0).fit(IDS, X, Y, LABELS).predict(QX, QY)
    np.testing.assert_allclose(dense(got), want, rtol=1e-6)
    # far rows do not underflow to an all-zero weight sum (weights are taken relative to the nearest neighbour)
    far = neighbour_weights(np.array([0, 2]), np.array([500.0, 501.0]), "gaussian", bandwidth_km=1.0)
    assert np.isclose(far.sum(), 1.0) and far[0] > far[1] > 0


def test_no_neighbour_falls_back_to_frequency_and_is_counted():
    model = RadiusPredictor(radius_km=5).fit(IDS, X, Y, LABELS)
    got = model.predict(np.array([0.0, 9.0e5]), np.array([2000.0, 9.0e5]))
    assert model.n_fallback_ == 1
    np.testing.assert_allclose(dense(got)[1], [0.25, 0.5, 0.25, 0.25])  # fraction of the 4 sites holding each species
    none = RadiusPredictor(radius_km=5, fallback=None).fit(IDS, X, Y, LABELS)
    assert dense(none.predict(np.array([9.0e5]), np.array([9.0e5]))).sum() == 0 and none.n_fallback_ == 1


def test_neighbour_lists_are_sorted_by_distance_and_score_like_predict():
    model = KNNPredictor(k=3).fit(IDS, X, Y, LABELS)
    qx, qy = np.array([0.0, 20000.0]), np.array([2000.0, 500.0])
    indptr, j, d = model.neighbours(qx, qy, query_ids=np.array([1, 99]))
    # query 1 is site 1's own id: excluded, so its nearest are sites 2 and 3 (the far site 4 third)
    assert indptr.tolist() == [0, 3, 6]
    assert IDS[j[:3]].tolist() == [2, 3, 4] and IDS[j[3:]].tolist() == [4, 3, 2]
    np.testing.assert_allclose(d[:2], [np.hypot(1.0, 2.0), np.hypot(3.0, 2.0)], rtol=1e-9)
    assert (np.diff(d[:3]) > 0).all() and (np.diff(d[3:]) > 0).all()
    np.testing.assert_allclose(dense(model.scores(indptr, j, d)), dense(model.predict(qx, qy, np.array([1, 99]))))
    with pytest.raises(RuntimeError, match="before fit"):
        KNNPredictor(k=3).neighbours(qx, qy)


def test_query_never_sees_its_own_labels_or_a_repeat_visit():
    # site 5 is a repeat visit of site 1 (same coordinates, another year) holding species 14
    ids, x, y = np.append(IDS, 5), np.append(X, 0.0), np.append(Y, 0.0)
    labels = LABELS + [np.array([14])]
    vocab = np.array([10, 11, 12, 13, 14])
    model = KNNPredictor(k=3).fit(ids, x, y, labels, species_vocab=vocab)
    safe = dense(model.predict(np.array([0.0]), np.array([0.0]), query_ids=np.array([1])))[0]
    assert safe[0] == 0.0 and safe[4] == 0.0  # own species 10 and the repeat visit's 14 never appear
    assert safe[1] > 0  # species 11 from site 2, 1 km away
    leaky = dense(model.predict(np.array([0.0]), np.array([0.0]), query_ids=np.array([1]), exclude_same_site=False))[0]
    assert leaky[4] > 0 and leaky[0] == 0.0  # the rule is what removes 14; self (id 1) is excluded regardless


def test_neighbour_scores_from_a_neighbour_table_equal_the_predictor():
    table = neighbours_numpy([100], QX, QY, IDS, X, Y, radius_km=50, k=3)
    ids, dists = table.lists()
    by_id = dict(zip(IDS.tolist(), LABELS))
    got, n_fb = neighbour_scores(ids, dists, by_id, VOCAB, weighting="inverse", return_n_fallback=True)
    want = KNNPredictor(k=3, max_km=50).fit(IDS, X, Y, LABELS).predict(QX, QY)
    np.testing.assert_allclose(dense(got), dense(want), rtol=1e-6)
    assert n_fb == 0 and got.shape == (1, 4) and got.min() >= 0 and got.max() <= 1.0
    fb = np.array([0.1, 0.2, 0.3, 0.4])
    empty = neighbour_scores([np.array([], np.int64)], [np.array([])], by_id, VOCAB, fallback=fb)
    np.testing.assert_allclose(dense(empty), [fb])


def test_scores_are_probability_like_on_random_data():
    rng = np.random.default_rng(0)
    n = 300
    x, y = rng.uniform(0, 50_000, n), rng.uniform(0, 50_000, n)
    labels = [rng.choice(40, rng.integers(1, 8), replace=False) for _ in range(n)]
    for model in (KNNPredictor(k=10), RadiusPredictor(radius_km=5, weighting="gaussian")):
        s = dense(model.fit(np.arange(n), x, y, labels).predict(x, y, query_ids=np.arange(n)))
        assert s.min() >= 0 and s.max() <= 1 + 1e-6
        # every query's score vector sums to the weighted mean label count of its neighbours: within [1, 7]
        assert ((s.sum(1) >= 1 - 1e-5) & (s.sum(1) <= 7 + 1e-5)).all()


def test_errors_name_the_problem():
    by_id = dict(zip(IDS.tolist(), LABELS))
    with pytest.raises(KeyError, match="1 neighbour surveyId.*first: 99"):
        neighbour_scores([np.array([99])], [np.array([1.0])], by_id, VOCAB)
    with pytest.raises(ValueError, match="fallback must be a vector.*shape \\(4,\\)"):
        neighbour_scores([np.array([1])], [np.array([1.0])], by_id, VOCAB, fallback=np.ones(3))
    with pytest.raises(ValueError, match="weighting='cosine'"):
        KNNPredictor(weighting="cosine")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"KNNPredictor.neighbours \(or .predict\) called before fit: call fit"):
        KNNPredictor().predict(QX, QY)
    with pytest.raises(RuntimeError, match="KNNPredictor.scores called before fit: call fit"):
        KNNPredictor().scores(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0))
    fitted = KNNPredictor().fit(IDS, X, Y, LABELS)
    with pytest.raises(ValueError, match=r"KNNPredictor.neighbours \(or .predict\): 1 query ids but 2 coordinates"):
        fitted.predict(X[:2], Y[:2], query_ids=IDS[:1])
    with pytest.raises(ValueError, match="fit: 4 ids, 4 coordinates and 3 label lists"):
        KNNPredictor().fit(IDS, X, Y, LABELS[:3])
