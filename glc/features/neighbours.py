"""In-memory neighbour search: the k nearest source sites of each query within a radius (numpy + cKDTree).

The pure, Spark-free engine behind every neighbour table (:mod:`glc.etl.neighbours` runs the same code per grid
cell in Spark), the neighbour predictors (:mod:`glc.models.neighbours`), the graph features
(:mod:`glc.features.graph`) and the PO correction lists (:mod:`glc.features.po_correction`). The rules (distances
in EPSG:3035 km, self and repeat visits excluded, ties by id) are documented in :mod:`glc.etl.neighbours`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

#: Spark / parquet schema of a neighbour table (one row per query site).
NEIGHBOUR_SCHEMA = "surveyId long, nbr_ids array<long>, nbr_dist_km array<double>"
REL_TOL = 1e-9  # relative slack on radii so float rounding never loses a candidate; the final test is exact
_CHUNK = 100_000  # queries per cKDTree call (bounds memory)


@dataclass
class NeighbourTable:
    """Neighbour lists of ``n`` queries in CSR form.

    The neighbours of query ``i`` are ``nbr_ids[indptr[i]:indptr[i + 1]]`` at ``nbr_dist_km[...]`` km, sorted by
    distance then id.

    Attributes:
        query_ids: (n,) int64 query surveyIds.
        indptr: (n + 1,) int64 row offsets.
        nbr_ids: (m,) int64 neighbour surveyIds.
        nbr_dist_km: (m,) float64 distances in km.
    """

    query_ids: np.ndarray
    indptr: np.ndarray
    nbr_ids: np.ndarray
    nbr_dist_km: np.ndarray

    def __len__(self) -> int:
        return len(self.query_ids)

    def counts(self) -> np.ndarray:
        """Number of neighbours of each query."""
        return np.diff(self.indptr)

    def lists(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-query neighbour id arrays and distance arrays (views, no copy)."""
        cut = self.indptr[1:-1]
        return np.split(self.nbr_ids, cut), np.split(self.nbr_dist_km, cut)

    def to_pandas(self) -> pd.DataFrame:
        """The artifact's columns as a pandas frame (array cells are numpy arrays)."""
        ids, dists = self.lists()
        return pd.DataFrame({"surveyId": self.query_ids, "nbr_ids": ids, "nbr_dist_km": dists})

    @classmethod
    def from_pandas(cls, df: pd.DataFrame) -> NeighbourTable:
        """Inverse of :meth:`to_pandas` (e.g. a neighbour parquet read with pandas); rows kept in order."""
        missing = {"surveyId", "nbr_ids", "nbr_dist_km"} - set(df.columns)
        if missing:
            raise ValueError(f"neighbour table is missing column(s) {sorted(missing)}; expected {NEIGHBOUR_SCHEMA}")
        ids = [np.asarray(a if a is not None else [], dtype=np.int64) for a in df["nbr_ids"]]
        dists = [np.asarray(a if a is not None else [], dtype=np.float64) for a in df["nbr_dist_km"]]
        lens = np.array([len(a) for a in ids], dtype=np.int64)
        bad = np.flatnonzero(lens != np.array([len(a) for a in dists], dtype=np.int64))
        if len(bad):
            raise ValueError(f"neighbour table row {int(bad[0])}: nbr_ids and nbr_dist_km have different lengths")
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        cat = lambda xs, t: np.concatenate(xs).astype(t) if xs else np.zeros(0, t)  # noqa: E731
        return cls(df["surveyId"].to_numpy(np.int64), indptr, cat(ids, np.int64), cat(dists, np.float64))


def validate_xy(
    name: str, x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``x``, ``y`` as float64 arrays; raise ValueError (naming ``name``) on bad shapes or non-finite values."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"{name}: x and y must be 1-D arrays of equal length, got shapes {x.shape} and {y.shape}")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: {int(bad.sum())} site(s) have non-finite EPSG:3035 coordinates, first at index {i} "
            f"(x={x[i]}, y={y[i]}); drop or fix them before building neighbours"
        )
    return x, y


def validate_params(radius_km: float, k: int | None, same_site_m: float) -> None:
    """Raise ValueError, naming the parameter, unless ``radius_km > 0``, ``k`` is None or >= 1, ``same_site_m >= 0``."""
    if not (np.isfinite(radius_km) and radius_km > 0):
        raise ValueError(f"radius_km must be a positive number of kilometres, got {radius_km!r}")
    if k is not None and (int(k) != k or k < 1):
        raise ValueError(f"k must be a positive integer or None (all neighbours within radius_km), got {k!r}")
    if not (np.isfinite(same_site_m) and same_site_m >= 0):
        raise ValueError(f"same_site_m must be a non-negative number of metres, got {same_site_m!r}")


def validate_unique_ids(name: str, ids: np.ndarray) -> None:
    """Raise ValueError (naming ``name`` and the first repeated id) if ``ids`` has duplicates."""
    u, c = np.unique(ids, return_counts=True)
    if (c > 1).any():
        dup = u[c > 1]
        raise ValueError(
            f"{name}: {len(dup)} surveyId(s) appear more than once (first: {int(dup[0])}); ids must be unique "
            "(one row per site; offset PO ids if PA and PO ids collide)"
        )


