"""The shared core of every decoder: ranking columns and scoring top-k prefixes fast.

Every decoder in :mod:`glc.decoding` returns, per survey, a **prefix of that survey's ranking**: the columns sorted by
decreasing score, ties broken by the lower column index (so results are deterministic). Top-k, a global threshold,
threshold-top-K (both readings), expected-F1 and the count model only differ in *how long* the prefix is. Hence
fitting any decoder reduces to evaluating the F1 of prefix lengths ``k_i`` per survey, and :class:`PrefixF1` does that
for whole parameter grids at once: it ranks the true columns once, and ``TP_i(k) = #{true columns of i with rank < k}``
becomes a table look-up (or a binary search for long prefixes). The per-survey F1 of a prefix of length ``k`` is
``2 TP_i(k) / (k + |Y_i|)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["PrefixF1", "check_scores", "prefix_sets", "ranked_topk", "truth_csr"]

# Dense TP table columns (k = 0..TABLE_CAP); longer prefixes fall back to binary search.
TABLE_CAP = 512


def check_scores(P: Any, name: str = "P") -> np.ndarray:
    """Validate a (surveys x species) score matrix: 2-D, numeric, finite. Returns it as a float ndarray (no copy if
    possible).

    Raises:
        ValueError: wrong rank, a sparse matrix, or a NaN/inf entry (named by row and column).
    """
    import scipy.sparse as sp

    if sp.issparse(P):
        raise ValueError(
            f"{name} is a scipy.sparse matrix; decoders need a dense (surveys x species) score array (P.toarray())"
        )
    a = np.asarray(P)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (surveys x species) score array, got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name}[{i}, {j}] = {a[i, j]}: scores must be finite; check the model output (NaN/inf)")
    return a


def _desc_order(vals: np.ndarray) -> np.ndarray:
    """Per-row permutation sorting ``vals`` by decreasing value, ties by increasing position (a stable sort of -vals).

    float32 rows use one fast ``np.sort`` of uint64 keys (order-preserving bits of the value, position in the low 32
    bits); other dtypes use an unstable argsort and redo only the rows that contain ties with a stable sort.
    """
    n, c = vals.shape
    if c == 0:
        return np.empty((n, 0), np.int64)
    if vals.dtype != np.float32:
        v32 = vals.astype(np.float32)
        if np.array_equal(v32, vals):  # lossless (e.g. float32-born probabilities, zeros, small ints): fast path
            return _desc_order(v32)
    if vals.dtype == np.float32:
        b = (vals + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into +0.0 so they tie
        b ^= (np.uint32(0) - (b >> np.uint32(31))) | np.uint32(0x80000000)  # now monotone increasing in the value
        key = (~b).astype(np.uint64)  # decreasing value first
        key <<= np.uint64(32)
        key |= np.arange(c, dtype=np.uint64)[None, :]  # then increasing position
        key.sort(axis=1)
        return (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
    order = np.argsort(-vals, axis=1)
    sv = np.take_along_axis(vals, order, axis=1)
    tied = np.flatnonzero((sv[:, 1:] == sv[:, :-1]).any(axis=1))
    if tied.size:
        order[tied] = np.argsort(-vals[tied], axis=1, kind="stable")
    return order.astype(np.int64)


def ranked_topk(P: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of every row, by decreasing score with ties broken by the lower column index.

    Equal to the first ``k`` columns of a stable sort of ``-P``, computed faster: one value sort per row gives the
    k-th largest value, a mask selects the columns above it (boundary ties resolved towards lower column indices),
    and only those ``k`` columns are ordered.

    Args:
        P: (n, C) finite scores (validate with :func:`check_scores`).
        k: number of columns to return (clipped to C).

    Returns:
        ``(cols, vals)``: int64 and float arrays of shape ``(n, min(k, C))``.
    """
    n, c = P.shape
    k = max(0, min(int(k), c))
    if k == 0 or n == 0:
        return np.empty((n, k), np.int64), np.empty((n, k), P.dtype)
    if k == c:
        cols = _desc_order(P)
        return cols, np.take_along_axis(P, cols, axis=1)
    kth = np.sort(P, axis=1)[:, c - k]  # the k-th largest value of each row
    mask = kth[:, None] < P
    need = k - mask.sum(axis=1)  # columns equal to kth still to take (>= 1)
    eq = kth[:, None] == P
    over = np.flatnonzero(eq.sum(axis=1) > need)  # boundary ties: keep the lowest column indices
    mask |= eq
    if over.size:
        e = eq[over]
        mask[over] = (P[over] > kth[over, None]) | (e & (np.cumsum(e, axis=1) <= need[over, None]))
    cols = np.nonzero(mask)[1].reshape(n, k)  # row-major: increasing column index within each row
    vals = np.take_along_axis(P, cols, axis=1)
    order = _desc_order(vals)
    return np.take_along_axis(cols, order, axis=1).astype(np.int64), np.take_along_axis(vals, order, axis=1)


