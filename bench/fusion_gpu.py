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
* ``profile``: the training loader alone and the net's steps alone (:func:`profile`): which one bounds an epoch.
* ``ab``: the speed-up table (:func:`ab`): the same table, seed and epochs trained once per row, each row adding one
  ``[train]`` switch to the row before (bf16, channels_last, torch.compile, fused AdamW, pinned memory, a larger
  batch with linear LR scaling, CUDA graphs); samples/s, median GPU busy %, peak GPU memory, validation sample-F1
  after the same epochs, and the limit: the image branch alone (forward + backward, same batch, bf16).

Example (the full-scale world, as measured for ``bench/results/fusion_gpu.json``; the 6x6 patch block keeps the
``.npz`` at 53 MB, under the GPU box's 64 MiB transfer limit; the paper's raw patch pixels would be 5.8 GB)::

    python -m bench.fusion_gpu pack --inputs out/full-seed0-*/model_inputs/v10km-...patch_dct16+plot-k3 \\
        --out .gpu/full.npz --patch-k 6
    cp data/synthetic/full-seed0/_truth/GLC24_SOLUTION_FILE.csv .gpu/truth.csv
    cp out/full-seed0-*/po_correction/pa_test-*/data/*.parquet .gpu/corrections.parquet
    # on the GPU box, with .gpu carried:
    python -m bench.fusion_gpu profile --npz .gpu/full.npz --experiment tasks/fusion-paper.toml \\
        --set train.kfold=1 --set model.image=dct16 --json $OUT/profile.json
    python -m bench.fusion_gpu run --npz .gpu/full.npz --experiment tasks/fusion-paper.toml --set train.kfold=1 \\
        --set model.image=dct16 --set train.batch_size=256 --set train.lr=0.0005 --set train.max_epochs=4 \\
        --truth .gpu/truth.csv --corrections .gpu/corrections.parquet --json $OUT/fusion_full.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
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


def _config(experiment: Path, sets: list[str]) -> dict[str, Any]:
    """The resolved experiment with ``--set`` overrides applied and W&B off."""
    from glc.config import experiment_table, resolve

    table = experiment_table(str(experiment))
    for s in sets:
        _set(table, s)
    table.setdefault("wandb", {})["mode"] = "disabled"
    return resolve(table, str(experiment))


def profile(inputs: Path, experiment: Path, sets: list[str], steps: int, batches: int) -> dict[str, Any]:
    """Where a training step's time goes: is the loader or the net the bound?

    * ``loader_samples_per_s``: the training loader alone (the experiment's reader settings, ``memory`` reader) over
      ``batches`` batches after 5 warm-up ones (epoch after epoch where the split holds fewer);
    * ``train_step`` / ``train_step_deterministic``: ``prepare`` + forward + the experiment's loss + backward + AdamW on
      one fixed batch already on the device (CUDA when present; bf16 autocast when the experiment's precision is
      ``bf16-mixed``), ``steps`` timed steps after 3 warm-up ones, without and with
      ``torch.use_deterministic_algorithms`` (what the trainer sets on a GPU: ``"warn"``);
    * ``module_train_step``: the same through the LightningModule's ``training_step`` (mixup, the finite-loss check,
      which waits for the device every step, and ``self.log``, a no-op without a Trainer);
    * ``host_to_device_ms``: copying one loader batch to the device;
    * ``eval_step``: the forward pass alone (validation / prediction);
    * ``image_branch_step``: the image backbone's forward + backward alone on the prepared image (absent without one).

    A loader rate far above ``batch / train_step`` means the net bounds training; a GPU's utilisation far below 100 %
    at that point means the step is bound by kernel launches (small batch) rather than arithmetic.
    """
    import torch

    from glc.training.trainer import build_module, datamodule

    cfg = _config(experiment, sets)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = dev == "cuda" and str(cfg["train"].get("precision", "")).startswith("bf16")
    dm = datamodule(inputs, cfg, "memory")
    dm.setup("fit")
    module = build_module(cfg, dm.meta).to(dev)
    net = module.net

    def endless() -> Any:  # a small table's epoch may hold fewer batches than are timed
        while True:
            yield from dm.train_dataloader()

    it = endless()
    first = next(it)
    for _ in range(5):
        next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        n += int(next(it)["target"].shape[0])
    out: dict[str, Any] = {
        "experiment": cfg["name"],
        "overrides": sets,
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "batch_size": int(cfg["train"]["batch_size"]),
        "num_workers": int(cfg["train"]["num_workers"]),
        "bf16": bf16,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "loader_samples_per_s": round(n / (time.perf_counter() - t0), 1),
    }
    batch = {k: v.to(dev) for k, v in first.items()}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def timed(step: Any) -> dict[str, float]:
        for i in range(steps + 3):
            if i == 3:
                if dev == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
                step()
        if dev == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t) / steps * 1000
        return {"ms": round(ms, 1), "samples_per_s": round(len(batch["target"]) * 1000 / ms, 1)}

    def train_step() -> None:
        loss = module.loss(net(batch).float(), batch["target"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_step() -> None:
        with torch.no_grad():
            net(batch)

    net.train()
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(False)
    out["train_step"] = timed(train_step)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        out["train_step_deterministic"] = timed(train_step)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])

    def module_step() -> None:  # what Lightning runs: mixup, the finite-loss check (a device sync), logging
        loss = module.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*self\.log.*")  # no Trainer here: self.log() is a no-op
        out["module_train_step"] = timed(module_step)
    fresh = [next(it) for _ in range(4)]
    t = time.perf_counter()
    for b in fresh:
        moved = {k: v.to(dev) for k, v in b.items()}
    if dev == "cuda":
        torch.cuda.synchronize()
    out["host_to_device_ms"] = round((time.perf_counter() - t) / len(fresh) * 1000, 2)
    del moved
    image = getattr(net, "image", None)
    if image is not None:
        with torch.no_grad():
            img = image.prepare(batch)

        def image_step() -> None:
            image.tokens(img).float().sum().backward()

        out["image_branch_step"] = timed(image_step)
    net.eval()
    out["eval_step"] = timed(eval_step)
    dm.teardown()
    print(json.dumps(out, indent=1), flush=True)
    return out


def run(
    inputs: Path, experiment: Path, sets: list[str], truth: Path | None, corrections: Path | None, work: Path
) -> dict[str, Any]:
    """Train, predict, decode and score (see the module docstring); returns the figures."""
    import torch

    from glc.data.metadata import read_species_lists
    from glc.experiment import correct_sets, decode, fit_decoder
    from glc.loaders.pack import read_split
    from glc.loaders.tables import read_meta
    from glc.metrics import score_submission
    from glc.training.trainer import predict_splits, train_model

    cfg = _config(experiment, sets)
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
        "experiment": cfg["name"],
        "overrides": sets,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "surveys": meta["splits"],
        "num_classes": meta["num_classes"],
        "packed": meta.get("unpacked_from", {}).get("packed"),
        "train_wall_seconds": round(train_s, 1),
        "val_sample_f1_decoder_in_sample": round(float(params["f1"]), 4),
        "decoder": params["kind"],
        **{
            k: summary.get(k)
            for k in (
                "parameters",
                "epochs_trained",
                "epoch_seconds",
                "train_samples_per_s",
                "gpu_peak_mb",
                "best_monitor",
                "kfold",
            )
        },
        "folds": [
            {k: f.get(k) for k in ("fold", "epochs_trained", "epoch_seconds", "best_monitor")}
            for f in summary.get("folds", [])
        ],
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


#: The A/B rows: a name and the ``--set`` overrides it adds to the row before (each row keeps the earlier ones).
AB_ROWS: list[tuple[str, list[str]]] = [
    ("baseline (fp32)", []),
    ("+ bf16 autocast", ['train.precision="bf16-mixed"']),
    ("+ channels_last", ["train.channels_last=true"]),
    ("+ torch.compile", ['train.compile="default"']),
    ("+ fused AdamW", ["train.fused_optimizer=true"]),
    ("+ pinned memory", ["train.pin_memory=true"]),
    ("+ 2x batch, linear LR scaling", ["train.batch_size=2*", 'train.lr_scaling="linear"', "train.lr_base_batch=*"]),
    ("+ CUDA graphs (compile reduce-overhead)", ['train.compile="reduce-overhead"']),
]


class BusySampler:
    """The GPU's utilisation (%) sampled every ``interval_s`` in a thread while the block runs (``nvidia-smi``; on a
    machine without it, no samples: :attr:`median` is None)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        import shutil
        import threading

        self.interval_s, self.samples = interval_s, []
        self._smi = shutil.which("nvidia-smi")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import subprocess

        while not self._stop.wait(self.interval_s):
            try:
                out = subprocess.run(
                    [self._smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return

    def __enter__(self) -> BusySampler:
        if self._smi:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def median(self) -> float | None:
        return float(np.median(self.samples)) if self.samples else None


def _row_sets(base: list[str], added: list[str], batch: int) -> list[str]:
    """``added`` with ``2*`` / ``*`` in a batch setting read as twice / once the experiment's batch size."""
    out = list(base)
    for a in added:
        key, _, value = a.partition("=")
        if value == "2*":
            value = str(2 * batch)
        elif value == "*":
            value = str(batch)
        out.append(f"{key}={value}")
    return out


def ab(inputs: Path, experiment: Path, sets: list[str], rows: list[str] | None, work: Path) -> dict[str, Any]:
    """The speed-up table (see the module docstring); ``rows``: names of :data:`AB_ROWS` to stop after (None: all).

    Every row trains from the same seed for the experiment's ``max_epochs`` with the ``memory`` reader;
    ``samples_per_s`` is the trainer's training throughput (epochs after the first, so compilation is not in it;
    ``first_epoch_extra_s`` is the first epoch's extra time: mostly compilation), ``gpu_busy_median`` the median of
    :class:`BusySampler` over the whole fit, ``val_sample_f1`` the best validation sample-F1, ``speedup`` the
    samples/s over the row before. ``limit`` is :func:`profile`'s ``image_branch_step`` at the last row's batch in
    bf16: the fusion's samples/s over it is how close the fusion is to the image branch alone.
    """
    import torch

    from glc.training.trainer import train_model

    cfg0 = _config(experiment, sets)
    batch = int(cfg0["train"]["batch_size"])
    names = [n for n, _ in AB_ROWS]
    wanted = names if not rows else names[: max(names.index(r) for r in rows) + 1]
    out_rows: list[dict[str, Any]] = []
    acc: list[str] = list(sets)
    for name, added in AB_ROWS:
        if name not in wanted:
            break
        acc = _row_sets(acc, added, batch)
        cfg = _config(experiment, acc)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        with BusySampler() as busy:
            summary = train_model(
                inputs, work / f"row{len(out_rows)}", cfg, cfg["name"], progress=False, wandb=False, reader="memory"
            )
        epochs = [float(e) for e in summary.get("epoch_seconds_each") or []]
        row = {
            "row": name,
            "batch_size": int(cfg["train"]["batch_size"]),
            "samples_per_s": summary.get("train_samples_per_s_steady") or summary.get("train_samples_per_s"),
            "gpu_busy_median": busy.median,
            "gpu_peak_mb": summary.get("gpu_peak_mb"),
            "val_sample_f1": summary.get("best_monitor"),
            "epochs": summary.get("epochs_trained"),
            "wall_s": round(time.time() - t0, 1),
            "first_epoch_extra_s": round(epochs[0] - float(np.median(epochs[1:])), 1) if len(epochs) > 1 else None,
        }
        prev = out_rows[-1]["samples_per_s"] if out_rows else None
        row["speedup"] = round(row["samples_per_s"] / prev, 3) if prev and row["samples_per_s"] else None
        out_rows.append(row)
        print(json.dumps(row), flush=True)
    last = acc + ['train.precision="bf16-mixed"']
    prof = profile(inputs, experiment, last, steps=20, batches=20)
    limit = (prof.get("image_branch_step") or {}).get("samples_per_s")
    best = max((r["samples_per_s"] or 0) for r in out_rows)
    return {
        "experiment": cfg0["name"],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "rows": out_rows,
        "limit_image_branch_samples_per_s": limit,
        "fusion_over_limit": round(best / limit, 3) if limit else None,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``pack``, ``run``, ``profile`` or ``ab``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack a model-input table into one .npz")
    p.add_argument("--inputs", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cube-coefs", type=int, default=8, help="1-D DCT coefficients kept per cube channel")
    p.add_argument("--patch-k", type=int, default=4, help="side of the patch DCT block kept")
    p.add_argument("--gfv-top", type=int, default=16, help="largest GFV entries kept per survey")
    table = argparse.ArgumentParser(add_help=False)
    table.add_argument("--inputs", type=Path, help="a model-input table folder")
    table.add_argument("--npz", type=Path, help="a packed table (unpacked to --work/inputs first)")
    table.add_argument("--experiment", type=Path, required=True)
    table.add_argument("--set", action="append", default=[], help="section.key=value override of the experiment file")
    table.add_argument("--work", type=Path, default=Path("/tmp/fusion-gpu"))
    table.add_argument("--json", type=Path, help="write the figures here")
    r = sub.add_parser("run", parents=[table], help="train an experiment on a table (or a packed .npz) and score it")
    r.add_argument("--truth", type=Path, help="the world's hidden test labels (_truth/GLC24_SOLUTION_FILE.csv)")
    r.add_argument("--corrections", type=Path, help="POCorrection data/ parquet of the test surveys")
    f = sub.add_parser(
        "profile", parents=[table], help="time the loader alone and the net's steps alone (see profile())"
    )
    f.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    f.add_argument("--batches", type=int, default=200, help="batches the loader is timed over")
    b = sub.add_parser("ab", parents=[table], help="the speed-up table: one row per [train] switch (see ab())")
    b.add_argument("--rows", default="", help="comma-separated AB_ROWS names: stop after the last of them")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.cmd == "pack":
        pack(a.inputs, a.out, a.cube_coefs, a.patch_k, a.gfv_top)
        return 0
    if (a.inputs is None) == (a.npz is None):
        raise SystemExit(f"{a.cmd}: give exactly one of --inputs or --npz")
    inputs = a.inputs
    if a.npz is not None:
        t0 = time.time()
        from glc.loaders.pack import unpack

        inputs = unpack(a.npz, a.work / "inputs")
        log.info("unpacked %s in %.0f s", a.npz, time.time() - t0)
    if a.cmd == "profile":
        res = profile(inputs, a.experiment, a.set, a.steps, a.batches)
    elif a.cmd == "ab":
        res = ab(inputs, a.experiment, a.set, [r for r in a.rows.split(",") if r] or None, a.work / "ab")
    else:
        res = run(inputs, a.experiment, a.set, a.truth, a.corrections, a.work / "train")
    if a.json:
        from glc.io import write_json

        write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
