"""The oracle of a synthetic world: the best sample-F1 any model could expect, given the true probabilities.

For each PA test survey the generator stored the true presence probabilities ``p_j`` (``_truth/pa_test_truth.npz``)
and the species actually drawn. The oracle decodes ``p`` into the set that maximizes the *expected* F1 and scores
those sets against the drawn labels with the competition metric (sample-averaged F1).

Expected-F1 decoder (exact, under independence of the species given ``p``). With species sorted by decreasing
``p``, the optimal set is a top-``k`` set (Lewis 1995; Ye et al., ICML 2012), so only ``k`` needs choosing. For a
top-``k`` set, ``TP = sum_{j<=k} y_j`` and ``R = sum_{j>k} y_j`` are independent Poisson-binomial counts and

    E[F1(k)] = sum_t sum_r P(TP = t) P(R = r) * 2t / (k + t + r)      (k >= 1),   E[F1(0)] = P(|Y| = 0),

taking F1 = 1 when prediction and truth are both empty. It is computed for *every* ``k`` in ``O(n L)`` through the
equivalent form ``E[F1(k)] = sum_{j<=k} p_j E[2 / (k + 1 + |Y| - y_j)]``: the distribution of ``|Y|`` comes from
the Poisson-binomial dynamic programme, and the leave-one-out distributions of ``|Y| - y_j`` from a numerically
stable deconvolution (see :func:`expected_f1_curves`). The only approximations are the truncation of the count
axis at ``mean + 12 sd + 20`` (a Chernoff tail far below 1e-12) and floating-point rounding; species with
``p < 1e-6`` are not stored by the generator (their expected count is at most ``1e-6 * n_species``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glc.synth.world import SOLUTION_CSV, TRUTH_DIR, TRUTH_NPZ

_BATCH = 256


@dataclass(frozen=True)
class Truth:
    """The test truth of a world (CSR arrays, rows = test surveys sorted by id).

    Attributes:
        survey_id: test survey ids.
        species_id: GLC species id of every column index.
        prob_indptr, prob_index, prob: true probabilities >= ``min_prob``.
        label_indptr, label_index: the drawn species.
        min_prob: the storage threshold.
    """

    survey_id: np.ndarray
    species_id: np.ndarray
    prob_indptr: np.ndarray
    prob_index: np.ndarray
    prob: np.ndarray
    label_indptr: np.ndarray
    label_index: np.ndarray
    min_prob: float

    def probs(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(column indices, probabilities)`` of survey row ``i``."""
        a, b = self.prob_indptr[i], self.prob_indptr[i + 1]
        return self.prob_index[a:b], self.prob[a:b].astype(np.float64)

    def labels(self, i: int) -> np.ndarray:
        """Column indices of the species drawn in survey row ``i``."""
        return self.label_index[self.label_indptr[i] : self.label_indptr[i + 1]]


def load_truth(world_dir: str | Path) -> Truth:
    """Read ``<world>/_truth/pa_test_truth.npz``.

    Raises:
        FileNotFoundError: if the world has no truth file (not a synthetic world, or generation did not finish).
    """
    path = Path(world_dir) / TRUTH_DIR / TRUTH_NPZ
    if not path.is_file():
        raise FileNotFoundError(
            f"no synthetic truth at {path}; the oracle needs a world made by glc.synth.generate_world "
            "(python -m glc synth) whose _SUCCESS marker exists"
        )
    with np.load(path) as z:
        return Truth(
            **{
                k: z[k]
                for k in ("survey_id", "species_id", "prob_indptr", "prob_index", "prob", "label_indptr", "label_index")
            },
            min_prob=float(z["min_prob"]),
        )


# -------------------------------------------------------------------------------------------- expected F1
def _count_distributions(pad: np.ndarray, length: int) -> np.ndarray:
    """Distribution of ``|Y| = sum_j y_j`` for each row of ``pad`` (Poisson-binomial DP, truncated to ``length``)."""
    dist = np.zeros((pad.shape[0], length))
    dist[:, 0] = 1.0
    for j in range(pad.shape[1]):
        p = pad[:, j][:, None]
        shifted = np.zeros_like(dist)
        shifted[:, 1:] = dist[:, :-1]
        dist = dist * (1.0 - p) + shifted * p
    return dist


