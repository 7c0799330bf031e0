"""The fusion model on a GPU box: carry a ``ModelInputs`` table there, train it with the generic trainer, and score
the submission it would make on the hidden test labels (epoch time, samples/s, peak GPU memory, sample-F1).

A GPU machine here has torch, Lightning, timm and pyarrow but no Spark or Luigi, and takes at most 64 MiB per call,
so the table is built here (``luigi ... ModelInputs``) and either carried as it is (the demo world's fusion table
with the 8x8 patch block fits) or **packed** lossily into one ``.npz`` (the full-scale world's does not fit):

* ``pack``: each column in float16; the Landsat / bioclim cubes as the first ``--cube-coefs`` 1-D DCT coefficients of
  each channel's chronological series (Landsat ``series[4y + q]``, bioclim ``series[12y + m]``: the order of
  :mod:`glc.etl.cubes`); the patch's DCT block cut to ``--patch-k`` x ``--patch-k``; the dense GFV as its
  ``--gfv-top`` largest entries; labels as ragged lists. Prints the bytes per survey.
* ``unpack`` (on the GPU box): rebuilds a table of the same columns and shapes (cubes = the low-pass series put back
  in cube order, the patch block zero-padded, the GFV dense again), recomputes the train statistics of the columns
  that have them (the low-pass cubes' differ) and writes it with :func:`glc.loaders.tables.write_input_table`.
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
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench.fusion_gpu")

SPLITS = ("train", "val", "test")
#: Cube columns, packed as 1-D DCT coefficients of their chronological series (:func:`_to_series`).
_CUBES: tuple[str, ...] = ("landsat_cube", "bioclim_cube")


def _to_series(name: str, cube: np.ndarray) -> np.ndarray:
    """``[n, C, a, b]`` cubes -> ``[n, C, T]`` chronological series (see :data:`_CUBES`)."""
    if name == "landsat_cube":  # (band, quarter, year): series[4y + q]
        return cube.transpose(0, 1, 3, 2).reshape(cube.shape[0], cube.shape[1], -1)
    return cube.reshape(cube.shape[0], cube.shape[1], -1)  # (var, year, month): series[12y + m]


def _to_cube(name: str, series: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_to_series` for per-row ``shape`` ``(C, a, b)``."""
    n = series.shape[0]
    if name == "landsat_cube":
        c, q, y = shape
        return series.reshape(n, c, y, q).transpose(0, 1, 3, 2)
    return series.reshape(n, *shape)


#: Largest magnitude a packed value gets (float16 holds up to 65504): larger columns are scaled down per element.
_F16_MAX = 30000.0


def _put_f16(arrays: dict[str, np.ndarray], key: str, values: np.ndarray) -> None:
    """``values`` as float16 under ``key`` and its per-element scale (>= 1) under ``key + "/scale"``."""
    v = np.asarray(values, np.float64)
    scale = np.maximum(np.abs(v).max(axis=0) / _F16_MAX, 1.0) if len(v) else np.ones(v.shape[1:])
    arrays[key] = (v / scale).astype(np.float16)
    arrays[key + "/scale"] = scale.astype(np.float32)


def _get_f16(z: Any, key: str) -> np.ndarray:
    """Inverse of :func:`_put_f16`, float32."""
    return (z[key].astype(np.float32) * z[key + "/scale"]).astype(np.float32)


def _read_split(root: Path, split: str) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    from glc.loaders.tables import column_specs, read_meta

    meta = read_meta(root)
    specs = column_specs(meta)
    t = pq.read_table(root / split)
    out: dict[str, np.ndarray] = {}
    n = t.num_rows
    for name, spec in specs.items():
        col = t.column(name)
        if not spec.is_array:
            out[name] = col.to_numpy()
        elif spec.dtype == "uint8":
            out[name] = np.frombuffer(b"".join(col.to_pylist()), np.uint8).reshape(n, *spec.shape)
        else:
            out[name] = col.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(n, *spec.shape)
    return out


