"""DDP training (``[train] devices = 2``, ``strategy = "ddp"``) on 2 CPU processes with gloo, started by torchrun.

* The validation metric a DDP run records is the metric of the whole split: the best checkpoint, re-validated in
  one plain process, gives the same ``val/sample_f1`` the two ranks computed together (every val row read once,
  the metric reduced across ranks).
* Training on 2 processes reaches the validation sample-F1 of 1 process within tolerance (not exactly: each step
  averages the gradients of two batches, so there are half as many steps of twice the rows).
* Shards: every DataLoader worker of every rank reads its own row groups; the training loader yields the same
  number of batches on every rank; a shard without rows is a clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glc.config import resolve
from glc.loaders.fake import make_fake_inputs
from glc.loaders.readers import ArrowSource, EpochPlan, SurveyIterableDataset
from glc.loaders.tables import read_meta, scan_split
from glc.training.trainer import train_model


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_inputs")
    make_fake_inputs(
        root,
        ("env",),
        sizes={"train": 400, "val": 120, "test": 20},
        num_classes=12,
        label_width=4,
        widths={"env": 5},
        rows_per_file=100,
        row_group_size=25,
    )
    return root


def _cfg(**train) -> dict:
    return resolve(
        {
            "seed": 3,
            "model": {"kind": "geolocation", "hidden": 32, "extras": ["env"], "coord_noise_km": 0.0},
            "train": {
                "max_epochs": 6,
                "patience": 6,
                "batch_size": 32,
                "reader": "arrow",
                "accelerator": "cpu",
                "lr": 3e-3,
                "loss": {"kind": "bce"},
                **train,
            },
        }
    )


def _revalidate(inputs: Path, ckpt: str, cfg: dict) -> float:
    import pytorch_lightning as pl

    from glc.training.trainer import datamodule, load_module

    dm = datamodule(inputs, cfg, "arrow", None)
    module = load_module(ckpt, cfg, dm.meta)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    return float(trainer.validate(module, datamodule=dm, verbose=False)[0]["val/sample_f1"])


def test_ddp_two_cpu_processes_match_one_process(inputs: Path, tmp_path: Path) -> None:
    one = train_model(inputs, tmp_path / "one", _cfg(), "one", progress=False, wandb=False)
    two_cfg = _cfg(devices=2, strategy="ddp")
    two = train_model(inputs, tmp_path / "two", two_cfg, "two", progress=False, wandb=False)
    assert one["processes"] == 1 and two["processes"] == 2
    assert Path(two["best_checkpoint"]).is_file()
    # the metric the two ranks computed together is the whole split's
    assert _revalidate(inputs, two["best_checkpoint"], two_cfg) == pytest.approx(two["best_monitor"], abs=1e-6)
    # the same problem learnt as well on two processes as on one (half the steps of twice the rows)
    assert abs(two["best_monitor"] - one["best_monitor"]) <= 0.05, (one["best_monitor"], two["best_monitor"])
    assert two["best_monitor"] > 0.0


def test_two_ranks_read_disjoint_shards_covering_the_split(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glc.loaders import readers

    info = scan_split(inputs / "train", read_meta(inputs), ("surveyId", "labels"))
    source = ArrowSource(info)
    seen = []
    for rank in range(2):
        monkeypatch.setattr(readers, "_world", lambda r=rank: (r, 2))
        ds = SurveyIterableDataset(source, 32, shuffle=True, seed=0, num_classes=12, with_target=False)
        seen.append(np.concatenate([b["surveyId"].numpy() for b in ds]))
    assert not set(seen[0]) & set(seen[1])
    all_ids = np.concatenate([b["surveyId"] for b in source.batches(EpochPlan(0, 0, False, 1000))])
    assert sorted(np.concatenate(seen).tolist()) == sorted(all_ids.tolist())


def test_training_shards_yield_equal_batches_and_an_empty_shard_is_an_error(
    inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glc.loaders import readers

    info = scan_split(inputs / "train", read_meta(inputs), ("surveyId", "labels"))  # 16 row groups of 25 rows
    source = ArrowSource(info)
    counts = []
    for rank in range(3):  # 16 row groups over 3 ranks: 6, 5, 5 -> unequal rows, equal batches
        monkeypatch.setattr(readers, "_world", lambda r=rank: (r, 3))
        ds = SurveyIterableDataset(
            source, 20, shuffle=True, seed=0, num_classes=12, with_target=False, equal_shards=True
        )
        counts.append(sum(1 for _ in ds))
    assert len(set(counts)) == 1 and counts[0] == ds.shard_batches(3)
    with pytest.raises(ValueError, match="has no rows"):
        ds.shard_batches(17)


def test_every_rank_gets_validation_rows_with_few_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranks are interleaved over the row groups: 2 ranks x 2 DataLoader workers over 2 val row groups still give
    each rank one (rank-major shards would give rank 1 none and hang DDP validation)."""
    from glc.loaders import readers

    make_fake_inputs(
        tmp_path,
        ("env",),
        sizes={"train": 100, "val": 50, "test": 10},
        num_classes=12,
        label_width=4,
        widths={"env": 5},
        rows_per_file=100,
        row_group_size=25,
    )
    info = scan_split(tmp_path / "val", read_meta(tmp_path), ("surveyId", "labels"))
    assert len([p for p in info.pieces if p.num_rows]) == 2
    for rank in range(2):
        monkeypatch.setattr(readers, "_world", lambda r=rank: (r, 2))
        ds = SurveyIterableDataset(
            ArrowSource(info), 10, shuffle=False, seed=0, num_classes=12, with_target=False, num_workers=2
        )
        assert len(ds) == 3  # 25 rows in batches of 10
    monkeypatch.setattr(readers, "_world", lambda: (1, 3))  # 3 ranks, 2 row groups: rank 1 has one, rank 2 none
    ds = SurveyIterableDataset(ArrowSource(info), 10, shuffle=False, seed=0, num_classes=12, with_target=False)
    assert len(ds) == 3
    monkeypatch.setattr(readers, "_world", lambda: (2, 3))
    with pytest.raises(ValueError, match="rank 2 of 3 has no rows"):
        len(ds)
