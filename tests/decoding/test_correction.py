"""glc.decoding.correction: union of decoded sets with correction lists."""

from __future__ import annotations

import numpy as np
import pytest

from glc.decoding.correction import apply_corrections


def test_union_dedup_sorted_and_inputs_untouched() -> None:
    sets = [np.array([5, 1, 3]), np.array([2]), np.array([7, 0])]
    out = apply_corrections(sets, {0: [3, 9, 9], 2: np.array([4])})
    assert [s.tolist() for s in out] == [[1, 3, 5, 9], [2], [0, 4, 7]]
    assert all(s.dtype == np.int64 for s in out)
    assert sets[0].tolist() == [5, 1, 3]  # not modified in place


def test_bad_corrections() -> None:
    sets = [np.array([1]), np.array([2])]
    with pytest.raises(ValueError, match=r"correction for row 2: rows must be integers in 0\.\.1"):
        apply_corrections(sets, {2: [1]})
    with pytest.raises(ValueError, match="correction for row 0: column -1 is not >= 0"):
        apply_corrections(sets, {0: [-1]})
    with pytest.raises(ValueError, match=r"correction for row 1: column 12 is not in 0\.\.9"):
        apply_corrections(sets, {1: [3, 12]}, n_columns=10)


def test_the_decoder_step_adds_exactly_the_listed_species() -> None:
    """Tighnari's PO correction after decoding (glc.experiment.correct_sets), on a hand-built case: each survey gains
    exactly its list's species it lacked, surveys without a list are unchanged, nothing is removed."""
    from glc.experiment import correct_sets

    decoded = {10: np.array([5, 3]), 11: np.array([7]), 12: np.array([1, 2])}
    lists = {10: np.array([3, 9, 11]), 11: np.array([], np.int64), 99: np.array([4])}
    out, info = correct_sets(decoded, lists)
    assert {k: v.tolist() for k, v in out.items()} == {10: [3, 5, 9, 11], 11: [7], 12: [1, 2]}
    assert info == {"n_surveys": 3, "n_without_list": 1, "species_added": 2, "mean_added": 2 / 3, "surveys_changed": 1}
    assert decoded[10].tolist() == [5, 3]  # inputs untouched