def _leave_one_out(total: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distributions of ``|Y| - y_j`` for every ``j`` (rows), from the distribution ``total`` of ``|Y|``.

    Removes one Bernoulli by deconvolution: forward in the count for ``p_j <= 1/2``
    (``q[s] = (P[s] - p q[s-1]) / (1 - p)``) and backward for ``p_j > 1/2`` (``q[s] = (P[s+1] - (1 - p) q[s+1]) / p``),
    so each recursion damps rounding errors (factor ``<= 1`` per step).
    """
    length = len(total)
    q = np.zeros((len(p), length))
    lo = p <= 0.5
    if lo.any():
        pl = p[lo]
        prev = np.zeros(len(pl))
        for s in range(length):
            prev = (total[s] - pl * prev) / (1.0 - pl)
            q[lo, s] = prev
    if (~lo).any():
        ph = p[~lo]
        nxt = np.zeros(len(ph))
        for s in range(length - 1, -1, -1):
            above = total[s + 1] if s + 1 < length else 0.0
            nxt = (above - (1.0 - ph) * nxt) / ph
            q[~lo, s] = nxt
    return np.clip(q, 0.0, None)


def expected_f1_curves(probs: list[np.ndarray]) -> list[np.ndarray]:
    """Exact ``E[F1(k)]`` of every top-``k`` set, ``k = 0..n``, for several surveys.

    Uses ``E[F1(k)] = sum_{j<=k} p_j E[2 / (k + 1 + |Y| - y_j)]`` (the term of species ``j`` is non-zero only when
    ``y_j = 1``), with the leave-one-out count distributions obtained by deconvolving the Poisson-binomial
    distribution of ``|Y|`` (see :func:`_leave_one_out`). ``E[F1(0)] = P(|Y| = 0)``. Cost ``O(n L)`` per survey,
    where ``L = mean + 12 sd + 20`` is the truncation of the count axis.

    Args:
        probs: per survey, presence probabilities in ``[0, 1]`` sorted in decreasing order.

    Returns:
        Per survey, the array ``E[F1(0..n)]``.
    """
    if not probs:
        return []
    n = max(max(len(p) for p in probs), 1)
    pad = np.zeros((len(probs), n))
    for i, p in enumerate(probs):
        p = np.asarray(p, dtype=np.float64)
        if len(p) and (np.any(np.diff(p) > 0) or p[0] > 1.0 or p[-1] < 0.0):
            raise ValueError("expected_f1_curves: probabilities must lie in [0, 1] and be sorted in decreasing order")
        pad[i, : len(p)] = p
    mu = pad.sum(axis=1)
    sd = np.sqrt((pad * (1.0 - pad)).sum(axis=1))
    length = int(min(n + 1, np.ceil(np.max(mu + 12.0 * sd)) + 20))
    totals = _count_distributions(pad, length)
    curves = []
    s = np.arange(length)
    for i, p in enumerate(probs):
        p = np.asarray(p, dtype=np.float64)
        curve = np.empty(len(p) + 1)
        curve[0] = totals[i, 0]
        if len(p):
            contrib = np.cumsum(p[:, None] * _leave_one_out(totals[i], p), axis=0)
            k = np.arange(1, len(p) + 1)[:, None]
            curve[1:] = (contrib * (2.0 / (k + 1.0 + s[None, :]))).sum(axis=1)
        curves.append(curve)
    return curves


def decode_expected_f1(probs: np.ndarray) -> np.ndarray:
    """Indices (into ``probs``) of the expected-F1-optimal set of one survey, in decreasing probability order."""
    p = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    curve = expected_f1_curves([p[order]])[0]
    return order[: int(np.argmax(curve))]


def sample_f1(predicted: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Sample-averaged F1: mean over surveys of ``TP / (TP + (FP + FN) / 2)``; 1 when both sets are empty.

    Args:
        predicted, truth: per survey, arrays of species ids (duplicates ignored), aligned.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"sample_f1: {len(predicted)} predicted sets but {len(truth)} true sets; they must align")
    if not truth:
        raise ValueError("sample_f1: no surveys to score")
    scores = np.empty(len(truth))
    for i, (pr, tr) in enumerate(zip(predicted, truth)):
        a, b = np.unique(pr), np.unique(tr)
        denom = len(a) + len(b)
        scores[i] = 1.0 if denom == 0 else 2.0 * len(np.intersect1d(a, b, assume_unique=True)) / denom
    return float(scores.mean())


def oracle_sets(truth: Truth) -> list[np.ndarray]:
    """The expected-F1-optimal predicted set (column indices) of every test survey."""
    sets: list[np.ndarray] = []
    for start in range(0, len(truth.survey_id), _BATCH):
        rows = range(start, min(start + _BATCH, len(truth.survey_id)))
        cols, probs = [], []
        for i in rows:
            c, p = truth.probs(i)
            order = np.argsort(-p, kind="stable")
            cols.append(c[order])
            probs.append(p[order])
        for c, curve in zip(cols, expected_f1_curves(probs)):
            sets.append(c[: int(np.argmax(curve))])
    return sets


def oracle_sample_f1(world_dir: str | Path) -> float:
    """Sample-F1 of the expected-F1-optimal decoding of the true probabilities against the drawn test labels."""
    truth = load_truth(world_dir)
    sets = oracle_sets(truth)
    return sample_f1(sets, [truth.labels(i) for i in range(len(truth.survey_id))])


def frequency_baseline_sample_f1(world_dir: str | Path, max_k: int = 100) -> tuple[int, float]:
    """Best sample-F1 of predicting the ``k`` most frequent PA-train species for every test survey.

    ``k`` is chosen on the test labels themselves (an optimistic baseline). Reads the Kaggle/Seafile PA train
    metadata and ``_truth/GLC24_SOLUTION_FILE.csv``.

    Returns:
        ``(best k, its sample-F1)``.
    """
    import pandas as pd

    from glc.data.layout import detect_layout

    layout = detect_layout(world_dir)
    train = pd.read_csv(layout.pa_metadata("train"), usecols=["surveyId", "speciesId"]).drop_duplicates()
    top = train["speciesId"].astype(np.int64).value_counts().sort_index(kind="stable")
    top = top.sort_values(ascending=False, kind="stable").index.to_numpy()[:max_k]
    sol = pd.read_csv(Path(world_dir) / TRUTH_DIR / SOLUTION_CSV)
    k = np.arange(1, len(top) + 1)
    total = np.zeros(len(top))
    for text in sol["target_species_ids"].fillna(""):
        y = np.unique(np.array(str(text).split(), dtype=np.int64))
        tp = np.cumsum(np.isin(top, y))
        total += 2.0 * tp / (k + len(y))
    f1 = total / len(sol)
    best = int(np.argmax(f1))
    return best + 1, float(f1[best])
