"""The spatial-CV benchmark dispatches through the model registry: in-memory kinds fit in memory, trained kinds get a
model-input table per fold from the one Spark writer (with any feature set's artifact), and benchmark entries come
from the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glc.config import resolve
from glc.eval.benchmark import bench_models, cv_benchmark
from glc.experiment import fit_predict


@pytest.fixture(scope="module")
def tiny_surveys(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """The tiny world's labelled surveys and its PatchTiles (k=8) artifact."""
    import luigi

    from glc.tasks import PatchTiles, SurveyTable
    from glc.tasks.surveys import read_surveys

    out = tmp_path_factory.mktemp("cv_out")
    patches = PatchTiles(data_root=str(tiny_world), out_root=str(out), k=8)
    assert luigi.build([patches], local_scheduler=True, workers=1)
    s = read_surveys(SurveyTable(data_root=str(tiny_world), out_root=str(out)).output())
    return s[s["split"] == "train"].reset_index(drop=True), patches.output().dir


def test_bench_entries_come_from_the_registry() -> None:
    every = bench_models(None)
    assert {"frequency", "region_frequency", "knn10", "radius50km", "gfv10km", "geolocation_mlp"} <= set(every)
    assert every["knn10"] == {"kind": "knn", "k": 10}
    for name, model in every.items():
        resolve({"model": model}, name)  # every entry is a valid [model] table


def test_a_trained_kind_is_fitted_per_fold_through_the_spark_writer(tiny_surveys) -> None:
    train, patches_dir = tiny_surveys
    rng = np.random.default_rng(0)
    held = rng.random(len(train)) < 0.25
    cfg = resolve(
        {
            "model": {"kind": "tile_cnn", "tiles": ["patch_dct"], "channels": [8], "reduce": 4, "latent": 16},
            "train": {"max_epochs": 1, "patience": 1, "batch_size": 64, "accelerator": "cpu"},
        }
    )
    scores = fit_predict(train[~held], train[held], cfg, {"patch_dct": patches_dir})
    assert sorted(scores.survey_ids) == sorted(train.loc[held, "surveyId"])
    assert np.isfinite(scores.prob).all() and (scores.prob >= 0).all() and (scores.prob <= 1).all()
    with pytest.raises(ValueError, match=r"reads feature set\(s\) \['patch_dct'\]; pass their artifact folders"):
        fit_predict(train[~held], train[held], cfg)


def test_cv_table_for_memory_and_trained_kinds(tiny_surveys) -> None:
    train, _ = tiny_surveys
    models = {"frequency": {"kind": "frequency"}, "geo": {"kind": "geolocation", "hidden": 16}}
    res = cv_benchmark(train, models=models, decoders=("topk",), n_folds=2, progress=False)
    rows = {r["model"]: r for r in res["models"]}
    assert set(rows) == {"frequency", "geo"} and res["protocol"]["n_folds"] == 2
    for r in rows.values():
        assert len(r["sample_f1_folds"]) == 2 and 0.0 < r["sample_f1_mean"] <= 1.0
