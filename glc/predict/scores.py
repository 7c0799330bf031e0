"""Score tables: the top-N species of each survey with a probability-like score.

Every model writes the same artifact (parquet ``surveyId long, species list<long>, prob list<float>``, species sorted
by decreasing score, ties by species id), so every decoder and report works with every model. Keeping the top-N
(default 256) instead of all 11,255 species keeps the artifact small; decoders never choose sets that large.
The sum of the dropped tail is kept in ``prob_rest`` so expected-F1 decoders still see the full expected count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glc.io import atomic_dir, is_complete


@dataclass
class ScoreTable:
    """Top-N scores of ``n`` surveys: ``species[i, j]`` is the j-th best species of survey i with ``prob[i, j]``."""

    survey_ids: np.ndarray  # (n,) int64
    species: np.ndarray  # (n, N) int64
    prob: np.ndarray  # (n, N) float32
    prob_rest: np.ndarray  # (n,) float32: sum of the scores not kept

    def __post_init__(self) -> None:
        n = len(self.survey_ids)
        if self.species.shape != self.prob.shape or self.species.shape[0] != n or self.prob_rest.shape != (n,):
            raise ValueError(
                f"inconsistent score table shapes: ids {self.survey_ids.shape}, species "
                f"{self.species.shape}, prob {self.prob.shape}, rest {self.prob_rest.shape}"
            )
        if not np.isfinite(self.prob).all():
            raise ValueError("score table contains NaN or inf probabilities; the model output must be finite")

    def __len__(self) -> int:
        return len(self.survey_ids)

    def sets_to_ids(self, col_sets: list[np.ndarray]) -> dict[int, np.ndarray]:
        """Map per-row column-index sets (decoder output) to ``{surveyId: species ids}``."""
        return {
            int(s): self.species[i, np.asarray(c, dtype=np.int64)]
            for i, (s, c) in enumerate(zip(self.survey_ids, col_sets))
        }

    def truth_columns(self, truth: dict[int, np.ndarray] | Any) -> list[np.ndarray]:
        """Each row's true species (``truth[surveyId]``, duplicates dropped, in increasing species id) as column indices
        into its row; the species outside the row's top-N get indices N, N+1, ... (outside the matrix: false negatives
        no decoder can recover; distinct, because :func:`glc.decoding.prefix.truth_csr` counts a repeated index once,
        so one shared index N would count a survey's many misses as one and overstate every F1 a decoder fit reports).
        A row's species are distinct, as every model writes them (:func:`top_n`).

        One sorted search over all rows instead of a dictionary per row (every decoder fit and every blend-weight grid
        point calls this on every validation survey): each row's species are sorted with their columns, and
        ``row * span + species`` keys of the truth are looked up in the table's keys (``span``: the id range; ids
        too far apart for int64 keys are first made dense codes).
        """
        n, n_cols = self.species.shape
        if n == 0:
            return []
        lists = [np.asarray(truth[int(sid)], dtype=np.int64).ravel() for sid in self.survey_ids]
        if n_cols == 0:  # nothing to find: every true species is a miss
            return [np.arange(np.unique(t).size, dtype=np.int64) for t in lists]
        sizes = np.fromiter((len(t) for t in lists), np.int64, n)
        table, t_ids = np.asarray(self.species, dtype=np.int64), np.concatenate(lists)
        both = np.concatenate([table.ravel(), t_ids])
        lo, hi = int(both.min()), int(both.max())
        if n * (hi - lo + 1) >= 2**62:
            codes, inv = np.unique(both, return_inverse=True)
            lo, hi, table, t_ids = 0, len(codes) - 1, inv[: table.size].reshape(table.shape), inv[table.size :]
        span = np.int64(hi - lo + 1)
        order = np.argsort(table, axis=1, kind="stable")
        keys = (np.arange(n, dtype=np.int64)[:, None] * span + (np.take_along_axis(table, order, axis=1) - lo)).ravel()
        t_keys = np.unique(np.repeat(np.arange(n, dtype=np.int64), sizes) * span + (t_ids - lo))
        at = np.minimum(np.searchsorted(keys, t_keys), keys.size - 1)
        miss = keys[at] != t_keys
        counts = np.bincount(t_keys // span, minlength=n)  # t_keys are sorted: each row's keys are contiguous
        ends = np.cumsum(counts)
        before = np.concatenate([[0], np.cumsum(miss)])  # misses before each key
        k = before[1:] - np.repeat(before[ends - counts], counts)  # the k-th miss of its row counts k + 1
        cols = np.where(miss, n_cols + k - 1, order.ravel()[at])
        return np.split(cols.astype(np.int64), ends[:-1])

    def subset(self, mask: np.ndarray) -> ScoreTable:
        """Rows where ``mask`` is true."""
        return ScoreTable(self.survey_ids[mask], self.species[mask], self.prob[mask], self.prob_rest[mask])


_CHUNK_ELEMENTS = 1 << 22  # scores ranked at a time by top_n (4M: 32 MB of keys)


def _rank_keys(scores: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """One ``uint64`` per score whose ascending order is (decreasing score, increasing species id), all distinct.

    The high 32 bits are the float32 score's bits made order-preserving and decreasing (a negative score's bits as
    they are, a non-negative one's 31 low bits inverted); the low 32 bits are the column's species rank (``rank``:
    the position of each column's species id among the sorted ids). So a top-N is an ``argpartition`` and a sort of
    N keys per row instead of a two-key ``lexsort`` of every score (~6x faster at 17,800 surveys x 5,000 species, in
    chunks of rows so the keys stay small). -0.0 counts as 0.0.
    """
    bits = (scores + np.float32(0.0)).view(np.uint32)  # + 0.0: a copy, and -0.0 becomes 0.0 (a tie, as in a compare)
    flip = (bits.view(np.int32) >> 31).view(np.uint32)  # all ones where the score is negative, else 0
    np.invert(flip, out=flip)
    flip &= np.uint32(0x7FFFFFFF)
    bits ^= flip
    keys = bits.astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= rank[None, :]
    return keys


def top_n(survey_ids: np.ndarray, scores: np.ndarray, species_vocab: np.ndarray, n: int = 256) -> ScoreTable:
    """Build a :class:`ScoreTable` from a dense (surveys x vocab) score matrix: each row's ``n`` best species by
    decreasing score, ties by species id (deterministic).

    Raises:
        ValueError: a NaN score (its rank is undefined; the model output must be finite) or ``vocab`` not one id per
            column.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    vocab = np.asarray(species_vocab, dtype=np.int64)
    if scores.ndim != 2 or vocab.shape != (scores.shape[1],):
        raise ValueError(f"top_n: scores {scores.shape} need one species id per column, got vocab {vocab.shape}")
    nan_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
    if len(nan_rows):
        raise ValueError(
            f"top_n: {len(nan_rows)} survey(s) have NaN scores (e.g. surveyId "
            f"{np.asarray(survey_ids)[nan_rows[:5]].tolist()}); the model output must be finite"
        )
    n = min(n, scores.shape[1])
    rank = np.empty(len(vocab), np.uint64)
    rank[np.argsort(vocab, kind="stable")] = np.arange(len(vocab), dtype=np.uint64)
    order = np.empty((scores.shape[0], n), np.int64)
    step = max(1, _CHUNK_ELEMENTS // max(scores.shape[1], 1))  # rows per chunk: the keys stay ~32 MB
    for a in range(0, scores.shape[0], step):
        keys = _rank_keys(scores[a : a + step], rank)
        keep = (
            np.argpartition(keys, n - 1, axis=1)[:, :n]
            if n < scores.shape[1]
            else np.broadcast_to(np.arange(n), keys.shape)
        )
        order[a : a + step] = np.take_along_axis(
            keep, np.argsort(np.take_along_axis(keys, keep, axis=1), axis=1), axis=1
        )
    prob = np.take_along_axis(scores, order, axis=1)
    rest = scores.sum(axis=1, dtype=np.float64) - prob.sum(axis=1, dtype=np.float64)
    return ScoreTable(
        np.asarray(survey_ids, dtype=np.int64), vocab[order], prob, np.maximum(rest, 0).astype(np.float32)
    )


def concat_scores(parts: list[ScoreTable]) -> ScoreTable:
    """Stack score tables of the same width (rows in the given order)."""
    if not parts:
        raise ValueError("concat_scores needs at least one score table")
    widths = {p.species.shape[1] for p in parts if len(p)}
    if len(widths) > 1:
        raise ValueError(f"score tables of different widths {sorted(widths)} cannot be stacked")
    return ScoreTable(
        np.concatenate([p.survey_ids for p in parts]),
        np.concatenate([p.species for p in parts]),
        np.concatenate([p.prob for p in parts]),
        np.concatenate([p.prob_rest for p in parts]),
    )


def write_scores(path: str | Path, table: ScoreTable, summary: dict | None = None) -> None:
    """Write a score table as a parquet directory artifact (atomic, ``_SUCCESS`` last)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, N = table.species.shape
    arr = pa.table(
        {
            "surveyId": pa.array(table.survey_ids, pa.int64()),
            "species": pa.FixedSizeListArray.from_arrays(pa.array(table.species.reshape(-1), pa.int64()), N).cast(
                pa.list_(pa.int64())
            ),
            "prob": pa.FixedSizeListArray.from_arrays(pa.array(table.prob.reshape(-1), pa.float32()), N).cast(
                pa.list_(pa.float32())
            ),
            "prob_rest": pa.array(table.prob_rest, pa.float32()),
        }
    )
    with atomic_dir(path, summary={"rows": n, "top_n": N, **(summary or {})}) as tmp:
        pq.write_table(arr, Path(tmp) / "part-00000.parquet", compression="zstd")


def read_scores(path: str | Path) -> ScoreTable:
    """Read a score artifact written by :func:`write_scores` (refuses an incomplete one)."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not is_complete(p):
        raise FileNotFoundError(f"score artifact {p} is missing or incomplete (no _SUCCESS); rerun the Predict task")
    t = pq.read_table(p, columns=["surveyId", "species", "prob", "prob_rest"])
    ids = t.column("surveyId").to_numpy()
    n = len(ids)

    def mat(col: str, dtype: type) -> np.ndarray:
        flat = t.column(col).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.astype(dtype).reshape(n, -1) if n else np.zeros((0, 0), dtype)

    return ScoreTable(
        ids.astype(np.int64),
        mat("species", np.int64),
        mat("prob", np.float32),
        t.column("prob_rest").to_numpy().astype(np.float32),
    )
