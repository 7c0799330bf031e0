"""Tighnari's k-fold cross fusion (:mod:`glc.training.kfold`) trained across several short GPU leases.

The k-fold fit in :func:`glc.training.kfold.train_kfold` needs the k fold models on one machine: fold 1 trains from
scratch, folds 2..k start from fold 1's weights, and the published model averages the k folds' logits. A GPU lease
here is 15 minutes of device time, a call 10 minutes, and at most 64 MiB travel each way per call (16 MiB a file
back): a fold checkpoint of the paper-width fusion (48.5M parameters: 194 MB of fp32 weights) cannot go back and
forth, and ``fusion-paper``'s 10 folds take ~45 minutes of an H100. This module splits the same protocol into
pieces that fit:

* ``fold --folds F [F ...]`` trains the named folds exactly as ``train_kfold`` does (the same spatial folds of the
  training split, :func:`glc.training.kfold.fold_assignment`; the same per-fold config,
  :func:`glc.training.kfold.fold_config`; resumable in ``--work``), then writes each fold's **part**: for the
  validation hold-out and the test surveys, the fold's ``--top`` largest logits per survey (float16, with their
  species columns) and the probability mass of the rest. Fold 1 (``F = 0``) also writes its best weights as float16
  shards; folds after it start from those shards (``--init``), carried in from an earlier lease, so every later
  fold starts from the same weights whether or not fold 1 ran on the same machine.
* With a compiled net, ``fold`` also carries compilation between leases: it loads a compile cache
  (:mod:`glc.training.compile_cache`) found in ``--init`` or ``--work/ship`` before training, and when there is none
  the first fold it trains writes the machine's into ``--work/ship`` after its first epoch (``--no-compile-cache``:
  neither; a broken cache is logged and compiled around).
* ``pause`` writes, for a fold a call's limit stopped, a **resume set** (:func:`export_resume`): its last and best
  checkpoints with the weights in float16 and the optimiser's moments in bfloat16, as shards; carried into a later
  lease (``--init``), ``fold`` rebuilds the checkpoints there (:func:`import_resume`) and the fold goes on from its
  last epoch on another machine. Fold 1 of the paper's net (~15 minutes of an H100) does not fit one lease.
* ``ship --out DIR`` copies the files not yet shipped into the lease's output folder, as many as one call brings
  back (8 files, 16 MiB each, 64 MiB together); call it again until it says nothing is left.
* ``merge`` (on any machine) rebuilds the k-fold ensemble's score tables from the k parts: the mean of the folds'
  logits where a fold kept the species, and that fold's smallest kept logit (an upper bound) where it did not; then
  fits the experiment's decoder on the validation hold-out, decodes the test surveys and scores them against the
  hidden labels (with PO correction), as ``bench.fusion_gpu run`` does.

Two things differ from one uninterrupted ``train_kfold`` and are bounded: folds 2..k start from fold 1's weights
rounded to float16 (a relative change below 5e-4 per weight, before fine-tuning with ``kfold_lr_scale``), and a
species outside one fold's top ``--top`` (320 of 7,820 by default: probabilities of ~1e-3 and below) enters the mean
with that fold's smallest kept logit, an upper bound of its own. ``tests/bench/test_fusion_kfold.py`` trains three
folds on two "machines", keeps 12 of 20 logits, and compares the merged tables with the exact ensemble's
(:class:`glc.training.kfold.FoldEnsemble`); `merge` refuses folds of different runs (the folds' summaries carry
the config's and fold 1's weights' digests).

A session with a GPU (see ``bench/fusion_kfold_lease.sh`` for the calls)::

    python -m bench.fusion_kfold fold --npz .gpu/full.npz --experiment tasks/fusion-paper.toml \\
        --set model.image=dct16 --set train.batch_size=256 --set train.lr=0.0005 ... --folds 0 --work /tmp/kf
    python -m bench.fusion_kfold ship --work /tmp/kf --out $OUT     # again until nothing is left
    # here, with every fold's part files gathered in one folder:
    python -m bench.fusion_kfold merge --parts .gpu/kfold --npz .gpu/full.npz --experiment tasks/fusion-paper.toml \\
        --set ... --truth data/synthetic/full-seed0/_truth/GLC24_SOLUTION_FILE.csv --corrections ... --json res.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Logits kept per survey and fold (at least the experiment's ``model.top_n``, 256): a fold's part of the full world
#: (17,795 validation + 4,716 test surveys) is then ~27 MiB, one call's return
PART_TOP = 320
#: Largest file written for shipping (a lease brings back files of at most 16 MiB; four shards and the tracked
#: tree fit one call's 64 MiB carry)
FILE_BYTES = 14 * 2**20
#: What one call brings back: files, bytes together, bytes a file
SHIP_FILES, SHIP_BYTES, SHIP_FILE_BYTES = 8, 64 * 2**20, 16 * 2**20
SHIPPED = "shipped.txt"
SPLITS = ("val", "test")


def fold_logits(module: Any, loader: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(surveyIds int64 [N], logits float32 [N, C])`` of ``module``'s net over ``loader``, in loader order, on the
    GPU when there is one (fp32, no autocast).

    Raises:
        ValueError: a logit is NaN or inf (naming the batch's first surveys).
    """
    import torch

    from glc.training.fit import _to_device

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module.to(dev).eval()
    ids: list[np.ndarray] = []
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i, batch in enumerate(loader):
            z = module(_to_device(batch, dev)).float().cpu().numpy()
            sid = batch["surveyId"].cpu().numpy().astype(np.int64).reshape(-1)
            if not np.isfinite(z).all():
                raise ValueError(f"batch {i}: NaN/inf logits (surveyIds {sid[:5].tolist()}...); check the checkpoint")
            ids.append(sid)
            out.append(z)
    module.cpu()
    return np.concatenate(ids), np.concatenate(out)


