"""Pretraining data (glc.loaders.pretrain): assembly from artifact folders, the .npz round trip, bad inputs, and the
batches of each objective (training triplets stay inside the training sites, held-out anchors are val/test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from glc.features.neighbours import neighbours_numpy
from glc.loaders.pretrain import PretrainData, PretrainDataModule, pretrain_data


def _fake(n: int = 120, seed: int = 0) -> PretrainData:
    rng = np.random.default_rng(seed)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    x, y = rng.uniform(3e6, 5e6, n), rng.uniform(2e6, 4e6, n)
    role = np.array(["train"] * (n - 30) + ["val"] * 20 + ["test"] * 10)
    table = neighbours_numpy(ids, x, y, ids, x, y, 400.0, k=5)
    return PretrainData(
        ids,
        role,
        x,
        y,
        rng.uniform(0, 20, n),
        rng.uniform(40, 55, n),
        rng.normal(size=(n, 3, 4, 4)).astype(np.float32),
        {"bioclim_dct": rng.normal(size=(n, 2, 5)).astype(np.float32)},
        table,
    )


def test_npz_round_trip_and_meta(tmp_path: Path) -> None:
    d = _fake()
    p = d.save(tmp_path / "d.npz")
    e = PretrainData.load(p)
    for k in ("ids", "role", "x", "y", "lon", "lat", "tiles"):
        assert np.array_equal(getattr(d, k), getattr(e, k)), k
    assert np.array_equal(d.cubes["bioclim_dct"], e.cubes["bioclim_dct"])
    assert np.array_equal(d.table.nbr_ids, e.table.nbr_ids)
    m = e.meta()
    assert m["roles"] == {"train": 90, "val": 20, "test": 10} and m["tile_shape"] == [3, 4, 4]
    assert np.allclose(np.asarray(m["tile_mean"]), d.tiles[d.role == "train"].mean(0), atol=1e-6)


def test_bad_tiles_fail_naming_the_survey() -> None:
    d = _fake()
    d.tiles[7, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="survey 1007"):
        PretrainData(d.ids, d.role, d.x, d.y, d.lon, d.lat, d.tiles)
    with pytest.raises(ValueError, match="unknown role"):
        PretrainData(d.ids, np.array(["po"] * len(d.ids)), d.x, d.y, d.lon, d.lat, np.zeros_like(d.tiles))


def test_missing_tile_in_the_artifact_raises(tmp_path: Path) -> None:
    surveys = tmp_path / "s" / "surveys"
    surveys.mkdir(parents=True)
    pd.DataFrame(
        {
            "surveyId": [1, 2, 3],
            "split": ["train", "train", "test"],
            "x": [0.0, 1.0, 2.0],
            "y": [0.0] * 3,
            "lon": [0.0] * 3,
            "lat": [45.0] * 3,
        }
    ).to_parquet(surveys / "p.parquet")
    tiles = tmp_path / "t" / "data"
    tiles.mkdir(parents=True)
    pd.DataFrame({"surveyId": [1, 3], "dct": [np.ones(4, np.float32)] * 2}).to_parquet(tiles / "p.parquet")
    with pytest.raises(ValueError, match="no patch_dct tile .*surveyId 2"):
        pretrain_data(tmp_path / "s", {"patch_dct": (tmp_path / "t", "dct", (1, 2, 2))}, np.array([], np.int64))


def test_triplet_batches_keep_training_and_held_out_sites_apart() -> None:
    d = _fake()
    dm = PretrainDataModule(d, "triplet", batch_size=16, seed=0, distant_km=500.0, val_triplets=64)
    train_rows = set(np.flatnonzero(d.role == "train"))
    tile_of = {d.tiles[i].tobytes(): i for i in range(len(d))}
    seen = []
    for b in dm.train_dataloader():
        for key in ("anchor", "neighbour", "distant"):
            rows = [tile_of[t.numpy().tobytes()] for t in b[key]]
            assert set(rows) <= train_rows, key
        seen.append(b["anchor"])
    assert sum(len(a) for a in seen) == len(train_rows) - dm.counts["train_anchor_without_neighbour"]
    for b in dm.val_dataloader():
        anchors = [tile_of[t.numpy().tobytes()] for t in b["anchor"]]
        assert all(d.role[i] in ("val", "test") for i in anchors)
    # epochs differ, the same epoch repeats exactly
    dm.set_epoch(1)
    e1 = torch.cat([b["distant"] for b in dm.train_dataloader()])
    e1b = torch.cat([b["distant"] for b in dm.train_dataloader()])
    dm.set_epoch(2)
    e2 = torch.cat([b["distant"] for b in dm.train_dataloader()])
    assert torch.equal(e1, e1b) and not torch.equal(e1, e2)


def test_clip_batches_pair_each_tile_with_its_own_location() -> None:
    d = _fake()
    dm = PretrainDataModule(d, "clip", batch_size=32, seed=0, cube_columns=("bioclim_dct",))
    for b in dm.train_dataloader():
        for t, lon, c in zip(b["tile"], b["lon"], b["bioclim_dct"]):
            i = int(np.flatnonzero((d.tiles == t.numpy()).all(axis=(1, 2, 3)))[0])
            assert (
                d.lon[i] == float(lon) and np.array_equal(d.cubes["bioclim_dct"][i], c.numpy()) and d.role[i] == "train"
            )
    assert sum(len(b["tile"]) for b in dm.val_dataloader()) == 30
