"""Candidate species and pair features for the gbm re-ranker."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glc.models.candidates import PAIR_NAMES, PROTOCOL_NAMES, CandidateBuilder, candidate_recall, pair_labels
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


def _protocol_frame() -> pd.DataFrame:
    """Two programmes side by side: 4 m^2 plots that list species 1 and 2, 700 m^2 plots that list 3, 4 and 5; a
    survey of each programme every km along a line, the two interleaved."""
    n = 20
    x = 4.0e6 + 1000.0 * np.arange(n)
    small = np.arange(n) % 2 == 0
    return pd.DataFrame(
        {
            "surveyId": np.arange(n) + 100,
            "x": x,
            "y": np.full(n, 3.0e6),
            "region": "A",
            "country": "C",
            "areaInM2": np.where(small, 4.0, 700.0),
            "speciesIds": [np.array([1, 2]) if s else np.array([3, 4, 5]) for s in small],
        }
    )


def test_protocol_columns_come_from_the_same_programme_only() -> None:
    df = _protocol_frame()
    train, query = df.iloc[2:].reset_index(drop=True), df.iloc[:2].reset_index(drop=True)  # one query of each
    b = CandidateBuilder(5, niche=(), protocol_k=3).fit(train)
    p = b.pairs(query)
    assert b.names == [*PAIR_NAMES, *PROTOCOL_NAMES] and p.features.shape == (len(p.rows), len(b.names))
    freq = dict(zip(zip(p.rows.tolist(), p.species.tolist()), p.features[:, b.names.index("protocol_knn")]))
    # the 4 m^2 query's three nearest 4 m^2 plots all hold 1 and 2 and none of 3-5, though its nearest plots of any
    # kind (1 km away) are 700 m^2 plots
    assert freq[(0, 1)] == freq[(0, 2)] == 1.0 and freq[(0, 3)] == 0.0
    assert freq[(1, 3)] == 1.0 and freq[(1, 1)] == 0.0
    near = p.features[p.rows == 0, b.names.index("protocol_log_near_km")]
    assert np.allclose(near, np.log1p(2.0))  # the nearest 4 m^2 plot of the training surveys is 2 km away
    rich = p.features[:, b.names.index("protocol_richness")]
    assert np.allclose(rich[p.rows == 0], 2.0) and np.allclose(rich[p.rows == 1], 3.0)
    # the same columns for given pairs; a query of a programme no training survey follows gets NaN in all three
    np.testing.assert_allclose(b.pair_features(query, p.rows, p.species), p.features, rtol=1e-6)
    other = query.assign(areaInM2=[50.0, np.nan])
    tail = b.pairs(other).features[:, len(PAIR_NAMES) :]
    assert np.isnan(tail).all()
    # protocol_k = 0 (the default) leaves the pair features as they were
    plain = CandidateBuilder(5, niche=()).fit(train).pairs(query)
    np.testing.assert_allclose(plain.features, p.features[:, : len(PAIR_NAMES)], rtol=1e-6)


def test_protocol_columns_never_see_the_query_or_its_site() -> None:
    df = _protocol_frame()
    repeat = df.iloc[[0]].assign(surveyId=999, speciesIds=[np.array([9])])  # a repeat visit of survey 100's site
    b = CandidateBuilder(5, niche=(), protocol_k=1).fit(pd.concat([df, repeat], ignore_index=True))
    p = b.pairs(df.iloc[[0]].reset_index(drop=True))
    assert 9 not in p.species[p.features[:, b.names.index("protocol_knn")] > 0]
    assert np.allclose(p.features[:, b.names.index("protocol_log_near_km")], np.log1p(2.0))
