"""expected_f1_platt: Platt scaling fitted on validation undoes a monotone distortion of calibrated scores, so the
expected-F1 decoder works on scores that are not probabilities (e.g. from ASL)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from glc.decoding import decode, fit_decoder
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists, make_world


def _f1(P: np.ndarray, Y: np.ndarray, name: str, params: dict) -> float:
    pred = decode(name, P, params)
    return sample_f1(as_lists(Y), pred)


def test_platt_recovers_a_logit_affine_distortion() -> None:
    P, Y = make_world(1200, 200, seed=1)
    Q = expit(0.5 * logit(P) + 2.0)  # over-confident positives, like an ASL-trained net's sigmoid outputs
    fit_half, test_half = slice(0, 600), slice(600, None)
    cal = fit_decoder("expected_f1_platt", Q[fit_half], as_lists(Y[fit_half]))
    assert cal["platt_a"] == pytest.approx(2.0, rel=0.15) and cal["platt_b"] == pytest.approx(-4.0, rel=0.15)
    raw = fit_decoder("expected_f1", Q[fit_half], as_lists(Y[fit_half]), offsets=[0])
    oracle = fit_decoder("expected_f1", P[fit_half], as_lists(Y[fit_half]), offsets=[0])
    f_cal = _f1(Q[test_half], Y[test_half], "expected_f1_platt", cal)
    f_raw = _f1(Q[test_half], Y[test_half], "expected_f1", raw)
    f_true = _f1(P[test_half], Y[test_half], "expected_f1", oracle)
    assert f_cal > f_raw + 0.01
    assert f_cal == pytest.approx(f_true, abs=0.02)


def test_platt_params_are_required_at_decode() -> None:
    P, _ = make_world(20, 30, seed=2)
    with pytest.raises(ValueError, match="lack \\['platt_a', 'platt_b'\\]"):
        decode("expected_f1_platt", P, {"name": "expected_f1_platt", "k_max": 10})
