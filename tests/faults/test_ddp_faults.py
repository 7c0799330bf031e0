"""A DDP rank SIGKILLed mid-epoch (2 CPU ranks, gloo, started by torchrun through :func:`glc.training.ddp.launch`).

Expected: the surviving rank does not hang: torchrun sees the dead rank, stops the other and exits non-zero, and
``launch`` raises naming the command, within a bounded time. Rerun with the same work folder, training resumes from
``checkpoints/last.ckpt`` (rewritten at every epoch end) and ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch

from glc.config import resolve
from glc.loaders.fake import make_fake_inputs
from glc.training.trainer import train_model
from tests.faults.conftest import FaultCase

#: Seconds from the kill to ``launch`` returning, above which the case is a hang.
EXIT_BOUND_S = 120


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_fault_inputs")
    make_fake_inputs(
        root,
        ("env",),
        sizes={"train": 4000, "val": 200, "test": 20},
        num_classes=12,
        label_width=4,
        widths={"env": 5},
        rows_per_file=500,
        row_group_size=50,
    )
    return root


def _cfg() -> dict:
    return resolve(
        {
            "seed": 5,
            "model": {"kind": "geolocation", "hidden": 64, "extras": ["env"], "coord_noise_km": 0.0},
            "train": {
                "max_epochs": 6,
                "patience": 6,
                "batch_size": 16,
                "reader": "arrow",
                "accelerator": "cpu",
                "lr": 3e-3,
                "loss": {"kind": "bce"},
                "devices": 2,
                "strategy": "ddp",
            },
        }
    )


def _weights(work: Path) -> dict[str, torch.Tensor]:
    ck = torch.load(work / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return {k: v for k, v in ck["state_dict"].items()}


def _ranks(parent: int) -> dict[int, psutil.Process]:
    """The DDP rank processes under ``parent`` by their ``RANK``."""
    out = {}
    for p in psutil.Process(parent).children(recursive=True):
        try:
            if any("glc.training.ddp_rank" in c for c in p.cmdline()):
                out[int(p.environ().get("RANK", "-1"))] = p
        except psutil.Error:
            continue
    return out


@pytest.mark.slow
@pytest.mark.fault(
    fault="one of 2 DDP ranks (gloo, torchrun) SIGKILLed mid-epoch",
    where="glc.training.ddp.launch: training the geolocation MLP on 2 CPU processes",
    expected="the surviving rank exits within a bounded time (no hang) and launch raises naming the command; the "
    "rerun resumes from last.ckpt to the weights of an uninterrupted run",
)
def test_a_killed_rank_stops_the_run_and_the_rerun_resumes_to_the_same_weights(
    inputs: Path, tmp_path: Path, fault_case: FaultCase
) -> None:
    reference = tmp_path / "reference"
    train_model(inputs, reference, _cfg(), "reference", progress=False, wandb=False)
    want = _weights(reference)

    work = tmp_path / "faulted"
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["summary"] = train_model(inputs, work, _cfg(), "faulted", progress=False, wandb=False)
        except Exception as e:  # the expected outcome: launch raises
            result["error"] = e
        result["ended"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    last = work / "checkpoints" / "last.ckpt"
    killed_at = None
    deadline = time.monotonic() + 600
    while t.is_alive() and time.monotonic() < deadline:
        if killed_at is None and last.is_file():
            epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
            ranks = _ranks(psutil.Process().pid)
            if epoch >= 1 and 1 in ranks:
                time.sleep(0.3)  # into the next epoch's batches
                ranks[1].kill()
                killed_at = time.monotonic()
                fault_case.note(f"SIGKILLed rank 1 (pid {ranks[1].pid}) after last.ckpt of epoch {epoch} appeared")
        time.sleep(0.05)
    t.join(timeout=EXIT_BOUND_S)
    assert killed_at is not None, "the run ended before a rank could be killed: fault not injected"
    exited_in = float(result.get("ended", float("inf"))) - killed_at
    err = result.get("error")
    fault_case.note(f"launch returned {exited_in:.1f} s after the kill: {type(err).__name__}: {str(err)[:200]}")
    leftovers = [p for p in _ranks(psutil.Process().pid).values() if p.is_running()]

    resumed_from = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
    summary = train_model(inputs, work, _cfg(), "faulted", progress=False, wandb=False)
    newest = max((work / "csv").glob("version_*"), key=lambda d: int(d.name.split("_")[1]))
    first_epoch = int(pd.read_csv(newest / "metrics.csv")["epoch"].min())
    fault_case.note(f"rerun: last.ckpt held epoch {resumed_from}; the rerun's log starts at epoch {first_epoch}")
    got = _weights(work)
    same = sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    max_diff = max(float((got[k] - want[k]).abs().max()) for k in want)
    fault_case.record(
        observed=f"launch raised {type(err).__name__} {exited_in:.1f} s after the kill; rank processes left: "
        f"{len(leftovers)}; the rerun resumed at epoch {first_epoch} and ended with the uninterrupted run's "
        f"weights: {same} "
        f"(max |diff| {max_diff:.2e})",
        survived=isinstance(err, RuntimeError)
        and exited_in < EXIT_BOUND_S
        and not leftovers
        and same
        and first_epoch > 0,
        data_lost=not same,
    )
    assert isinstance(err, RuntimeError) and "DDP training on 2 processes failed" in str(err), err
    assert exited_in < EXIT_BOUND_S
    assert not leftovers
    assert summary["processes"] == 2
    assert first_epoch > 0, "the rerun trained from scratch instead of resuming"
    assert same, max_diff
