"""Candidate species and pair features for the gbm re-ranker."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glc.models.candidates import PAIR_NAMES, CandidateBuilder, candidate_recall, pair_labels
from tests.fakes import toy_surveys


def test_candidates_are_ranked_and_never_see_the_query_itself() -> None:
    df = toy_surveys(300)
    b = CandidateBuilder(n_candidates=20).fit(df)
    p = b.pairs(df.head(10))
    assert p.features.shape == (200, len(PAIR_NAMES)) and np.isfinite(p.features).all()
    assert np.array_equal(p.rows, np.repeat(np.arange(10), 20))
    rank = p.features[:, PAIR_NAMES.index("base_rank")]
    assert np.array_equal(rank, np.tile(np.arange(20), 10))
    # a query scored against sources that include itself gets the same neighbour features as without it
    q = df.iloc[[5]]
    alone = CandidateBuilder(20).fit(df.drop(index=5)).pairs(q)
    assert np.array_equal(np.sort(p.species[p.rows == 5]), np.sort(alone.species))
    knn = PAIR_NAMES.index("knn10")
    np.testing.assert_allclose(
        p.features[p.rows == 5, knn][np.argsort(p.species[p.rows == 5])],
        alone.features[np.argsort(alone.species), knn],
        rtol=1e-6,
    )


def test_pair_labels_and_recall() -> None:
    tr = pd.DataFrame(
        {
            "surveyId": [1, 2],
            "x": [4.0e6, 4.0e6 + 2000],
            "y": [3.0e6] * 2,
            "region": ["A", "A"],
            "country": ["C", "C"],
            "speciesIds": [np.array([1, 2]), np.array([2, 3])],
        }
    )
    q = pd.DataFrame({"surveyId": [9], "x": [4.0e6 + 1000], "y": [3.0e6], "region": ["A"], "country": ["C"]})
    p = CandidateBuilder(2).fit(tr).pairs(q)
    assert p.species[0] == 2 and len(p.species) == 2  # species 2 is held by both neighbours: ranked first
    y = pair_labels(p, [np.array([2, 7])])
    assert y[p.species == 2].tolist() == [1.0] and y.sum() == 1
    assert candidate_recall(p, [np.array([2, 7])]) == 0.5
    near = p.features[p.species == 2, PAIR_NAMES.index("log_nearest_km")][0]
    assert np.isclose(near, np.log1p(1.0))


def test_pair_features_of_given_pairs_match_the_builders_own_candidates() -> None:
    df = toy_surveys(300)
    train, query = df.iloc[:250], df.iloc[250:].reset_index(drop=True)
    b = CandidateBuilder(n_candidates=15).fit(train)
    own = b.pairs(query)
    perm = np.random.default_rng(0).permutation(len(own.rows))  # any order
    got = b.pair_features(query, own.rows[perm], own.species[perm])
    np.testing.assert_allclose(got, own.features[perm], rtol=1e-6)
    unknown = b.pair_features(query, np.array([0, 3]), np.array([10**6, 10**6 + 1]))  # no training survey holds them
    head = unknown[:, : len(PAIR_NAMES) - 3]
    assert (head == 0).all() and (unknown[:, PAIR_NAMES.index("base_rank")] == len(b.vocab_)).all()
    assert np.allclose(unknown[:, PAIR_NAMES.index("log_nearest_km")], np.log1p(5000.0))
    assert np.isnan(unknown[:, PAIR_NAMES.index("niche_dist")]).all()
