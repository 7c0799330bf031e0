"""fit_model (exact resume, early stopping, checkpoints), AtomicCheckpointIO, W&B offline run files, predict_probs."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from glc.training.callbacks import EpochSeed
from glc.training.checkpoint import AtomicCheckpointIO
from glc.training.fit import FitSettings, fit_model, predict_probs
from glc.training.module import MultiLabelModule
from glc.training.tracking import finish_logger, log_report, make_logger, resolve_wandb_mode
from tests.training.conftest import DictData

REPO = Path(__file__).resolve().parents[2]
NO_WANDB = {"mode": "disabled"}


# ---------------------------------------------------------------------------------------------- stand-ins
class ToyDM(pl.LightningDataModule):
    """Fixed toy data; the train order of epoch e is a permutation seeded by (seed, e), as the contract asks."""

    def __init__(
        self,
        seed: int = 0,
        batch_size: int = 16,
        crash_at_epoch: int | None = None,
        n_train: int = 96,
        n_val: int = 40,
        d: int = 3,
        c: int = 6,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        w = torch.randn(d, c, generator=g)

        def make(n: int, start: int) -> DictData:
            x = torch.randn(n, d, generator=g)
            target = ((x @ w + 0.7 * torch.randn(n, c, generator=g)) > 0.3).float()
            return DictData(torch.arange(start, start + n, dtype=torch.int64), x, target)

        self.train_set, self.val_set = make(n_train, 0), make(n_val, 10_000)
        self.seed, self.batch_size, self.crash_at_epoch = seed, batch_size, crash_at_epoch
        self.orders: dict[int, list[int]] = {}

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch
        if epoch == self.crash_at_epoch:
            raise RuntimeError(f"simulated crash before epoch {epoch}")
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        perm = torch.randperm(len(self.train_set), generator=g).tolist()
        self.orders[epoch] = [int(self.train_set.ids[i]) for i in perm]
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=perm)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False)


class DropNet(nn.Module):
    """Small MLP on 'x' with dropout, so model-side randomness matters for the resume test."""

    def __init__(self, d: int = 3, c: int = 6) -> None:
        super().__init__()
        self.l1, self.drop, self.l2 = nn.Linear(d, 16), nn.Dropout(0.3), nn.Linear(16, c)
        self.seen: list[int] = []  # surveyIds of the training batches, in order

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.training:
            self.seen.extend(batch["surveyId"].tolist())
        return self.l2(self.drop(torch.relu(self.l1(batch["x"]))))


def _module(init_seed: int, **kw: object) -> MultiLabelModule:
    torch.manual_seed(init_seed)
    kw = {"lr": 0.05, "val_k": 2, "num_classes": 6, **kw}
    return MultiLabelModule(DropNet(), nn.BCEWithLogitsLoss(), **kw)


def _settings(**kw: object) -> FitSettings:
    """The tests' fit settings: 4 epochs, no early stop, seed 7, CPU, no W&B (``kw`` overrides any)."""
    return FitSettings(
        **{
            "max_epochs": 4,
            "patience": 10,
            "seed": 7,
            "wandb_cfg": NO_WANDB,
            "accelerator": "cpu",
            "progress": False,
            "log_every_n_steps": 5,
            **kw,
        }
    )


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _metrics(out: Path, version: int = 0) -> pd.DataFrame:
    return pd.read_csv(out / "csv" / f"version_{version}" / "metrics.csv")


