"""Output correction: add species from per-survey correction lists (e.g. Tighnari's PO-neighbour correction).

The neighbour module produces, for some surveys, a list of species seen in nearby presence-only records; those are
added to the decoded set. The correction is a plain union, so it can only add species.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["apply_corrections"]


def apply_corrections(
    sets: Sequence[np.ndarray], corrections: Mapping[int, Iterable[int]], n_columns: int | None = None
) -> list[np.ndarray]:
    """Union each decoded set with its correction list.

    Args:
        sets: decoded column-index sets, one per survey (row).
        corrections: ``{row: column indices to add}``; rows without an entry are unchanged except for sorting.
        n_columns: if given, every added column must lie in ``0..n_columns-1``.

    Returns:
        One int64 array per row: the union, **deduplicated and sorted by column index** (the rank order of the
        decoded sets is not kept, since added columns have no rank). The inputs are not modified.

    Raises:
        ValueError: a correction row outside ``0..len(sets)-1``, or a negative / out-of-range / non-integer column.
    """
    out = [np.unique(np.asarray(s, dtype=np.int64).reshape(-1)) for s in sets]
    n = len(out)
    for row, cols in corrections.items():
        r = int(row)
        if r != row or not 0 <= r < n:
            raise ValueError(f"correction for row {row!r}: rows must be integers in 0..{n - 1} (one per decoded set)")
        add = np.asarray(cols if isinstance(cols, (np.ndarray, list, tuple)) else list(cols)).reshape(-1)
        if add.size == 0:
            continue
        if add.dtype.kind not in "iu" and (add.dtype.kind != "f" or not np.all(add == np.round(add))):
            raise ValueError(f"correction for row {r}: columns must be integers, got {add[:5].tolist()}")
        add = add.astype(np.int64)
        if add.min() < 0 or (n_columns is not None and add.max() >= n_columns):
            bad = add[(add < 0) | ((add >= n_columns) if n_columns is not None else False)][0]
            want = ">= 0" if n_columns is None else f"in 0..{n_columns - 1}"
            raise ValueError(
                f"correction for row {r}: column {int(bad)} is not {want}; map species ids to column indices first"
            )
        out[r] = np.union1d(out[r], add)
    return out
