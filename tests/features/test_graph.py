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


def row(features, i: int) -> dict[int, float]:
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
    raw = graph_features_raw(
        [0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, radius_km=10.0
    )
    s3 = np.sqrt(3.0)
    want = {1: 9 / s3, 2: (9 + 6) / s3, 3: 6 / s3}  # species 4 has weight 0; 5 and 6 are not connected
    assert row(raw, 0).keys() == want.keys()
    for sp, v in want.items():
        assert row(raw, 0)[sp] == pytest.approx(v, rel=1e-6)
    # global normalisation: divided by the largest value (here 15 / sqrt 3), or by a given training scale
    norm = graph_features([0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS)
    assert row(norm, 0) == pytest.approx({1: 0.6, 2: 1.0, 3: 0.4}, rel=1e-6)
    fixed = graph_features(
        [0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, scale=30 / s3
    )
    assert row(fixed, 0)[2] == pytest.approx(0.5, rel=1e-6)
    # weighted degree: sqrt(9 + 6 + 0) instead of sqrt(3)
    wdeg = graph_features_raw(
        [0.0], [0.0], [2020], ["ATLANTIC"], SRC_X, SRC_Y, SRC_YEAR, SRC_REGION, SRC_LABELS, degree="weighted"
    )
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


def _holdout_world(seed: int = 0):
    """300 training surveys on a 60 km square (one year, one region) each holding a private species, 20 test surveys."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = 300
    train = pd.DataFrame(
        {
            "surveyId": 1000 + np.arange(n),
            "x": 4_000_000 + rng.uniform(0, 60_000, n),
            "y": 3_000_000 + rng.uniform(0, 60_000, n),
            "year": 2020,
            "region": "ALPINE",
            "speciesIds": [np.array([5000 + i, int(rng.integers(0, 20))]) for i in range(n)],
        }
    )
    test = pd.DataFrame(
        {
            "surveyId": 9000 + np.arange(20),
            "x": 4_000_000 + rng.uniform(0, 60_000, 20),
            "y": 3_000_000 + rng.uniform(0, 60_000, 20),
            "year": 2020,
            "region": "ALPINE",
        }
    )
    return train, test


def test_gfv_with_the_models_hold_out_never_carries_validation_labels():
    """pitfall 15 (docs/contributing.md): with the model's hold-out, no training-split survey's GFV holds a validation
    survey's private species, a validation survey's GFV comes from the training split only, the training folds are the
    k-fold trainer's (training_folds on the training split), and test surveys see every training survey. Without the
    hold-out (independent folds) validation labels do reach training features: the test can fail."""
    from glc.eval.split import training_folds, validation_mask
    from glc.features.graph import graph_feature_table

    train, test = _holdout_world()
    hold = validation_mask(train, {"seed": 2, "validation": {"block_km": 10.0, "val_fraction": 0.3}})
    assert 0 < hold.sum() < len(train)
    private_val = {5000 + i for i in np.flatnonzero(hold)}
    private_fit = {5000 + i for i in np.flatnonzero(~hold)}
    rows, stats = graph_feature_table(train, test, n_folds=4, block_km=10.0, seed=2, holdout=hold)
    by_id = rows.set_index("surveyId")
    fit_ids, val_ids = train["surveyId"][~hold], train["surveyId"][hold]
    for sid in fit_ids:
        assert not set(by_id.loc[sid, "gfv_idx"].tolist()) & private_val, (
            f"training survey {sid} sees validation labels"
        )
    seen_val = set().union(*(set(by_id.loc[s, "gfv_idx"].tolist()) for s in val_ids))
    assert not seen_val & private_val and seen_val & private_fit  # validation rows: from the training split only
    seen_test = set().union(*(set(by_id.loc[s, "gfv_idx"].tolist()) for s in test["surveyId"]))
    assert seen_test & private_val and seen_test & private_fit  # test rows: from every training survey
    assert (by_id.loc[val_ids, "fold"] == -2).all() and (by_id.loc[test["surveyId"], "fold"] == -1).all()
    want = training_folds(train["x"][~hold], train["y"][~hold], 4, 10.0, 2)
    np.testing.assert_array_equal(by_id.loc[fit_ids, "fold"].to_numpy(), want)
    assert stats["n_holdout"] == int(hold.sum())

    leaky, _ = graph_feature_table(train, test, n_folds=4, block_km=10.0, seed=2)  # folds independent of the hold-out
    lk = leaky.set_index("surveyId")
    assert any(set(lk.loc[s, "gfv_idx"].tolist()) & private_val for s in fit_ids)
    with pytest.raises(ValueError, match="one flag per training survey"):
        graph_feature_table(train, test, holdout=hold[:10])
