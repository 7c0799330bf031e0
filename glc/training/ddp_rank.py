"""One rank of a DDP training run: ``python -m glc.training.ddp_rank <request.json>`` under ``torchrun``.

Started by :func:`glc.training.ddp.launch` (a module of its own so that ``glc.training.trainer`` can call the
launcher without an import cycle).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from glc.training.ddp import SUMMARY_FILE, in_distributed_run


def main(argv: list[str] | None = None) -> int:
    """One rank: ``python -m glc.training.ddp_rank <request.json>`` under ``torchrun`` (see :func:`launch`)."""
    ap = argparse.ArgumentParser(description="one DDP rank of glc training (started by glc.training.ddp.launch)")
    ap.add_argument("request", type=Path)
    a = ap.parse_args(argv)
    if not in_distributed_run():
        raise SystemExit("glc.training.ddp: run under torchrun (WORLD_SIZE > 1); glc.training.ddp.launch does that")
    logging.basicConfig(
        level=logging.INFO, format=f"[rank {os.environ.get('RANK')}] %(levelname)s %(name)s: %(message)s"
    )
    req = json.loads(a.request.read_text())
    from glc.io import write_json
    from glc.training.trainer import train_model

    summary = train_model(
        req["inputs_dir"],
        req["work_dir"],
        req["cfg"],
        req["run_name"],
        progress=req["progress"] and os.environ.get("RANK") == "0",
        wandb=req["wandb"],
        reader=req["reader"],
        pretrained=req["pretrained"] or None,
    )
    if os.environ.get("RANK") == "0":
        write_json(Path(req["work_dir"]) / SUMMARY_FILE, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
