"""Set metrics for species prediction: the GLC24 competition metric (sample-averaged F1) and its companions.

The competition scores a predicted *set* of species per survey by the **sample-averaged F1** (glc24-format.md §9)::

    F1 = (1/N) * sum_i TP_i / (TP_i + (FP_i + FN_i) / 2)

with ``TP_i = |pred_i & true_i|``, ``FP_i = |pred_i - true_i|``, ``FN_i = |true_i - pred_i|``. This equals
``sklearn.metrics.f1_score(Y, P, average="samples")`` on one-hot matrices (the tests check it).

Conventions shared by every function here:

* A species list is any iterable of integers (list, tuple, set, numpy array). **Duplicate ids within one list count
  once** (the released GLC24 solution repeats some ids).
* A survey whose truth *and* prediction are both empty has an undefined F1 (0/0); it scores ``zero_division``
  (default ``0.0``, as sklearn's default and torchmetrics do). A survey with only one of the two empty scores 0.
* Ids are not checked against a vocabulary: an id outside 0..11254 in the truth is simply a species that is missed
  unless it is predicted (the released GLC24 solution holds a few such ids; malpolon's evaluator drops them, glc
  keeps them, as any scorer that compares id sets does). Negative or non-integer ids are errors.

Two families of implementation are provided: list-based (``sample_f1``, ``per_survey_f1``, ``score_submission``,
``micro_prf``, ``macro_prf``), vectorised over all surveys at once by encoding ``(survey, id)`` pairs as int64 keys,
and matrix-based (``sample_f1_matrix``) for dense or scipy.sparse boolean indicator matrices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "PRF",
    "adaptive_topk_accuracy",
    "macro_prf",
    "micro_prf",
    "per_survey_f1",
    "per_survey_f1_matrix",
    "sample_f1",
    "sample_f1_matrix",
    "score_submission",
    "topk_accuracy",
]


class PRF(NamedTuple):
    """Precision, recall and F1 (a tuple: ``p, r, f = micro_prf(...)`` works, and so does ``res.f1``)."""

    precision: float
    recall: float
    f1: float


# ---------------------------------------------------------------------------------------------- list encoding
def _raw_ids(item: Iterable[int] | None, where: str) -> np.ndarray:
    """One species list as a 1-D numeric array (not yet deduplicated or range-checked)."""
    if item is None:
        raise ValueError(f"{where}: species list is None; pass an empty list for a survey with no species")
    if isinstance(item, (str, bytes)):
        raise TypeError(f"{where}: species list is a string {item!r}; split it into integers first (e.g. s.split())")
    arr = np.asarray(item if isinstance(item, (np.ndarray, list, tuple)) else list(item)).reshape(-1)
    if arr.size and (arr.dtype.kind == "b" or arr.dtype.kind not in "iuf"):
        raise TypeError(f"{where}: species ids must be integers, got dtype {arr.dtype} ({arr[:5].tolist()})")
    return arr


def _encode(lists: Sequence[Iterable[int]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Unique ``(row, id)`` pairs of a sequence of species lists: (rows int64, ids int64), sorted by (row, id).

    Raises naming ``name[row]`` when an id is negative or not integer-valued.
    """
    arrs = [_raw_ids(x, f"{name}[{i}]") for i, x in enumerate(lists)]
    counts = np.fromiter((a.size for a in arrs), dtype=np.int64, count=len(arrs))
    rows = np.repeat(np.arange(len(arrs), dtype=np.int64), counts)
    if rows.size == 0:
        return rows, np.empty(0, dtype=np.int64)
    raw = np.concatenate([a for a in arrs if a.size])  # int64, or float64 when any list is float
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            j = int(np.argmax(bad))
            raise ValueError(f"{name}[{int(rows[j])}]: species ids must be integer-valued, found {raw[j]!r}")
    ids = raw.astype(np.int64)
    if ids.min() < 0:
        j = int(np.argmax(ids < 0))
        raise ValueError(f"{name}[{int(rows[j])}]: species ids must be >= 0, found {int(ids[j])}")
    span = int(ids.max()) + 1
    if len(arrs) > np.iinfo(np.int64).max // span:
        raise OverflowError(f"{name}: {len(arrs)} surveys x max id {span - 1} does not fit int64 keys")
    keys = np.unique(rows * span + ids)  # dedup within a survey; sorted by (row, id)
    return keys // span, keys % span


