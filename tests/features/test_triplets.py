"""tile2vec triplet sampling (glc.features.triplets): neighbours within the radius, distant beyond the cutoff, no self,
no repeat visit as 'distant', tile-less sites counted and resampled — on the tiny world's sites and on a seeded fake
with deliberately bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glc.features.neighbours import NeighbourTable, neighbours_numpy
from glc.features.triplets import build_pool


@pytest.fixture(scope="module")
def tiny_sites(tiny_world: Path):
    """The tiny world's PA sites (train + test) in EPSG:3035 (repeat visits included: same x/y, other surveyId)."""
    from glc.data.layout import detect_layout
    from glc.data.metadata import read_pa_metadata, survey_table
    from glc.geo import to_laea

    lay = detect_layout(tiny_world)
    frames = [survey_table(read_pa_metadata(lay.pa_metadata(s), s)) for s in ("train", "test")]
    import pandas as pd

    df = pd.concat(frames).drop_duplicates("surveyId").sort_values("surveyId").reset_index(drop=True)
    x, y = to_laea(df["lon"].to_numpy(), df["lat"].to_numpy())
    return df["surveyId"].to_numpy(np.int64), np.asarray(x), np.asarray(y)


def _dist_km(x, y, i, j):
    return np.hypot(x[i] - x[j], y[i] - y[j]) / 1000.0


def test_tiny_world_triplets_respect_radius_cutoff_and_self(tiny_sites) -> None:
    ids, x, y = tiny_sites
    radius, cutoff = 100.0, 300.0
    table = neighbours_numpy(ids, x, y, ids, x, y, radius, k=10)
    pool = build_pool(ids, (x, y), table)
    rng = np.random.default_rng(0)
    t = pool.sample(np.arange(len(pool)), rng, cutoff)
    assert len(t) > 0.9 * len(pool)
    d_nb = _dist_km(x, y, t.anchor, t.neighbour)
    d_far = _dist_km(x, y, t.anchor, t.distant)
    assert (d_nb <= radius + 1e-6).all()
    assert (d_far > cutoff).all()
    assert (t.anchor != t.neighbour).all() and (t.anchor != t.distant).all()
    # a repeat visit of the anchor's site (same coordinates, other surveyId) is never 'distant' (and never a neighbour:
    # the neighbour search excludes same-site sources)
    assert (d_far > 0.001).all() and (d_nb > 0.001).all()
    # anchors without any neighbour are counted, not given a made-up triplet
    assert t.counts["anchor_without_neighbour"] == int((pool.n_neighbours() == 0).sum())
    assert len(t) + t.counts["anchor_without_neighbour"] == len(pool)
    # same seed -> same triplets; another seed differs
    t2 = pool.sample(np.arange(len(pool)), np.random.default_rng(0), cutoff)
    t3 = pool.sample(np.arange(len(pool)), np.random.default_rng(1), cutoff)
    assert np.array_equal(t.distant, t2.distant) and np.array_equal(t.neighbour, t2.neighbour)
    assert not np.array_equal(t.distant, t3.distant)


def test_sites_without_tile_are_counted_and_resampled() -> None:
    """Seeded fake: 40 sites with tiles, 20 'presence-only' sites without; every neighbour list mixes both."""
    rng = np.random.default_rng(3)
    n_t, n_po = 40, 20
    ids = np.arange(1, n_t + n_po + 1, dtype=np.int64)
    x = rng.uniform(0, 2e6, n_t + n_po)
    y = rng.uniform(0, 2e6, n_t + n_po)
    x[-1], y[-1] = x[0], y[0]  # a tile-less site exactly at site 1 (a repeat visit without a patch)
    table = neighbours_numpy(ids[:n_t], x[:n_t], y[:n_t], ids, x, y, 3000.0, k=8, exclude_same_site=False)
    pool = build_pool(ids[:n_t], (x[:n_t], y[:n_t]), table)
    listed_po = int(np.isin(table.nbr_ids, ids[n_t:]).sum())
    assert listed_po > 0
    assert pool.counts["neighbour_without_tile"] == listed_po
    assert (pool.nbr < n_t).all()  # only sites with a tile remain
    t = pool.sample(np.arange(n_t), np.random.default_rng(0), 200.0)
    assert np.isin(t.neighbour, np.arange(n_t)).all() and np.isin(t.distant, np.arange(n_t)).all()


def test_anchor_whose_neighbours_all_lack_tiles_gets_no_triplet() -> None:
    ids = np.array([1, 2, 3], np.int64)
    x = np.array([0.0, 1e6, 2e6])
    y = np.zeros(3)
    # site 1's only neighbour (99) has no tile; sites 2 and 3 list each other
    table = NeighbourTable(
        np.array([1, 2, 3]), np.array([0, 1, 2, 3]), np.array([99, 3, 2]), np.array([5.0, 10.0, 10.0])
    )
    pool = build_pool(ids, (x, y), table)
    assert pool.counts == {"neighbour_without_tile": 1, "anchor_without_neighbour": 1, "site_without_neighbour_row": 0}
    t = pool.sample(np.arange(3), np.random.default_rng(0), 500.0)
    assert list(t.anchor) == [1, 2] and t.counts["anchor_without_neighbour"] == 1
    assert list(t.neighbour) == [2, 1]


def test_distant_cutoff_beyond_every_site_raises_naming_the_site() -> None:
    ids = np.array([1, 2], np.int64)
    table = NeighbourTable(np.array([1, 2]), np.array([0, 1, 2]), np.array([2, 1]), np.array([1.0, 1.0]))
    pool = build_pool(ids, (np.array([0.0, 1000.0]), np.zeros(2)), table)
    with pytest.raises(ValueError, match="site 1: no site with a tile is farther than distant_km=50"):
        pool.sample(np.array([0]), np.random.default_rng(0), 50.0)
    with pytest.raises(ValueError, match="distant_km"):
        pool.sample(np.array([0]), np.random.default_rng(0), 0.0)


def test_pool_rejects_duplicate_ids_and_bad_coordinates() -> None:
    table = NeighbourTable(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0))
    with pytest.raises(ValueError, match="unique"):
        build_pool(np.array([1, 1]), (np.zeros(2), np.zeros(2)), table)
    with pytest.raises(ValueError, match="non-finite"):
        build_pool(np.array([1, 2]), (np.array([0.0, np.nan]), np.zeros(2)), table)
