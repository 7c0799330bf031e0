"""K-fold cross fusion: folds are spatial blocks of the training split read as views of the stored table, fold 2..k
start from fold 1's best weights, and the published ensemble's logits are the mean of the folds' logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glc.config import resolve
from glc.loaders.fake import make_fake_inputs
from glc.training import trainer as trainer_mod
from glc.training.kfold import FoldEnsemble, fold_assignment


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kfold_inputs")
    make_fake_inputs(
        root,
        ("env",),
        sizes={"train": 150, "val": 40, "test": 20},
        num_classes=12,
        label_width=4,
        widths={"env": 5},
        rows_per_file=50,
        row_group_size=20,
    )
    return root


def _cfg(**train) -> dict:
    return resolve(
        {
            "seed": 1,
            "validation": {"block_km": 500.0},
            "model": {"kind": "geolocation", "hidden": 16, "extras": ["env"], "coord_noise_km": 0.0},
            "train": {
                "max_epochs": 2,
                "patience": 2,
                "batch_size": 32,
                "reader": "arrow",
                "accelerator": "cpu",
                "kfold": 3,
                "kfold_epochs": 1,
                "loss": {"kind": "bce"},
                **train,
            },
        }
    )


def test_folds_are_spatial_blocks_of_the_training_split(inputs: Path) -> None:
    import pyarrow.parquet as pq

    ids, folds = fold_assignment(inputs, _cfg())
    train = pq.read_table(inputs / "train", columns=["surveyId", "x", "y"]).to_pandas()
    assert sorted(ids.tolist()) == sorted(train["surveyId"].tolist()) and set(folds.tolist()) == {0, 1, 2}
    block = {
        int(s): (int(x // 500_000), int(y // 500_000)) for s, x, y in zip(train["surveyId"], train["x"], train["y"])
    }
    fold_of_block: dict = {}
    for s, f in zip(ids, folds):
        assert fold_of_block.setdefault(block[int(s)], int(f)) == int(f)  # a block never spans two folds


def test_later_folds_start_from_fold_one_and_the_ensemble_averages_logits(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[dict[str, torch.Tensor]] = []
    views: list[dict] = []
    from glc.training import fit as fit_mod

    real_fit = fit_mod.fit_model

    def spy(module, dm, *a, **kw):
        starts.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})
        views.append({k: len(v[1]) for k, v in dm.subsets.items()})
        return real_fit(module, dm, *a, **kw)

    monkeypatch.setattr(fit_mod, "fit_model", spy)
    cfg = _cfg()
    summary = trainer_mod.train_model(inputs, tmp_path / "work", cfg, "kfold", progress=False, wandb=False)
    folds = summary["folds"]
    assert summary["kfold"] == 3 and len(folds) == 3 and len(starts) == 3
    ids, assign = fold_assignment(inputs, cfg)
    for f, v in enumerate(views):  # fold f trains on the others and stops early on itself
        assert v == {"train": int((assign != f).sum()), "val": int((assign == f).sum())}
    first = torch.load(folds[0]["best_checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    first_net = {k[4:]: v for k, v in first.items() if k.startswith("net.")}
    assert not all(torch.equal(starts[0][k], first_net[k]) for k in first_net)  # fold 1 trained from its init
    for f in (1, 2):
        assert folds[f]["init"] == folds[0]["best_checkpoint"]
        for k, v in first_net.items():
            assert torch.equal(starts[f][k], v), (f, k)  # fold f starts exactly at fold 1's best weights

    # the published model: logits = mean of the three fold nets' logits
    from glc.loaders.tables import read_meta
    from glc.training.trainer import build_module, load_module, predict_splits

    meta = read_meta(inputs)
    ens = load_module(summary["best_checkpoint"], cfg, meta)
    assert isinstance(ens.net, FoldEnsemble) and len(ens.net.nets) == 3
    single = _cfg(kfold=1)
    nets = []
    for f in folds:
        m = build_module(single, meta)
        m.load_state_dict(torch.load(f["best_checkpoint"], map_location="cpu", weights_only=False)["state_dict"])
        nets.append(m.net.eval())
    dm = trainer_mod.datamodule(inputs, cfg, reader="arrow")
    batch = next(iter(dm.loader("test")))
    with torch.no_grad():
        want = torch.stack([n(batch) for n in nets]).mean(dim=0)
        torch.testing.assert_close(ens.net(batch), want)
    val, test, _ = predict_splits(inputs, summary["best_checkpoint"], cfg)
    assert len(test) == 20 and np.isfinite(test.prob).all()


def test_a_kfold_config_refuses_outside_views(inputs: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trains its own folds"):
        trainer_mod.train_model(inputs, tmp_path, _cfg(), "x", progress=False, wandb=False, init="x.ckpt")
    with pytest.raises(ValueError, match="fold"):
        FoldEnsemble([torch.nn.Linear(2, 2)])


def test_a_rerun_does_not_enter_finished_folds(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from glc.training.kfold import FOLD_SUMMARY

    built: list[int] = []
    real_dm = trainer_mod.datamodule

    def spy(*a, **kw):
        built.append(1)
        return real_dm(*a, **kw)

    monkeypatch.setattr(trainer_mod, "datamodule", spy)
    cfg = _cfg()
    first = trainer_mod.train_model(inputs, tmp_path / "work", cfg, "kfold", progress=False, wandb=False)
    assert len(built) == 3 and all((tmp_path / "work" / f"fold{f}" / FOLD_SUMMARY).is_file() for f in range(3))

    built.clear()  # a rerun: every fold finished, none is entered; the same ensemble
    again = trainer_mod.train_model(inputs, tmp_path / "work", cfg, "kfold", progress=False, wandb=False)
    assert built == []
    assert [f["best_checkpoint"] for f in again["folds"]] == [f["best_checkpoint"] for f in first["folds"]]
    assert again["best_monitor"] == first["best_monitor"]

    # a fold whose summary is gone is entered again (and resumes from its own checkpoints)
    (tmp_path / "work" / "fold1" / FOLD_SUMMARY).unlink()
    redo = trainer_mod.train_model(inputs, tmp_path / "work", cfg, "kfold", progress=False, wandb=False)
    assert len(built) == 1 and (tmp_path / "work" / "fold1" / FOLD_SUMMARY).is_file()
    assert redo["folds"][1]["best_checkpoint"] == first["folds"][1]["best_checkpoint"]

    # a moved work folder still counts its finished folds: their checkpoints are found under the new folder
    built.clear()
    shutil.move(str(tmp_path / "work"), str(tmp_path / "moved"))
    moved = trainer_mod.train_model(inputs, tmp_path / "moved", cfg, "kfold", progress=False, wandb=False)
    assert built == [] and all(f["best_checkpoint"].startswith(str(tmp_path / "moved")) for f in moved["folds"])
    assert Path(moved["best_checkpoint"]).is_file() and moved["best_monitor"] == first["best_monitor"]
