"""Experiment configuration: defaults in one place, unknown keys are an error.

An experiment is one TOML file in ``tasks/`` (``tasks/<name>.toml``). It overrides :data:`DEFAULTS`; any key not in
:data:`DEFAULTS` raises, naming the file and the key (a typo must never silently leave a default in force). The
resolved config (defaults + overrides) is what the model receives, what the report prints and what W&B logs, and
its hash is part of every experiment artifact's path, so editing a parameter file reruns what it affects.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS_DIR = REPO_ROOT / "tasks"

#: Every experiment setting with its default. Valid values are listed beside each.
DEFAULTS: dict[str, Any] = {
    "name": "frequency",  # experiment name (defaults to the file stem)
    "seed": 0,  # global seed: splits, model init, sampling
    "model": {
        "kind": "frequency",  # frequency | region_frequency | knn | radius | gfv | geolocation
        "top_n": 256,  # species kept per survey in the score artifact
        "k": 10,  # knn: number of nearest training surveys (distance-weighted)
        "radius_km": 10.0,  # radius: all training surveys within this distance; gfv: graph edge cutoff
        # geolocation (glc.models.geolocation): a Lightning-trained net on the survey location
        "encoder": "sinusoidal",  # xy (scaled EPSG:3035 x/y) | sinusoidal (multi-scale) | sh (spherical harmonics)
        "hidden": 256,  # hidden units of the 2-layer MLP; 0 = linear model
        "siren": False,  # SIREN body (sine activations) instead of the ReLU MLP
        "sh_degree": 10,  # sh: Legendre degree L (L^2 functions)
        "n_scales": 8,  # sinusoidal: number of scales, geometric from min_scale_km to max_scale_km
        "min_scale_km": 50.0,  # 50 km validated better than 1 or 20 km on the demo world (0.480 vs 0.433 / 0.453)
        "max_scale_km": 2000.0,
        "coord_noise_km": 5.0,  # mean displacement of the Gaussian coordinate noise in training (0 = off)
        "extras": [],  # extra inputs: any of year, region, env, gfv (env / gfv need the EnvFeatures / GraphFeatures artifacts)
        "dropout": 0.0,
    },
    "train": {
        # Lightning training of neural models (model.kind = geolocation)
        "loss": {
            "kind": "asl",  # bce | asl | hill | sigmoid_f1 (glc.training.losses)
            "pos_weight": 0.0,  # bce: positive-class weight (0 = none)
            "gamma_pos": 1.0,  # asl
            "gamma_neg": 4.0,  # asl
            "clip": 0.05,  # asl probability margin on negatives
            "hill_lambda": 1.5,  # hill
            "hill_margin": 1.0,  # hill (focal margin of positives)
            "hill_gamma": 2.0,  # hill
            "sf1_S": -1.0,  # sigmoid_f1 slope parameter S
            "sf1_E": 0.0,  # sigmoid_f1 offset parameter E
        },
        "max_epochs": 40,
        "patience": 6,  # early stopping on validation sample-F1
        "batch_size": 256,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "val_k": 0,  # top-k of the per-epoch validation sample-F1 (0 = mean training richness)
        "reader": "petastorm",  # petastorm | arrow | memory (glc.loaders)
        "num_workers": 0,  # DataLoader workers
        "accelerator": "auto",  # auto uses a GPU when present
    },
    "decoder": {
        # topk | threshold | threshold_topk | expected_f1 | expected_f1_mc | expected_f1_exact | expected_f1_platt
        # (glc.decoding.DECODERS; expected_f1_platt calibrates non-probability scores, e.g. from ASL, first);
        # every one is fitted on the validation surveys
        "kind": "expected_f1",
        "k_max": 100,  # largest set size a decoder may choose
        "compare": True,  # also score every other decoder on the same validation scores (report table)
    },
    "validation": {
        "block_km": 10.0,  # spatial block size of the hold-out (EPSG:3035)
        "val_fraction": 0.2,  # fraction of training surveys held out
    },
    "wandb": {
        "project": "glc",
        "group": "baselines",
        "tags": [],
        "mode": "offline",  # offline | online | disabled (online needs `wandb login`)
    },
}


class ConfigError(ValueError):
    """An experiment file has an unknown key or a bad value."""


def _merge(base: dict[str, Any], over: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        path = f"{where}.{k}" if where else k
        if k not in base:
            raise ConfigError(
                f"{source}: unknown key {path!r}; valid keys here are {sorted(base)}. Fix the spelling or add the "
                "setting to glc/config.py DEFAULTS (with its valid values) if it is new."
            )
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: {path!r} must be a table, got {type(v).__name__}")
            out[k] = _merge(base[k], v, path, source)
        else:
            out[k] = v
    return out


def resolve(overrides: dict[str, Any] | None = None, source: str = "<overrides>") -> dict[str, Any]:
    """Return DEFAULTS updated with ``overrides`` (unknown keys raise :class:`ConfigError`)."""
    return _merge(DEFAULTS, overrides or {}, "", source)


def experiment_path(name_or_path: str) -> Path:
    """Map an experiment name (``frequency``) or a path to its TOML file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        return p
    cand = TASKS_DIR / f"{name_or_path}.toml"
    if cand.exists():
        return cand
    known = sorted(q.stem for q in TASKS_DIR.glob("*.toml"))
    raise ConfigError(f"no experiment {name_or_path!r}: expected {cand} or an existing .toml path; known experiments: {known}")


def load_experiment(name_or_path: str) -> dict[str, Any]:
    """Load and resolve one experiment file."""
    path = experiment_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    raw.setdefault("name", path.stem)
    return resolve(raw, str(path))


def config_hash(cfg: dict[str, Any]) -> str:
    """Short stable hash of a resolved config (part of experiment artifact paths)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
