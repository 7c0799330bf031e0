"""Neighbour predictors: score each species by its distance-weighted frequency among a survey's spatial neighbours.

For query ``i`` with neighbours ``j`` (the ``k`` nearest, or all within a radius) at distances ``d_ij`` km::

    score_i[s] = sum_j w_ij * [s in labels_j] / sum_j w_ij        (in [0, 1]: the weighted fraction of neighbours
                                                                  holding s, a probability-like score)

Weights (``weighting``):

* ``"inverse"`` (default): ``w = 1 / (d + eps_km)``, ``eps_km = 1`` km, so a neighbour at 0 km counts 1 and one at
  9 km counts 0.1; ``eps_km`` keeps a repeat visit at ~0 km (when allowed) from taking all the weight.
* ``"gaussian"``: ``w = exp(-d^2 / (2 bandwidth_km^2))``, computed relative to the nearest neighbour of the row
  (``exp(-(d^2 - d_min^2) / 2 bw^2)``, same normalised score) so far rows never underflow to an all-zero weight sum.
* ``"uniform"``: ``w = 1`` (plain neighbour frequency).

A query without any neighbour gets the ``fallback`` vector (``"frequency"``: the fraction of training sources holding
each species) and is counted in ``n_fallback_`` and the log; with ``fallback=None`` its row stays empty (all zero)
and it is counted as well. Sources can be PA-train surveys, PO sites (their recorded species), or both (ids unique).

Leak rules: ``predict(..., query_ids=ids)`` drops a source with the query's own id, and ``exclude_same_site=True``
(default) drops every source within ``same_site_m`` (1 m) of the query: a validation survey never sees its own
labels or those of a repeat visit of its site. Everything here is in memory (numpy + ``scipy.spatial.cKDTree``);
the Spark neighbour tables (:mod:`glc.etl.neighbours`) feed :func:`neighbour_scores` at scale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from glc.features.neighbours import query_tree, validate_params, validate_unique_ids, validate_xy
from glc.models.registry import ModelSpec, register
from glc.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from glc.predict.scores import ScoreTable

log = logging.getLogger(__name__)

Weighting = Literal["inverse", "gaussian", "uniform"]
WEIGHTINGS = ("inverse", "gaussian", "uniform")
_UNLIMITED_KM = 1.0e5  # larger than any distance on Earth: "k nearest, no radius"


def _check_weighting(weighting: str, eps_km: float, bandwidth_km: float) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: expected one of {WEIGHTINGS}")
    if not (np.isfinite(eps_km) and eps_km > 0):
        raise ValueError(f"eps_km must be > 0 (it bounds the inverse-distance weight), got {eps_km!r}")
    if not (np.isfinite(bandwidth_km) and bandwidth_km > 0):
        raise ValueError(f"bandwidth_km must be > 0, got {bandwidth_km!r}")


def neighbour_weights(
    indptr: np.ndarray,
    dist_km: np.ndarray,
    weighting: Weighting = "inverse",
    eps_km: float = 1.0,
    bandwidth_km: float = 5.0,
) -> np.ndarray:
    """Per-neighbour weights, normalised to sum to 1 within each row (CSR ``indptr``); see the module docstring."""
    _check_weighting(weighting, eps_km, bandwidth_km)
    d = np.asarray(dist_km, dtype=np.float64)
    if (d < 0).any() or not np.isfinite(d).all():
        raise ValueError("neighbour distances must be finite and >= 0 km")
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(len(counts)), counts)
    if weighting == "inverse":
        w = 1.0 / (d + eps_km)
    elif weighting == "gaussian":
        dmin = np.full(len(counts), np.inf)
        np.minimum.at(dmin, rows, d)
        w = np.exp(-(d * d - dmin[rows] ** 2) / (2.0 * bandwidth_km**2))
    else:
        w = np.ones_like(d)
    total = np.bincount(rows, weights=w, minlength=len(counts))
    return w / total[rows] if len(w) else w


def _label_csr(label_lists: Sequence[np.ndarray], vocab: np.ndarray, what: str) -> sparse.csr_matrix:
    """0/1 CSR (rows x vocab); species outside ``vocab`` are dropped and counted in the log."""
    lists = [np.unique(np.asarray(a, dtype=np.int64)) for a in label_lists]
    lens = np.array([len(a) for a in lists], dtype=np.int64)
    flat = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(lists)), lens)
    pos = np.searchsorted(vocab, flat)
    ok = pos < len(vocab)
    ok[ok] = vocab[pos[ok]] == flat[ok]
    if (~ok).any():
        log.warning(
            "%s: %d label(s) outside the species vocabulary (%d species) ignored", what, int((~ok).sum()), len(vocab)
        )
    return sparse.csr_matrix(
        (np.ones(int(ok.sum()), np.float32), (rows[ok], pos[ok])), shape=(len(lists), len(vocab)), dtype=np.float32
    )


def _scores(
    indptr: np.ndarray,
    src_rows: np.ndarray,
    dist_km: np.ndarray,
    Y: sparse.csr_matrix,
    weighting: Weighting,
    eps_km: float,
    bandwidth_km: float,
    fallback: np.ndarray | None,
) -> tuple[sparse.csr_matrix, int]:
    nq = len(indptr) - 1
    w = neighbour_weights(indptr, dist_km, weighting, eps_km, bandwidth_km)
    W = sparse.csr_matrix((w, src_rows, indptr), shape=(nq, Y.shape[0]))
    S = (W @ Y).tocsr().astype(np.float32)
    empty = np.flatnonzero(np.diff(indptr) == 0)
    if len(empty) and fallback is not None:
        nz = np.flatnonzero(fallback)
        F = sparse.csr_matrix(
            (np.tile(fallback[nz], len(empty)), (np.repeat(empty, len(nz)), np.tile(nz, len(empty)))),
            shape=S.shape,
            dtype=np.float32,
        )
        S = (S + F).tocsr()
    if len(empty):
        what = "got the fallback prior" if fallback is not None else "have no score (fallback=None: all-zero row)"
        log.info("neighbour scores: %d of %d queries have no neighbour and %s", len(empty), nq, what)
    S.sort_indices()
    return S, int(len(empty))


def _fallback_vector(fallback: np.ndarray | Sequence[float] | None, n_species: int) -> np.ndarray | None:
    if fallback is None:
        return None
    f = np.asarray(fallback, dtype=np.float32)
    if f.shape != (n_species,):
        raise ValueError(f"fallback must be a vector over the species vocabulary, shape ({n_species},), got {f.shape}")
    if not np.isfinite(f).all() or (f < 0).any() or (f > 1).any():
        raise ValueError(
            "fallback scores must be finite and within [0, 1] (probability-like, e.g. species frequencies)"
        )
    return f


def neighbour_scores(
    nbr_ids: Sequence[np.ndarray],
    nbr_dist_km: Sequence[np.ndarray],
    labels_by_id: Mapping[int, np.ndarray],
    species_vocab: np.ndarray,
    weighting: Weighting = "inverse",
    fallback: np.ndarray | Sequence[float] | None = None,
    eps_km: float = 1.0,
    bandwidth_km: float = 5.0,
    return_n_fallback: bool = False,
) -> sparse.csr_matrix | tuple[sparse.csr_matrix, int]:
    """Score matrix from neighbour lists (e.g. a neighbour table from :mod:`glc.etl.neighbours`).

    Args:
        nbr_ids: Per query, the neighbours' surveyIds.
        nbr_dist_km: Per query, the neighbours' distances in km (same lengths).
        labels_by_id: Species ids of every neighbour that can appear (training PA surveys and/or PO sites).
        species_vocab: Sorted species ids: the score matrix's columns.
        weighting: ``"inverse"``, ``"gaussian"`` or ``"uniform"`` (module docstring).
        fallback: Scores (over ``species_vocab``) for queries without neighbours, or None.
        eps_km: Inverse-distance offset in km.
        bandwidth_km: Gaussian kernel bandwidth in km.
        return_n_fallback: Also return the number of queries without neighbours.

    Returns:
        CSR float32 ``(n_queries, len(species_vocab))`` with scores in [0, 1] (and the count, if asked).

    Raises:
        KeyError: if a neighbour id has no entry in ``labels_by_id`` (e.g. a test survey used as a source).
        ValueError: on mismatched lengths, an unsorted vocabulary or a bad fallback.
    """
    vocab = np.asarray(species_vocab, dtype=np.int64)
    if len(vocab) == 0 or (np.diff(vocab) <= 0).any():
        raise ValueError("species_vocab must be a non-empty, strictly increasing array of species ids")
    if len(nbr_ids) != len(nbr_dist_km):
        raise ValueError(f"{len(nbr_ids)} neighbour id lists but {len(nbr_dist_km)} distance lists")
    lens = np.array([len(a) for a in nbr_ids], dtype=np.int64)
    bad = np.flatnonzero(lens != np.array([len(a) for a in nbr_dist_km], dtype=np.int64))
    if len(bad):
        raise ValueError(f"query {int(bad[0])}: {lens[bad[0]]} neighbour ids but {len(nbr_dist_km[bad[0]])} distances")
    flat = np.concatenate([np.asarray(a, np.int64) for a in nbr_ids]) if len(lens) else np.zeros(0, np.int64)
    dist = np.concatenate([np.asarray(a, np.float64) for a in nbr_dist_km]) if len(lens) else np.zeros(0, np.float64)
    uniq, inv = np.unique(flat, return_inverse=True)
    missing = [int(u) for u in uniq if int(u) not in labels_by_id]
    if missing:
        raise KeyError(
            f"{len(missing)} neighbour surveyId(s) have no labels (first: {missing[0]}); sources must be labelled "
            "training sites present in labels_by_id (a test survey or an unknown PO site among the sources?)"
        )
    Y = _label_csr([labels_by_id[int(u)] for u in uniq], vocab, "neighbour labels")
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    S, n_fb = _scores(
        indptr, inv.astype(np.int64), dist, Y, weighting, eps_km, bandwidth_km, _fallback_vector(fallback, len(vocab))
    )
    return (S, n_fb) if return_n_fallback else S


class NeighbourPredictor:
    """In-memory neighbour predictor (use :class:`KNNPredictor` or :class:`RadiusPredictor`).

    Attributes:
        species_: Species vocabulary (columns of the score matrices), set by :meth:`fit`.
        n_fallback_: Queries without a neighbour in the last :meth:`predict` call.
    """

    def __init__(
        self,
        k: int | None,
        radius_km: float | None,
        weighting: Weighting = "inverse",
        fallback: Literal["frequency"] | np.ndarray | None = "frequency",
        eps_km: float = 1.0,
        bandwidth_km: float = 5.0,
        same_site_m: float = 1.0,
    ) -> None:
        _check_weighting(weighting, eps_km, bandwidth_km)
        validate_params(_UNLIMITED_KM if radius_km is None else radius_km, k, same_site_m)
        if k is None and radius_km is None:
            raise ValueError("give k (nearest neighbours), radius_km (all within a radius), or both")
        if isinstance(fallback, str) and fallback != "frequency":
            raise ValueError(f"fallback={fallback!r}: expected 'frequency', a score vector, or None")
        self.k = k
        self.radius_km = radius_km
        self.weighting = weighting
        self.fallback = fallback
        self.eps_km = eps_km
        self.bandwidth_km = bandwidth_km
        self.same_site_m = same_site_m
        self.species_: np.ndarray | None = None
        self.n_fallback_ = 0
        self._tree: cKDTree | None = None

    def fit(
        self,
        train_ids: np.ndarray | Sequence[int],
        x: np.ndarray | Sequence[float],
        y: np.ndarray | Sequence[float],
        labels: Sequence[np.ndarray],
        species_vocab: np.ndarray | None = None,
    ) -> NeighbourPredictor:
        """Index the labelled sources.

        Args:
            train_ids: Source surveyIds (unique).
            x: EPSG:3035 x in metres.
            y: EPSG:3035 y in metres.
            labels: Species ids of each source.
            species_vocab: Score columns (default: the sorted species present in ``labels``).

        Returns:
            self.

        Raises:
            ValueError: on mismatched lengths, duplicate ids, non-finite coordinates or no sources.
        """
        sx, sy = validate_xy("fit sources", x, y)
        ids = np.asarray(train_ids, dtype=np.int64)
        if not (len(ids) == len(sx) == len(labels)):
            raise ValueError(f"fit: {len(ids)} ids, {len(sx)} coordinates and {len(labels)} label lists must be equal")
        if len(ids) == 0:
            raise ValueError("fit: no source sites given")
        validate_unique_ids("fit sources", ids)
        vocab = (
            np.unique(np.concatenate([np.asarray(a, np.int64) for a in labels]))
            if species_vocab is None
            else np.asarray(species_vocab, np.int64)
        )
        if len(vocab) == 0 or (np.diff(vocab) <= 0).any():
            raise ValueError("species_vocab must be a non-empty, strictly increasing array of species ids")
        self.species_ = vocab
        self._ids = ids
        self._Y = _label_csr(labels, vocab, "fit labels")
        self._tree = cKDTree(np.column_stack([sx, sy]))
        if isinstance(self.fallback, str):
            self._fallback = np.asarray(self._Y.mean(axis=0)).ravel().astype(np.float32)
        else:
            self._fallback = _fallback_vector(self.fallback, len(vocab))
        return self

    def predict(
        self,
        x: np.ndarray | Sequence[float],
        y: np.ndarray | Sequence[float],
        query_ids: np.ndarray | Sequence[int] | None = None,
        exclude_same_site: bool = True,
    ) -> sparse.csr_matrix:
        """Score matrix (CSR float32, ``(n_queries, len(species_))``) for query locations.

        Args:
            x: Query EPSG:3035 x in metres.
            y: Query EPSG:3035 y in metres.
            query_ids: Query surveyIds; a source with the same id (the query itself) is never used.
            exclude_same_site: Drop sources within ``same_site_m`` metres (repeat visits of the query's site).

        Raises:
            RuntimeError: if called before :meth:`fit`.
        """
        return self.scores(*self.neighbours(x, y, query_ids, exclude_same_site))

    def neighbours(
        self,
        x: np.ndarray | Sequence[float],
        y: np.ndarray | Sequence[float],
        query_ids: np.ndarray | Sequence[int] | None = None,
        exclude_same_site: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The neighbour lists behind :meth:`predict` (same arguments): ``(indptr, src_index, dist_km)``, CSR rows per
        query sorted by distance (so ``dist_km[indptr[i]]`` is query ``i``'s nearest source, where it has one)."""
        if self._tree is None:
            raise RuntimeError(
                f"{type(self).__name__}.neighbours (or .predict) called before fit: call fit(ids, x, y, labels) first"
            )
        qx, qy = validate_xy("queries", x, y)
        qids = None if query_ids is None else np.asarray(query_ids, dtype=np.int64)
        if qids is not None and qids.shape != qx.shape:
            raise ValueError(
                f"{type(self).__name__}.neighbours (or .predict): {len(qids)} query ids but {len(qx)} coordinates; "
                "pass one surveyId per query location, or query_ids=None"
            )
        radius = _UNLIMITED_KM if self.radius_km is None else self.radius_km
        return query_tree(self._tree, self._ids, qx, qy, qids, radius, self.k, exclude_same_site, self.same_site_m)

    def scores(self, indptr: np.ndarray, src_index: np.ndarray, dist_km: np.ndarray) -> sparse.csr_matrix:
        """The score matrix of neighbour lists from :meth:`neighbours` (sets :attr:`n_fallback_`)."""
        if self._tree is None:
            raise RuntimeError(f"{type(self).__name__}.scores called before fit: call fit(ids, x, y, labels) first")
        S, self.n_fallback_ = _scores(
            indptr, src_index, dist_km, self._Y, self.weighting, self.eps_km, self.bandwidth_km, self._fallback
        )
        return S


class KNNPredictor(NeighbourPredictor):
    """The ``k`` nearest sources (optionally only those within ``max_km``), distance-weighted."""

    def __init__(
        self,
        k: int = 10,
        max_km: float | None = None,
        weighting: Weighting = "inverse",
        fallback: Literal["frequency"] | np.ndarray | None = "frequency",
        eps_km: float = 1.0,
        bandwidth_km: float = 5.0,
        same_site_m: float = 1.0,
    ) -> None:
        super().__init__(k, max_km, weighting, fallback, eps_km, bandwidth_km, same_site_m)


class RadiusPredictor(NeighbourPredictor):
    """All sources within ``radius_km`` (e.g. 5, 10 or 50 km), distance-weighted."""

    def __init__(
        self,
        radius_km: float = 10.0,
        weighting: Weighting = "inverse",
        fallback: Literal["frequency"] | np.ndarray | None = "frequency",
        eps_km: float = 1.0,
        bandwidth_km: float = 5.0,
        same_site_m: float = 1.0,
    ) -> None:
        super().__init__(None, radius_km, weighting, fallback, eps_km, bandwidth_km, same_site_m)


# ------------------------------------------------------------------------------------------------ registry
def fit_predict_neighbours(train: pd.DataFrame, query: pd.DataFrame, model_cfg: Mapping[str, Any]) -> ScoreTable:
    """kNN (``kind = "knn"``, ``k``) or radius (``kind = "radius"``, ``radius_km``) scores of ``query`` from ``train``
    (surveyId, x, y, speciesIds): the top ``top_n`` table."""
    from glc.predict.scores import top_n

    if model_cfg["kind"] == "knn":
        m: NeighbourPredictor = KNNPredictor(k=int(model_cfg["k"]))
    else:
        m = RadiusPredictor(radius_km=float(model_cfg["radius_km"]))
    m.fit(train["surveyId"].to_numpy(), train["x"].to_numpy(), train["y"].to_numpy(), list(train["speciesIds"]))
    S = m.predict(query["x"].to_numpy(), query["y"].to_numpy(), query_ids=query["surveyId"].to_numpy())
    return top_n(query["surveyId"].to_numpy(), S.toarray(), m.species_, int(model_cfg["top_n"]))


register(
    ModelSpec(
        "knn",
        "distance-weighted species frequency of the k nearest training surveys (EPSG:3035), no self / repeat visits",
        runner="memory",
        params={"k": Param(10, "number of nearest training surveys", min=1)},
        fit_predict=fit_predict_neighbours,
        benchmarks={"knn10": {"k": 10}},
    )
)
register(
    ModelSpec(
        "radius",
        "distance-weighted species frequency of every training survey within radius_km",
        runner="memory",
        params={"radius_km": Param(10.0, "neighbourhood radius (km)", min=0.0, min_exclusive=True)},
        fit_predict=fit_predict_neighbours,
        benchmarks={
            "radius5km": {"radius_km": 5.0},
            "radius10km": {"radius_km": 10.0},
            "radius50km": {"radius_km": 50.0},
        },
    )
)
