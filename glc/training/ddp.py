"""Multi-process (DDP) training: ``[train] devices = N > 1`` trains on N processes started by ``torchrun``.

Lightning's own DDP launcher starts the other ranks by re-running the current command line, which inside a Luigi
worker (or a notebook, or pytest) would re-run the DAG; so :func:`launch` starts the ranks itself, with
``python -m torch.distributed.run --standalone --nproc-per-node N -m glc.training.ddp_rank ...``. Each rank runs
:func:`glc.training.trainer.train_model` (which, seeing ``WORLD_SIZE``, builds a ``Trainer(devices=N,
strategy="ddp")`` and lets Lightning join the process group torchrun prepared); rank 0 writes the training
summary, which :func:`launch` returns to the caller (``TrainModel``), which then predicts in its own process.

* One process per GPU on a multi-GPU machine (NCCL); on CPU, N processes with the gloo backend.
* Data: every DataLoader worker of every rank reads its own shard of row groups (``glc.loaders.readers``); the
  training loader yields the same number of batches on every rank (the gradient all-reduce needs it); validation
  reads every row once and its metrics (``val/sample_f1``) are reduced across ranks, so early stopping and the
  best checkpoint see the metric of the whole split.
* The batch size is per rank: N ranks take N times the rows per optimiser step (scale ``lr`` or ``batch_size``).
* Not supported with ``[train] kfold > 1`` (the folds are trained one after another in one process).

Nothing here imports Spark or Luigi.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Written by rank 0 into the work folder: the training summary of the DDP run.
SUMMARY_FILE = "ddp_summary.json"


def in_distributed_run() -> bool:
    """Whether this process is a rank started by ``torchrun`` (or any launcher that sets ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch(
    inputs_dir: str | Path,
    work_dir: str | Path,
    cfg: Mapping[str, Any],
    run_name: str,
    *,
    progress: bool = True,
    wandb: bool = True,
    reader: str | None = None,
    pretrained: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Train on ``[train] devices`` processes with ``torchrun`` and return rank 0's training summary.

    Raises:
        RuntimeError: a rank failed (the command and exit code are named; the ranks' output is above it).
    """
    from glc.io import write_json

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    n = int(cfg["train"]["devices"])
    spec = work / "ddp_request.json"
    write_json(
        spec,
        {
            "inputs_dir": str(Path(inputs_dir).resolve()),
            "work_dir": str(work.resolve()),
            "cfg": dict(cfg),
            "run_name": run_name,
            "progress": progress,
            "wandb": wandb,
            "reader": reader,
            "pretrained": dict(pretrained or {}),
        },
    )
    summary = work / SUMMARY_FILE
    summary.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={n}",
        "-m",
        "glc.training.ddp_rank",
        str(spec.resolve()),
    ]
    log.info("training on %d processes: %s", n, " ".join(cmd))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))}
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0 or not summary.is_file():
        raise RuntimeError(
            f"DDP training on {n} processes failed (exit {proc.returncode}; command: {' '.join(cmd)}); the ranks' "
            f"output is above. Set [train] devices = 1 to train in one process."
        )
    return json.loads(summary.read_text())
