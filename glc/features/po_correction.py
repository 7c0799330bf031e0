"""PO-neighbour correction lists (after Tighnari, GLC24 3rd place): species strongly attested around a test survey.

For each query (test) survey::

    PA list = species held by more than L of its N nearest training surveys     (defaults N=5,  L=4)
    PO list = species recorded at more than M of its A nearest PO sites          (defaults A=10, M=8)
    correction list = PA list UNION PO list (as Tighnari; a species needs strong support from one source only)

"More than" is strict: with the defaults a species must be in all 5 nearest training surveys, or at 9 or 10 of the
10 nearest PO sites. A neighbour counts once per species however many records it holds.

PO unit (``po_unit``): ``"site"`` (default) groups PO records by ``surveyId`` (a PO survey = the records at one
place and date), so the A nearest PO *sites* are counted; ``"record"`` treats every PO record as its own point (the
A nearest *records*; records at one place tie and are ordered by their position in the input).

Leak rules: a training survey with the query's own id is never a neighbour, and with ``exclude_same_site=True``
(default) neither is any training survey or PO site within ``same_site_m`` (1 m) of the query, so validating the
correction on held-out training surveys does not see their own site. For the real PA-test surveys a repeat visit
in the training set is legitimate information; ``exclude_same_site=False`` uses it. PO ids live in their own id
space, so PO neighbours are never dropped by id. ``max_km`` optionally ignores neighbours farther than that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from glc.features.neighbours import query_tree, validate_params, validate_unique_ids, validate_xy

log = logging.getLogger(__name__)

_UNLIMITED_KM = 1.0e5


def _presence_matrix(rows: np.ndarray, species: np.ndarray, n_rows: int, vocab: np.ndarray) -> sparse.csr_matrix:
    """0/1 CSR (n_rows x vocab) from (row, species) pairs; a species counts once per row."""
    cols = np.searchsorted(vocab, species)
    key = np.unique(rows.astype(np.int64) * len(vocab) + cols)
    return sparse.csr_matrix(
        (np.ones(len(key), np.int32), (key // len(vocab), key % len(vocab))), shape=(n_rows, len(vocab))
    )


def _strong_species(
    tree: cKDTree,
    src_ids: np.ndarray,
    Y: sparse.csr_matrix,
    qx: np.ndarray,
    qy: np.ndarray,
    qids: np.ndarray | None,
    n: int,
    min_count: int,
    max_km: float,
    exclude_same_site: bool,
    same_site_m: float,
) -> sparse.csr_matrix:
    """0/1 (queries x vocab): species held by more than ``min_count`` of each query's ``n`` nearest sources."""
    indptr, j, _ = query_tree(tree, src_ids, qx, qy, qids, max_km, n, exclude_same_site, same_site_m)
    A = sparse.csr_matrix((np.ones(len(j), np.int32), j, indptr), shape=(len(qx), Y.shape[0]))
    C = (A @ Y).tocsr()
    C.data = (C.data > min_count).astype(np.int8)
    C.eliminate_zeros()
    return C


