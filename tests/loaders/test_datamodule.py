"""SurveyDataModule: batch contract, epoch orders taken from the trainer (and reproduced after a resume), two
DataLoader workers without duplicates, corrupt files failing ``trainer.fit`` with the file named."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint

from glc.data.errors import DataError
from glc.loaders import READERS, SurveyDataModule
from glc.loaders.readers import EpochPlan
from tests.loaders import make_model_inputs

BATCH = 64


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("model_inputs")
    return root, make_model_inputs(root)


def ids(loader) -> np.ndarray:
    return np.concatenate([b["surveyId"].numpy() for b in loader])


def expected_order(dm: SurveyDataModule, epoch: int) -> np.ndarray:
    """The single-process training order of ``epoch`` straight from the reader."""
    src = dm.source("train")
    return np.concatenate([b["surveyId"] for b in src.batches(EpochPlan(epoch, dm.seed, True, dm.batch_size))])


class Recorder(pl.LightningModule):
    """A linear model on (x, y) that records which surveys each training step saw."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, num_classes)
        self.seen: list[tuple[int, np.ndarray]] = []

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        xy = torch.stack([batch["x"] / 1e6, batch["y"] / 1e6], 1)
        return F.binary_cross_entropy_with_logits(self.lin(xy), batch["target"])

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch["surveyId"].numpy().copy()))
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), batch_size=len(batch["surveyId"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def epochs(self) -> dict[int, np.ndarray]:
        out: dict[int, list[np.ndarray]] = {}
        for e, s in self.seen:
            out.setdefault(e, []).append(s)
        return {e: np.concatenate(v) for e, v in out.items()}


def trainer(tmp_path: Path, max_epochs: int, **kw) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        deterministic=True,
        **kw,
    )


# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", READERS)
def test_batch_contract(table, reader):
    root, frames = table
    dm = SurveyDataModule(
        root, columns=("x", "y", "lon", "lat", "year", "region", "env"), batch_size=BATCH, reader=reader
    )
    assert dm.num_classes == 50 and dm.meta["label_width"] == 8 and dm.meta["columns"]["env"]["shape"] == [4]
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert {k: (v.dtype, tuple(v.shape)) for k, v in batch.items()} == {
        "surveyId": (torch.int64, (BATCH,)),
        "x": (torch.float32, (BATCH,)),
        "y": (torch.float32, (BATCH,)),
        "lon": (torch.float32, (BATCH,)),
        "lat": (torch.float32, (BATCH,)),
        "year": (torch.int64, (BATCH,)),
        "region": (torch.int64, (BATCH,)),
        "env": (torch.float32, (BATCH, 4)),
        "target": (torch.float32, (BATCH, 50)),
    }
    val = ids(dm.val_dataloader())
    np.testing.assert_array_equal(val, frames["val"]["surveyId"])  # val: stored order, every row
    pred = list(dm.predict_dataloader())
    assert "target" not in pred[0] and "labels" not in pred[0]
    np.testing.assert_array_equal(np.concatenate([b["surveyId"].numpy() for b in pred]), frames["test"]["surveyId"])
    assert len(dm.train_dataloader()) == 5  # ceil(300 / 64)


def test_epoch_comes_from_the_trainer_or_a_counter(table):
    root, _ = table
    dm = SurveyDataModule(root, batch_size=BATCH, reader="arrow", seed=3)
    loader = dm.train_dataloader()
    first, second = ids(loader), ids(loader)  # no trainer: epochs 0 and 1
    np.testing.assert_array_equal(first, expected_order(dm, 0))
    np.testing.assert_array_equal(second, expected_order(dm, 1))
    dm.trainer = SimpleNamespace(current_epoch=4)  # attached trainer: its epoch wins, however often iterated
    np.testing.assert_array_equal(ids(loader), expected_order(dm, 4))
    np.testing.assert_array_equal(ids(dm.train_dataloader()), expected_order(dm, 4))
    again = SurveyDataModule(root, batch_size=BATCH, reader="arrow", seed=3)
    np.testing.assert_array_equal(ids(again.train_dataloader()), first)
    assert not np.array_equal(
        ids(SurveyDataModule(root, batch_size=BATCH, reader="arrow", seed=4).train_dataloader()), first
    )


def test_loader_state_resumes_inside_its_epoch_only(table):
    """state_dict / load_state_dict: the next pass over the saved epoch starts after its finished batches; a state of
    another epoch, or one counting the whole epoch (an end-of-epoch checkpoint), skips nothing; a bad state is named."""
    root, _ = table
    dm = SurveyDataModule(root, batch_size=BATCH, reader="arrow", seed=3)
    dm.trainer = SimpleNamespace(current_epoch=2)
    loader = dm.train_dataloader()
    whole = [b["surveyId"].numpy() for b in loader]  # 5 batches of epoch 2
    it = iter(loader)
    next(it), next(it)
    assert loader.state_dict() == {"epoch": 2, "batches": 2}  # no fit loop: what it handed out
    loader.load_state_dict({"epoch": 2, "batches": 3})
    np.testing.assert_array_equal(ids(loader), np.concatenate(whole[3:]))
    np.testing.assert_array_equal(ids(loader), np.concatenate(whole))  # one pass only
    for state in ({"epoch": 1, "batches": 3}, {"epoch": 2, "batches": 5}, {"epoch": 2, "batches": 0}):
        loader.load_state_dict(state)
        np.testing.assert_array_equal(ids(loader), np.concatenate(whole))
    with pytest.raises(ValueError, match="expected {'epoch': int, 'batches': int}"):
        loader.load_state_dict({"step": 3})


@pytest.mark.parametrize("reader", READERS)
def test_two_workers_no_duplicates_and_deterministic(table, reader):
    root, frames = table
    dm = SurveyDataModule(root, batch_size=BATCH, reader=reader, num_workers=2)
    loader = dm.train_dataloader()
    e0, e1 = ids(loader), ids(loader)
    for order in (e0, e1):
        assert len(order) == len(np.unique(order)) == 300
        assert set(order) == set(frames["train"]["surveyId"])
    assert not np.array_equal(e0, e1)
    counts = [sum(1 for _ in loader) for _ in range(3)]  # epochs 2..4
    bound = len(loader)  # each worker's last batch may be short: ceil(300 / 64) + 1 at most
    assert all(5 <= c <= bound for c in counts) and bound == 6
    if reader == "memory":  # rows are dealt by position (150 each): the same count every epoch
        assert counts == [bound] * 3
    np.testing.assert_array_equal(
        ids(SurveyDataModule(root, batch_size=BATCH, reader=reader, num_workers=2).train_dataloader()), e0
    )
    workers = list(loader._iterator._workers)  # persistent: the same two processes served every epoch
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    dm.teardown("fit")
    assert all(not w.is_alive() for w in workers) and loader._iterator is None


def test_fit_with_two_persistent_workers_follows_the_trainer(table, tmp_path):
    root, _ = table
    reference = SurveyDataModule(root, batch_size=BATCH, reader="arrow", num_workers=2, seed=5).train_dataloader()
    expected = {0: ids(reference), 1: ids(reference)}  # counter epochs 0 and 1, same worker sharding
    dm = SurveyDataModule(root, batch_size=BATCH, reader="arrow", num_workers=2, seed=5)
    module = Recorder(dm.num_classes)
    trainer(tmp_path, 2, enable_checkpointing=False).fit(module, datamodule=dm)
    seen = module.epochs()
    for e in (0, 1):
        np.testing.assert_array_equal(seen[e], expected[e])
    assert not np.array_equal(seen[0], seen[1])


def test_fit_reads_each_epochs_order_and_resume_reproduces_it(table, tmp_path):
    root, frames = table
    dm = SurveyDataModule(root, batch_size=BATCH, reader="petastorm", seed=7)
    straight = Recorder(dm.num_classes)
    trainer(tmp_path / "a", 3).fit(straight, datamodule=dm)
    seen = straight.epochs()
    assert sorted(seen) == [0, 1, 2]
    for e, order in seen.items():
        np.testing.assert_array_equal(order, expected_order(dm, e))
        assert set(order) == set(frames["train"]["surveyId"]) and len(order) == 300
    assert not np.array_equal(seen[0], seen[1])

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = Recorder(dm.num_classes)
    trainer(tmp_path / "b", 1, callbacks=[ckpt]).fit(
        first, datamodule=SurveyDataModule(root, batch_size=BATCH, reader="petastorm", seed=7)
    )
    resumed = Recorder(dm.num_classes)
    dm2 = SurveyDataModule(root, batch_size=BATCH, reader="petastorm", seed=7)
    trainer(tmp_path / "c", 3, enable_checkpointing=False).fit(
        resumed, datamodule=dm2, ckpt_path=tmp_path / "ckpt" / "last.ckpt"
    )
    after = resumed.epochs()
    assert sorted(after) == [1, 2]
    for e in (1, 2):
        np.testing.assert_array_equal(after[e], seen[e])


def test_corrupt_file_fails_fit_naming_it(tmp_path):
    root = tmp_path / "t"
    make_model_inputs(root, sizes={"train": 120, "val": 40, "test": 20}, rows_per_file=50, row_group_size=20)
    bad = root / "train" / "part-00001.parquet"
    bad.write_bytes(bad.read_bytes()[:-100])
    dm = SurveyDataModule(root, batch_size=32, reader="petastorm")
    module = Recorder(dm.num_classes)
    with pytest.raises(DataError, match=r"corrupt parquet file .*train/part-00001\.parquet"):
        trainer(tmp_path, 1).fit(module, datamodule=dm)
    assert module.seen == []  # failed before the first step


def test_argument_errors(table, tmp_path):
    root, _ = table
    with pytest.raises(ValueError, match=r"reader='spark' is not one of"):
        SurveyDataModule(root, reader="spark")
    with pytest.raises(ValueError, match=r"column\(s\) \['elevation'\] are not in .*meta.json"):
        SurveyDataModule(root, columns=("x", "elevation")).setup("fit")
    with pytest.raises(ValueError, match="without 'labels'"):
        SurveyDataModule(root, columns=("x", "labels"))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        SurveyDataModule(root, batch_size=0)
    with pytest.raises(ValueError, match=r"split='dev' is not one of"):
        SurveyDataModule(root).loader("dev")
    no_env = tmp_path / "no_env"
    make_model_inputs(no_env, sizes={"train": 30, "val": 10, "test": 10}, env_dim=0)
    with pytest.raises(ValueError, match=r"column\(s\) \['env'\] are not in .*meta.json .*ModelInputs features"):
        SurveyDataModule(no_env, columns=("x", "env")).setup("fit")
    with pytest.raises(ValueError, match=r"column\(s\) \['gfv'\] are not in .*meta.json"):
        SurveyDataModule(no_env, columns=("x", "gfv")).setup("fit")
    dm = SurveyDataModule(no_env, columns=("x", "region"), batch_size=8, reader="memory")
    dm.setup("fit")
    assert set(next(iter(dm.train_dataloader()))) == {"surveyId", "x", "region", "target"}


@pytest.mark.parametrize("reader", READERS)
def test_gfv_column_is_delivered(tmp_path, reader):
    root = tmp_path / "gfv"
    frames = make_model_inputs(root, sizes={"train": 40, "val": 20, "test": 10}, env_dim=0, gfv_dim=50)
    dm = SurveyDataModule(root, columns=("x", "y", "gfv"), batch_size=16, reader=reader)
    assert dm.meta["columns"]["gfv"]["shape"] == [50] and "env" not in dm.meta["columns"]
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["gfv"].dtype == torch.float32 and tuple(batch["gfv"].shape) == (16, 50)
    np.testing.assert_array_equal(batch["gfv"].numpy(), np.stack(frames["val"]["gfv"][:16]))
    pred = next(iter(dm.predict_dataloader()))
    np.testing.assert_array_equal(pred["gfv"].numpy(), np.stack(frames["test"]["gfv"][:10]))


@pytest.mark.parametrize("reader", READERS)
def test_a_split_view_reads_exactly_its_rows(table, reader):
    """A k-fold view (``subsets``) of the stored train split: every reader delivers exactly the named rows, once per
    epoch, in full batches; a view naming rows the split lacks is refused at setup."""
    root, frames = table
    train_ids = frames["train"]["surveyId"].to_numpy()
    fold = train_ids[::3]
    rest = np.setdiff1d(train_ids, fold)
    dm = SurveyDataModule(
        root,
        columns=("x",),
        batch_size=BATCH,
        reader=reader,
        subsets={"train": ("train", rest), "val": ("train", fold)},
    )
    dm.setup("fit")
    got = ids(dm.train_dataloader())
    assert sorted(got.tolist()) == sorted(rest.tolist())
    assert sorted(ids(dm.val_dataloader()).tolist()) == sorted(fold.tolist())
    sizes = [len(b["surveyId"]) for b in dm.train_dataloader()]
    assert all(s == BATCH for s in sizes[:-1]) and sum(sizes) == len(rest)
    assert len(dm.train_dataloader()) == -(-len(rest) // BATCH)
    bad = SurveyDataModule(
        root, columns=("x",), batch_size=BATCH, reader=reader, subsets={"val": ("train", [*fold, -7])}
    )
    with pytest.raises(ValueError, match="names .* surveyIds but .* of them are rows of"):
        bad.setup("fit")
    with pytest.raises(ValueError, match="must map a split"):
        SurveyDataModule(root, subsets={"fold": ("train", fold)})


def test_the_memory_readers_views_of_a_split_come_from_one_decode(table, monkeypatch):
    """The k-fold trainer's train and held-out views of the stored train split: the memory reader decodes the split
    once for both, and each view holds the tensors a decode of its own rows gives."""
    import glc.loaders.readers as readers

    root, frames = table
    train_ids = frames["train"]["surveyId"].to_numpy()
    fold, rest = train_ids[1::4], np.setdiff1d(train_ids, train_ids[1::4])
    decodes: list[str] = []
    real = readers.read_piece

    def counted(piece, *a, **k):
        decodes.append(piece.path)
        return real(piece, *a, **k)

    monkeypatch.setattr(readers, "read_piece", counted)
    subsets = {"train": ("train", rest), "val": ("train", fold)}
    dm = SurveyDataModule(root, columns=("x", "env"), batch_size=BATCH, reader="memory", subsets=subsets)
    dm.setup("fit")
    pieces = len(dm.source("train").info.pieces)
    assert len(decodes) == pieces  # each row group of the stored split once, for both views
    for split, keep in (("train", rest), ("val", fold)):
        alone = readers.MemorySource(dm.source(split).info, keep=keep)
        got = dm.source(split).tensors
        assert got.keys() == alone.tensors.keys()
        assert all(torch.equal(got[k], alone.tensors[k]) for k in got)
    assert sorted(ids(dm.val_dataloader()).tolist()) == sorted(fold.tolist())
    # a single view decodes only for itself; a view naming rows the split lacks is still refused
    decodes.clear()
    one = SurveyDataModule(root, columns=("x",), batch_size=BATCH, reader="memory", subsets={"val": ("train", fold)})
    one.setup("fit")
    assert len(decodes) == 2 * pieces  # the whole train split, then the view's own decode of it
    bad = SurveyDataModule(
        root, columns=("x",), batch_size=BATCH, reader="memory", subsets={**subsets, "val": ("train", [*fold, -7])}
    )
    with pytest.raises(ValueError, match="'val' view names .* surveyIds but .* of them are rows of"):
        bad.setup("fit")
