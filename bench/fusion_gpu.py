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
  ``[train]`` switch to the row before (bf16, channels_last, fused AdamW, pinned memory, non-deterministic kernels,
  the loss checked every 50 steps, a larger batch with linear LR scaling, torch.compile, CUDA graphs); samples/s,
  median GPU busy % over the training steps, peak GPU memory, validation sample-F1 after the same epochs, and the
  limit: the image branch alone (forward + backward, same batch, bf16). ``--train-surveys`` / ``--val-surveys`` train
  every row on a seeded subset (:func:`subset`) so that the whole table fits one GPU call; the JSON is rewritten after
  every row.

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


def _timed(step: Any, steps: int, dev: str, bf16: bool, rows: int) -> dict[str, float]:
    """``step()`` timed over ``steps`` calls after 3 warm-up ones (under bf16 autocast when ``bf16``; the device
    synchronised at both ends): ms per step and ``rows`` per second."""
    import torch

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
    return {"ms": round(ms, 1), "samples_per_s": round(rows * 1000 / ms, 1)}


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
        return _timed(step, steps, dev, bf16, len(batch["target"]))

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


def score_tables(
    val: Any, test: Any, inputs: Path, cfg: dict[str, Any], truth: Path | None, corrections: Path | None
) -> dict[str, Any]:
    """Fit the experiment's decoder on the validation score table (against the table's own validation labels),
    decode the test one and, with ``truth``, score it (and with ``corrections`` the PO-corrected sets too)."""
    from glc.data.metadata import read_species_lists
    from glc.experiment import correct_sets, decode, fit_decoder
    from glc.loaders.pack import read_split
    from glc.loaders.tables import read_meta
    from glc.metrics import score_submission

    vocab = np.asarray(read_meta(inputs)["vocab"], np.int64)
    labels = read_split(inputs, "val")
    truth_val = {int(s): vocab[row[row >= 0]] for s, row in zip(labels["surveyId"], labels["labels"])}
    params = fit_decoder(val, truth_val, cfg)
    out: dict[str, Any] = {
        "val_sample_f1_decoder_in_sample": round(float(params["f1"]), 4),
        "decoder": params["kind"],
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
    return out


def run(
    inputs: Path, experiment: Path, sets: list[str], truth: Path | None, corrections: Path | None, work: Path
) -> dict[str, Any]:
    """Train, predict, decode and score (see the module docstring); returns the figures."""
    import torch

    from glc.loaders.tables import read_meta
    from glc.training.trainer import predict_splits, train_model

    cfg = _config(experiment, sets)
    meta = read_meta(inputs)
    t0 = time.time()
    summary = train_model(inputs, work, cfg, cfg["name"], progress=False, wandb=False, reader="memory")
    train_s = time.time() - t0
    val, test, _ = predict_splits(inputs, summary["best_checkpoint"], cfg)
    out: dict[str, Any] = {
        "experiment": cfg["name"],
        "overrides": sets,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "surveys": meta["splits"],
        "num_classes": meta["num_classes"],
        "packed": meta.get("unpacked_from", {}).get("packed"),
        "train_wall_seconds": round(train_s, 1),
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
        **score_tables(val, test, inputs, cfg, truth, corrections),
    }
    print(json.dumps(out, indent=1), flush=True)
    return out


#: The A/B rows: a name and the ``--set`` overrides it adds to the row before (each row keeps the earlier ones). The
#: switches that need no compilation come first, so that a run cut short by a time limit has measured them.
AB_ROWS: list[tuple[str, list[str]]] = [
    ("baseline (fp32)", []),
    ("+ bf16 autocast", ['train.precision="bf16-mixed"']),
    ("+ channels_last", ["train.channels_last=true"]),
    ("+ fused AdamW", ["train.fused_optimizer=true"]),
    ("+ pinned memory", ["train.pin_memory=true"]),
    ("+ non-deterministic kernels", ["train.deterministic=false"]),
    ("+ deferred loss check", ["train.finite_check_every=50"]),
    ("+ 2x batch (linear LR scaling)", ["train.batch_size=2*", 'train.lr_scaling="linear"', "train.lr_base_batch=*"]),
    ("+ torch.compile", ['train.compile="default"']),
    ("+ CUDA graphs (compile reduce-overhead)", ['train.compile="reduce-overhead"']),
]


def _utilisation_reader() -> tuple[str | None, Any]:
    """``(name, read)``: a function returning GPU 0's utilisation % now, from the first source that works (see
    :class:`BusySampler`), or ``(None, None)`` without a GPU."""
    import shutil
    import subprocess

    import torch

    if not torch.cuda.is_available():
        return None, None
    try:
        torch.cuda.utilization(0)
        return "torch.cuda.utilization", lambda: torch.cuda.utilization(0)
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None, None

    def read_smi() -> float:
        out = subprocess.run(
            [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        return float(out.strip().splitlines()[0])

    return "nvidia-smi", read_smi


class BusySampler:
    """The GPU's utilisation (%) sampled every ``interval_s`` in a thread while the block runs, through NVML by
    torch's reader (``torch.cuda.utilization``, needs ``pynvml``), else ``nvidia-smi`` (which can take seconds a call
    under a sandboxed kernel: too slow for epochs of a few seconds; :attr:`source` says which was used); on a
    machine with neither, no samples (:attr:`median` is None). Each sample keeps its Unix time, so
    :meth:`median_within` can take the median over the training steps alone (the trainer's epoch windows). With
    ``log`` every sample is also appended to that file as it is read (``<unix time> <percent>`` lines), so a run a
    time limit kills keeps its readings (:func:`epoch_figures` reads them back)."""

    def __init__(self, interval_s: float = 0.2, log: Path | None = None) -> None:
        import threading

        self.interval_s = interval_s
        self.log = log
        self.samples: list[tuple[float, float]] = []
        self.source, self._read = _utilisation_reader()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sample = (time.time(), float(self._read()))
            except Exception:
                return
            self.samples.append(sample)
            if self.log is not None:
                with self.log.open("a") as f:
                    f.write(f"{sample[0]:.3f} {sample[1]:g}\n")

    def __enter__(self) -> BusySampler:
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        if self._read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def median(self) -> float | None:
        """The median over every sample (None without any)."""
        return float(np.median([u for _, u in self.samples])) if self.samples else None

    def within(self, windows: list[list[float]]) -> list[float]:
        """The readings taken inside any of ``windows`` (``[start, end]`` Unix seconds)."""
        return [u for t, u in self.samples if any(a <= t <= b for a, b in windows)]

    def median_within(self, windows: list[list[float]]) -> float | None:
        """The median of :meth:`within` (None when no reading was)."""
        inside = self.within(windows)
        return float(np.median(inside)) if inside else None


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


def subset(inputs: Path, root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """A copy of a model-input table at ``root`` with at most ``sizes[split]`` rows of each split named there (a seeded
    random choice, in table order; the other splits whole; the training statistics in ``meta.json`` kept from the
    full table), so that an A/B row trains in a fraction of an epoch's time. Returns ``root``."""
    import pandas as pd

    from glc.io import atomic_dir
    from glc.loaders.pack import SPLITS, read_split
    from glc.loaders.tables import column_specs, read_meta, write_input_table, write_meta

    meta = read_meta(inputs)
    specs = column_specs(meta)
    rng = np.random.default_rng(seed)
    with atomic_dir(root, {"subset_of": str(inputs), "sizes": sizes}) as tmp:
        for split in SPLITS:
            cols = read_split(inputs, split)
            n = len(cols["surveyId"])
            keep = np.sort(rng.choice(n, sizes[split], replace=False)) if sizes.get(split, n) < n else np.arange(n)
            frame = {k: list(v[keep]) if specs[k].is_array else v[keep] for k, v in cols.items()}
            write_input_table(pd.DataFrame(frame), tmp / split, specs)
            meta["splits"][split] = int(len(keep))
        meta["subset_of"] = {"table": str(inputs), "sizes": sizes, "seed": seed}
        write_meta(tmp, meta)
    return root


def limit(inputs: Path, experiment: Path, sets: list[str], steps: int = 10) -> dict[str, Any]:
    """The image branch alone: its backbone's forward + backward on one prepared training batch (the experiment's
    batch size; bf16 autocast on a GPU), ``steps`` timed steps after 3 warm-up ones — what the fusion's samples/s is
    compared with (None without an image branch)."""
    import torch

    from glc.training.trainer import build_module, datamodule

    cfg = _config(experiment, sets)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dm = datamodule(inputs, cfg, "memory")
    dm.setup("fit")
    net = build_module(cfg, dm.meta).net.to(dev).train()
    image = getattr(net, "image", None)
    if image is None:
        return {"samples_per_s": None}
    batch = {k: v.to(dev) for k, v in next(iter(dm.train_dataloader())).items()}
    with torch.no_grad():
        img = image.prepare(batch)
    res = _timed(lambda: image.tokens(img).float().sum().backward(), steps, dev, dev == "cuda", len(img))
    dm.teardown()
    return {"batch_size": len(img), **res}


#: the :class:`BusySampler` readings of an A/B row, in its run folder
BUSY_LOG = "busy.txt"


def epoch_figures(run_dir: Path) -> dict[str, Any]:
    """Per-epoch figures of a training run folder, read from its files, so that a run a time limit stopped still
    reports the epochs it finished: ``epoch_seconds_each`` and ``samples_per_s_steady`` (its ``timing.jsonl``, by
    :func:`glc.training.callbacks.throughput`), ``val_sample_f1_by_epoch`` (the CSV logger's ``metrics.csv``, the
    last value of an epoch) and ``gpu_busy_median_logged`` (the median of the :data:`BUSY_LOG` readings inside the
    training windows of the epochs after the first; None without them)."""
    import csv

    from glc.training.callbacks import TIMING_FILE, throughput

    timing = sorted(Path(run_dir).rglob(TIMING_FILE))
    t = throughput(timing[-1]) if timing else {}
    f1: dict[int, float] = {}
    for path in sorted(Path(run_dir).rglob("metrics.csv")):
        with path.open(newline="") as fh:
            for rec in csv.DictReader(fh):
                if rec.get("val/sample_f1") and rec.get("epoch"):
                    f1[int(rec["epoch"])] = round(float(rec["val/sample_f1"]), 4)
    windows = t.get("epoch_windows") or []
    windows = windows[1:] or windows
    inside: list[float] = []
    busy_log = Path(run_dir) / BUSY_LOG
    if busy_log.is_file() and windows:
        for line in busy_log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and any(a <= float(parts[0]) <= b for a, b in windows):
                inside.append(float(parts[1]))
    return {
        "gpu_busy_median_logged": float(np.median(inside)) if inside else None,
        "epoch_seconds_each": t.get("epoch_seconds_each", []),
        "samples_per_s_steady": t.get("train_samples_per_s_steady"),
        "val_sample_f1_by_epoch": [f1[e] for e in sorted(f1)],
    }


def _ab_row(inputs: Path, experiment: Path, acc: list[str], name: str, work: Path) -> dict[str, Any]:
    """Train one A/B row (see :func:`ab`) and return its figures."""
    import torch
    import torch._dynamo
    from torch._dynamo.utils import counters

    from glc.training.trainer import train_model

    cfg = _config(experiment, acc)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()  # each row traces anew (Inductor's on-disk caches stay): its graph count is its own
    counters.clear()
    t0 = time.time()
    with BusySampler(log=work / BUSY_LOG) as busy:
        summary = train_model(inputs, work, cfg, cfg["name"], progress=False, wandb=False, reader="memory")
    epochs = [float(e) for e in summary.get("epoch_seconds_each") or []]
    windows = summary.get("epoch_windows") or []
    steady = windows[1:] or windows
    return {
        "row": name,
        "batch_size": int(cfg["train"]["batch_size"]),
        "samples_per_s": summary.get("train_samples_per_s_steady") or summary.get("train_samples_per_s"),
        "gpu_busy_median": busy.median_within(steady),
        "gpu_busy_median_whole_fit": busy.median,
        "gpu_busy_samples": len(busy.within(steady)),
        "gpu_busy_source": busy.source,
        "gpu_peak_mb": summary.get("gpu_peak_mb"),
        "val_sample_f1": summary.get("best_monitor"),
        "epochs": summary.get("epochs_trained"),
        "wall_s": round(time.time() - t0, 1),
        "first_epoch_extra_s": round(epochs[0] - float(np.median(epochs[1:])), 1) if len(epochs) > 1 else None,
        **epoch_figures(work),
        # graphs dynamo compiled (training, evaluation, the mixup path, and the pieces of any graph break): a count
        # that grows with the loader's batch sizes means a shape was compiled again
        "compiled_graphs": int(counters["stats"]["unique_graphs"]),
    }


def ab(
    inputs: Path,
    experiment: Path,
    sets: list[str],
    rows: list[str] | None,
    work: Path,
    json_path: Path | None = None,
    start: str | None = None,
) -> dict[str, Any]:
    """The speed-up table (see the module docstring); ``rows``: names of :data:`AB_ROWS` to stop after (None: all);
    ``start``: the first row trained (the rows before it only add their switches: a second call goes on where a first
    one stopped).

    ``limit`` (:func:`limit`, the image branch alone in bf16 at the last row's batch) is measured first, then every
    row trains from the same seed for the experiment's ``max_epochs`` with the ``memory`` reader: ``samples_per_s``
    is the trainer's training throughput (epochs after the first, so compilation is not in it;
    ``first_epoch_extra_s`` is the first epoch's extra time: mostly compilation), ``gpu_busy_median`` the median of
    :class:`BusySampler` inside those epochs' training windows (validation and start-up left out;
    ``gpu_busy_median_whole_fit`` keeps them), ``val_sample_f1`` the best validation sample-F1, ``speedup`` the
    samples/s over the row before that trained. A row that fails (a switch this machine cannot run, e.g.
    ``torch.compile`` without a C compiler) is recorded with its error and its switches are dropped for the rows
    after it. With ``json_path`` the table is rewritten there after every row, so a run stopped by a time limit
    still leaves the rows it finished.
    """
    import torch

    from glc.loaders.tables import read_meta

    cfg0 = _config(experiment, sets)
    batch = int(cfg0["train"]["batch_size"])
    names = [n for n, _ in AB_ROWS]
    if start is not None and start not in names:
        raise ValueError(f"ab: start={start!r} is not an A/B row; the rows are {names}")
    wanted = names if not rows else names[: max(names.index(r) for r in rows) + 1]
    last: list[str] = list(sets)
    for name, added in AB_ROWS:
        if name in wanted:
            last = _row_sets(last, added, batch)
    out: dict[str, Any] = {
        "experiment": cfg0["name"],
        "overrides": sets,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "surveys": read_meta(inputs)["splits"],
        "rows": [],
    }

    def save() -> None:
        if json_path is not None:
            from glc.io import write_json

            write_json(json_path, out)

    lim = limit(inputs, experiment, last + ['train.precision="bf16-mixed"'])
    out["limit_image_branch"] = lim
    out["limit_image_branch_samples_per_s"] = lim.get("samples_per_s")
    print(json.dumps({"limit_image_branch": lim}), flush=True)
    save()
    acc: list[str] = list(sets)
    skipping = start is not None
    for name, added in AB_ROWS:
        if name not in wanted:
            break
        trial = _row_sets(acc, added, batch)
        skipping = skipping and name != start
        if skipping:
            acc = trial
            continue
        run = work / f"row{names.index(name)}"  # one folder per A/B row: a later call resumes the same row there
        try:
            row = _ab_row(inputs, experiment, trial, name, run)
            acc = trial
        except Exception as e:
            log.exception("A/B row %r failed", name)
            row = {
                "row": name,
                "error": f"{type(e).__name__}: {e}"[:2000],
                "samples_per_s": None,
                **epoch_figures(run),  # the epochs it finished before it stopped
            }
        done = [r for r in out["rows"] if r.get("samples_per_s")]
        prev = done[-1]["samples_per_s"] if done else None
        row["speedup"] = round(row["samples_per_s"] / prev, 3) if prev and row["samples_per_s"] else None
        out["rows"].append(row)
        best = max((r["samples_per_s"] or 0) for r in out["rows"])
        lim_sps = out["limit_image_branch_samples_per_s"]
        out["fusion_over_limit"] = round(best / lim_sps, 3) if lim_sps and best else None
        print(json.dumps(row), flush=True)
        save()
    return out


def table_arguments(work: Path) -> argparse.ArgumentParser:
    """The parent parser of the commands that read a table: ``--inputs`` or ``--npz`` (unpacked to
    ``--work/inputs``), ``--experiment``, ``--set`` overrides, ``--work`` and ``--json``."""
    table = argparse.ArgumentParser(add_help=False)
    table.add_argument("--inputs", type=Path, help="a model-input table folder")
    table.add_argument("--npz", type=Path, help="a packed table (unpacked to --work/inputs first)")
    table.add_argument("--experiment", type=Path, required=True)
    table.add_argument("--set", action="append", default=[], help="section.key=value override of the experiment file")
    table.add_argument("--work", type=Path, default=work)
    table.add_argument("--json", type=Path, help="write the figures here")
    return table


def score_arguments() -> argparse.ArgumentParser:
    """The parent parser of the commands that score the test surveys: ``--truth`` and ``--corrections``
    (:func:`score_tables`)."""
    score = argparse.ArgumentParser(add_help=False)
    score.add_argument("--truth", type=Path, help="the world's hidden test labels (_truth/GLC24_SOLUTION_FILE.csv)")
    score.add_argument("--corrections", type=Path, help="POCorrection data/ parquet of the test surveys")
    return score


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
    table = table_arguments(Path("/tmp/fusion-gpu"))
    sub.add_parser("run", parents=[table, score_arguments()], help="train an experiment on a table and score it")
    f = sub.add_parser(
        "profile", parents=[table], help="time the loader alone and the net's steps alone (see profile())"
    )
    f.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    f.add_argument("--batches", type=int, default=200, help="batches the loader is timed over")
    b = sub.add_parser("ab", parents=[table], help="the speed-up table: one row per [train] switch (see ab())")
    b.add_argument("--rows", default="", help="comma-separated AB_ROWS names: stop after the last of them")
    b.add_argument("--start", help="the first AB_ROWS name trained (the rows before it only add their switches)")
    b.add_argument("--train-surveys", type=int, default=0, help="train each row on this many training surveys (0: all)")
    b.add_argument("--val-surveys", type=int, default=0, help="validate each row on this many surveys (0: all)")
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
        if a.train_surveys or a.val_surveys:
            sizes = {k: v for k, v in (("train", a.train_surveys), ("val", a.val_surveys)) if v}
            inputs = subset(inputs, a.work / "subset", sizes)
        rows = [r for r in a.rows.split(",") if r] or None
        res = ab(inputs, a.experiment, a.set, rows, a.work / "ab", json_path=a.json, start=a.start)
    else:
        res = run(inputs, a.experiment, a.set, a.truth, a.corrections, a.work / "train")
    if a.json:
        from glc.io import write_json

        write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
