"""GFVScorer: weighted graph-neighbour frequency shrunk to the region prior, on a hand-built graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glc.models.gfv import GFVScorer


def _train() -> pd.DataFrame:
    # sources 1..3 in region A / 2020 at 0, 2 and 6 km east of the origin; source 4 is another year; source 5 far away
    return pd.DataFrame(
        {
            "surveyId": [1, 2, 3, 4, 5],
            "x": [4.0e6, 4.0e6 + 2000, 4.0e6 + 6000, 4.0e6 + 1000, 5.0e6],
            "y": [3.0e6] * 5,
            "year": [2020, 2020, 2020, 2019, 2020],
            "region": ["A"] * 5,
            "speciesIds": [np.array([10, 11]), np.array([11]), np.array([12]), np.array([13]), np.array([10])],
        }
    )


def test_matches_the_formula_on_a_hand_built_graph() -> None:
    tr = _train()
    m = 5.0
    sc = GFVScorer(radius_km=10.0, prior_weight=m).fit(tr)
    q = pd.DataFrame({"surveyId": [100], "x": [4.0e6 + 1000.0], "y": [3.0e6], "year": [2020], "region": ["A"]})
    got = dict(zip(sc.vocab.tolist(), sc.predict(q)[0].tolist()))
    w = {1: 10 - 1.0, 2: 10 - 1.0, 3: 10 - 5.0}  # edges to 1, 2, 3 only (4: other year, 5: too far)
    prior = {10: 2 / 5, 11: 2 / 5, 12: 1 / 5, 13: 1 / 5}
    sw = sum(w.values())
    want = {
        10: (w[1] + m * prior[10]) / (sw + m),
        11: (w[1] + w[2] + m * prior[11]) / (sw + m),
        12: (w[3] + m * prior[12]) / (sw + m),
        13: (m * prior[13]) / (sw + m),
    }
    for s, v in want.items():
        assert got[s] == pytest.approx(v, rel=1e-5)


def test_isolated_query_gets_the_prior_and_no_self_edge() -> None:
    tr = _train()
    sc = GFVScorer(radius_km=10.0, prior_weight=5.0).fit(tr)
    far = pd.DataFrame({"surveyId": [100], "x": [6.0e6], "y": [1.0e6], "year": [2020], "region": ["A"]})
    np.testing.assert_allclose(sc.predict(far)[0], [2 / 5, 2 / 5, 1 / 5, 1 / 5], rtol=1e-6)
    own = sc.predict(tr.iloc[[2]])[0]  # survey 3 itself: its own species 12 only through the prior
    assert own[list(sc.vocab).index(12)] == pytest.approx(
        5.0 * (1 / 5) / ((10 - 6.0) + (10 - 4.0) + 5.0), rel=1e-5
    )  # edges to 1 (6 km), 2 (4 km)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prior_weight"):
        GFVScorer(prior_weight=0)
    with pytest.raises(ValueError, match="lacks columns \\['speciesIds'\\]"):
        GFVScorer().fit(_train().drop(columns="speciesIds"))
