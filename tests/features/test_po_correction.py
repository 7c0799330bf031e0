"""PO-neighbour correction lists on a hand-built neighbourhood (N=5, L=4, A=10, M=8)."""

from __future__ import annotations

import numpy as np
import pytest

from glc.features.po_correction import po_correction_lists

# Training surveys 1..6 km east of the query; the 5 nearest all hold species 1, only 4 of them species 2.
T_IDS = np.arange(1, 7)
T_X = np.arange(1, 7) * 1000.0
T_Y = np.zeros(6)
T_LABELS = [np.array([1, 2]), np.array([1, 2]), np.array([1, 2]), np.array([1, 2]), np.array([1]), np.array([2, 3])]

# PO sites 1..11 north of the query at 0.5 km steps; species 9 at the 9 nearest, species 8 at 8 of the 10 nearest
# (sites 1-8) and at site 11, species 5 at site 10. Sites 1..8 hold two records each (species 8 and 9).
_po = [(s, 9) for s in range(1, 10)] + [(s, 8) for s in list(range(1, 9)) + [11]] + [(10, 5)]
PO_IDS = np.array([s + 500 for s, _ in _po])
PO_X = np.zeros(len(_po))
PO_Y = np.array([s * 500.0 for s, _ in _po])
PO_SP = np.array([sp for _, sp in _po])


def lists(**kw):
    base = dict(
        query_ids=[1000],
        query_x=[0.0],
        query_y=[0.0],
        train_ids=T_IDS,
        train_x=T_X,
        train_y=T_Y,
        train_labels=T_LABELS,
        po_ids=PO_IDS,
        po_x=PO_X,
        po_y=PO_Y,
        po_species=PO_SP,
    )
    base.update(kw)
    return po_correction_lists(**base)


def test_union_of_pa_and_po_lists_by_hand():
    got = lists()
    # species 1: 5 of 5 nearest surveys (> 4); species 2: 4 of 5 (not > 4); species 9: 9 of 10 PO sites (> 8);
    # species 8: 8 of 10 (not > 8)
    assert got[1000].tolist() == [1, 9]
    # each list alone
    assert lists(min_po_count=9, n_po=10)[1000].tolist() == [1]
    assert lists(min_train_count=4, n_train=5, po_ids=PO_IDS[:0], po_x=PO_X[:0], po_y=PO_Y[:0], po_species=PO_SP[:0])[
        1000
    ].tolist() == [1]
    # looser thresholds let the weaker species in
    assert lists(min_train_count=3, min_po_count=7)[1000].tolist() == [1, 2, 8, 9]


def test_po_unit_record_counts_records_not_sites():
    # the 10 nearest records are the two records of each of PO sites 1..5: species 9 is only 5 of them
    assert lists(po_unit="record")[1000].tolist() == [1]


def test_repeat_visit_of_the_query_site_is_ignored_unless_allowed():
    # training survey 7 is a repeat visit of the query's site holding species 1 and 2; when allowed it becomes the
    # nearest survey and species 2 fills 5 of the 5 nearest (7, 1, 2, 3, 4)
    kw = dict(
        train_ids=np.append(T_IDS, 7),
        train_x=np.append(T_X, 0.0),
        train_y=np.append(T_Y, 0.0),
        train_labels=T_LABELS + [np.array([1, 2])],
    )
    assert lists(**kw)[1000].tolist() == [1, 9]
    assert lists(**kw, exclude_same_site=False)[1000].tolist() == [1, 2, 9]
    # a training survey used as a query never counts itself: survey 1 sees surveys 2..6, where species 1 and 2 are
    # each held by only 4 (with itself, species 1 would be held by all 5 nearest and enter the list)
    assert lists(query_ids=[1], query_x=[1000.0], query_y=[0.0])[1].tolist() == [9]


def test_every_query_gets_an_entry_and_errors_name_the_problem():
    got = lists(query_ids=[1000, 1001], query_x=[0.0, 9.0e6], query_y=[0.0, 9.0e6], max_km=50.0)
    assert got[1001].size == 0 and got[1000].tolist() == [1, 9]
    with pytest.raises(ValueError, match="n_po/min_po_count=10/10: the threshold must be below"):
        lists(min_po_count=10)
    with pytest.raises(ValueError, match="PO records: 1 surveyId.*different coordinates.*first: 501"):
        lists(po_x=np.where(np.arange(len(PO_X)) == 9, 5.0, PO_X))
    with pytest.raises(ValueError, match="training surveys: 1 surveyId"):
        lists(train_ids=np.array([1, 1, 3, 4, 5, 6]))
