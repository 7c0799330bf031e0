"""The fusion model on a GPU box: carry a ``ModelInputs`` table there, train it with the generic trainer, and score
the submission it would make on the hidden test labels (epoch time, samples/s, peak GPU memory, sample-F1).

A GPU box often has torch, Lightning, timm and pyarrow but no Spark or Luigi, and a small transfer budget, so the
table is built where Spark runs (``luigi ... ModelInputs``) and either copied as it is (the demo world's fusion table
with the 8x8 patch block is ~36 MB) or **packed** lossily into one ``.npz`` (the full-scale world's is ~8x larger):

* ``pack`` (:func:`glc.loaders.pack.pack`): float16 columns, the cubes as their first ``--cube-coefs`` 1-D DCT
  coefficients per channel, the patch block cut to ``--patch-k``, the GFV's ``--gfv-top`` largest entries; prints
  the bytes per survey. ``run --npz`` unpacks it on the GPU box (:func:`glc.loaders.pack.unpack`) first.
* ``run``: trains an experiment file (``--set section.key=value`` overrides) on a table with
  :func:`glc.training.trainer.train_model` (reader ``memory``), scores the validation and test splits, fits the
  experiment's decoder on validation, decodes the test surveys (optionally adds PO-correction lists) and scores them
  on ``--truth`` (the world's ``_truth/GLC24_SOLUTION_FILE.csv``); writes a JSON of the figures.

Example (the full-scale world)::

    python -m bench.fusion_gpu pack --inputs out/full-seed0-*/model_inputs/v10km-... --out .gpu/full.npz
    # on the GPU box, with .gpu carried:
    python -m bench.fusion_gpu run --npz .gpu/full.npz --experiment tasks/fusion-paper.toml --set train.kfold=1 \\
        --truth .gpu/truth.csv --json $OUT/fusion_full.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench.fusion_gpu")


def pack(inputs: Path, out: Path, cube_coefs: int, patch_k: int, gfv_top: int) -> dict[str, Any]:
    """:func:`glc.loaders.pack.pack`, printing the sizes."""
    from glc.loaders.pack import pack as pack_table

    info = pack_table(inputs, out, cube_coefs, patch_k, gfv_top)
    print(json.dumps(info, indent=1))
    return info


def _set(cfg: dict[str, Any], assignment: str) -> None:
    """``section.key=value`` (value parsed as JSON when it can be) into a raw experiment table."""
    key, _, raw = assignment.partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = cfg
    *path, last = key.split(".")
    for p in path:
        node = node.setdefault(p, {})
    node[last] = value


def run(inputs: Path, experiment: Path, sets: list[str], truth: Path | None, corrections: Path | None, work: Path) -> dict[str, Any]:
    """Train, predict, decode and score (see the module docstring); returns the figures."""
    import torch

    from glc.config import experiment_table, resolve
    from glc.data.metadata import read_species_lists
    from glc.experiment import correct_sets, decode, fit_decoder
    from glc.loaders.pack import read_split
    from glc.loaders.tables import read_meta
    from glc.metrics import score_submission
    from glc.training.trainer import predict_splits, train_model

    table = experiment_table(str(experiment))
    for s in sets:
        _set(table, s)
    table.setdefault("wandb", {})["mode"] = "disabled"
    cfg = resolve(table, str(experiment))
    meta = read_meta(inputs)
    t0 = time.time()
    summary = train_model(inputs, work, cfg, cfg["name"], progress=False, wandb=False, reader="memory")
    train_s = time.time() - t0
    val, test, _ = predict_splits(inputs, summary["best_checkpoint"], cfg)
    vocab = np.asarray(meta["vocab"], np.int64)
    labels = read_split(inputs, "val")
    truth_val = {int(s): vocab[row[row >= 0]] for s, row in zip(labels["surveyId"], labels["labels"])}
    params = fit_decoder(val, truth_val, cfg)
    out: dict[str, Any] = {
        "experiment": cfg["name"], "overrides": sets, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "surveys": meta["splits"], "num_classes": meta["num_classes"], "packed": meta.get("unpacked_from", {}).get("packed"),
        "train_wall_seconds": round(train_s, 1), "val_sample_f1_decoder_in_sample": round(float(params["f1"]), 4),
        "decoder": params["kind"], **{k: summary.get(k) for k in (
            "parameters", "epochs_trained", "epoch_seconds", "train_samples_per_s", "gpu_peak_mb", "best_monitor", "kfold")},
        "folds": [{k: f.get(k) for k in ("fold", "epochs_trained", "epoch_seconds", "best_monitor")} for f in summary.get("folds", [])],
    }
    if truth is not None:
        sets_test = decode(test, params)
        sol = read_species_lists(truth)
        out["test_sample_f1"] = round(float(score_submission(sol, sets_test)["sample_f1"]), 4)
        if corrections is not None:
            import pandas as pd

            t = pd.read_parquet(corrections, columns=["surveyId", "species"])
            fixed, info = correct_sets(sets_test, {int(s): sp for s, sp in zip(t["surveyId"], t["species"])})
            out["test_sample_f1_po_correction"] = round(float(score_submission(sol, fixed)["sample_f1"]), 4)
            out["po_correction"] = info
    print(json.dumps(out, indent=1), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: ``pack``, ``unpack`` or ``run``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack a model-input table into one .npz")
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cube-coefs", type=int, default=8, help="1-D DCT coefficients kept per cube channel")
    p.add_argument("--patch-k", type=int, default=4, help="side of the patch DCT block kept")
    p.add_argument("--gfv-top", type=int, default=16, help="largest GFV entries kept per survey")
    r = sub.add_parser("run", help="train an experiment on a table (or a packed .npz) and score it")
    r.add_argument("--inputs", type=Path, help="a model-input table folder")
    r.add_argument("--npz", type=Path, help="a packed table (unpacked to --work/inputs first)")
    r.add_argument("--experiment", type=Path, required=True)
    r.add_argument("--set", action="append", default=[], help="section.key=value override of the experiment file")
    r.add_argument("--truth", type=Path, help="the world's hidden test labels (_truth/GLC24_SOLUTION_FILE.csv)")
    r.add_argument("--corrections", type=Path, help="POCorrection data/ parquet of the test surveys")
    r.add_argument("--work", type=Path, default=Path("/tmp/fusion-gpu"))
    r.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.cmd == "pack":
        pack(a.inputs, a.out, a.cube_coefs, a.patch_k, a.gfv_top)
        return 0
    if (a.inputs is None) == (a.npz is None):
        raise SystemExit("run: give exactly one of --inputs or --npz")
    inputs = a.inputs
    if a.npz is not None:
        t0 = time.time()
        from glc.loaders.pack import unpack

        inputs = unpack(a.npz, a.work / "inputs")
        log.info("unpacked %s in %.0f s", a.npz, time.time() - t0)
    res = run(inputs, a.experiment, a.set, a.truth, a.corrections, a.work / "train")
    if a.json:
        from glc.io import write_json

        write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
