"""In-memory neighbour search (glc.features.neighbours): the cKDTree engine equals brute force (ties by id, borders,
repeat visits), the self and same-site rules, errors that name the problem. The Spark tables are tested against it
in tests/etl/test_neighbours.py with the same clustered fixture."""

from __future__ import annotations

import numpy as np
import pytest

from glc.features.neighbours import neighbours_numpy

RADIUS = 5.0  # km
CELL_M = 100_000.0  # the default cell side for a 5 km radius: max(4 * radius, 100) km


def clustered(n: int, seed: int, extent_m: float = 400_000.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered sites with deliberate hard cases: points exactly on cell borders, pairs exactly ``RADIUS`` apart
    across a border, and repeat visits (same coordinates, new id). Ids are shuffled, not row numbers."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, extent_m, (30, 2))
    lab = rng.integers(0, len(centres), n)
    x = centres[lab, 0] + rng.normal(0, 4_000, n)
    y = centres[lab, 1] + rng.normal(0, 4_000, n)
    b = n // 20
    x[:b] = np.round(x[:b] / CELL_M) * CELL_M  # on vertical cell borders
    y[b : 2 * b] = np.round(y[b : 2 * b] / CELL_M) * CELL_M  # on horizontal borders
    # pairs exactly RADIUS km apart across a vertical cell border, alone on a row north of the clusters (30 km apart,
    # so each one's only neighbour is its partner): one site on the border, the other in the next cell
    m = np.arange(b // 2)
    first, second = 2 * b + 2 * m, 2 * b + 2 * m + 1
    x[first] = (m % 4 + 1) * CELL_M
    x[second] = x[first] + RADIUS * 1000.0
    y[first] = y[second] = extent_m + 100_000.0 + (m // 4) * 30_000.0
    # repeat visits: copy coordinates of other rows
    x[3 * b : 4 * b], y[3 * b : 4 * b] = x[5 * b : 6 * b], y[5 * b : 6 * b]
    ids = rng.permutation(np.arange(n, dtype=np.int64) * 3 + 11)
    return ids, x, y


def brute_force(qids, qx, qy, sids, sx, sy, radius_km, k, exclude_same_site):
    d = np.sqrt((qx[:, None] - sx[None]) ** 2 + (qy[:, None] - sy[None]) ** 2)
    out_ids, out_d = [], []
    for i in range(len(qx)):
        m = (d[i] <= radius_km * 1000) & (sids != qids[i])
        if exclude_same_site:
            m &= d[i] > 1.0
        j = np.flatnonzero(m)
        j = j[np.lexsort((sids[j], d[i, j]))][: k or None]
        out_ids.append(sids[j])
        out_d.append(d[i, j] / 1000)
    return out_ids, out_d


@pytest.mark.parametrize("k", [3, 10, None])
@pytest.mark.parametrize("exclude_same_site", [True, False])
def test_numpy_reference_matches_brute_force(k, exclude_same_site):
    ids, x, y = clustered(700, seed=1, extent_m=60_000.0)
    x, y = np.round(x, -2), np.round(y, -2)  # a 100 m lattice: many exact distance ties, broken by id
    table = neighbours_numpy(ids, x, y, ids, x, y, RADIUS, k, exclude_same_site=exclude_same_site)
    want_ids, want_d = brute_force(ids, x, y, ids, x, y, RADIUS, k, exclude_same_site)
    got_ids, got_d = table.lists()
    assert np.array_equal(table.query_ids, ids)
    for i in range(len(ids)):
        assert np.array_equal(got_ids[i], want_ids[i]), f"row {i}"
        np.testing.assert_allclose(got_d[i], want_d[i], rtol=0, atol=1e-12)
    assert table.counts().sum() > 0


def test_same_site_rule_and_self_exclusion():
    # 1 and 2 are repeat visits of one site, 3 is 0.5 m away (same site), 4 is 2 m away, 5 is 3 km away
    ids = np.array([1, 2, 3, 4, 5])
    x = np.array([0.0, 0.0, 0.5, 2.0, 3000.0])
    y = np.zeros(5)
    excl = neighbours_numpy(ids, x, y, ids, x, y, radius_km=5, k=None, exclude_same_site=True)
    keep = neighbours_numpy(ids, x, y, ids, x, y, radius_km=5, k=None, exclude_same_site=False)
    e_ids, e_d = excl.lists()
    k_ids, k_d = keep.lists()
    assert e_ids[0].tolist() == [4, 5]  # self, its repeat visit and the 0.5 m site are dropped
    assert k_ids[0].tolist() == [2, 3, 4, 5]  # kept (distance 0 first, then by distance); self never
    assert k_d[0][0] == 0.0 and e_d[0][0] == pytest.approx(0.002)
    assert all(ids[i] not in k_ids[i] for i in range(5))
    # same_site_m is a parameter: 3 m also drops survey 4 (2 m away)
    wide = neighbours_numpy(ids, x, y, ids, x, y, radius_km=5, k=None, exclude_same_site=True, same_site_m=3.0)
    assert wide.lists()[0][0].tolist() == [5]


def test_numpy_errors_name_the_problem():
    ids, x, y = np.array([1, 2]), np.array([0.0, 1.0]), np.array([0.0, 1.0])
    with pytest.raises(ValueError, match="radius_km must be a positive"):
        neighbours_numpy(ids, x, y, ids, x, y, radius_km=0)
    with pytest.raises(ValueError, match="k must be a positive integer or None"):
        neighbours_numpy(ids, x, y, ids, x, y, radius_km=1, k=0)
    with pytest.raises(ValueError, match="sources: 1 surveyId"):
        neighbours_numpy(ids, x, y, np.array([7, 7]), x, y, radius_km=1)
    with pytest.raises(ValueError, match="queries: 1 site.*non-finite.*index 1"):
        neighbours_numpy(ids, x, np.array([0.0, np.nan]), ids, x, y, radius_km=1)