def _check_same_length(y_true: Sequence[Any], y_pred: Sequence[Any]) -> int:
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} surveys but y_pred has {len(y_pred)}; "
            "pass one prediction per survey, in the same order"
        )
    return len(y_true)


def _counts(
    y_true: Sequence[Iterable[int]], y_pred: Sequence[Iterable[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-survey (TP, |true|, |pred|) as int64 arrays, duplicates counted once."""
    n = _check_same_length(y_true, y_pred)
    tr, ti = _encode(y_true, "y_true")
    pr, pi = _encode(y_pred, "y_pred")
    span = int(max(ti.max(initial=-1), pi.max(initial=-1))) + 1
    if n and span and n > np.iinfo(np.int64).max // span:
        raise OverflowError(f"{n} surveys x max id {span - 1} does not fit int64 keys")
    tk = tr * span + ti
    pk = pr * span + pi
    both = np.intersect1d(tk, pk, assume_unique=True)
    tp = np.bincount(both // span if span else both, minlength=n)[:n] if both.size else np.zeros(n, np.int64)
    return (
        tp.astype(np.int64),
        np.bincount(tr, minlength=n).astype(np.int64),
        np.bincount(pr, minlength=n).astype(np.int64),
    )


def _f1_from_counts(tp: np.ndarray, n_true: np.ndarray, n_pred: np.ndarray, zero_division: float) -> np.ndarray:
    denom = n_true + n_pred  # TP + (FP + FN)/2 = (|true| + |pred|) / 2
    out = np.full(tp.shape, float(zero_division), dtype=np.float64)
    ok = denom > 0
    out[ok] = 2.0 * tp[ok] / denom[ok]
    return out


def _check_zero_division(zero_division: float) -> float:
    z = float(zero_division)
    if not 0.0 <= z <= 1.0:
        raise ValueError(
            f"zero_division={zero_division!r} must be in [0, 1] (the F1 "
            "given to a survey with empty truth and empty prediction)"
        )
    return z


# ---------------------------------------------------------------------------------------------- sample F1
def per_survey_f1(
    y_true: Sequence[Iterable[int]], y_pred: Sequence[Iterable[int]], zero_division: float = 0.0
) -> np.ndarray:
    """F1 of each survey: ``TP / (TP + (FP + FN) / 2)``.

    Args:
        y_true: true species ids per survey (duplicates within a list count once).
        y_pred: predicted species ids per survey, same order and length as ``y_true``.
        zero_division: F1 of a survey whose truth and prediction are both empty (default 0).

    Returns:
        float64 array of shape ``(len(y_true),)`` with values in [0, 1].

    Raises:
        ValueError: lengths differ, an id is negative or not an integer, or ``zero_division`` is outside [0, 1].
    """
    z = _check_zero_division(zero_division)
    tp, nt, npred = _counts(y_true, y_pred)
    return _f1_from_counts(tp, nt, npred, z)


def sample_f1(y_true: Sequence[Iterable[int]], y_pred: Sequence[Iterable[int]], zero_division: float = 0.0) -> float:
    """The competition metric: mean over surveys of the per-survey F1 (see :func:`per_survey_f1`).

    A survey with empty truth and empty prediction scores ``zero_division`` (default 0).

    Raises:
        ValueError: no surveys, lengths differ, or a bad id (see :func:`per_survey_f1`).
    """
    if len(y_true) == 0:
        raise ValueError("sample_f1 needs at least one survey; y_true is empty")
    return float(per_survey_f1(y_true, y_pred, zero_division).mean())


def micro_prf(y_true: Sequence[Iterable[int]], y_pred: Sequence[Iterable[int]], zero_division: float = 0.0) -> PRF:
    """Micro precision, recall and F1 pooled over all (survey, species) pairs.

    ``precision = sum TP / sum |pred|``, ``recall = sum TP / sum |true|``,
    ``f1 = 2 sum TP / (sum |true| + sum |pred|)``; a 0/0 ratio gives ``zero_division``.
    """
    z = _check_zero_division(zero_division)
    tp, nt, npred = (int(a.sum()) for a in _counts(y_true, y_pred))
    return PRF(
        precision=tp / npred if npred else z,
        recall=tp / nt if nt else z,
        f1=2.0 * tp / (nt + npred) if (nt + npred) else z,
    )


def macro_prf(
    y_true: Sequence[Iterable[int]], y_pred: Sequence[Iterable[int]], num_classes: int, zero_division: float = 0.0
) -> PRF:
    """Macro precision, recall and F1: the unweighted mean over classes **present in the truth or the prediction**.

    A class that is never true and never predicted has no defined score and is left out of the mean (sklearn's
    ``f1_score(average="macro", labels=<present classes>)``). For a present class, precision is ``zero_division``
    when it is never predicted and recall is ``zero_division`` when it is never true; its F1 is
    ``2 TP / (2 TP + FP + FN)`` (never 0/0 for a present class).

    Args:
        y_true: true species ids per survey.
        y_pred: predicted species ids per survey.
        num_classes: ids must lie in ``0..num_classes-1``.
        zero_division: value of an undefined per-class precision or recall.

    Raises:
        ValueError: an id outside ``0..num_classes-1`` (drop out-of-vocabulary ids first or raise ``num_classes``),
            or no class present at all.
    """
    z = _check_zero_division(zero_division)
    if int(num_classes) < 1:
        raise ValueError(f"num_classes={num_classes!r} must be >= 1")
    _check_same_length(y_true, y_pred)
    tr, ti = _encode(y_true, "y_true")
    pr, pi = _encode(y_pred, "y_pred")
    for name, ids in (("y_true", ti), ("y_pred", pi)):
        if ids.size and ids.max() >= num_classes:
            raise ValueError(
                f"{name} holds id {int(ids.max())} >= num_classes={num_classes}; "
                "drop out-of-vocabulary ids first or pass a larger num_classes"
            )
    span = int(num_classes)
    both = np.intersect1d(tr * span + ti, pr * span + pi, assume_unique=True) % span
    tp = np.bincount(both, minlength=span)
    nt = np.bincount(ti, minlength=span)
    npred = np.bincount(pi, minlength=span)
    present = (nt + npred) > 0
    if not present.any():
        raise ValueError("macro_prf: no class occurs in y_true or y_pred; the macro average is undefined")
    tp, nt, npred = tp[present], nt[present], npred[present]
    prec = np.where(npred > 0, tp / np.maximum(npred, 1), z)
    rec = np.where(nt > 0, tp / np.maximum(nt, 1), z)
    f1 = 2.0 * tp / (nt + npred)
    return PRF(float(prec.mean()), float(rec.mean()), float(f1.mean()))


def score_submission(
    solution: Mapping[int, Iterable[int]], submission: Mapping[int, Iterable[int]], zero_division: float = 0.0
) -> dict[str, float | int]:
    """Score a submission ``{surveyId: species ids}`` against a solution the way Kaggle does.

    * Every solution survey is scored; one **missing** from the submission is scored as an empty prediction (F1 0).
    * Submission surveys absent from the solution are **ignored** (counted in ``n_extra``).
    * Solution ids outside the training vocabulary (0..11254) are kept: they count as false negatives unless predicted.
    * Duplicate ids within a list count once.

    Returns:
        ``{"sample_f1", "micro_precision", "micro_recall", "micro_f1", "n_surveys", "n_missing", "n_extra"}``.

    Raises:
        ValueError: the solution is empty, or a list holds a negative or non-integer id (the message names the survey).
    """
    if len(solution) == 0:
        raise ValueError("score_submission: the solution has no surveys")
    sids = [int(s) for s in solution]
    sol_set = set(sids)
    missing = [s for s in sids if s not in submission]
    extra = sum(1 for s in submission if int(s) not in sol_set)
    empty: tuple[int, ...] = ()
    y_true = [solution[s] for s in sids]
    y_pred = [submission.get(s, empty) for s in sids]
    try:
        f1 = per_survey_f1(y_true, y_pred, zero_division)
        micro = micro_prf(y_true, y_pred, zero_division)
    except (ValueError, TypeError) as e:  # name the surveyId, not the position
        raise type(e)(_name_survey(str(e), sids)) from e
    return {
        "sample_f1": float(f1.mean()),
        "micro_precision": micro.precision,
        "micro_recall": micro.recall,
        "micro_f1": micro.f1,
        "n_surveys": len(sids),
        "n_missing": len(missing),
        "n_extra": int(extra),
    }


def _name_survey(msg: str, sids: list[int]) -> str:
    """Rewrite ``y_true[i]``/``y_pred[i]`` in an error message as ``solution/submission surveyId=<id>``."""
    import re

    def sub(m: re.Match[str]) -> str:
        who = "solution" if m.group(1) == "y_true" else "submission"
        return f"{who} surveyId={sids[int(m.group(2))]}"

    return re.sub(r"(y_true|y_pred)\[(\d+)\]", sub, msg)


# ---------------------------------------------------------------------------------------------- matrices
def _as_bool_matrix(m: Any, name: str) -> Any:
    """A dense or CSR boolean indicator matrix; raises if values other than 0/1 (or True/False) occur."""
    import scipy.sparse as sp

    if sp.issparse(m):
        m = sp.csr_matrix(m)
        data = m.data
        if data.size and not np.all((data == 0) | (data == 1)):
            raise ValueError(
                f"{name} must be a 0/1 indicator matrix; found values "
                f"{np.unique(data[(data != 0) & (data != 1)])[:5].tolist()}"
            )
        m = m.astype(bool)
        m.eliminate_zeros()
        return m
    a = np.asarray(m)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (surveys x species), got shape {a.shape}")
    if a.dtype != bool:
        if a.dtype.kind not in "iuf" or not np.all((a == 0) | (a == 1)):
            raise ValueError(
                f"{name} must be a boolean or 0/1 indicator matrix (dtype {a.dtype}); threshold scores into sets first"
            )
        a = a.astype(bool)
    return a


def _row_sums(m: Any) -> np.ndarray:
    return np.asarray(m.sum(axis=1)).reshape(-1).astype(np.int64)


def per_survey_f1_matrix(Y: Any, P: Any, zero_division: float = 0.0) -> np.ndarray:
    """Per-survey F1 from indicator matrices (rows = surveys, columns = species); dense ``np.ndarray`` or scipy.sparse.

    Raises:
        ValueError: shapes differ, or a matrix holds values other than 0/1.
    """
    z = _check_zero_division(zero_division)
    import scipy.sparse as sp

    Yb, Pb = _as_bool_matrix(Y, "Y"), _as_bool_matrix(P, "P")
    if Yb.shape != Pb.shape:
        raise ValueError(
            f"Y has shape {Yb.shape} but P has shape {Pb.shape}; both must be (surveys x species) over the same columns"
        )
    if sp.issparse(Yb) or sp.issparse(Pb):
        inter = (sp.csr_matrix(Yb).multiply(sp.csr_matrix(Pb))).tocsr()
        tp = _row_sums(inter)
    else:
        tp = np.count_nonzero(Yb & Pb, axis=1).astype(np.int64)
    return _f1_from_counts(tp, _row_sums(Yb), _row_sums(Pb), z)


def sample_f1_matrix(Y: Any, P: Any, zero_division: float = 0.0) -> float:
    """Sample-averaged F1 of indicator matrices ``Y`` (truth) and ``P`` (prediction), dense or scipy.sparse.

    Same definition as :func:`sample_f1`; equals ``sklearn.metrics.f1_score(Y, P, average="samples")``.
    """
    if Y.shape[0] == 0:
        raise ValueError("sample_f1_matrix needs at least one survey (row); Y has 0 rows")
    return float(per_survey_f1_matrix(Y, P, zero_division).mean())


# ---------------------------------------------------------------------------------------------- ranking metrics
def _check_scores(scores: np.ndarray, y_true: Sequence[Iterable[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D (surveys x species) array, got shape {s.shape}")
    if s.dtype.kind not in "iuf" or not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite numbers (no NaN/inf); check the model output")
    if len(y_true) != s.shape[0]:
        raise ValueError(f"scores has {s.shape[0]} rows but y_true has {len(y_true)} surveys")
    rows, cols = _encode(y_true, "y_true")
    if cols.size and cols.max() >= s.shape[1]:
        raise ValueError(
            f"y_true holds column index {int(cols.max())} but scores has only "
            f"{s.shape[1]} columns; y_true must hold column indices into scores"
        )
    return s, rows, cols


def topk_accuracy(scores: np.ndarray, y_true: Sequence[Iterable[int]], k: int) -> float:
    """Fraction of surveys with at least one true species among their ``k`` highest-scoring columns.

    Ranking is by decreasing score, ties broken by the lower column index. ``y_true`` holds **column indices** into
    ``scores``. A survey with an empty truth counts as incorrect.
    """
    s, rows, cols = _check_scores(scores, y_true)
    n, c = s.shape
    if int(k) < 1:
        raise ValueError(f"k={k!r} must be >= 1")
    k = min(int(k), c)
    # Column j of row i is in the top-k iff rank(i, j) < k, rank = #(greater) + #(equal with a lower index).
    correct = np.zeros(n, dtype=bool)
    step = max(1, (1 << 22) // max(c, 1))  # bound the (pairs x species) temporaries to ~4M elements
    ar = np.arange(c)[None, :]
    for a in range(0, rows.size, step):
        r, j = rows[a : a + step], cols[a : a + step]
        srow = s[r]
        v = srow[np.arange(r.size), j][:, None]
        rank = (srow > v).sum(axis=1) + ((srow == v) & (ar < j[:, None])).sum(axis=1)
        correct[r[rank < k]] = True
    return float(correct.mean()) if n else float("nan")


def adaptive_topk_accuracy(scores: np.ndarray, y_true: Sequence[Iterable[int]], k: int = 30) -> float:
    """GLC2020's adaptive top-k accuracy, for multi-label truth.

    Definition: let ``N`` be the number of surveys and ``v_1 >= v_2 >= ...`` all ``N*C`` scores sorted. The threshold
    is ``t = v_{N*k+1}``, the smallest value such that at most ``N*k`` scores (on average at most ``k`` per survey) are
    **strictly above** ``t`` (``t = -inf`` when ``N*k >= N*C``). A survey counts as correct when **at least one** of
    its true species (column indices into ``scores``) has a score strictly above ``t``; a survey with empty truth
    counts as incorrect. Returns the fraction of correct surveys.
    """
    s, rows, cols = _check_scores(scores, y_true)
    n, c = s.shape
    if int(k) < 1:
        raise ValueError(f"k={k!r} must be >= 1")
    flat = s.reshape(-1).astype(np.float64)
    m = n * int(k)
    if m >= flat.size:
        t = -np.inf
    else:
        # (m+1)-th largest = element at ascending position size-1-m
        t = float(np.partition(flat, flat.size - 1 - m)[flat.size - 1 - m])
    hit = s[rows, cols] > t
    correct = np.zeros(n, dtype=bool)
    correct[rows[hit]] = True
    return float(correct.mean()) if n else float("nan")