def pack(inputs: Path, out: Path, cube_coefs: int, patch_k: int, gfv_top: int) -> dict[str, Any]:
    """Pack a model-input table into one compressed ``.npz`` (see the module docstring); returns its sizes."""
    from glc.features.dct import dct1
    from glc.loaders.tables import read_meta

    meta = read_meta(inputs)
    arrays: dict[str, np.ndarray] = {}
    packed: dict[str, str] = {}
    for split in SPLITS:
        cols = _read_split(inputs, split)
        for name, v in cols.items():
            key = f"{split}/{name}"
            spec = meta["columns"].get(name, {})
            if name == "labels":
                lens = (v >= 0).sum(axis=1)
                arrays[key + "/flat"] = v[v >= 0].astype(np.uint16 if meta["num_classes"] < 65536 else np.int32)
                arrays[key + "/lens"] = lens.astype(np.uint16)
                packed[name] = "ragged"
            elif name in _CUBES:
                _put_f16(arrays, key, dct1(_to_series(name, v.astype(np.float64)), cube_coefs))
                packed[name] = f"dct1 {cube_coefs} coefficients per channel (float16)"
            elif name.startswith("patch_dct"):
                _put_f16(arrays, key, v[..., :patch_k, :patch_k])
                packed[name] = f"{patch_k}x{patch_k} block (float16)"
            elif name == "gfv":
                top = np.argsort(-v, axis=1, kind="stable")[:, :gfv_top]
                arrays[key + "/idx"] = top.astype(np.uint16)
                arrays[key + "/val"] = np.take_along_axis(v, top, axis=1).astype(np.float16)
                packed[name] = f"top {gfv_top} entries"
            elif spec.get("shape") and v.dtype != np.uint8:
                _put_f16(arrays, key, v)
                packed[name] = "float16"
            else:
                arrays[key] = v
    buf = io.BytesIO()
    buf.write(json.dumps({"meta": meta, "packed": packed}).encode())
    arrays["meta.json"] = np.frombuffer(buf.getvalue(), np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    n = sum(int(meta["splits"][s]) for s in SPLITS)
    info = {"file": str(out), "bytes": out.stat().st_size, "surveys": n, "bytes_per_survey": round(out.stat().st_size / n, 1), "packed": packed}
    print(json.dumps(info, indent=1))
    return info


def unpack(npz: Path, root: Path) -> Path:
    """Rebuild a model-input table from :func:`pack`'s file (see the module docstring)."""
    import pandas as pd

    from glc.features.dct import idct1
    from glc.features.sets import feature_set
    from glc.loaders.tables import column_specs, write_input_table, write_meta

    z = np.load(npz)
    head = json.loads(bytes(z["meta.json"]).decode())
    meta = head["meta"]
    specs = column_specs(meta)
    frames: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        cols: dict[str, Any] = {}
        n = int(meta["splits"][split])
        for name, spec in specs.items():
            key = f"{split}/{name}"
            shape = spec.shape
            if name == "labels":
                lens = z[key + "/lens"].astype(np.int64)
                flat = z[key + "/flat"].astype(np.int32)
                lab = np.full((n, shape[0]), -1, np.int32)
                pos = np.repeat(np.arange(n), lens)
                within = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
                lab[pos, within] = flat
                v = lab
            elif name in _CUBES:
                c = _get_f16(z, key).astype(np.float64)
                length = int(np.prod(shape[1:]))
                v = _to_cube(name, idct1(c, length), shape).astype(np.float32)
            elif name.startswith("patch_dct"):
                block = _get_f16(z, key)
                v = np.zeros((n, *shape), np.float32)
                v[..., : block.shape[-2], : block.shape[-1]] = block
            elif name == "gfv":
                v = np.zeros((n, *shape), np.float32)
                np.put_along_axis(v, z[key + "/idx"].astype(np.int64), z[key + "/val"].astype(np.float32), axis=1)
            elif key + "/scale" in z:
                v = _get_f16(z, key)
            else:
                v = z[key]
            cols[name] = list(np.ascontiguousarray(v)) if spec.is_array else v
        frames[split] = cols
    for split, cols in frames.items():
        write_input_table(pd.DataFrame(cols), root / split, specs)
    train = frames["train"]
    for name, c in meta["columns"].items():  # train statistics of the rebuilt values (the writer's rule)
        fs = c.get("feature_set")
        if fs and feature_set(fs).stats and c["dtype"] == "float32":
            X = np.stack(train[name]).astype(np.float64)
            mean, std = X.mean(axis=0), X.std(axis=0)
            std[std < 1e-6 * np.maximum(1.0, np.abs(mean))] = 1.0
            c["stats"] = {"mean": mean.tolist(), "std": std.tolist()}
    meta["unpacked_from"] = {"file": str(npz), "packed": head["packed"]}
    write_meta(root, meta)
    return root


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
    labels = _read_split(inputs, "val")
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
        inputs = unpack(a.npz, a.work / "inputs")
        log.info("unpacked %s in %.0f s", a.npz, time.time() - t0)
    res = run(inputs, a.experiment, a.set, a.truth, a.corrections, a.work / "train")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