# ---------------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("interruption", ["crash", "max_epochs"])
def test_resumed_run_ends_with_identical_weights(tmp_path: Path, interruption: str) -> None:
    """4 epochs straight == 2 epochs, then a NEW trainer resumed from last.ckpt to 4 epochs (torch.equal on CPU).

    "crash": the first run dies before epoch 2 (same max_epochs, cosine schedule); "max_epochs": the first run is a
    complete 2-epoch fit, then extended to 4 (constant learning rate).
    """
    cosine = interruption == "crash"
    full_dm = ToyDM(seed=7)
    full_module = _module(0, cosine=cosine)
    best = fit_model(full_module, full_dm, tmp_path / "full", _settings())
    assert sorted(full_dm.orders) == [0, 1, 2, 3]

    cut = tmp_path / "cut"
    first_module = _module(0, cosine=cosine)
    if cosine:
        with pytest.raises(RuntimeError, match="simulated crash before epoch 2"):
            fit_model(first_module, ToyDM(seed=7, crash_at_epoch=2), cut, _settings())
    else:
        fit_model(first_module, ToyDM(seed=7), cut, _settings(max_epochs=2))
    after_two = _state(cut / "checkpoints" / "last.ckpt")

    resumed_module = _module(123, cosine=cosine)  # different init: the checkpoint must overwrite it
    fit_model(resumed_module, ToyDM(seed=7), cut, _settings())
    # batches seen before the interruption + after the restart == the uninterrupted run's batches
    full_seen, first_seen, resumed_seen = full_module.net.seen, first_module.net.seen, resumed_module.net.seen
    assert len(full_seen) == 4 * 96 and len(first_seen) == len(resumed_seen) == 2 * 96
    assert first_seen + resumed_seen == full_seen
    assert full_seen[:96] != full_seen[96:192]  # the order changes between epochs

    final_full, final_cut = (
        _state(tmp_path / "full" / "checkpoints" / "last.ckpt"),
        _state(cut / "checkpoints" / "last.ckpt"),
    )
    _assert_same_state(final_full, final_cut)
    _assert_same_state(full_module.state_dict(), resumed_module.state_dict())
    assert not torch.equal(after_two["net.l1.weight"], final_cut["net.l1.weight"])  # epochs 2-3 did train

    # best checkpoint = highest val/sample_f1 of the epochs; no temporary file left behind
    m = _metrics(tmp_path / "full")
    f1 = m["val/sample_f1"].dropna().to_numpy()
    assert len(f1) == 4
    best_epoch = int(np.argmax(f1))  # first maximum, as ModelCheckpoint keeps the first of equal scores
    assert best.name == f"epoch{best_epoch:03d}-f1{f1[best_epoch]:.4f}.ckpt"
    assert torch.load(best, map_location="cpu", weights_only=False)["epoch"] == best_epoch
    assert not [p for p in (tmp_path / "full" / "checkpoints").iterdir() if not p.name.endswith(".ckpt")]


class EnvDropNet(DropNet):
    """DropNet on the ``env`` column of a model-input table (the data module's batches)."""

    def __init__(self, d: int = 4, c: int = 12) -> None:
        super().__init__(d, c)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().forward({"surveyId": batch["surveyId"], "x": batch["env"]})