def query_tree(
    tree: cKDTree,
    src_ids: np.ndarray,
    qx: np.ndarray,
    qy: np.ndarray,
    qids: np.ndarray | None,
    radius_km: float,
    k: int | None,
    exclude_same_site: bool,
    same_site_m: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbours of query points among the points of ``tree`` (the engine behind every implementation).

    Args:
        tree: cKDTree over the source ``(x, y)`` in metres.
        src_ids: (n_src,) source surveyIds, aligned with the tree's points.
        qx: Query x in metres.
        qy: Query y in metres.
        qids: Query surveyIds (a source with the same id is excluded) or None (no id-based exclusion).
        radius_km: Cutoff; sources with ``d <= radius_km`` qualify.
        k: Keep the k nearest (None: keep all within the radius).
        exclude_same_site: Drop sources within ``same_site_m`` metres of the query.
        same_site_m: Same-site distance in metres.

    Returns:
        ``(indptr, src_index, dist_km)``: CSR rows per query; ``src_index`` indexes the tree's points. Rows are
        sorted by distance then source id.
    """
    nq = len(qx)
    parts_idx: list[np.ndarray] = []
    parts_d: list[np.ndarray] = []
    counts = np.zeros(nq, dtype=np.int64)
    for lo in range(0, nq, _CHUNK):
        hi = min(nq, lo + _CHUNK)
        q_ids = None if qids is None else qids[lo:hi]
        if k is None:
            rows, idx, d = _ball(tree, src_ids, qx[lo:hi], qy[lo:hi], q_ids, radius_km, exclude_same_site, same_site_m)
        else:
            rows, idx, d = _knn(
                tree, src_ids, qx[lo:hi], qy[lo:hi], q_ids, radius_km, int(k), exclude_same_site, same_site_m
            )
        counts[lo:hi] = np.bincount(rows, minlength=hi - lo)
        parts_idx.append(idx)
        parts_d.append(d)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    idx = np.concatenate(parts_idx) if parts_idx else np.zeros(0, np.int64)
    dist = np.concatenate(parts_d) if parts_d else np.zeros(0, np.float64)
    return indptr, idx.astype(np.int64), dist


def _keep(
    d_m: np.ndarray, src_id: np.ndarray, q_id: np.ndarray | None, radius_km: float, excl: bool, same_site_m: float
) -> np.ndarray:
    keep = d_m <= radius_km * 1000.0
    if q_id is not None:
        keep &= src_id != q_id
    if excl:
        keep &= d_m > same_site_m
    return keep


def _dist_m(tree: cKDTree, j: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    # The one distance formula used everywhere (the tree's own distances may differ in the last bit).
    dx = tree.data[j, 0] - qx
    dy = tree.data[j, 1] - qy
    return np.sqrt(dx * dx + dy * dy)


def _ball(tree, src_ids, qx, qy, qids, radius_km, excl, same_site_m):
    qtree = cKDTree(np.column_stack([qx, qy]))
    pairs = qtree.sparse_distance_matrix(tree, radius_km * 1000.0 * (1 + REL_TOL) + 1e-6, output_type="ndarray")
    i = pairs["i"].astype(np.int64)
    j = pairs["j"].astype(np.int64)
    d = _dist_m(tree, j, qx[i], qy[i])
    keep = _keep(d, src_ids[j], None if qids is None else qids[i], radius_km, excl, same_site_m)
    i, j, d = i[keep], j[keep], d[keep]
    order = np.lexsort((src_ids[j], d, i))
    return i[order], j[order], d[order] / 1000.0


def _knn(tree, src_ids, qx, qy, qids, radius_km, k, excl, same_site_m):
    n_src = tree.n
    nq = len(qx)
    out_rows, out_c, out_j, out_d = [], [], [], []
    todo = np.arange(nq)
    kk = min(k + 2, n_src)  # + self + one spare, so the k-th kept neighbour can be proven strictly closer than the rest
    ub = radius_km * 1000.0 * (1 + REL_TOL) + 1e-6
    while len(todo) and n_src:
        _, jj = tree.query(np.column_stack([qx[todo], qy[todo]]), k=kk, distance_upper_bound=ub)
        jj = jj.reshape(len(todo), kk)
        found = jj < n_src
        jc = np.where(found, jj, 0)
        d = _dist_m(tree, jc, qx[todo, None], qy[todo, None])
        qid2 = None if qids is None else qids[todo, None]
        keep = found & _keep(d, src_ids[jc], qid2, radius_km, excl, same_site_m)
        d_sort = np.where(keep, d, np.inf)
        order = np.lexsort((src_ids[jc], d_sort), axis=-1)[:, :k]
        d_top = np.take_along_axis(d_sort, order, axis=1)
        j_top = np.take_along_axis(jc, order, axis=1)
        n_keep = np.isfinite(d_top).sum(axis=1)
        # Complete when the tree returned everything within the radius (fewer than kk found, or kk is all sources),
        # or when the k-th kept neighbour is strictly closer than the farthest candidate returned (so no unseen
        # source can tie or beat it).
        d_last = np.where(found, d, -np.inf).max(axis=1)
        kth = np.where(n_keep >= k, d_top[:, -1], np.inf)
        done = (found.sum(axis=1) < kk) | (kk >= n_src) | (kth < d_last * (1 - 1e-12) - 1e-6)
        r, c = np.nonzero(np.isfinite(d_top) & done[:, None])  # row-major; kept neighbours are the first columns
        out_rows.append(todo[r])
        out_c.append(c)
        out_j.append(j_top[r, c])
        out_d.append(d_top[r, c])
        todo = todo[~done]
        kk = min(kk * 4, n_src)
    if not out_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    rows, c = np.concatenate(out_rows), np.concatenate(out_c)
    counts = np.bincount(rows, minlength=nq)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = start[rows] + c  # each row was finished in exactly one round, already sorted by (distance, id)
    j = np.empty(len(rows), np.int64)
    d = np.empty(len(rows), np.float64)
    j[pos] = np.concatenate(out_j)
    d[pos] = np.concatenate(out_d)
    return np.repeat(np.arange(nq), counts), j, d / 1000.0


def neighbours_numpy(
    query_ids: np.ndarray | Sequence[int],
    query_x: np.ndarray | Sequence[float],
    query_y: np.ndarray | Sequence[float],
    src_ids: np.ndarray | Sequence[int],
    src_x: np.ndarray | Sequence[float],
    src_y: np.ndarray | Sequence[float],
    radius_km: float,
    k: int | None = 10,
    exclude_same_site: bool = True,
    same_site_m: float = 1.0,
) -> NeighbourTable:
    """Exact neighbour lists in memory with ``scipy.spatial.cKDTree`` (the reference implementation).

    Args:
        query_ids: Query surveyIds (unique). A source with the same id is the query itself and is excluded.
        query_x: Query x, EPSG:3035 metres.
        query_y: Query y, EPSG:3035 metres.
        src_ids: Source surveyIds (unique).
        src_x: Source x, EPSG:3035 metres.
        src_y: Source y, EPSG:3035 metres.
        radius_km: Keep sources with ``d <= radius_km``.
        k: Number of nearest neighbours to keep; None keeps all within the radius.
        exclude_same_site: Drop sources within ``same_site_m`` metres of the query (repeat visits of its site).
        same_site_m: Same-site distance in metres.

    Returns:
        The :class:`NeighbourTable`, rows in query order.

    Raises:
        ValueError: on bad parameters, mismatched lengths, non-finite coordinates or duplicate ids.
    """
    validate_params(radius_km, k, same_site_m)
    qx, qy = validate_xy("queries", query_x, query_y)
    sx, sy = validate_xy("sources", src_x, src_y)
    qids = np.asarray(query_ids, dtype=np.int64)
    sids = np.asarray(src_ids, dtype=np.int64)
    if qids.shape != qx.shape:
        raise ValueError(f"queries: {len(qids)} ids but {len(qx)} coordinates")
    if sids.shape != sx.shape:
        raise ValueError(f"sources: {len(sids)} ids but {len(sx)} coordinates")
    validate_unique_ids("queries", qids)
    validate_unique_ids("sources", sids)
    if len(sids) == 0:
        return NeighbourTable(qids, np.zeros(len(qids) + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    tree = cKDTree(np.column_stack([sx, sy]))
    indptr, j, d = query_tree(tree, sids, qx, qy, qids, radius_km, k, exclude_same_site, same_site_m)
    return NeighbourTable(qids, indptr, sids[j], d)


def neighbour_recall(truth: NeighbourTable, found: NeighbourTable) -> float:
    """Fraction of the true (query, neighbour) pairs that ``found`` contains (queries matched by id).

    Raises:
        ValueError: if ``found`` lacks queries that ``truth`` has.
    """
    t = pd.DataFrame({"q": np.repeat(truth.query_ids, truth.counts()), "n": truth.nbr_ids})
    f = pd.DataFrame({"q": np.repeat(found.query_ids, found.counts()), "n": found.nbr_ids})
    missing = np.setdiff1d(truth.query_ids, found.query_ids)
    if len(missing):
        raise ValueError(
            f"neighbour_recall: {len(missing)} query id(s) of the reference "
            f"are missing from the result (first {int(missing[0])})"
        )
    if len(t) == 0:
        return 1.0
    hit = t.merge(f.drop_duplicates(), on=["q", "n"], how="inner")
    return float(len(hit) / len(t))


def iter_rows(table: NeighbourTable) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(surveyId, nbr_ids, nbr_dist_km)`` per query."""
    for i, q in enumerate(table.query_ids):
        a, b = table.indptr[i], table.indptr[i + 1]
        yield int(q), table.nbr_ids[a:b], table.nbr_dist_km[a:b]