def top_part(ids: np.ndarray, logits: np.ndarray, top: int) -> dict[str, np.ndarray]:
    """One fold's part of one split: rows sorted by surveyId; ``idx`` (uint16 [n, top]) the columns of the ``top``
    largest logits in decreasing order, ``logit`` (float16) their values, ``rest`` (float32 [n]) the sigmoid mass of
    the other columns.

    Raises:
        ValueError: ``top`` is not in 1..C, C does not fit uint16, or a kept logit overflows float16.
    """
    n, c = logits.shape
    if not 1 <= top <= c:
        raise ValueError(f"--top {top}: expected 1..{c} (the number of classes)")
    if c > np.iinfo(np.uint16).max:
        raise ValueError(f"{c} classes do not fit the part's uint16 columns")
    order = np.argsort(ids, kind="stable")
    ids, logits = ids[order], logits[order]
    idx = np.argpartition(-logits, top - 1, axis=1)[:, :top] if top < c else np.tile(np.arange(c), (n, 1))
    vals = np.take_along_axis(logits, idx, axis=1)
    o = np.argsort(-vals, axis=1, kind="stable")
    idx, vals = np.take_along_axis(idx, o, axis=1), np.take_along_axis(vals, o, axis=1)
    if np.abs(vals).max(initial=0.0) > np.finfo(np.float16).max:
        raise ValueError(f"a kept logit ({np.abs(vals).max():.3g}) overflows float16; the fold's net diverged")
    total = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).sum(axis=1)
    kept = (1.0 / (1.0 + np.exp(-vals.astype(np.float64)))).sum(axis=1)
    return {
        "survey_ids": ids,
        "idx": idx.astype(np.uint16),
        "logit": vals.astype(np.float16),
        "rest": np.maximum(total - kept, 0.0).astype(np.float32),
    }


