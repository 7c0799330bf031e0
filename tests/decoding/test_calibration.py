"""glc.decoding.calibration: temperature and Platt scaling recover known miscalibrations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from glc.decoding.calibration import PlattScaler, TemperatureScaler


@pytest.fixture(scope="module")
def calibrated_logits() -> tuple[np.ndarray, np.ndarray]:
    """True logits (800 x 200, mostly negative like species data) and labels drawn from them."""
    rng = np.random.default_rng(0)
    z = rng.normal(-3.0, 2.0, size=(800, 200))
    Y = rng.random(z.shape) < expit(z)
    return z, Y


def test_temperature_recovers_overconfidence(calibrated_logits) -> None:
    z, Y = calibrated_logits
    ts = TemperatureScaler().fit(3.0 * z, Y)  # an over-confident model: logits x 3
    assert ts.temperature_ == pytest.approx(3.0, rel=0.05)
    assert ts.loss_ < ts.loss_at_1_
    np.testing.assert_allclose(ts.transform(3.0 * z), expit(3.0 * z / ts.temperature_))


def test_temperature_subsampled_fit_agrees(calibrated_logits) -> None:
    z, Y = calibrated_logits
    full = TemperatureScaler().fit(3.0 * z, Y).temperature_
    sub = TemperatureScaler(max_entries=40_000, seed=1).fit(3.0 * z, Y).temperature_  # 25% of the entries
    assert sub == pytest.approx(full, rel=0.05)
    # truth as column-index lists gives the same fit as the matrix
    lists = [np.flatnonzero(r) for r in Y]
    assert TemperatureScaler().fit(3.0 * z, lists).temperature_ == pytest.approx(full, rel=1e-9)


def test_platt_recovers_slope_and_intercept(calibrated_logits) -> None:
    z, Y = calibrated_logits
    ps = PlattScaler().fit(2.0 * z - 1.0, Y)  # true p = sigmoid(0.5 * s + 0.5) for s = 2z - 1
    assert ps.a_ == pytest.approx(0.5, abs=0.03)
    assert ps.b_ == pytest.approx(0.5, abs=0.1)
    np.testing.assert_allclose(ps.transform(2.0 * z - 1.0), expit(ps.a_ * (2.0 * z - 1.0) + ps.b_))


def test_errors() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        TemperatureScaler().transform(np.zeros((1, 2)))
    with pytest.raises(RuntimeError, match="before fit"):
        PlattScaler().transform(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="no positive entry"):
        TemperatureScaler().fit(np.zeros((2, 3)), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"logits\[0, 1\] = inf"):
        PlattScaler().fit(np.array([[0.0, np.inf]]), [[0]])
