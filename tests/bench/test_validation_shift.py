"""``bench.validation_shift``: the scheme variants of an experiment file and the verdict on which scheme predicts."""

from __future__ import annotations

from bench.validation_shift import scheme_config, summarise
from glc.config import load_experiment


def test_scheme_config_changes_only_the_validation_scheme(tmp_path) -> None:
    path = scheme_config("gbm", "test_like", tmp_path)
    cfg, base = load_experiment(str(path)), load_experiment("gbm")
    assert cfg["name"] == "gbm" and cfg["validation"]["scheme"] == "test_like"
    cfg["validation"]["scheme"] = "blocks"
    assert cfg == base


def test_summarise_compares_only_experiments_run_under_every_scheme() -> None:
    rows = [
        {"experiment": "a", "scheme": "blocks", "abs_gap": 0.01},
        {"experiment": "a", "scheme": "test_like", "abs_gap": 0.05},
        {"experiment": "b", "scheme": "blocks", "abs_gap": 0.03},
        {"experiment": "b", "scheme": "test_like", "abs_gap": 0.02},
        {"experiment": "c", "scheme": "test_like", "abs_gap": 0.0},  # not run under blocks: left out of the means
    ]
    out = summarise(rows)
    assert out["experiments_compared"] == ["a", "b"]
    assert out["mean_abs_gap"] == {"blocks": 0.02, "test_like": 0.035} and out["better"] == "blocks"
    assert summarise([])["better"] is None
