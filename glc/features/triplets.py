"""Triplet sampling for tile2vec (Jean et al., "Tile2Vec", AAAI 2019; DS@GT working note §5.2.2).

A triplet is ``(anchor, neighbour, distant)`` site indices into one pool of sites that **have a tile**:

* **neighbour**: drawn uniformly from the anchor's neighbour list (a ``Neighbours`` artifact: sources within
  ``radius_km`` of the anchor, the anchor itself and repeat visits of its site already excluded by the neighbour
  search). A listed neighbour without a tile (e.g. a presence-only site whose patch does not exist) is **counted**
  (``neighbour_without_tile``) and another one is drawn; an anchor none of whose neighbours has a tile is counted
  (``anchor_without_neighbour``) and gets no triplet — never a zero tile.
* **distant**: a uniformly random pool site farther than ``distant_km`` from the anchor (EPSG:3035 distance), so
  never the anchor itself and never a repeat visit of its site (both are at ~0 km); drawn by rejection (every draw
  that is too close is redrawn, up to ``max_tries`` rounds, then the remaining anchors are resolved exactly from
  the sites beyond the cutoff).

Everything is vectorised numpy, seeded by a ``numpy.random.Generator``; no tile is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from glc.features.neighbours import NeighbourTable

__all__ = ["TripletPool", "Triplets", "build_pool"]


@dataclass
class Triplets:
    """Pool indices of sampled triplets plus the counts of what had to be resampled or skipped."""

    anchor: np.ndarray
    neighbour: np.ndarray
    distant: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.anchor)


@dataclass
class TripletPool:
    """Sites with a tile and, per site, the pool indices of its neighbours that have a tile (CSR).

    Attributes:
        ids: (n,) surveyIds of the pool sites (the rows of the tile array, in order).
        x, y: (n,) EPSG:3035 metres.
        indptr, nbr: CSR neighbour lists as pool indices (only neighbours with a tile).
        counts: what building the pool dropped: ``neighbour_without_tile`` (list entries whose site has no tile),
            ``anchor_without_neighbour`` (pool sites none of whose listed neighbours has a tile),
            ``site_without_neighbour_row`` (pool sites absent from the neighbour table).
    """

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    indptr: np.ndarray
    nbr: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def n_neighbours(self) -> np.ndarray:
        """Neighbours with a tile per site."""
        return np.diff(self.indptr)

    def sample(self, anchors: np.ndarray, rng: np.random.Generator, distant_km: float, max_tries: int = 20) -> Triplets:
        """One triplet per anchor (pool indices) that has a neighbour with a tile (see the module docstring).

        Args:
            anchors: pool indices of the anchors.
            rng: the generator (seeded by the caller, e.g. per epoch).
            distant_km: the distant site is farther than this from the anchor (> 0).
            max_tries: rejection rounds before the exact fallback.

        Raises:
            ValueError: ``distant_km`` <= 0, or an anchor has no pool site beyond ``distant_km``.
        """
        if not distant_km > 0:
            raise ValueError(
                f"distant_km={distant_km!r}: the distant site must be farther than a positive distance (km)"
            )
        anchors = np.asarray(anchors, np.int64)
        n_nb = self.n_neighbours()[anchors]
        keep = n_nb > 0
        counts = {"anchor_without_neighbour": int((~keep).sum())}
        a = anchors[keep]
        pick = (rng.random(len(a)) * n_nb[keep]).astype(np.int64)
        nb = self.nbr[self.indptr[a] + pick]
        dist = rng.integers(0, len(self), len(a))
        cut2 = (distant_km * 1000.0) ** 2
        redrawn = 0
        for _ in range(max_tries):
            close = (self.x[dist] - self.x[a]) ** 2 + (self.y[dist] - self.y[a]) ** 2 <= cut2
            if not close.any():
                break
            redrawn += int(close.sum())
            dist[close] = rng.integers(0, len(self), int(close.sum()))
        close = np.flatnonzero((self.x[dist] - self.x[a]) ** 2 + (self.y[dist] - self.y[a]) ** 2 <= cut2)
        for i in close:  # exact fallback (rare: anchors whose disc covers most of the pool)
            far = np.flatnonzero((self.x - self.x[a[i]]) ** 2 + (self.y - self.y[a[i]]) ** 2 > cut2)
            if not len(far):
                raise ValueError(
                    f"site {int(self.ids[a[i]])}: no site with a tile is farther than distant_km={distant_km} km; "
                    "lower distant_km"
                )
            dist[i] = far[rng.integers(0, len(far))]
        counts["distant_redrawn"] = redrawn
        return Triplets(a, nb, dist, counts)


def build_pool(
    tile_ids: np.ndarray, xy: Mapping[int, tuple[float, float]] | tuple[np.ndarray, np.ndarray], table: NeighbourTable
) -> TripletPool:
    """The triplet pool of the sites with a tile.

    Args:
        tile_ids: (n,) surveyIds that have a tile, in tile-array order (unique).
        xy: ``(x, y)`` arrays aligned with ``tile_ids`` (EPSG:3035 metres).
        table: neighbour lists of (at least) the pool sites; entries may name sites without a tile (counted).

    Raises:
        ValueError: duplicate ids, misaligned or non-finite coordinates.
    """
    ids = np.asarray(tile_ids, np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("triplet pool: tile ids must be unique (one tile per site)")
    x, y = (np.asarray(v, np.float64) for v in xy)
    if x.shape != ids.shape or y.shape != ids.shape:
        raise ValueError(f"triplet pool: x/y {x.shape}/{y.shape} do not match the {len(ids)} tile ids")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("triplet pool: non-finite x/y; every site needs EPSG:3035 coordinates")
    order = np.argsort(ids)
    sorted_ids = ids[order]

    def pool_index(q: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(sorted_ids, q), 0, max(len(ids) - 1, 0))
        hit = sorted_ids[pos] == q if len(ids) else np.zeros(len(q), bool)
        return np.where(hit, order[pos], -1)

    row = pool_index(table.query_ids)  # pool index of each neighbour-table row (-1: the query has no tile)
    nb_pool = pool_index(table.nbr_ids)
    counts_per_row = table.counts()
    owner = np.repeat(np.arange(len(table)), counts_per_row)
    has_tile = nb_pool >= 0
    in_pool = row[owner] >= 0
    neighbour_without_tile = int((in_pool & ~has_tile).sum())
    keep = in_pool & has_tile
    src = row[owner[keep]]
    dst = nb_pool[keep]
    srt = np.lexsort((np.arange(len(src)), src))  # stable by pool site, list order kept
    per_site = np.bincount(src, minlength=len(ids))
    indptr = np.concatenate([[0], np.cumsum(per_site)]).astype(np.int64)
    covered = np.zeros(len(ids), bool)
    covered[row[row >= 0]] = True
    counts = {
        "neighbour_without_tile": neighbour_without_tile,
        "anchor_without_neighbour": int((covered & (per_site == 0)).sum()),
        "site_without_neighbour_row": int((~covered).sum()),
    }
    return TripletPool(ids, x, y, indptr, dst[srt].astype(np.int64), counts)
