"""glc.decoding registry: every decoder fits and decodes through one interface, deterministically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glc.decoding import DECODERS, decode, fit_decoder
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists, make_world


@pytest.fixture(scope="module")
def split_world() -> dict:
    P, Y = make_world(500, 200, seed=9)
    n_hat = Y.sum(axis=1) + np.random.default_rng(0).normal(0, 2, size=len(Y))
    return {
        "P_val": P[:250],
        "Y_val": Y[:250],
        "P_test": P[250:],
        "Y_test": Y[250:],
        "n_val": n_hat[:250],
        "n_test": n_hat[250:],
    }


def _extras(name: str, w: dict, part: str) -> dict:
    return {"n_hat": w[f"n_{part}"]} if name == "count" else {}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_fit_decode_roundtrip(name: str, split_world: dict) -> None:
    w = split_world
    kw = {"n_samples": 200} if name == "expected_f1_mc" else {}
    params = fit_decoder(name, w["P_val"], w["Y_val"], **kw, **_extras(name, w, "val"))
    assert params["name"] == name
    assert json.loads(json.dumps(params)) == params  # JSON-able for decoder.json
    # the in-sample F1 reported by the fit is the metric of the decoded validation sets
    val_sets = decode(name, w["P_val"], params, **_extras(name, w, "val"))
    assert params["f1"] == pytest.approx(sample_f1(as_lists(w["Y_val"]), val_sets), abs=1e-12)
    sets = decode(name, w["P_test"], params, **_extras(name, w, "test"))
    again = decode(name, w["P_test"].copy(), params, **_extras(name, w, "test"))
    assert len(sets) == len(w["P_test"])
    assert all(np.array_equal(a, b) for a, b in zip(sets, again))  # deterministic
    ranking = np.argsort(-w["P_test"], axis=1, kind="stable")
    for i, s in enumerate(sets):
        assert s.dtype == np.int64 and len(s) >= 1  # never empty
        np.testing.assert_array_equal(s, ranking[i, : len(s)])  # a prefix of the ranking
    # a fitted decoder does better than a fixed top-1 on held-out surveys
    top1 = sample_f1(as_lists(w["Y_test"]), [r[:1] for r in ranking])
    assert sample_f1(as_lists(w["Y_test"]), sets) > top1


def test_registry_errors(split_world: dict) -> None:
    w = split_world
    with pytest.raises(ValueError, match="decoder 'oracle' is not registered"):
        fit_decoder("oracle", w["P_val"], w["Y_val"])
    with pytest.raises(ValueError, match=r"decoder 'count' fit needs \['n_hat'\]"):
        fit_decoder("count", w["P_val"], w["Y_val"])
    with pytest.raises(ValueError, match=r"params for decoder 'topk' lack \['k'\]"):
        decode("topk", w["P_test"], {})
    with pytest.raises(ValueError, match="params were fitted for decoder 'threshold', not 'topk'"):
        decode("topk", w["P_test"], {"name": "threshold", "k": 3})
    with pytest.raises(TypeError, match="decoder 'topk' does not take"):
        decode("topk", w["P_test"], {"k": 3}, n_hat=np.ones(250))


def test_hand_set_params() -> None:
    P = np.array([[0.9, 0.1, 0.5]])
    assert decode("topk", P, {"k": 2})[0].tolist() == [0, 2]
    assert decode("threshold_topk", P, {"mode": "filter", "K": 3, "theta": 0.4})[0].tolist() == [0, 2]
