"""glc.decoding.count: species-count regressor and top-(N_hat + offset) decoding."""

from __future__ import annotations

import numpy as np
import pytest

from glc.decoding.count import CountModel, decode_count, fit_count_offset
from glc.metrics import sample_f1
from tests.decoding.conftest import as_lists


@pytest.mark.parametrize("kind", ["hgb", "glm"])
def test_count_model_learns_richness(kind: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 4))
    counts = rng.poisson(np.exp(2.0 + 0.6 * X[:, 0] - 0.4 * X[:, 1]))
    m = CountModel(kind=kind, seed=0).fit(X[:1000], counts[:1000])
    pred = m.predict(X[1000:])
    assert pred.min() >= 0
    assert np.corrcoef(pred, counts[1000:])[0, 1] > 0.75
    # and it beats predicting the mean count
    mse, mse0 = np.mean((pred - counts[1000:]) ** 2), np.mean((counts[:1000].mean() - counts[1000:]) ** 2)
    assert mse < 0.6 * mse0


def test_count_model_errors() -> None:
    with pytest.raises(ValueError, match="kind='xgb' is not known"):
        CountModel(kind="xgb")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="before fit"):
        CountModel().predict(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="n_species must be finite and >= 0"):
        CountModel().fit(np.zeros((3, 2)), [1, -1, 2])
    X = np.zeros((3, 2))
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"features\[1, 1\] = nan: the Poisson GLM needs finite features"):
        CountModel(kind="glm").fit(X, [1, 2, 3])
    m = CountModel(kind="glm").fit(np.c_[np.arange(20.0), np.ones(20)], np.arange(20))
    with pytest.raises(ValueError, match="features have 3 columns but the model was fitted on 2"):
        m.predict(np.zeros((1, 3)))


def test_decode_count_sizes() -> None:
    P = np.tile(np.linspace(1, 0, 10), (4, 1))
    sets = decode_count(P, n_hat=[0.2, 2.5, 3.49, 40.0], offset=1)
    # round half up: 0 -> 1, 3 -> 4, 3 -> 4, 40 -> 41 -> clipped to 10
    assert [len(s) for s in sets] == [1, 4, 4, 10]
    assert sets[1].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="n_hat has 2 values but the scores have 4 rows"):
        decode_count(P, n_hat=[1, 2])
    with pytest.raises(ValueError, match=r"n_hat\[1\] is not finite"):
        decode_count(P, n_hat=[1, np.nan, 1, 1])


def test_fit_offset_equals_brute_force(world) -> None:
    P, Y = world
    rng = np.random.default_rng(1)
    n_hat = Y.sum(axis=1) * rng.uniform(0.4, 0.8, size=len(Y))  # a count model biased low
    fit = fit_count_offset(P, Y, n_hat, offsets=range(-3, 8))
    brute = {o: sample_f1(as_lists(Y), decode_count(P, n_hat, o)) for o in range(-3, 8)}
    assert fit["offset"] == max(brute, key=lambda o: (brute[o], -o))
    assert fit["f1"] == pytest.approx(max(brute.values()))
    assert fit["offset"] > 0  # the low bias is corrected upwards


def test_species_count_model_and_count_decoding_pick_n_plus_offset() -> None:
    import pandas as pd

    from glc.config import resolve
    from glc.decoding.count import fit_predict_counts
    from glc.experiment import count_estimates, decode, fit_decoder
    from glc.predict.scores import top_n
    from tests.fakes import toy_surveys

    df = toy_surveys(500, seed=4)
    train, query = df.iloc[:400], df.iloc[400:].reset_index(drop=True)
    n_hat = fit_predict_counts(train, query, seed=0)
    true_n = query["speciesIds"].map(len).to_numpy()
    assert n_hat.shape == (100,) and (n_hat >= 0).all()
    assert np.mean((n_hat - true_n) ** 2) < 0.8 * np.mean((true_n.mean() - true_n) ** 2)  # better than the mean count
    rng = np.random.default_rng(0)
    scores = top_n(query["surveyId"].to_numpy()[::-1], rng.random((100, 60)), np.arange(60), 60)  # other row order
    cfg = resolve({"seed": 0, "decoder": {"kind": "count"}})
    nh = count_estimates(train, query, scores, cfg)
    aligned = pd.Series(n_hat, index=query["surveyId"]).loc[scores.survey_ids].to_numpy()
    np.testing.assert_allclose(nh, aligned)
    truth = dict(zip(query["surveyId"].astype(int), query["speciesIds"]))
    params = fit_decoder(scores, truth, cfg, n_hat=nh)
    sets = decode(scores, params, nh)
    for i, s in enumerate(scores.survey_ids):
        assert len(sets[int(s)]) == max(1, int(np.floor(nh[i] + 0.5)) + params["offset"])
    with pytest.raises(ValueError, match="n_hat"):
        fit_decoder(scores, truth, cfg)
