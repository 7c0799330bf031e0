"""Score tables: top_n ranks by decreasing score, ties by species id, whatever the columns' order or the scores'
sign."""

from __future__ import annotations

import numpy as np
import pytest

from glc.predict import scores
from glc.predict.scores import ScoreTable, top_n


def _reference(s: np.ndarray, vocab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The definition, spelled out: a full two-key sort of every row (decreasing score, then increasing species id)."""
    out_s, out_p = [], []
    for row in s.astype(np.float64):
        ranked = sorted(range(len(vocab)), key=lambda j: (-row[j], int(vocab[j])))[:n]
        out_s.append(vocab[ranked])
        out_p.append(row[ranked])
    shape = (len(s), min(n, len(vocab)))
    return np.array(out_s, np.int64).reshape(shape), np.array(out_p, np.float32).reshape(shape)


@pytest.mark.parametrize("chunk", [1 << 22, 50])  # one chunk; chunks of a few rows (rows ranked a chunk at a time)
@pytest.mark.parametrize("case", ["continuous", "heavy ties", "zeros and negative zeros", "signed with extremes"])
def test_top_n_matches_the_two_key_sort(case: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scores, "_CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng(
        ["continuous", "heavy ties", "zeros and negative zeros", "signed with extremes"].index(case)
    )
    for _ in range(40):
        r, v, n = int(rng.integers(0, 12)), int(rng.integers(1, 40)), int(rng.integers(1, 50))
        s = rng.random((r, v)).astype(np.float32)
        if case == "heavy ties":
            s = np.round(s * 3) / 3
        elif case == "zeros and negative zeros":
            s[s < 0.7] = 0.0
            s[rng.random((r, v)) < 0.2] = -0.0
        elif case == "signed with extremes":
            s = np.round(rng.normal(size=(r, v)) * 2).astype(np.float32) * 500
            if r:
                s[0, 0], s[-1, -1] = np.float32(3e38), np.float32(-3e38)
        vocab = rng.permutation(1000)[:v]  # not sorted: ties must still go by species id, not by column
        t = top_n(np.arange(r), s, vocab, n)
        species, prob = _reference(s, vocab, n)
        np.testing.assert_array_equal(t.species, species)
        np.testing.assert_array_equal(t.prob, prob)
        np.testing.assert_allclose(
            t.prob_rest, np.maximum(s.sum(1, dtype=np.float64) - prob.sum(1, dtype=np.float64), 0), rtol=1e-6
        )


def test_top_n_breaks_a_tie_at_the_cut_by_species_id() -> None:
    # five species tied at the cut of a top-3: the two with the smallest ids get the last places, whatever the columns
    s = np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.1]], np.float32)
    t = top_n(np.array([7]), s, np.array([90, 10, 40, 20, 80, 30]), 3)
    assert t.species.tolist() == [[10, 20, 30]]
    assert t.prob_rest[0] == pytest.approx(0.3)


def test_top_n_names_the_surveys_with_nan_scores() -> None:
    s = np.ones((3, 4), np.float32)
    s[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 survey\(s\) have NaN scores \(e\.g\. surveyId \[12\]\)"):
        top_n(np.array([11, 12, 13]), s, np.arange(4), 2)


def test_top_n_needs_one_species_per_column() -> None:
    with pytest.raises(ValueError, match="one species id per column"):
        top_n(np.arange(2), np.ones((2, 4), np.float32), np.arange(3), 2)


def _truth_columns_loop(t: ScoreTable, truth: dict[int, np.ndarray]) -> list[np.ndarray]:
    """The definition spelled out: a dictionary of each row's species -> column, truth de-duplicated and sorted; the
    k-th species outside the row's columns (k = 0, 1, ...) gets column width + k."""
    out = []
    for i, sid in enumerate(t.survey_ids):
        pos = {int(s): j for j, s in enumerate(t.species[i])}
        cols, misses = [], 0
        for s in np.unique(truth[int(sid)]):
            if int(s) in pos:
                cols.append(pos[int(s)])
            else:
                cols.append(t.species.shape[1] + misses)
                misses += 1
        out.append(np.array(cols, dtype=np.int64))
    return out


@pytest.mark.parametrize("width,scale", [(1, 3), (7, 3), (40, 3), (40, 2**53)])
def test_truth_columns_matches_the_per_row_lookup(width: int, scale: int) -> None:
    """Small ids (row keys over the id range) and ids too far apart for int64 row keys (dense codes first)."""
    rng = np.random.default_rng(width)
    n, pool = 60, 90
    species = np.stack([rng.choice(pool, width, replace=False) for _ in range(n)]) * scale - 20  # negative ids too
    t = ScoreTable(
        np.arange(1000, 1000 + n), species, rng.random((n, width), dtype=np.float32), np.zeros(n, np.float32)
    )
    truth = {
        int(s): rng.choice(pool * 4, rng.integers(0, 12)) * scale - 20 for s in t.survey_ids
    }  # repeats, misses, empty
    truth[1000] = np.array([], np.int64)
    truth[1001] = np.repeat(species[1, :1], 3)  # one species three times
    truth[1002] = list(species[2][::-1])  # every column, as a list
    got, want = t.truth_columns(truth), _truth_columns_loop(t, truth)
    assert len(got) == n and got[0].size == 0 and got[1].tolist() == [0]
    assert sorted(got[2].tolist()) == list(range(width))
    for g, w in zip(got, want):
        assert g.dtype == np.int64 and g.tolist() == w.tolist()


def test_truth_columns_of_no_rows_and_no_columns() -> None:
    empty = ScoreTable(
        np.empty(0, np.int64), np.empty((0, 5), np.int64), np.empty((0, 5), np.float32), np.empty(0, np.float32)
    )
    assert empty.truth_columns({}) == []
    narrow = ScoreTable(
        np.array([7, 8]), np.empty((2, 0), np.int64), np.empty((2, 0), np.float32), np.zeros(2, np.float32)
    )
    assert [c.tolist() for c in narrow.truth_columns({7: [3, 1], 8: []})] == [[0, 1], []]


def test_truth_columns_misses_count_one_each_in_the_f1_a_decoder_fit_reports() -> None:
    """Three true species outside a 2-column row are three false negatives: F1 of the top-1 (a hit) is 2/(1+4)."""
    from glc.decoding.prefix import PrefixF1

    t = ScoreTable(np.array([5]), np.array([[1, 2]]), np.array([[0.9, 0.2]], np.float32), np.zeros(1, np.float32))
    cols = t.truth_columns({5: [1, 7, 8, 9]})
    assert cols[0].tolist() == [0, 2, 3, 4]
    assert PrefixF1(t.prob, cols).mean(np.array([1])) == pytest.approx(2 / 5)


def test_truth_columns_names_a_survey_without_truth() -> None:
    t = ScoreTable(np.array([5]), np.array([[1, 2]]), np.array([[0.5, 0.2]], np.float32), np.zeros(1, np.float32))
    with pytest.raises(KeyError, match="5"):
        t.truth_columns({6: [1]})