def prefix_sets(cols: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Row ``i``'s first ``lengths[i]`` ranked columns, as a list of int64 arrays (rank order)."""
    return [np.ascontiguousarray(cols[i, : int(m)], dtype=np.int64) for i, m in enumerate(lengths)]


def truth_csr(Y: Any, n: int, c: int, name: str = "Y") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth as CSR ``(indptr, indices, n_true)`` over ``n`` rows and ``c`` columns.

    ``Y`` is either a (n x c) 0/1 or boolean matrix (dense or scipy.sparse) or a sequence of ``n`` iterables of
    **column indices**. In the sequence form an index outside ``0..c-1`` (e.g. a species that is not in the score
    matrix's vocabulary, or ``-1``) is kept as an *unreachable* positive: it counts in ``|Y_i|`` (a false negative for
    every decoder) but never in ``indices``. Duplicates count once.

    Returns:
        ``indptr`` (n+1,), ``indices`` (valid, sorted within each row), ``n_true`` (n,) = valid + unreachable counts.
    """
    import scipy.sparse as sp

    if sp.issparse(Y) or (isinstance(Y, np.ndarray) and Y.ndim == 2):
        if Y.shape != (n, c):
            raise ValueError(
                f"{name} has shape {Y.shape} but the scores are ({n}, {c}); "
                "the truth matrix must match row for row and column for column"
            )
        m = sp.csr_matrix(Y)
        if m.data.size and not np.all((m.data == 0) | (m.data == 1)):
            raise ValueError(f"{name} must be a 0/1 indicator matrix; found other values")
        m.eliminate_zeros()
        m.sort_indices()
        return m.indptr.astype(np.int64), m.indices.astype(np.int64), np.diff(m.indptr).astype(np.int64)
    if len(Y) != n:
        raise ValueError(
            f"{name} has {len(Y)} surveys but the scores have {n} rows; pass one truth list per score row, in order"
        )
    indptr = np.zeros(n + 1, np.int64)
    parts: list[np.ndarray] = []
    n_true = np.zeros(n, np.int64)
    for i, item in enumerate(Y):
        if item is None or isinstance(item, (str, bytes)):
            raise ValueError(f"{name}[{i}] = {item!r}: expected an iterable of integer column indices")
        a = np.asarray(item if isinstance(item, (np.ndarray, list, tuple)) else list(item)).reshape(-1)
        if a.size and a.dtype.kind not in "iu" and (a.dtype.kind != "f" or not np.all(a == np.round(a))):
            raise ValueError(f"{name}[{i}]: column indices must be integers, got {a[:5].tolist()}")
        u = np.unique(a.astype(np.int64))
        n_true[i] = u.size
        valid = u[(u >= 0) & (u < c)]
        parts.append(valid)
        indptr[i + 1] = indptr[i] + valid.size
    indices = np.concatenate(parts) if parts else np.empty(0, np.int64)
    return indptr, indices.astype(np.int64), n_true


class PrefixF1:
    """F1 of ranked prefixes of every survey, for whole grids of prefix lengths at once.

    Build once from validation scores and truth (costs one sort of every row); then :meth:`per_survey` and
    :meth:`mean` take an integer array of prefix lengths of shape ``(..., n)`` and return the F1 per survey or the
    sample-F1 per grid point. :meth:`count_at_least` gives ``#{j: P_ij >= theta}`` per row for threshold decoders.

    Args:
        P: (n, C) finite scores.
        Y: truth, see :func:`truth_csr` (out-of-vocabulary indices count as unreachable positives).
        zero_division: F1 of a survey with an empty truth and a length-0 prefix.

    Attributes:
        n_true: (n,) number of true species per survey (incl. unreachable ones).
        ranks: CSR (indptr, values) of the ranks of each survey's true columns, sorted.
    """

    def __init__(self, P: Any, Y: Any, zero_division: float = 0.0) -> None:
        P = check_scores(P)
        self.n, self.c = P.shape
        if self.n == 0:
            raise ValueError("PrefixF1 needs at least one survey; the score matrix has 0 rows")
        self.zero_division = float(zero_division)
        indptr, indices, self.n_true = truth_csr(Y, self.n, self.c)
        self._asc = np.sort(P, axis=1)  # ascending values per row, for threshold counts
        rows = np.repeat(np.arange(self.n), np.diff(indptr))
        v = P[rows, indices]
        # rank = #(greater) + #(equal with lower column index), by binary search on the sorted row
        ranks = np.empty(indices.size, np.int64)
        for i in range(self.n):
            a, b = indptr[i], indptr[i + 1]
            if a == b:
                continue
            asc, vi = self._asc[i], v[a:b]
            lo = np.searchsorted(asc, vi, side="left")
            hi = np.searchsorted(asc, vi, side="right")
            r = self.c - hi
            for t in np.flatnonzero(hi - lo > 1):  # ties: count equal values in lower columns
                r[t] += int(np.count_nonzero(P[i, : indices[a + t]] == vi[t]))
            ranks[a:b] = np.sort(r)
        self._indptr = indptr
        self._ranks = ranks
        self._keys = rows * (self.c + 1) + ranks  # globally sorted (row-major, ranks sorted within rows)
        cap = min(self.c, TABLE_CAP)
        tab = np.zeros((self.n, cap + 1), np.int32)
        ok = ranks < cap
        np.add.at(tab, (rows[ok], ranks[ok] + 1), 1)
        self._table = np.cumsum(tab, axis=1, dtype=np.int32)  # _table[i, k] = TP_i(k) for k <= cap
        self._cap = cap

    def tp(self, k: np.ndarray) -> np.ndarray:
        """True positives of the length-``k`` prefixes; ``k`` has shape ``(..., n)``, clipped to [0, C]."""
        k = np.clip(np.asarray(k, dtype=np.int64), 0, self.c)
        if k.shape[-1] != self.n:
            raise ValueError(f"prefix lengths have last dimension {k.shape[-1]} but there are {self.n} surveys")
        rows = np.broadcast_to(np.arange(self.n), k.shape)
        out = np.empty(k.shape, np.int64)
        small = k <= self._cap
        out[small] = self._table[rows[small], k[small]]
        if not small.all():
            r, kk = rows[~small], k[~small]
            base = r * (self.c + 1)
            out[~small] = np.searchsorted(self._keys, base + kk, side="left") - np.searchsorted(
                self._keys, base, side="left"
            )
        return out

    def per_survey(self, k: np.ndarray) -> np.ndarray:
        """Per-survey F1 ``2 TP(k) / (k + |Y|)`` of prefix lengths ``k`` (shape ``(..., n)``)."""
        k = np.clip(np.asarray(k, dtype=np.int64), 0, self.c)
        tp = self.tp(k)
        den = k + self.n_true
        return np.where(den > 0, 2.0 * tp / np.maximum(den, 1), self.zero_division)

    def mean(self, k: np.ndarray) -> np.ndarray | float:
        """Sample-F1 of prefix lengths ``k`` (shape ``(..., n)``): the mean over the last axis."""
        m = self.per_survey(k).mean(axis=-1)
        return float(m) if np.ndim(m) == 0 else m

    def count_at_least(self, thetas: Iterable[float] | float) -> np.ndarray:
        """``#{j: P_ij >= theta}`` for every theta and row: shape ``(len(thetas), n)`` (or ``(n,)`` for a scalar)."""
        th = np.asarray(thetas, dtype=np.float64)
        flat = th.reshape(-1)
        out = np.empty((flat.size, self.n), np.int64)
        for i in range(self.n):
            out[:, i] = self.c - np.searchsorted(self._asc[i], flat, side="left")
        return out.reshape(th.shape + (self.n,))
