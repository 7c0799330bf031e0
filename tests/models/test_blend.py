"""Late fusion: blended score tables, fitted weights on the simplex, the in-memory blend of benchmark entries."""

from __future__ import annotations

import numpy as np
import pytest

from glc.config import resolve
from glc.experiment import fit_predict
from glc.models.blend import blend_tables, combine_experiments, fit_blend_weights, simplex_grid
from glc.predict.scores import top_n
from tests.fakes import toy_surveys


def _table(ids, P, vocab):
    return top_n(np.asarray(ids), np.asarray(P, np.float32), np.asarray(vocab), 3)


def test_blend_of_one_member_is_that_member_and_weights_average() -> None:
    a = _table([1, 2], [[0.9, 0.1, 0.3], [0.2, 0.8, 0.0]], [10, 11, 12])
    one = blend_tables([a], [1.0], n=3)
    assert np.array_equal(one.species, a.species) and np.allclose(one.prob, a.prob)
    b = _table([2, 1], [[0.0, 0.4, 0.6], [0.5, 0.5, 0.0]], [11, 12, 13])  # other row order and vocabulary
    m = blend_tables([a, b], [0.5, 0.5], n=4)
    got = dict(zip(m.species[0].tolist(), m.prob[0].tolist()))  # survey 1: a {10:.9,11:.1,12:.3}, b {11:.5,12:.5}
    assert got[10] == pytest.approx(0.45) and got[11] == pytest.approx(0.3) and got[12] == pytest.approx(0.4)
    s = blend_tables([a, b], [0.5, 0.5], normalise="sum", n=4)
    assert s.prob.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        blend_tables([a, b], [0.7, 0.7])
    with pytest.raises(ValueError, match="one weight per member"):
        blend_tables([a, b], [1.0])


def test_simplex_grid_and_fitted_weights_sum_to_one() -> None:
    g = simplex_grid(3, 0.25)
    assert len(g) == 15 and np.allclose(g.sum(axis=1), 1) and (g >= 0).all()
    assert g[:3].max(axis=1).tolist() == [1.0, 1.0, 1.0]  # vertices first
    good = _table([1, 2], [[0.9, 0.8, 0.1], [0.1, 0.9, 0.8]], [10, 11, 12])
    bad = _table([1, 2], [[0.1, 0.1, 0.9], [0.9, 0.1, 0.1]], [10, 11, 12])
    truth = {1: np.array([10, 11]), 2: np.array([11, 12])}
    w, info = fit_blend_weights([good, bad], truth, step=0.1)
    assert w.sum() == pytest.approx(1.0) and w[0] >= 0.5
    assert info["val_f1"] >= max(info["member_val_f1"])


def test_combine_refuses_members_with_other_validation_surveys() -> None:
    a = _table([1, 2], [[0.9, 0.1, 0.3], [0.2, 0.8, 0.0]], [10, 11, 12])
    c = _table([1, 3], [[0.9, 0.1, 0.3], [0.2, 0.8, 0.0]], [10, 11, 12])
    cfg = resolve({"model": {"kind": "blend", "experiments": ["a", "c"], "weights": [0.5, 0.5]}})["model"]
    with pytest.raises(ValueError, match="other validation surveys"):
        combine_experiments({"a": (a, a), "c": (c, a)}, {1: [10], 2: [11], 3: [12]}, cfg)
    val, test, info = combine_experiments({"a": (a, a), "b": (a, a)}, {1: [10], 2: [11]}, cfg)
    assert info["weights"] == [0.5, 0.5] and np.allclose(val.prob, a.prob)


def test_in_memory_blend_of_benchmark_entries() -> None:
    df = toy_surveys(400, seed=3)
    train, query = df[df["y"] < 3.3e6], df[df["y"] >= 3.3e6]
    cfg = resolve({"model": {"kind": "blend", "models": ["knn10", "radius50km"], "top_n": 60}})
    t = fit_predict(train, query, cfg)
    assert len(t) == len(query) and t.prob.max() <= 1.0
    with pytest.raises(ValueError, match="exactly one"):
        resolve({"model": {"kind": "blend", "models": ["knn10"], "experiments": ["knn"]}})
    with pytest.raises(ValueError, match="model.models is empty"):
        fit_predict(train, query, resolve({"model": {"kind": "blend"}}))
