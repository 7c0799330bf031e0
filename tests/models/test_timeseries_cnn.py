"""The time-series CNN: each channel's 64 DCT coefficients become one 8x8 plane (row-major), channels of different
surveys never mix, statistics come from meta.json, bad settings are named, the generic trainer fits it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glc.config import ConfigError, resolve
from glc.loaders.fake import distinct_values, make_fake_inputs
from glc.loaders.tables import read_meta
from glc.models.registry import get_model
from glc.models.timeseries_cnn import SeriesBranch, build_timeseries_cnn


def _identity_stats(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(shape, np.float32), np.ones(shape, np.float32)


def test_series_become_row_major_planes_without_interleaving() -> None:
    ids = np.arange(7, 12)
    landsat = torch.from_numpy(distinct_values(ids, (6, 64)))
    bioclim = torch.from_numpy(distinct_values(ids + 500, (4, 64)))
    branch = SeriesBranch(
        ["landsat_dct", "bioclim_dct"],
        [(6, 64), (4, 64)],
        [_identity_stats((6, 64)), _identity_stats((4, 64))],
        channels=(8,),
        reduce=4,
        latent=16,
    ).eval()
    planes = branch.planes({"landsat_dct": landsat, "bioclim_dct": bioclim})
    assert tuple(planes.shape) == (5, 10, 8, 8)
    np.testing.assert_array_equal(planes[:, :6].numpy(), landsat.numpy().reshape(5, 6, 8, 8))
    np.testing.assert_array_equal(planes[:, 6:].numpy(), bioclim.numpy().reshape(5, 4, 8, 8))
    # coefficient i of channel c sits at row i // 8, column i % 8 of plane c
    np.testing.assert_array_equal(planes[:, 2, 3, 5].numpy(), landsat[:, 2, 3 * 8 + 5].numpy())
    assert branch({"landsat_dct": landsat, "bioclim_dct": bioclim}).shape == (5, 16)


def test_series_are_standardised_per_element() -> None:
    mean = np.arange(6 * 64, dtype=np.float32).reshape(6, 64)
    std = np.full((6, 64), 4.0, np.float32)
    branch = SeriesBranch(["landsat_dct"], [(6, 64)], [(mean, std)], channels=(8,), reduce=4, latent=16).eval()
    x = torch.from_numpy(mean + 8.0).unsqueeze(0)
    torch.testing.assert_close(branch.planes({"landsat_dct": x}), torch.full((1, 6, 8, 8), 2.0))


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"series must all be \(C, n\) with one square n"):
        SeriesBranch(["x"], [(6, 60)], [_identity_stats((6, 60))])
    with pytest.raises(ConfigError, match=r"model\.series\[0\] = 'patch_dct': not a valid value"):
        resolve({"model": {"kind": "timeseries_cnn", "series": ["patch_dct"]}})
    with pytest.raises(ConfigError, match="model.series is empty"):
        resolve({"model": {"kind": "timeseries_cnn", "series": []}})


def test_fits_from_a_model_input_table(tmp_path: Path) -> None:
    from glc.training.trainer import predict_splits, train_model

    root = tmp_path / "inputs"
    make_fake_inputs(
        root,
        ("landsat_dct", "bioclim_dct"),
        sizes={"train": 80, "val": 24, "test": 12},
        num_classes=15,
        label_width=4,
        rows_per_file=40,
        row_group_size=16,
    )
    cfg = resolve(
        {
            "model": {
                "kind": "timeseries_cnn",
                "series": ["landsat_dct", "bioclim_dct"],
                "channels": [8],
                "reduce": 4,
                "latent": 16,
                "location": {"encoder": "xy", "latent": 8},
            },
            "train": {"max_epochs": 2, "patience": 2, "batch_size": 32, "reader": "petastorm", "accelerator": "cpu"},
        }
    )
    net = build_timeseries_cnn(cfg["model"], read_meta(root))
    assert set(net.branches) == {"series", "location"} and net.input_columns == ("landsat_dct", "bioclim_dct", "x", "y")
    assert get_model("timeseries_cnn").features(cfg["model"]) == ("landsat_dct", "bioclim_dct")
    summary = train_model(root, tmp_path / "work", cfg, "test", progress=False, wandb=False)
    assert 0.0 <= summary["best_monitor"] <= 1.0
    val, test, _ = predict_splits(root, summary["best_checkpoint"], cfg)
    assert len(val) == 24 and len(test) == 12 and np.isfinite(val.prob).all()