def po_correction_lists(
    query_ids: np.ndarray | Sequence[int],
    query_x: np.ndarray | Sequence[float],
    query_y: np.ndarray | Sequence[float],
    train_ids: np.ndarray | Sequence[int],
    train_x: np.ndarray | Sequence[float],
    train_y: np.ndarray | Sequence[float],
    train_labels: Sequence[np.ndarray],
    po_ids: np.ndarray | Sequence[int],
    po_x: np.ndarray | Sequence[float],
    po_y: np.ndarray | Sequence[float],
    po_species: np.ndarray | Sequence[int],
    n_train: int = 5,
    min_train_count: int = 4,
    n_po: int = 10,
    min_po_count: int = 8,
    po_unit: Literal["site", "record"] = "site",
    exclude_same_site: bool = True,
    same_site_m: float = 1.0,
    max_km: float | None = None,
) -> dict[int, np.ndarray]:
    """Correction species lists for each query survey (see the module docstring).

    Args:
        query_ids: Query surveyIds (unique), e.g. PA-test.
        query_x: Query EPSG:3035 x in metres.
        query_y: Query y in metres.
        train_ids: Training PA surveyIds (unique).
        train_x: Training x in metres.
        train_y: Training y in metres.
        train_labels: Species ids of each training survey.
        po_ids: PO ``surveyId`` of each PO record (one row per record).
        po_x: PO record x in metres.
        po_y: PO record y in metres.
        po_species: PO record species id.
        n_train: N, nearest training surveys considered.
        min_train_count: L, a species must be held by more than L of them.
        n_po: A, nearest PO sites (or records) considered.
        min_po_count: M, a species must be recorded at more than M of them.
        po_unit: ``"site"`` (PO records grouped by surveyId) or ``"record"``.
        exclude_same_site: Ignore neighbours within ``same_site_m`` metres of the query.
        same_site_m: Same-site distance in metres.
        max_km: Ignore neighbours farther than this (None: no limit).

    Returns:
        ``{surveyId: sorted species ids}`` for every query (empty array when nothing qualifies).

    Raises:
        ValueError: on bad parameters, mismatched lengths, non-finite coordinates, duplicate ids, a PO surveyId at
            two places (``po_unit="site"``), or a thresholds that no neighbour count can exceed.
    """
    for name, nn, m in (
        ("n_train/min_train_count", n_train, min_train_count),
        ("n_po/min_po_count", n_po, min_po_count),
    ):
        if int(nn) != nn or nn < 1 or int(m) != m or m < 0:
            raise ValueError(f"{name}={nn}/{m}: expected a positive integer count and a non-negative integer threshold")
        if m >= nn:
            raise ValueError(
                f"{name}={nn}/{m}: the threshold must be below the neighbour count, or no species can ever qualify"
            )
    if po_unit not in ("site", "record"):
        raise ValueError(f"po_unit={po_unit!r}: expected 'site' (PO records grouped by surveyId) or 'record'")
    radius = _UNLIMITED_KM if max_km is None else max_km
    validate_params(radius, 1, same_site_m)
    qx, qy = validate_xy("queries", query_x, query_y)
    tx, ty = validate_xy("training surveys", train_x, train_y)
    px, py = validate_xy("PO records", po_x, po_y)
    qids = np.asarray(query_ids, dtype=np.int64)
    tids = np.asarray(train_ids, dtype=np.int64)
    pids = np.asarray(po_ids, dtype=np.int64)
    psp = np.asarray(po_species, dtype=np.int64)
    if (
        len(qids) != len(qx)
        or len(tids) != len(tx)
        or len(train_labels) != len(tx)
        or len(pids) != len(px)
        or len(psp) != len(px)
    ):
        raise ValueError(
            f"lengths differ: {len(qids)} query ids / {len(qx)} query coords; {len(tids)} train ids / {len(tx)} coords "
            f"/ {len(train_labels)} label lists; {len(pids)} PO ids / {len(px)} coords / {len(psp)} species"
        )
    validate_unique_ids("queries", qids)
    validate_unique_ids("training surveys", tids)

    t_lens = np.array([len(a) for a in train_labels], dtype=np.int64)
    t_species = (
        np.concatenate([np.asarray(a, np.int64) for a in train_labels]) if len(train_labels) else np.zeros(0, np.int64)
    )
    t_rows = np.repeat(np.arange(len(tx)), t_lens)
    if po_unit == "site":
        order = np.argsort(pids, kind="stable")
        sp_ids = pids[order]
        first = np.flatnonzero(np.r_[True, sp_ids[1:] != sp_ids[:-1]]) if len(sp_ids) else np.zeros(0, np.int64)
        sx_, sy_ = px[order], py[order]
        moved = np.zeros(len(first), bool)
        if len(first):
            for c in (sx_, sy_):
                moved |= np.minimum.reduceat(c, first) != np.maximum.reduceat(c, first)
        if moved.any():
            raise ValueError(
                f"PO records: {int(moved.sum())} surveyId(s) have records at different coordinates (first: "
                f"{int(sp_ids[first[moved][0]])}); use po_unit='record' or fix the PO table"
            )
        site_ids, site_x, site_y = sp_ids[first], sx_[first], sy_[first]
        site_rows = np.cumsum(np.r_[True, sp_ids[1:] != sp_ids[:-1]]) - 1 if len(sp_ids) else np.zeros(0, np.int64)
        site_species = psp[order]
    else:
        site_ids = np.arange(len(pids), dtype=np.int64)  # records tie at one place: ordered by input position
        site_x, site_y = px, py
        site_rows, site_species = site_ids, psp

    vocab = np.unique(np.concatenate([t_species, psp]))
    out = sparse.csr_matrix((len(qx), len(vocab)), dtype=np.int8)
    if len(tx):
        C = _strong_species(
            cKDTree(np.column_stack([tx, ty])),
            tids,
            _presence_matrix(t_rows, t_species, len(tx), vocab),
            qx,
            qy,
            qids,
            int(n_train),
            int(min_train_count),
            radius,
            exclude_same_site,
            same_site_m,
        )
        out = out + C
    if len(site_x):
        C = _strong_species(
            cKDTree(np.column_stack([site_x, site_y])),
            site_ids,
            _presence_matrix(site_rows, site_species, len(site_x), vocab),
            qx,
            qy,
            None,
            int(n_po),
            int(min_po_count),
            radius,
            exclude_same_site,
            same_site_m,
        )
        out = out + C
    out = out.tocsr()
    out.sort_indices()
    lists = {int(q): vocab[out.indices[out.indptr[i] : out.indptr[i + 1]]] for i, q in enumerate(qids)}
    n_with = int(sum(len(v) > 0 for v in lists.values()))
    log.info(
        "PO correction: %d of %d surveys get a non-empty list (mean %.2f species)",
        n_with,
        len(qids),
        out.nnz / max(len(qids), 1),
    )
    return lists
