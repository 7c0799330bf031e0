"""glc.training.callbacks.EpochTimer under a real Lightning Trainer: the epoch's seconds are its training steps' time,
with the validation Lightning runs inside the training epoch left out, and each record keeps its training window."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from glc.training.callbacks import EpochTimer, throughput

VAL_SLEEP_S = 0.6


class _Tiny(pl.LightningModule):
    """A linear model on dict batches whose validation step sleeps (a slow validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.lin(batch["x"]).pow(2).mean()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        time.sleep(VAL_SLEEP_S)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n: int) -> torch.utils.data.DataLoader:
    """``n`` batches of 4 rows as ``{"x": tensor}`` (the trainer's batch form)."""
    x = torch.randn(4 * n, 3, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.DataLoader(list(x), batch_size=4, collate_fn=lambda rows: {"x": torch.stack(rows)})


def test_epoch_seconds_leave_validation_out_and_records_keep_the_training_window(tmp_path: Path) -> None:
    timing = tmp_path / "timing.jsonl"
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        callbacks=[EpochTimer(timing)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1,
    )
    t0 = time.time()
    trainer.fit(_Tiny(), _loader(5), _loader(1))
    recs = [json.loads(line) for line in timing.read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [0, 1] and all(r["samples"] == 20 for r in recs)
    # each epoch validated (one sleeping step) inside the training epoch: its seconds do not hold that sleep
    assert all(r["seconds"] < VAL_SLEEP_S / 2 for r in recs), recs
    assert time.time() - t0 > 2 * VAL_SLEEP_S  # the validations did run
    for r in recs:
        assert t0 <= r["wall_start"] <= r["wall_end"] <= time.time()
    assert recs[0]["wall_end"] + VAL_SLEEP_S * 0.9 <= recs[1]["wall_start"]  # epoch 0's validation lies between
    assert throughput(timing)["epoch_windows"] == [[r["wall_start"], r["wall_end"]] for r in recs]
