"""Graph feature vectors: the Tighnari formula on hand-built graphs, out-of-fold features, and no label leak."""

from __future__ import annotations

import numpy as np
import pytest

from glc.features.graph import (
    graph_feature_frame,
    graph_features,
    graph_features_raw,
    oof_graph_features,
    to_csr,
)


def row(features, i: int) -> dict[int, float]:  # noqa: ANN001
    a, b = features.indptr[i], features.indptr[i + 1]
    return dict(zip(features.idx[a:b].tolist(), features.val[a:b].tolist()))


# A query at the origin (2020, ATLANTIC) and five training surveys (x, y metres, year, region, species):
SRC_X = np.array([1000.0, 0.0, 6000.0, 2000.0, 0.0])
SRC_Y = np.array([0.0, 4000.0, 8000.0, 0.0, 1000.0])
SRC_YEAR = np.array([2020, 2020, 2020, 2021, 2020])
SRC_REGION = np.array(["ATLANTIC", "ATLANTIC", "ATLANTIC", "ATLANTIC", "CONTINENTAL"])
SRC_LABELS = [np.array([1, 2]), np.array([2, 3]), np.array([4]), np.array([5]), np.array([6])]


def test_five_survey_graph_matches_the_formula_by_hand():
    # edges: A at 1 km (w = 10 - 1 = 9), B at 4 km (w = 6), C at exactly 10 km (w = 0, still an edge: deg 3);
    # D has another year and E another region: no edge. GFV = sum_j w_j y_j / sqrt(deg).
    raw = graph_features_raw([0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, radius_km=10.0)
    s3 = np.sqrt(3.0)
    want = {1: 9 / s3, 2: (9 + 6) / s3, 3: 6 / s3}  # species 4 has weight 0; 5 and 6 are not connected
    assert row(raw, 0).keys() == want.keys()
    for sp, v in want.items():
        assert row(raw, 0)[sp] == pytest.approx(v, rel=1e-6)
    # global normalisation: divided by the largest value (here 15 / sqrt 3), or by a given training scale
    norm = graph_features([0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS)
    assert row(norm, 0) == pytest.approx({1: 0.6, 2: 1.0, 3: 0.4}, rel=1e-6)
    fixed = graph_features([0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, scale=30 / s3)
    assert row(fixed, 0)[2] == pytest.approx(0.5, rel=1e-6)
    # weighted degree: sqrt(9 + 6 + 0) instead of sqrt(3)
    wdeg = graph_features_raw([0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, degree="weighted")
    assert row(wdeg, 0)[2] == pytest.approx(15 / np.sqrt(15.0), rel=1e-6)


def test_out_of_fold_features_by_hand():
    # all 2020 / ATLANTIC; S4 is a repeat visit of S1 (same coordinates) placed in the other fold
    x = np.array([0.0, 2000.0, 0.0, 0.0, 30000.0])
    y = np.array([0.0, 0.0, 5000.0, 0.0, 0.0])
    labels = [np.array([1]), np.array([2]), np.array([3]), np.array([7]), np.array([4])]
    folds = np.array([0, 1, 1, 1, 0])
    feats, scale = oof_graph_features(x, y, [2020] * 5, ["ATLANTIC"] * 5, labels, folds, ids=np.arange(5) + 100)
    # raw: S1 <- S2 (w 8), S3 (w 5), deg 2 (S4 dropped as same site); S2 <- S1 (w 8); S3 <- S1 (w 5); S4, S5: none
    assert scale == pytest.approx(8.0)
    assert row(feats, 0) == pytest.approx({2: 8 / np.sqrt(2) / 8, 3: 5 / np.sqrt(2) / 8}, rel=1e-6)
    assert row(feats, 1) == pytest.approx({1: 1.0})
    assert row(feats, 2) == pytest.approx({1: 5 / 8})
    assert row(feats, 3) == {} and row(feats, 4) == {}
    frame = graph_feature_frame(np.arange(5) + 100, feats)
    assert frame["gfv_idx"][0].dtype == np.int32 and frame["gfv_val"][0].dtype == np.float32
    np.testing.assert_allclose(to_csr(feats)[:, :8].toarray()[1], [0, 1, 0, 0, 0, 0, 0, 0])


def test_own_and_repeat_visit_labels_never_reach_a_training_feature():
    rng = np.random.default_rng(0)
    n_sites, n = 150, 300
    sx, sy = rng.uniform(0, 30_000, n_sites), rng.uniform(0, 30_000, n_sites)
    site = np.concatenate([np.arange(n_sites), rng.integers(0, n_sites, n - n_sites)])  # half are repeat visits
    x, y = sx[site], sy[site]
    private = 5000 + np.arange(n)  # species held by that survey only
    labels = [np.concatenate([[private[i]], rng.choice(20, 3, replace=False)]) for i in range(n)]
    folds = rng.integers(0, 5, n)  # random folds: repeat visits of a site often land in different folds
    year, region = np.full(n, 2020), np.full(n, "ALPINE")
    feats, _ = oof_graph_features(x, y, year, region, labels, folds)
    for i in range(n):
        same_site = np.flatnonzero(site == site[i])  # itself and its repeat visits
        assert not set(private[same_site]) & set(row(feats, i)), f"survey {i} sees its own site's labels"
    # the same computation without the same-site rule leaks repeat visits' labels: the test above can fail
    leaky, _ = oof_graph_features(x, y, year, region, labels, folds, exclude_same_site=False)
    assert any(set(private[(site == site[i]) & (np.arange(n) != i)]) & set(row(leaky, i)) for i in range(n))


def test_errors_name_the_problem():
    args = ([0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION)
    with pytest.raises(ValueError, match=r"src_labels\[0\] has species id\(s\) outside 0..9"):
        graph_features_raw(*args, [np.array([10])] + SRC_LABELS[1:], n_species=10)
    with pytest.raises(ValueError, match="queries: 1 site.*lack an integer year or a region"):
        graph_features_raw([0.0], [0.0], [None], ["ATLANTIC"], *args[4:], SRC_LABELS)
    with pytest.raises(ValueError, match="sources: 5 sites but 4 label lists"):
        graph_features_raw(*args, SRC_LABELS[:4])
    with pytest.raises(ValueError, match="at least 2 folds"):
        oof_graph_features(SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, np.zeros(5))
    with pytest.raises(ValueError, match="scale must be a positive number"):
        graph_features(*args, SRC_LABELS, scale=0.0)