class CrashAt(pl.Callback):
    """Dies before training batch ``batch`` of epoch ``epoch`` (as a step timeout or a lost machine would)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            raise RuntimeError(f"simulated kill at epoch {self.epoch} batch {self.batch}")


@pytest.fixture(scope="module")
def env_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from glc.loaders.fake import make_fake_inputs

    root = tmp_path_factory.mktemp("mid_epoch_inputs")
    make_fake_inputs(
        root,
        ("env",),
        sizes={"train": 160, "val": 40, "test": 10},
        num_classes=12,
        label_width=3,
        widths={"env": 4},
        rows_per_file=40,
        row_group_size=20,
    )
    return root


@pytest.mark.parametrize("reader", ["arrow", "petastorm"])
def test_resume_from_a_mid_epoch_checkpoint_ends_with_identical_weights(
    env_table: Path, tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 epochs straight == killed inside epoch 1 and resumed from the mid-epoch last.ckpt (torch.equal on CPU).

    10 batches of 16 rows per epoch; last.ckpt every 3 steps, so the kill before batch 7 of epoch 1 (step 17) leaves
    the checkpoint of step 15 (5 batches of epoch 1 done): the resumed run must train on batches 5-9 of epoch 1's
    order, not on the epoch again from its start, and its timing record must count the whole epoch.
    """
    from glc.loaders.datamodule import SurveyDataModule

    def dm() -> SurveyDataModule:
        return SurveyDataModule(env_table, columns=("env",), batch_size=16, reader=reader, seed=3, shuffle_buffer=64)

    def module(init_seed: int) -> MultiLabelModule:
        torch.manual_seed(init_seed)
        return MultiLabelModule(
            EnvDropNet(), nn.BCEWithLogitsLoss(), lr=0.05, val_k=2, num_classes=12, step_epochs=1, step_gamma=0.5
        )

    settings = _settings(max_epochs=3, checkpoint_every_n_steps=3)
    full = module(0)
    fit_model(full, dm(), tmp_path / "full", settings)

    cut = tmp_path / "cut"
    first = module(0)
    crash = CrashAt(epoch=1, batch=7)
    real_trainer = pl.Trainer
    monkeypatch.setattr(pl, "Trainer", lambda **a: real_trainer(**{**a, "callbacks": [*a["callbacks"], crash]}))
    with pytest.raises(RuntimeError, match="simulated kill at epoch 1 batch 7"):
        fit_model(first, dm(), cut, settings)
    monkeypatch.setattr(pl, "Trainer", real_trainer)
    ck = torch.load(cut / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (ck["epoch"], ck["global_step"]) == (1, 15)
    assert ck["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches": 5}]

    resumed = module(99)  # another init: the checkpoint must overwrite it
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*dataloader is\s+not resumable")
        fit_model(resumed, dm(), cut, settings)

    rows = 16
    full_seen, first_seen, resumed_seen = full.net.seen, first.net.seen, resumed.net.seen
    assert len(full_seen) == 3 * 160 and len(first_seen) == 160 + 7 * rows  # epoch 0 and batches 0-6 of epoch 1
    assert first_seen[: 160 + 5 * rows] + resumed_seen == full_seen  # batches 5-6 of epoch 1 trained again, once
    assert full_seen[:160] != full_seen[160:320]
    _assert_same_state(full.state_dict(), resumed.state_dict())
    _assert_same_state(
        _state(tmp_path / "full" / "checkpoints" / "last.ckpt"), _state(cut / "checkpoints" / "last.ckpt")
    )

    timing = [json.loads(line) for line in (cut / "timing.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["samples"]) for r in timing] == [(0, 160), (1, 160), (2, 160)]


def test_mid_epoch_checkpoint_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        fit_model(_module(0), ToyDM(), tmp_path, _settings(checkpoint_minutes=5, checkpoint_every_n_steps=3))
    with pytest.raises(ValueError, match="checkpoint_minutes=-1"):
        fit_model(_module(0), ToyDM(), tmp_path, _settings(checkpoint_minutes=-1))


def test_early_stopping_then_rerun_does_not_train_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[str] = []
    orig = AtomicCheckpointIO.save_checkpoint

    def spy(self: AtomicCheckpointIO, checkpoint: dict, path: str, storage_options: object = None) -> None:
        saved.append(Path(path).name)
        orig(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", spy)
    # lr so small the weights do not move: val/sample_f1 never improves after epoch 0 -> stop after 1 + patience epochs
    module = _module(0, lr=1e-12, weight_decay=0.0)
    out = tmp_path / "run"
    best = fit_model(module, ToyDM(), out, _settings(max_epochs=20, patience=2))
    f1 = _metrics(out)["val/sample_f1"].dropna().to_numpy()
    assert len(f1) == 3 and np.ptp(f1) == 0.0
    assert best.name.startswith("epoch000-")
    assert "last.ckpt" in saved and best.name in saved  # checkpoints go through AtomicCheckpointIO

    last = out / "checkpoints" / "last.ckpt"
    mtime = last.stat().st_mtime_ns
    dm = ToyDM()
    assert fit_model(_module(0, lr=1e-12), dm, out, _settings(max_epochs=20, patience=2)) == best
    assert dm.orders == {} and last.stat().st_mtime_ns == mtime and not (out / "csv" / "version_1").exists()

    with pytest.raises(FileExistsError, match=r"already holds 2 checkpoint\(s\).*pass resume=True"):
        fit_model(_module(0), ToyDM(), out, _settings(resume=False))


def test_a_run_that_ran_its_epochs_is_not_trained_again_even_in_a_moved_folder(tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "run"
    best = fit_model(_module(0), ToyDM(), out, _settings(max_epochs=2, patience=5))
    last = out / "checkpoints" / "last.ckpt"
    ck = torch.load(last, map_location="cpu", weights_only=False)
    assert ck["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 2  # Lightning's count of epochs run
    mtime = last.stat().st_mtime_ns
    dm = ToyDM()
    assert fit_model(_module(0), dm, out, _settings(max_epochs=2, patience=5)) == best
    assert dm.orders == {} and last.stat().st_mtime_ns == mtime and not (out / "csv" / "version_1").exists()

    # moved: the checkpoints name the old folder; the best one is found by name under the new one, nothing trains
    shutil.move(str(out), str(tmp_path / "moved"))
    dm = ToyDM()
    assert fit_model(_module(0), dm, tmp_path / "moved", _settings(max_epochs=2, patience=5)) == (
        tmp_path / "moved" / "checkpoints" / best.name
    )
    assert dm.orders == {}

    # more epochs asked of the moved run: it resumes there and names a checkpoint of the new folder
    moved = fit_model(_module(0, lr=1e-12), ToyDM(), tmp_path / "moved", _settings(max_epochs=3, patience=5))
    assert moved.parent == tmp_path / "moved" / "checkpoints" and moved.is_file()


def test_unreadable_last_checkpoint_is_named(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"last\.ckpt: cannot read the checkpoint to resume from .*delete it"):
        fit_model(_module(0), ToyDM(), tmp_path, _settings())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_epochs": 0}, "max_epochs=0 must be >= 1"),
        ({"patience": 0}, "patience=0 must be >= 1"),
        ({"wandb_cfg": {"mode": "bogus"}}, r"wandb_cfg\['mode'\]='bogus' must be one of"),
        ({"wandb_cfg": {"projekt": "x"}}, r"wandb_cfg has unknown keys \['projekt'\]"),
    ],
)
def test_bad_fit_arguments(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_model(_module(0), ToyDM(), tmp_path, _settings(**kw))
    assert not (tmp_path / "checkpoints").exists()


def test_without_reseeding_dropout_breaks_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control for the test above: with EpochSeed switched off, the same resume gives different weights."""
    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", lambda *a, **k: None)
    monkeypatch.setattr(EpochSeed, "on_train_batch_start", lambda *a, **k: None)
    full = _module(0)
    fit_model(full, ToyDM(seed=7), tmp_path / "full", _settings(max_epochs=3))
    fit_model(_module(0), ToyDM(seed=7), tmp_path / "cut", _settings(max_epochs=2))
    resumed = _module(0)
    fit_model(resumed, ToyDM(seed=7), tmp_path / "cut", _settings(max_epochs=3))
    assert not torch.equal(full.net.l1.weight, resumed.net.l1.weight)


# ---------------------------------------------------------------------------------------------- atomic checkpoints
def test_atomic_checkpoint_roundtrip(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "sub" / "a.ckpt"
    io.save_checkpoint({"w": torch.arange(5.0), "epoch": 3}, path)
    back = io.load_checkpoint(path, weights_only=False)
    assert back["epoch"] == 3 and torch.equal(back["w"], torch.arange(5.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, path, storage_options={"x": 1})


def test_crash_during_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    io.save_checkpoint({"version": 1}, last)

    def broken_save(obj: object, f: object, *a: object, **k: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint" * 100)  # type: ignore[attr-defined]
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        io.save_checkpoint({"version": 2}, last)
    with pytest.raises(OSError, match="simulated"):
        io.save_checkpoint({"version": 2}, tmp_path / "epoch001.ckpt")
    monkeypatch.undo()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no half file, no temp debris
    assert list(tmp_path.glob("*.ckpt")) == [last]
    assert io.load_checkpoint(last, weights_only=False) == {"version": 1}


def test_hard_kill_during_save_leaves_no_ckpt_file(tmp_path: Path) -> None:
    """SIGKILL in the middle of a save: neither the final path nor anything matching *.ckpt appears."""
    if not hasattr(os, "kill") or sys.platform == "win32":
        pytest.skip("needs POSIX signals")
    code = textwrap.dedent(
        f"""
        import os, signal, torch
        from glc.training.checkpoint import AtomicCheckpointIO
        def dying_save(obj, f, *a, **k):
            f.write(b"half" * 1000); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        torch.save = dying_save
        AtomicCheckpointIO().save_checkpoint({{"v": 1}}, {str(tmp_path / "last.ckpt")!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    left = [p.name for p in tmp_path.iterdir()]
    assert not (tmp_path / "last.ckpt").exists() and list(tmp_path.glob("*.ckpt")) == []
    assert len(left) == 1 and left[0].startswith(".last.ckpt.") and left[0].endswith(".tmp")  # debris, never *.ckpt


# ---------------------------------------------------------------------------------------------- predict
def test_predict_probs_in_loader_order(tmp_path: Path) -> None:
    dm = ToyDM()
    module = _module(0)
    module.train()
    loader = DataLoader(dm.val_set, batch_size=7, shuffle=False)
    ids, probs = predict_probs(module, loader, device="cpu")
    assert ids.dtype == np.int64 and probs.dtype == np.float32 and probs.shape == (40, 6)
    np.testing.assert_array_equal(ids, np.arange(10_000, 10_040))
    module.eval()
    with torch.no_grad():
        want = torch.sigmoid(module.net({"x": dm.val_set.x})).numpy()
    np.testing.assert_allclose(probs, want, rtol=1e-6, atol=1e-7)  # eval mode: dropout off
    module.train()
    predict_probs(module, loader, device="cpu")
    assert module.training  # mode restored

    with pytest.raises(ValueError, match="yielded no batches"):
        predict_probs(module, [], device="cpu")
    bad = DictData(dm.val_set.ids, dm.val_set.x.clone(), dm.val_set.target)
    bad.x[9, 1] = float("nan")
    with pytest.raises(ValueError, match=r"batch 1: NaN/inf probabilities \(surveyIds \[10007"):
        predict_probs(module, DataLoader(bad, batch_size=7), device="cpu")


# ---------------------------------------------------------------------------------------------- W&B
def _wandb_records(path: Path) -> list:
    """Decode the records of an offline ``.wandb`` file (LevelDB-log framing, protobuf ``Record``s)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} does not start with the W&B log header"
    block, pos, buf, out = 32768, 7, b"", []
    while True:
        if block - pos % block < 7:
            pos += block - pos % block
        if pos + 7 > len(data):
            break
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind in (1, 2):
            buf = chunk
        elif kind in (3, 4):
            buf += chunk
        else:
            break
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def _items(records: list, kind: str) -> dict[str, object]:
    got: dict[str, object] = {}
    for r in records:
        if r.WhichOneof("record_type") == kind:
            part = getattr(r, kind)
            for it in part.update if kind in ("config", "summary") else part.item:
                got[it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
    return got


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))


def test_wandb_mode_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_wandb_mode(None) == "offline"
    assert resolve_wandb_mode({"mode": "Online"}) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode({"mode": "online"}) == "offline"  # the environment can only lower the mode
    monkeypatch.setenv("WANDB_MODE", "online")
    assert resolve_wandb_mode({"mode": "offline"}) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode({"mode": "online"}) == "disabled"
    assert make_logger({"mode": "online"}, Path("/nonexistent-never-created"), "x", {}) is None


def test_wandb_offline_run_holds_config_metrics_and_report(tmp_path: Path, wandb_env: None) -> None:
    import wandb

    out = tmp_path / "run"
    cfg = {"mode": "offline", "project": "glc-test", "group": "unit", "tags": ["t1"]}
    config = {"seed": 7, "model": {"hidden": 16}, "marker": "cfg-1b2c"}
    logger = make_logger(cfg, out, "unit-run", config)
    best = fit_model(
        _module(0),
        ToyDM(),
        out,
        _settings(max_epochs=1, wandb_cfg=cfg, run_name="unit-run", config=config),
        wandb_logger=logger,
    )
    assert wandb.run is not None  # a caller-supplied logger stays open for the report
    log_report(logger, {"benchmark": {"sample_f1": np.float64(0.125)}, "best_checkpoint": best})
    finish_logger(logger)
    assert wandb.run is None

    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = list(runs[0].glob("run-*.wandb"))
    assert len(files) == 1
    records = _wandb_records(files[0])
    conf = _items(records, "config")
    assert conf["marker"] == "cfg-1b2c" and conf["model"] == {"hidden": 16} and conf["val_k"] == 2  # + module hparams
    f1_csv = float(_metrics(out)["val/sample_f1"].dropna().iloc[0])
    assert _items(records, "history")["val/sample_f1"] == pytest.approx(f1_csv, abs=1e-6)
    summ = _items(records, "summary")
    assert summ["benchmark"] == {"sample_f1": 0.125} and summ["best_checkpoint"] == str(best)
    assert any(r.WhichOneof("record_type") == "exit" for r in records)  # the run was finished cleanly
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.project, run.run_group, list(run.tags), run.display_name) == ("glc-test", "unit", ["t1"], "unit-run")

    # fit_model's own logger (from wandb_cfg): same run id on resume, finished when fit_model returns
    assert (
        fit_model(_module(0), ToyDM(), out, _settings(max_epochs=1, wandb_cfg=cfg, run_name="unit-run", config=config))
        == best
    )
    assert wandb.run is None
    rid = (out / "wandb" / "glc-run-id").read_text().strip()
    runs = sorted((out / "wandb").glob("offline-run-*"))  # two (wandb adds "-1" when both start in the same second)
    assert runs and all(re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{rid}(-\d+)?", r.name) for r in runs), runs
    for f in (out / "wandb").glob("offline-run-*/run-*.wandb"):
        assert _wandb_records(f)[-1].WhichOneof("record_type") == "exit", f


def test_log_report_rejects_nan_and_logs_numbers_to_csv(tmp_path: Path) -> None:
    from pytorch_lightning.loggers import CSVLogger

    lg = CSVLogger(tmp_path, name="csv")
    with pytest.raises(ValueError, match=r"report values \['a/b'\] are NaN"):
        log_report(lg, {"a": {"b": float("nan")}})
    log_report(lg, {"a": {"b": 0.5}, "name": "x"})
    assert pd.read_csv(Path(lg.log_dir) / "metrics.csv")["a/b"].tolist() == [0.5]
    log_report(None, {"a": 1})


def test_settings_from_an_experiment_config() -> None:
    from glc.config import resolve

    cfg = resolve({"name": "x", "seed": 3, "train": {"max_epochs": 7, "patience": 2, "precision": "bf16-mixed"}})
    s = FitSettings.from_config(cfg, monitor="val/loss", mode="min", wandb=False, accelerator="cpu", progress=False)
    assert (s.max_epochs, s.patience, s.seed, s.precision, s.monitor, s.mode) == (
        7,
        2,
        3,
        "bf16-mixed",
        "val/loss",
        "min",
    )
    assert s.checkpoint_minutes == cfg["train"]["checkpoint_minutes"] and s.wandb_cfg == {"mode": "disabled"}
    assert s.config["name"] == "x" and (s.accelerator, s.progress) == ("cpu", False)
    with pytest.raises(ValueError, match="patience=0"):
        FitSettings.from_config(cfg, patience=0)