def write_part(folder: Path, fold: int, split: str, part: Mapping[str, np.ndarray]) -> list[Path]:
    """Write a part as ``fold<F>-<split>-<j>.npz`` files of at most :data:`FILE_BYTES` each (rows in order), each
    atomically; returns the files."""
    from glc.io import atomic_path

    top = part["idx"].shape[1]
    rows = max(1, FILE_BYTES // (top * 4 + 16))
    n = len(part["survey_ids"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, a in enumerate(range(0, max(n, 1), rows)):
        p = folder / f"fold{fold}-{split}-{j:03d}.npz"
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{k: v[a : a + rows] for k, v in part.items()})
        paths.append(p)
    return paths


def read_part(folder: Path, fold: int, split: str) -> dict[str, np.ndarray]:
    """The part :func:`write_part` wrote, its files concatenated in order.

    Raises:
        FileNotFoundError: no file of that fold and split is in ``folder``.
    """
    files = sorted(folder.glob(f"fold{fold}-{split}-*.npz"))
    if not files:
        raise FileNotFoundError(
            f"{folder}: no fold{fold}-{split}-*.npz; train fold {fold} (python -m bench.fusion_kfold fold --folds "
            f"{fold}) and bring its shipped files here"
        )
    zs = [np.load(f) for f in files]
    return {k: np.concatenate([z[k] for z in zs]) for k in ("survey_ids", "idx", "logit", "rest")}


def _shard_pieces(tensors: Sequence[tuple[str, Any]], cap: int, what: str) -> list[list[tuple[str, int, Any]]]:
    """``(name, tensor)`` pairs grouped into shards of at most ``cap`` bytes of tensors each, as ``(name, piece,
    tensor)``; a tensor larger than ``cap`` is cut along its first dimension into pieces numbered from 0.

    Raises:
        ValueError: one row of a tensor is larger than ``cap`` (naming ``what`` and the tensor).
    """
    import torch

    shards: list[list[tuple[str, int, Any]]] = [[]]
    size = 0
    for k, v in tensors:
        b = v.numel() * v.element_size()
        pieces = [v]
        if b > cap:
            row = b // max(1, v.shape[0]) if v.dim() else b
            if row > cap:
                raise ValueError(f"{what}: one row of {k} is {row} bytes, more than a {cap}-byte shard holds")
            pieces = list(torch.split(v, max(1, cap // row)))
        for j, piece in enumerate(pieces):
            pb = piece.numel() * piece.element_size()
            if size and size + pb > cap:
                shards.append([])
                size = 0
            shards[-1].append((k, j, piece.contiguous().clone()))
            size += pb
    return shards


def _write_shards(tensors: Sequence[tuple[str, Any]], folder: Path, stem: str, what: str) -> list[Path]:
    """:func:`_shard_pieces` of ``tensors`` written as ``folder/<stem>-<j>.pt`` files of at most :data:`FILE_BYTES`
    (``{"count", "pieces"}``, each atomically); returns them."""
    from glc.training.checkpoint import atomic_torch_save

    shards = _shard_pieces(tensors, FILE_BYTES - 2**20, what)  # room for the pickle around the tensors
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, sh in enumerate(shards):
        p = folder / f"{stem}-{j:03d}.pt"
        atomic_torch_save({"count": len(shards), "pieces": sh}, p)
        paths.append(p)
    return paths


def _join_pieces(pieces: Mapping[str, list[tuple[int, Any]]]) -> dict[str, Any]:
    """The tensors :func:`_shard_pieces` cut, joined in piece order."""
    import torch

    return {
        k: torch.cat([t for _, t in sorted(parts, key=lambda x: x[0])]) if len(parts) > 1 else parts[0][1]
        for k, parts in pieces.items()
    }


def export_weights(ckpt: Path, folder: Path) -> list[Path]:
    """Fold 1's best net weights (a Lightning checkpoint's ``net.*`` tensors) as ``init-<j>.pt`` shards of at most
    :data:`FILE_BYTES`, floating tensors in float16 (others as they are); a tensor larger than that is cut along its
    first dimension into pieces (``name``, ``piece``) that :func:`import_weights` joins. Returns the shards.

    Raises:
        ValueError: a weight overflows float16, or one row of a tensor is larger than a shard.
    """
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    tensors = []
    for k, v in state.items():
        if not k.startswith("net."):
            continue
        if v.is_floating_point():
            if v.numel() and v.abs().max().item() > torch.finfo(torch.float16).max:
                raise ValueError(f"{ckpt}: {k} overflows float16; it cannot be shipped as a float16 shard")
            v = v.to(torch.float16)
        tensors.append((k, v))
    return _write_shards(tensors, folder, "init", str(ckpt))


def import_weights(folders: Sequence[Path], out: Path) -> Path:
    """A checkpoint ``{"state_dict": net.* in float32}`` from :func:`export_weights`' shards, found in any of
    ``folders`` (a lease carries them in two calls), for ``train_model(init=...)``.

    Raises:
        FileNotFoundError: a shard is missing (naming which).
    """
    import torch

    from glc.training.checkpoint import atomic_torch_save

    found = {p.name: p for f in folders for p in sorted(Path(f).glob("init-*.pt"))}
    if not found:
        raise FileNotFoundError(f"no init-*.pt shards in {[str(f) for f in folders]}: ship fold 0's weights first")
    first = torch.load(next(iter(found.values())), map_location="cpu", weights_only=False)
    want = [f"init-{j:03d}.pt" for j in range(int(first["count"]))]
    missing = [w for w in want if w not in found]
    if missing:
        raise FileNotFoundError(f"fold 0's weights: shards {missing} are missing from {[str(f) for f in folders]}")
    pieces: dict[str, list[tuple[int, Any]]] = {}
    for w in want:
        for k, j, v in torch.load(found[w], map_location="cpu", weights_only=False)["pieces"]:
            pieces.setdefault(k, []).append((j, v))
    state = {k: v.float() if v.is_floating_point() else v for k, v in _join_pieces(pieces).items()}
    atomic_torch_save({"state_dict": state}, out)
    return out


#: A resume set's files: ``resume<F>-s<STEP>-<j>.pt`` tensor shards and ``resume<F>-s<STEP>.pt``, the index written
#: last (the checkpoints' other content, the shard count, the run's config digest)
RESUME_SHARD, RESUME_INDEX = r"resume(\d+)-s(\d+)-(\d+)\.pt", r"resume(\d+)-s(\d+)\.pt"
#: Tensors smaller than this many elements travel exactly (scalars, norms' statistics, the optimiser's step)
RESUME_EXACT_BELOW = 1024
_REF = "__resume_tensor__"


def _strip_tensors(obj: Any, path: str, out: list[tuple[str, Any]], dtype_of: Any) -> Any:
    """``obj`` with every tensor replaced by ``{_REF: id}``; the tensors go to ``out`` as ``(id, tensor)``, the
    floating ones of at least :data:`RESUME_EXACT_BELOW` elements in the dtype ``dtype_of(path, tensor)`` gives."""
    import torch

    if isinstance(obj, torch.Tensor):
        tid = f"{len(out)}:{path}"
        v = obj.detach().cpu()
        if v.is_floating_point() and v.numel() >= RESUME_EXACT_BELOW:
            v = v.to(dtype_of(path, v))
        out.append((tid, v))
        return {_REF: tid, "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, dict):
        new = copy.copy(obj)  # the same mapping type (an OrderedDict state_dict, Lightning's AttributeDict)
        for k, v in obj.items():
            new[k] = _strip_tensors(v, f"{path}/{k}", out, dtype_of)
        return new
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_strip_tensors(v, f"{path}/{i}", out, dtype_of) for i, v in enumerate(obj))
    return obj


def _put_tensors(obj: Any, tensors: Mapping[str, Any]) -> Any:
    """The inverse of :func:`_strip_tensors`: each reference replaced by its tensor, in its original dtype."""
    import torch

    if isinstance(obj, dict) and _REF in obj:
        return tensors[obj[_REF]].to(getattr(torch, obj["dtype"]))
    if isinstance(obj, dict):
        new = copy.copy(obj)
        for k, v in obj.items():
            new[k] = _put_tensors(v, tensors)
        return new
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_put_tensors(v, tensors) for v in obj)
    return obj


def _travel_dtype(path: str, v: Any) -> Any:
    """A large floating tensor's travelling dtype: float16 for the weights (``state_dict``; bfloat16 where a weight
    overflows float16), bfloat16 for the rest (the optimiser's moments: float16 would flush AdamW's squared
    gradients, ~1e-10, to zero)."""
    import torch

    if path.startswith("/state_dict/") and v.abs().max().item() <= torch.finfo(torch.float16).max:
        return torch.float16
    return torch.bfloat16


def _resume_sets(folders: Sequence[Path], fold: int) -> dict[int, dict[str, Any]]:
    """The resume sets of ``fold`` in ``folders``: step -> {"index": path or None, "shards": {j: path}}."""
    import re

    sets: dict[int, dict[str, Any]] = {}
    for folder in folders:
        for p in sorted(Path(folder).glob(f"resume{fold}-s*.pt")):
            m, i = re.fullmatch(RESUME_SHARD, p.name), re.fullmatch(RESUME_INDEX, p.name)
            if m:
                sets.setdefault(int(m.group(2)), {"index": None, "shards": {}})["shards"][int(m.group(3))] = p
            elif i:
                sets.setdefault(int(i.group(2)), {"index": None, "shards": {}})["index"] = p
    return sets


def export_resume(fold_dir: Path, fold: int, folder: Path, config_sha: str) -> list[Path]:
    """A fold in progress as a **resume set** in ``folder``, so that another machine goes on training it: the fold's
    ``checkpoints/last.ckpt`` (weights, optimiser, scheduler, loop counters, callback states) and its best checkpoint
    so far, with their large floating tensors in float16 (the weights) or bfloat16 (the optimiser's moments) as
    shards of at most :data:`FILE_BYTES` (``resume<F>-s<STEP>-<j>.pt``), then an index ``resume<F>-s<STEP>.pt``
    holding the rest and the fold's epoch timings. The best checkpoint travels without its optimiser state (nothing
    resumes from it) and without its weights when they are the last checkpoint's. Older sets of the fold in
    ``folder`` are removed. Returns the set's files ([] when the fold has no ``last.ckpt`` yet, or the set of its
    step is already there).

    A fp32 weight rounded to float16 moves by less than 5e-4 of itself (as fold 1's weights do on their way to the
    later folds); a moment rounded to bfloat16 by less than 4e-3 of itself.
    """
    import torch

    from glc.training.callbacks import TIMING_FILE
    from glc.training.checkpoint import atomic_torch_save
    from glc.training.fit import _callback_state, local_checkpoint

    ckpt_dir = fold_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not last.is_file():
        return []
    ck = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
    step = int(ck.get("global_step", 0))
    old = _resume_sets([folder], fold)
    if step in old and old[step]["index"] is not None:
        return []
    best = local_checkpoint(_callback_state(ck, "ModelCheckpoint").get("best_model_path"), ckpt_dir)
    tensors: list[tuple[str, Any]] = []
    skeleton = {"last": _strip_tensors(ck, "", tensors, _travel_dtype), "best": None, "best_name": None}
    if best is not None:
        bk = torch.load(best, map_location="cpu", weights_only=False, mmap=True)
        bk = {k: v for k, v in bk.items() if k not in ("optimizer_states", "lr_schedulers")}
        sd, lsd = bk["state_dict"], ck["state_dict"]
        same = sd.keys() == lsd.keys() and all(torch.equal(sd[k], lsd[k]) for k in sd)
        if same:  # the best epoch is the last one saved: its weights are the last checkpoint's (their references)
            bk = {**bk, "state_dict": skeleton["last"]["state_dict"]}
        skeleton["best"] = _strip_tensors(bk, "", tensors, _travel_dtype)
        skeleton["best_name"] = best.name
    timing = fold_dir / TIMING_FILE
    for s_old in old.values():  # an earlier step's set (or this step's, half written) goes
        for p in [*s_old["shards"].values(), *([s_old["index"]] if s_old["index"] else [])]:
            p.unlink(missing_ok=True)
    paths = _write_shards(tensors, folder, f"resume{fold}-s{step}", str(last))
    index = folder / f"resume{fold}-s{step}.pt"
    meta = {
        "fold": fold,
        "step": step,
        "epoch": int(ck.get("epoch", -1)),
        "count": len(paths),
        "config_sha": config_sha,
        "skeleton": skeleton,
        "timing": timing.read_text() if timing.is_file() else "",
    }
    atomic_torch_save(meta, index)
    log.info("fold %d: resume set at step %d (epoch %s): %d shards, %.1f MiB", fold, step, ck.get("epoch"),
             len(paths), sum(p.stat().st_size for p in paths) / 2**20)  # fmt: skip
    return [*paths, index]


def _relocate(ck: dict[str, Any], ckpt_dir: Path) -> dict[str, Any]:
    """``ck`` with its ``ModelCheckpoint`` states pointing into ``ckpt_dir`` (the same file names): Lightning reloads
    a checkpoint callback's best score and best-k files only when its ``dirpath`` is the one it was saved with, so a
    set resumed in another folder would otherwise forget the best epoch so far."""
    import os

    here = os.path.realpath(ckpt_dir)

    def moved(p: Any) -> Any:
        return os.path.join(here, Path(p).name) if isinstance(p, str) and p else p

    for key, state in (ck.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("dirpath"):
            state["dirpath"] = here
            for name in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state[name] = moved(state.get(name))
            if isinstance(state.get("best_k_models"), dict):
                state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    return ck


def import_resume(folders: Sequence[Path], fold: int, fold_dir: Path, config_sha: str) -> bool:
    """Rebuild a fold's checkpoints in ``fold_dir`` from the newest resume set of ``fold`` found in ``folders``
    (:func:`export_resume`; a lease carries its shards in several calls, into several folders), so that training goes
    on from it. Does nothing (False) when no folder holds a set, or ``fold_dir`` already has a ``last.ckpt`` (this
    machine's own progress). The checkpoint callbacks' paths are moved into ``fold_dir/checkpoints``
    (:func:`_relocate`); the best checkpoint is written first and ``last.ckpt`` last, each atomically.

    Raises:
        FileNotFoundError: the newest set lacks its index or a shard (naming which).
        ValueError: the set was written by a run of another config.
    """
    import torch

    from glc.io import atomic_file
    from glc.training.callbacks import TIMING_FILE
    from glc.training.checkpoint import atomic_torch_save

    sets = _resume_sets(folders, fold)
    last = fold_dir / "checkpoints" / "last.ckpt"
    if not sets or last.is_file():
        return False
    step = max(sets)
    found = sets[step]
    where = [str(f) for f in folders]
    if found["index"] is None:
        raise FileNotFoundError(
            f"fold {fold}'s resume set of step {step}: its index resume{fold}-s{step}.pt is not in {where}; carry it "
            "(ship again), or delete that set's shards to resume from an older one"
        )
    meta = torch.load(found["index"], map_location="cpu", weights_only=False)
    if meta["config_sha"] != config_sha:
        raise ValueError(
            f"{found['index']}: written by a run of config {meta['config_sha']}, not this one ({config_sha}); "
            "train with the same experiment and --set values, or remove the set"
        )
    missing = [f"resume{fold}-s{step}-{j:03d}.pt" for j in range(int(meta["count"])) if j not in found["shards"]]
    if missing:
        raise FileNotFoundError(f"fold {fold}'s resume set of step {step}: shards {missing} are missing from {where}")
    pieces: dict[str, list[tuple[int, Any]]] = {}
    for j in range(int(meta["count"])):
        for k, i, v in torch.load(found["shards"][j], map_location="cpu", weights_only=False)["pieces"]:
            pieces.setdefault(k, []).append((i, v))
    tensors = _join_pieces(pieces)
    sk = meta["skeleton"]
    ckpt_dir = fold_dir / "checkpoints"
    if sk["best"] is not None:
        atomic_torch_save(_relocate(_put_tensors(sk["best"], tensors), ckpt_dir), ckpt_dir / sk["best_name"])
    timing = fold_dir / TIMING_FILE
    if meta["timing"] and not timing.is_file():
        with atomic_file(timing) as fh:
            fh.write(meta["timing"])
    atomic_torch_save(_relocate(_put_tensors(sk["last"], tensors), ckpt_dir), last)
    log.info("fold %d: resumes from the carried set of step %d (epoch %d)", fold, step, meta["epoch"])
    return True


def digest(paths: Sequence[Path]) -> str:
    """SHA-256 (16 hex digits) of the files' bytes in the given order: which fold-0 weights a fold started from."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def config_digest(cfg: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of the experiment config: every fold of one protocol run has the same."""
    import hashlib

    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _shards(folders: Sequence[Path]) -> list[Path]:
    found = {p.name: p for f in folders for p in sorted(Path(f).glob("init-*.pt"))}
    return [found[n] for n in sorted(found)]


def train_folds(
    inputs: Path,
    cfg: Mapping[str, Any],
    folds: Sequence[int],
    work: Path,
    init: Sequence[Path] = (),
    top: int = PART_TOP,
    stop_after_s: float | None = None,
    compile_cache: bool = True,
) -> list[dict[str, Any]]:
    """Train the named folds of ``cfg``'s k-fold protocol (see the module docstring) in ``work/fold<F>`` and write
    their parts (and fold 0's weight shards) to ``work/ship``, then the fold's summary ``fold<F>-summary.json``
    (atomically, last: a fold with a summary is done and skipped). A fold whose fit finished (its
    ``fold_summary.json``, as in ``train_kfold``) is not trained again when a call stopped before its parts. With
    ``stop_after_s`` no fold is started that many seconds after the call began (a lease's call limit; the fold in
    progress resumes from its last checkpoint on the next call). With a compiled net and ``compile_cache``, the
    compile cache (:mod:`glc.training.compile_cache`) found in ``init`` or ``work/ship`` is loaded first (its graphs
    are not compiled again), and when ``work/ship`` holds none the first fold trained writes this machine's there
    after its first epoch, for ``ship``. Returns one
    summary per fold finished.

    Raises:
        ValueError: ``cfg`` is not a k-fold config, a fold is out of range, or ``top`` is below ``model.top_n``.
        FileNotFoundError: a fold after the first without fold 0's shards.
    """
    from glc.io import write_json
    from glc.training.kfold import FOLD_SUMMARY, finished_fold, fold_assignment, fold_config
    from glc.training.trainer import datamodule, load_module, train_model

    t_call = time.time()
    k = int(cfg["train"].get("kfold", 1))
    if k < 2:
        raise ValueError(f"{cfg['name']}: train.kfold = {k}; the fold pieces need a k-fold config (kfold >= 2)")
    bad = [f for f in folds if not 0 <= f < k]
    if bad:
        raise ValueError(f"--folds {bad}: expected fold numbers 0..{k - 1}")
    if top < int(cfg["model"]["top_n"]):
        raise ValueError(f"--top {top} is below model.top_n = {cfg['model']['top_n']}: keep at least that many")
    ids, assign = fold_assignment(inputs, cfg)
    ship = work / "ship"
    out = []
    callbacks: list[Any] = []
    if compile_cache and str(cfg["train"].get("compile", "off")) != "off":
        from glc.training.compile_cache import INDEX, CompileCacheSaver, load_compile_cache

        try:
            load_compile_cache([*init, ship])
        except (FileNotFoundError, ValueError) as e:  # a cache is an optimisation: a broken one costs the compile
            log.warning("compile cache not loaded (%s); compiling from scratch", e)
        if not (ship / INDEX).is_file():  # one blob is enough: the folds compile the same graphs
            callbacks.append(CompileCacheSaver(ship, FILE_BYTES))
    for f in folds:
        marker = ship / f"fold{f}-summary.json"
        if marker.is_file():
            log.info("fold %d: done (%s), skipped", f, marker)
            continue
        if stop_after_s is not None and time.time() - t_call > stop_after_s:
            log.info("fold %d not started: %.0f s of this call are gone (--stop-after %.0f)", f, time.time() - t_call,
                     stop_after_s)  # fmt: skip
            break
        t0 = time.time()
        done = finished_fold(work / f"fold{f}")  # a call stopped after the fit does not train the fold again
        if done is None and init:  # a fold another machine paused (its resume set carried in) goes on from there
            import_resume(init, f, work / f"fold{f}", config_digest(cfg))
        start, init_sha = None, None
        if f > 0:
            start = import_weights([*init, ship], work / "fold0-init.ckpt")
            init_sha = digest(_shards([*init, ship]))
        fcfg = fold_config(cfg, f)
        subsets = {"train": ("train", ids[assign != f]), "val": ("train", ids[assign == f])}
        if done is not None:
            s = done
        else:
            try:
                import torch._dynamo

                torch._dynamo.reset()  # each fold's net is compiled afresh (Inductor's on-disk cache stays)
            except Exception:  # a torch without dynamo: nothing was compiled
                pass
            s = train_model(
                inputs,
                work / f"fold{f}",
                fcfg,
                f"{cfg['name']}-fold{f}",
                progress=False,
                wandb=False,
                reader="memory",
                subsets=subsets,
                init=start,
                callbacks=callbacks,
            )
            callbacks = []  # the saver writes once (the next folds compile the same graphs)
            write_json(work / f"fold{f}" / FOLD_SUMMARY, s)
        if f == 0:
            init_sha = digest(export_weights(Path(s["best_checkpoint"]), ship))
        pcfg = {**fcfg, "train": {**fcfg["train"], "compile": "off"}}  # scoring needs no compiled graphs
        dm = datamodule(inputs, pcfg, "memory")
        module = load_module(s["best_checkpoint"], pcfg, dm.meta)
        keep = min(top, int(dm.meta["num_classes"]))  # a table of fewer classes keeps them all
        for split in SPLITS:
            for old in ship.glob(f"fold{f}-{split}-*.npz"):  # a part a stopped call left half written
                old.unlink()
            write_part(ship, f, split, top_part(*fold_logits(module, dm.loader(split, shuffle=False)), keep))
        summary = {
            "fold": f,
            "k": k,
            "n_train": int((assign != f).sum()),
            "n_val": int((assign == f).sum()),
            "config_sha": config_digest(cfg),
            "init_sha": init_sha,  # fold 0's float16 shards: exported (fold 0) or started from (the others)
            "best_checkpoint": str(s["best_checkpoint"]),  # on the machine that trained it
            **{x: s.get(x) for x in ("best_monitor", "epochs_to_best", "epochs_trained", "epoch_seconds_each")},
            "train_samples_per_s": s.get("train_samples_per_s_steady") or s.get("train_samples_per_s"),
            "gpu_peak_mb": s.get("gpu_peak_mb"),
            "device": s.get("device"),
            "seconds": round(time.time() - t0, 1),
        }
        write_json(marker, summary)
        for p in ship.glob(f"resume{f}-s*.pt"):  # a resume set of the fold written before it finished
            p.unlink()
        log.info("fold %d/%d done: %s", f + 1, k, json.dumps(summary))
        out.append(summary)
    return out


def pause(work: Path, cfg: Mapping[str, Any]) -> list[Path]:
    """Write a resume set (:func:`export_resume`) into ``work/ship`` for every fold of ``work`` that has a
    ``last.ckpt`` but has not finished (no ``fold<F>-summary.json`` in ``work/ship``): what a call stopped by its
    time limit leaves for a later lease, on another machine, to go on from. Returns the files written."""
    import re

    ship = work / "ship"
    out: list[Path] = []
    for d in sorted(work.glob("fold*")):
        m = re.fullmatch(r"fold(\d+)", d.name)
        if m and d.is_dir() and not (ship / f"fold{m.group(1)}-summary.json").is_file():
            out += export_resume(d, int(m.group(1)), ship, config_digest(cfg))
    return out


def ship_files(work: Path, out: Path, again: Sequence[str] = ()) -> list[str]:
    """Copy the files of ``work/ship`` not shipped before into ``out``, as many as one call brings back (up to
    :data:`SHIP_FILES` files and :data:`SHIP_BYTES`, counting the files already in ``out``; summaries first, then
    parts, then weight shards and resume sets), and record them in ``work/ship/shipped.txt``; returns their names
    (empty: nothing left, or nothing fits beside what ``out`` holds). Only the files of finished folds go (those with
    a ``fold<F>-summary.json``; the shards with fold 0's), the resume sets of folds not finished (:func:`pause`), and
    never a temporary file a stopped writer left. ``again``:
    names to send again (a call whose files did not come back).

    Raises:
        ValueError: a file is larger than one call brings back (:data:`SHIP_FILE_BYTES`).
    """
    import re

    from glc.training.compile_cache import INDEX

    ship = work / "ship"
    if not ship.is_dir():
        log.info("nothing to ship: %s does not exist (no fold has finished)", ship)
        return []
    done_file = ship / SHIPPED
    done = set(done_file.read_text().split()) if done_file.is_file() else set()
    done -= set(again)
    finished = {int(m.group(1)) for p in ship.glob("fold*-summary.json") if (m := re.match(r"fold(\d+)-", p.name))}

    def ready(p: Path) -> bool:
        m = re.fullmatch(r"fold(\d+)-(summary\.json|(val|test)-\d+\.npz)", p.name)
        if m:
            return int(m.group(1)) in finished
        if re.fullmatch(r"compile-cache(-\d+\.bin|\.json)", p.name):  # whole once its index is written
            return (ship / INDEX).is_file()
        r = re.fullmatch(RESUME_SHARD, p.name) or re.fullmatch(RESUME_INDEX, p.name)  # whole once its index is written
        if r:
            return int(r.group(1)) not in finished and (ship / f"resume{r.group(1)}-s{r.group(2)}.pt").is_file()
        return re.fullmatch(r"init-\d+\.pt", p.name) is not None and 0 in finished

    rank = {".json": 0, ".npz": 1, ".pt": 2}
    todo = sorted(
        (p for p in ship.glob("*") if p.is_file() and p.name not in done and ready(p)),
        key=lambda p: (rank.get(p.suffix, 3), p.name),
    )
    big = [p.name for p in todo if p.stat().st_size > SHIP_FILE_BYTES]
    if big:
        raise ValueError(f"{ship}: {big} are larger than the {SHIP_FILE_BYTES} bytes a call brings back a file")
    out.mkdir(parents=True, exist_ok=True)
    there = [p for p in out.rglob("*") if p.is_file()]  # what the call already brings back (its log)
    sent: list[str] = []
    size = sum(p.stat().st_size for p in there)
    for p in todo:
        b = p.stat().st_size
        if len(there) + len(sent) >= SHIP_FILES or size + b > SHIP_BYTES:
            break
        shutil.copyfile(p, out / p.name)
        sent.append(p.name)
        size += b
    done |= set(sent)
    done_file.write_text("".join(n + "\n" for n in sorted(done)))
    left = len(todo) - len(sent)
    log.info("shipped %d files (%.1f MiB); %d left%s", len(sent), size / 2**20, left, ": ship again" if left else "")
    return sent


def merge(parts: Path, k: int, vocab: np.ndarray, top_n: int, split: str) -> Any:
    """The k-fold ensemble's :class:`~glc.predict.scores.ScoreTable` of one split from the folds' parts (see the
    module docstring): per survey the ``top_n`` species by mean logit and their sigmoid; the mass of the rest is the
    folds' mean total mass (each fold's kept sigmoids plus its ``rest``) less the kept probabilities, so a species
    one fold kept and another did not is counted once (the sigmoid of a mean is not the mean of the sigmoids: an
    approximation, never negative).

    Raises:
        FileNotFoundError: a fold's part is missing.
        ValueError: the folds' parts hold different surveys, or a part keeps fewer than ``top_n`` logits.
    """
    from glc.predict.scores import ScoreTable

    ps = [read_part(parts, f, split) for f in range(k)]
    ids = ps[0]["survey_ids"]
    for f, p in enumerate(ps[1:], 1):
        if not np.array_equal(p["survey_ids"], ids):
            raise ValueError(f"{parts}: fold {f}'s {split} part holds other surveys than fold 0's; retrain it")
    narrow = [f for f, p in enumerate(ps) if p["idx"].shape[1] < top_n]
    if narrow:
        raise ValueError(f"{parts}: the {split} parts of folds {narrow} keep fewer than model.top_n = {top_n} logits")
    n, c = len(ids), len(vocab)
    species = np.empty((n, top_n), np.int64)
    prob = np.empty((n, top_n), np.float32)
    rest = np.empty(n, np.float32)
    for a in range(0, n, 1024):
        b = min(n, a + 1024)
        r = np.arange(b - a)[:, None]
        acc = np.zeros((b - a, c), np.float64)
        total = np.zeros(b - a, np.float64)
        for p in ps:
            z = p["logit"][a:b].astype(np.float64)
            floor = z[:, -1:]
            acc += floor
            acc[r, p["idx"][a:b].astype(np.int64)] += z - floor
            total += (1.0 / (1.0 + np.exp(-z))).sum(axis=1) + p["rest"][a:b]
        mean = acc / k
        col = np.argpartition(-mean, top_n - 1, axis=1)[:, :top_n] if top_n < c else np.tile(np.arange(c), (b - a, 1))
        o = np.argsort(-np.take_along_axis(mean, col, axis=1), axis=1, kind="stable")
        col = np.take_along_axis(col, o, axis=1)
        top = 1.0 / (1.0 + np.exp(-np.take_along_axis(mean, col, axis=1)))
        species[a:b] = vocab[col]
        prob[a:b] = top
        rest[a:b] = np.maximum(total / k - top.sum(axis=1), 0.0)
    return ScoreTable(ids.astype(np.int64), species, prob, rest)


def unpacked_path(work: Path, npz: Path) -> Path:
    """Where ``--npz`` is unpacked: named by the file's name and size, so another packed table never reuses it."""
    return work / f"inputs-{npz.stem}-{npz.stat().st_size}"


def fold_summaries(parts: Path, k: int) -> list[dict[str, Any]]:
    """The k folds' summaries in ``parts``, checked to belong to one protocol run.

    Raises:
        FileNotFoundError: a fold's summary is missing.
        ValueError: the folds were trained with other configs, other fold-0 weights, or another k.
    """
    out = []
    for f in range(k):
        p = parts / f"fold{f}-summary.json"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: fold {f} has not finished (or its files were not brought here)")
        out.append(json.loads(p.read_text()))
    for key in ("config_sha", "init_sha", "k"):
        seen = {str(s.get(key)) for s in out}
        if len(seen) > 1:
            raise ValueError(f"{parts}: the folds disagree on {key} ({sorted(seen)}): they are not one k-fold run")
    if int(out[0].get("k", k)) != k:
        raise ValueError(f"{parts}: the folds were trained with kfold = {out[0]['k']}, not {k}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fusion_kfold", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    from bench.fusion_gpu import score_arguments, table_arguments

    table = table_arguments(Path("/tmp/fusion-kfold"))
    f = sub.add_parser("fold", parents=[table], help="train folds and write their parts to --work/ship")
    f.add_argument("--folds", type=int, nargs="+", required=True, help="fold numbers, 0 = the first (from scratch)")
    f.add_argument("--init", type=Path, action="append", default=[], help="a folder with fold 0's init-*.pt shards")
    f.add_argument("--top", type=int, default=PART_TOP, help="logits kept per survey and fold")
    f.add_argument("--stop-after", type=float, help="start no fold this many seconds after the call began")
    f.add_argument("--no-compile-cache", action="store_true", help="neither load nor write the compile cache")
    s = sub.add_parser("ship", help="copy the next files of --work/ship into --out (one call's worth)")
    s.add_argument("--work", type=Path, default=Path("/tmp/fusion-kfold"))
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--again", nargs="*", default=[], help="file names to send again (their call did not bring them)")
    sub.add_parser("unpack", parents=[table], help="unpack --npz into --work (what fold and merge read)")
    pz = sub.add_parser("pause", help="write the resume set of every unfinished fold of --work into --work/ship")
    pz.add_argument("--work", type=Path, default=Path("/tmp/fusion-kfold"))
    pz.add_argument("--experiment", type=Path, required=True)
    pz.add_argument("--set", action="append", default=[], help="the fold call's overrides (the config digest)")
    m = sub.add_parser("merge", parents=[table, score_arguments()], help="merge the k folds' parts, decode and score")
    m.add_argument("--parts", type=Path, required=True, help="the folder holding every fold's part files")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.cmd == "ship":
        ship_files(a.work, a.out, a.again)
        return 0
    from bench.fusion_gpu import _config

    if a.cmd == "pause":
        written = pause(a.work, _config(a.experiment, a.set))
        log.info("pause: %d files written%s", len(written), "" if written else " (no unfinished fold has a checkpoint)")
        return 0
    if (a.inputs is None) == (a.npz is None):
        raise SystemExit(f"{a.cmd}: give exactly one of --inputs or --npz")
    inputs = a.inputs
    if a.npz is not None:
        from glc.loaders.pack import unpack

        inputs = unpacked_path(a.work, a.npz)
        if not (inputs / "_SUCCESS").is_file():
            unpack(a.npz, inputs)
    if a.cmd == "unpack":
        return 0
    cfg = _config(a.experiment, a.set)
    if a.cmd == "fold":
        trained = train_folds(inputs, cfg, a.folds, a.work, a.init, a.top, a.stop_after, not a.no_compile_cache)
        if a.json:
            from glc.io import write_json

            write_json(a.json, {"experiment": cfg["name"], "overrides": a.set, "folds": trained})
        return 0
    from bench.fusion_gpu import score_tables
    from glc.loaders.tables import read_meta

    meta = read_meta(inputs)
    k, top_n = int(cfg["train"]["kfold"]), int(cfg["model"]["top_n"])
    vocab = np.asarray(meta["vocab"], np.int64)
    folds = fold_summaries(a.parts, k)
    val, test = (merge(a.parts, k, vocab, top_n, sp) for sp in SPLITS)
    res = {
        "experiment": cfg["name"],
        "overrides": a.set,
        "kfold": k,
        "folds": folds,
        **score_tables(val, test, inputs, cfg, a.truth, a.corrections),
    }
    print(json.dumps(res, indent=1), flush=True)
    if a.json:
        from glc.io import write_json

        write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
