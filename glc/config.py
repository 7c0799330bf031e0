"""Experiment configuration: one typed schema, defaults in one place, every value checked at load.

An experiment is one TOML file in ``tasks/`` (``tasks/<name>.toml``). It overrides the defaults of :data:`SCHEMA`;
every key is checked when the file is loaded, before any task runs, and an error names the file and the key:

* an unknown key raises (a typo must never silently leave a default in force);
* a value of the wrong type raises (``k = "ten"``), an int stays an int (``k = 2.9`` is refused, never truncated),
  a float accepts an int (``lr = 1`` is ``1.0``), a bool must be ``true``/``false``;
* ranges and choices are checked (``k >= 1``; ``decoder.kind`` must be a decoder of :data:`glc.decoding.DECODERS`,
  ``train.loss.kind`` a loss of :data:`glc.training.losses.LOSSES`, ``model.kind`` a model of the model registry).

The ``[model]`` table depends on its kind: ``kind`` and ``top_n`` are common, every other key comes from the kind's
own table in the model registry (:mod:`glc.models.registry`, each model module declares its parameters with
:class:`Param`), so ``k`` is valid for ``kind = "knn"`` and an error for ``kind = "geolocation"``.

``resolve({})`` is the default config. The resolved config (defaults + overrides) is what the model receives, what the
report prints and what W&B logs, and its hash is part of every experiment artifact's path, so editing a parameter file
reruns what it affects.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from glc.params import ConfigError, Param, Schema, check_table, defaults_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The source checkout glc runs from (an installed glc's ``site-packages`` parent has no ``tasks/`` or ``conf/``).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Environment variables naming the experiment folder and the runtime-configuration folder.
TASKS_ENV, CONF_ENV = "GLC_TASKS_DIR", "GLC_CONF_DIR"


def _project_dir(name: str, env: str) -> Path | None:
    """``$env`` (must exist), else ``./<name>`` of the working directory, else the source checkout's ``<name>``."""
    if os.environ.get(env):
        p = Path(os.environ[env])
        if not p.is_dir():
            raise ConfigError(f"{env}={os.environ[env]}: not a folder; point it at a folder of {name}/ files")
        return p
    for p in (Path.cwd() / name, REPO_ROOT / name):
        if p.is_dir():
            return p
    return None


def tasks_dir() -> Path:
    """The folder of the experiment files: ``$GLC_TASKS_DIR`` (``--tasks-dir`` of the CLI), else ``tasks/`` of the
    working directory, else the source checkout's ``tasks/``.

    Raises:
        ConfigError: when none exists (an installed glc run outside a project folder), saying what to do.
    """
    p = _project_dir("tasks", TASKS_ENV)
    if p is None:
        raise ConfigError(
            f"no experiment folder: run from a folder with tasks/<name>.toml files, pass --tasks-dir DIR "
            f"or set {TASKS_ENV}=DIR (the source checkout's tasks/ holds every reference experiment)"
        )
    return p


def conf_dir() -> Path | None:
    """The runtime-configuration folder (``luigi.cfg``, ``spark-defaults.conf``, ``logging.cfg``): ``$GLC_CONF_DIR``,
    else ``conf/`` of the working directory, else the source checkout's; None when there is none (built-in defaults)."""
    return _project_dir("conf", CONF_ENV)


def encoders_dir() -> Path:
    """Encoder files (``tasks/encoders/<name>.toml``): the self-supervised encoders of :mod:`glc.tasks.pretrain`."""
    return tasks_dir() / "encoders"


__all__ = [
    "SCHEMA",
    "ConfigError",
    "Param",
    "check_table",
    "config_hash",
    "defaults_of",
    "experiment_path",
    "experiment_table",
    "load_encoder_config",
    "check_edition",
    "load_experiment",
    "resolve",
    "resolve_encoder",
]


def _model_kinds() -> tuple[str, ...]:
    from glc.models.registry import model_kinds

    return model_kinds()


def _feature_set_names() -> tuple[str, ...]:
    from glc.features.sets import ALWAYS, FEATURE_SETS

    return tuple(n for n in FEATURE_SETS if n not in ALWAYS)


def _decoder_kinds() -> tuple[str, ...]:
    from glc.decoding import DECODERS

    return tuple(DECODERS)  # "count": n_hat from the species-count model (glc.experiment.count_estimates)


def _loss_schema() -> Schema:
    from glc.training.losses import LOSS_PARAMS

    return dict(LOSS_PARAMS)


#: Every experiment setting. ``model`` holds only the keys common to every kind; a kind's own keys are added from
#: the model registry when a config is resolved (see the module docstring).
SCHEMA: Schema = {
    "name": Param("frequency", "experiment name (defaults to the file stem)"),
    "seed": Param(0, "global seed: splits, model init, sampling", min=0),
    "model": {
        "kind": Param("frequency", "model kind (glc.models.registry)", choices=_model_kinds),
        "top_n": Param(256, "species kept per survey in the score artifact", min=1),
    },
    "train": {
        # Lightning training of neural models (runner "lightning" in the model registry)
        "loss": _loss_schema,  # type: ignore[dict-item]  # resolved lazily (glc.training.losses.LOSS_PARAMS)
        "max_epochs": Param(40, "training epochs at most", min=1),
        "patience": Param(6, "early stopping on the model's validation monitor (epochs without improvement)", min=1),
        "batch_size": Param(256, "surveys per batch", min=1),
        "lr": Param(1e-3, "learning rate", min=0.0, min_exclusive=True),
        "weight_decay": Param(1e-4, "weight decay (AdamW: decoupled)", min=0.0),
        "cosine": Param(False, "cosine learning-rate schedule over max_epochs"),
        "optimizer": Param(
            "adamw",
            "optimiser (glc.training.module.OPTIMIZERS): adamw, or sgd (Nesterov momentum 0.9)",
            choices=("adamw", "sgd"),
        ),
        "step_epochs": Param(
            0, "step decay: multiply the learning rate by step_gamma every step_epochs epochs (0 = off)", min=0
        ),
        "step_gamma": Param(0.1, "step decay factor", min=0.0, max=1.0, min_exclusive=True),
        "val_k": Param(0, "top-k of the per-epoch validation sample-F1 (0 = mean training richness)", min=0),
        "reader": Param(
            "petastorm",
            "model-input reader (glc.loaders)",
            choices=("petastorm", "petastorm-public", "arrow", "memory"),
        ),
        "num_workers": Param(0, "DataLoader workers", min=0),
        "checkpoint_minutes": Param(
            30.0,
            "also rewrite last.ckpt inside an epoch every this many minutes of training, so a "
            "run killed mid-epoch resumes there, exactly (0 = at epoch ends only; not part of "
            "the config hash: it never changes the trained model)",
            min=0.0,
        ),
        "accelerator": Param("auto", "auto uses a GPU when present", choices=("auto", "cpu", "gpu", "cuda", "mps")),
        "devices": Param(
            1,
            "training processes: > 1 runs DDP, one process per GPU (or per CPU process, gloo) via "
            "torchrun (glc.training.ddp)",
            min=1,
        ),
        "strategy": Param("auto", "Lightning strategy: auto = ddp when devices > 1", choices=("auto", "ddp")),
        "precision": Param("32-true", "Lightning precision", choices=("32-true", "16-mixed", "bf16-mixed")),
        # speed switches (each changes numerics slightly; all off by default, the deterministic path)
        "channels_last": Param(
            False,
            "the net's 4-D weights and the batch's 4-D inputs in channels-last memory order (faster convs on GPU)",
        ),
        "compile": Param(
            "off",
            "torch.compile the net (its forward and forward_prepared): a torch.compile mode; reduce-overhead "
            "records CUDA graphs on a GPU",
            choices=("off", "default", "reduce-overhead", "max-autotune"),
        ),
        "compile_backend": Param(
            "inductor", "torch.compile backend (aot_eager: no C compiler needed)", choices=("inductor", "aot_eager")
        ),
        "compile_short_batches": Param(
            "eager",
            "with compile: a batch of another size than batch_size (each loader worker's last, a split's tail) runs "
            "the eager net, so the compiled graphs keep one static shape (eager), or the batch dimension is marked "
            "dynamic: one symbolic-shape graph for every size (dynamic)",
            choices=("eager", "dynamic"),
        ),
        "finite_check_every": Param(
            1,
            "check the loss for NaN/inf every step (1) or every this many steps (the first bad step is recorded on "
            "the device; checked before each checkpoint and at each epoch's end): spares the GPU a sync per step",
            min=1,
        ),
        "fused_optimizer": Param(False, "the optimiser's fused kernel (AdamW / SGD fused=True): one kernel a step"),
        "deterministic": Param(
            True,
            "deterministic algorithms (on a GPU: where a kernel has one, warning where not); false lets CUDA pick "
            "its fastest kernels, and a rerun no longer repeats the weights bit for bit",
        ),
        "lr_scaling": Param(
            "none",
            "scale lr with the rows per optimiser step (batch_size x devices) over lr_base_batch: linear or sqrt",
            choices=("none", "linear", "sqrt"),
        ),
        "lr_base_batch": Param(256, "rows per step at which lr is the given lr (lr_scaling)", min=1),
        "pin_memory": Param(False, "page-locked batches, copied to the GPU asynchronously (GPU runs only)"),
        "mixup_alpha": Param(
            0.0, "mixup of every input and the labels, lambda ~ Beta(alpha, alpha) (0 = off)", min=0.0
        ),
        "kfold": Param(
            1,
            "k-fold cross fusion (Tighnari): k models on the spatial folds of the training split, "
            "logits averaged (1 = one model)",
            min=1,
        ),
        "kfold_epochs": Param(5, "k-fold: epochs at most of folds 2..k, fine-tuned from fold 1's weights", min=1),
        "kfold_lr_scale": Param(
            0.5, "k-fold: learning rate of folds 2..k relative to lr", min=0.0, max=1.0, min_exclusive=True
        ),
        "pretrain_po": {
            # pretraining on the presence-only sites before the PA fit (glc.training.po_pretrain, the POSites artifact)
            "enabled": Param(False, "pretrain the net on the presence-only sites, then fine-tune it on the PA surveys"),
            "epochs": Param(10, "pretraining epochs over the PO sites (0 = none: the joint term alone)", min=0),
            "loss": Param(
                "an_full",
                "presence-only loss: an_full (assume-negative BCE, positives weighted, plus random background "
                "locations with every species absent; SINR), an_site (without the background term) or multinomial "
                "(which species a record at a site names: softmax over species with learned per-species offsets; "
                "cancels the sampling effort at the site)",
                choices=("an_full", "an_site", "multinomial"),
            ),
            "aux_weight": Param(
                0.0,
                "weight of the PO loss kept as a term of the PA fit, on batch_size PO sites per step "
                "(0 = pretraining only)",
                min=0.0,
            ),
            "pos_weight": Param(64.0, "weight of a recorded species against the assumed absences", min=0.0),
            "lr": Param(1e-3, "pretraining learning rate (AdamW)", min=0.0, min_exclusive=True),
            "batch_size": Param(512, "PO sites per pretraining step", min=1),
            "max_sites": Param(0, "use at most this many PO sites, a seeded sample (0 = all)", min=0),
        },
    },
    "inputs": {
        # the ModelInputs table of trained model kinds (its feature sets come from the model kind)
        "shuffle": Param(
            [],
            "feature sets whose rows are permuted among the surveys of each split (a control that keeps the "
            "values' distribution and destroys their link to the labels)",
            type="list[str]",
            choices=_feature_set_names,
        ),
    },
    "decoder": {
        "kind": Param(
            "expected_f1",
            "set decoder (glc.decoding.DECODERS; expected_f1_platt calibrates non-probability scores, "
            "e.g. from ASL, first); fitted on the validation surveys",
            choices=_decoder_kinds,
        ),
        "k_max": Param(100, "largest set size a decoder may choose", min=1),
        "compare": Param(True, "also score every other decoder on the same validation scores (report table)"),
        "po_correction": {
            # Tighnari's output correction (Algorithm 2; glc.features.po_correction, the POCorrection artifact)
            "enabled": Param(False, "add the species strongly attested around each survey to its decoded set"),
            "n_train": Param(5, "N: nearest training surveys considered", min=1),
            "min_train_count": Param(4, "L: a species must be held by more than L of them", min=0),
            "n_po": Param(10, "A: nearest presence-only sites considered", min=1),
            "min_po_count": Param(8, "M: a species must be recorded at more than M of them", min=0),
            "po_unit": Param("site", "site (PO records grouped by surveyId) or record", choices=("site", "record")),
        },
    },
    "validation": {
        "block_km": Param(10.0, "spatial block size of the hold-out (EPSG:3035, km)", min=0.0, min_exclusive=True),
        "val_fraction": Param(0.2, "fraction of training surveys held out", min=0.0, max=0.9, min_exclusive=True),
        "scheme": Param(
            "blocks",
            "hold-out order: blocks (uniform) | test_like (blocks drawn toward the test surveys' "
            "locations: for a geographically shifted test set, glc.eval.split)",
            choices=("blocks", "test_like"),
        ),
    },
    "wandb": {
        "project": Param("glc", "W&B project"),
        "group": Param("baselines", "model family, logged as a W&B tag (runs are grouped per experiment name)"),
        "tags": Param([], "W&B tags", type="list[str]"),
        "mode": Param(
            "offline",
            "offline | online | disabled (online needs `wandb login`)",
            choices=("offline", "online", "disabled"),
        ),
    },
}


def _model_schema(over: Mapping[str, Any], source: str) -> Schema:
    """The ``[model]`` schema of the kind ``over`` names (or the default kind)."""
    common = SCHEMA["model"]
    assert isinstance(common, dict)
    kind = over.get("kind", common["kind"].default)  # type: ignore[union-attr]
    if not isinstance(kind, str):
        raise ConfigError(f"{source}: model.kind = {kind!r}: expected a string naming a model kind")
    from glc.models.registry import get_model, model_kinds

    if kind not in model_kinds():
        raise ConfigError(
            f"{source}: model.kind = {kind!r}: not a known model; valid kinds are {sorted(model_kinds())}"
        )
    spec = get_model(kind)
    clash = sorted(set(spec.params) & set(common))
    if clash:  # pragma: no cover - a registry bug
        raise ConfigError(f"model kind {kind!r} redeclares common key(s) {clash}")
    return {**common, **spec.params}


def resolve(overrides: Mapping[str, Any] | None = None, source: str = "<overrides>") -> dict[str, Any]:
    """The full config: :data:`SCHEMA` defaults updated with ``overrides``, every value checked.

    Raises:
        ConfigError: unknown key, wrong type, value out of range or not a valid choice (naming ``source``).
    """
    over = dict(overrides or {})
    model_over = over.get("model", {})
    if not isinstance(model_over, Mapping):
        raise ConfigError(f"{source}: 'model' must be a table, got {type(model_over).__name__} {model_over!r}")
    schema = {**SCHEMA, "model": _model_schema(model_over, source)}
    cfg = check_table(schema, over, "", source)
    from glc.models.registry import get_model

    spec = get_model(cfg["model"]["kind"])
    if spec.check is not None:
        try:
            spec.check(cfg["model"])
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    po = cfg["decoder"]["po_correction"]
    for n, m in (("n_train", "min_train_count"), ("n_po", "min_po_count")):
        if po[m] >= po[n]:
            raise ConfigError(
                f"{source}: decoder.po_correction.{m} = {po[m]} must be below {n} = {po[n]} (a species must "
                f"be held by MORE than {m} of the {n} neighbours, so none could qualify)"
            )
    pre = cfg["train"]["pretrain_po"]
    if pre["enabled"] and pre["epochs"] == 0 and pre["aux_weight"] == 0:
        raise ConfigError(
            f"{source}: [train.pretrain_po] is enabled with epochs = 0 and aux_weight = 0, so the PO sites are never "
            "used: set epochs > 0 (pretraining), aux_weight > 0 (the joint term), or enabled = false"
        )
    if pre["enabled"] and pre["epochs"] > 0 and cfg["train"]["kfold"] > 1:
        raise ConfigError(
            f"{source}: [train.pretrain_po] epochs = {pre['epochs']} with [train] kfold = {cfg['train']['kfold']}: "
            "pretraining runs before a fit from scratch and the folds after the first start from fold 1; use the "
            "joint term alone (epochs = 0, aux_weight > 0), which every fold keeps, or kfold = 1"
        )
    if pre["enabled"]:
        _check_po_reads(spec, cfg["model"], source)
    reads = set(spec.features(cfg["model"]))
    stray = [s for s in cfg["inputs"]["shuffle"] if s not in reads]
    if stray:
        raise ConfigError(
            f"{source}: inputs.shuffle = {cfg['inputs']['shuffle']!r}: model.kind={spec.kind!r} with this [model] "
            f"table does not read {stray} (it reads {sorted(reads)}); "
            "a shuffled control must shuffle an input the model uses"
        )
    return cfg


def _check_po_reads(spec: Any, model: Mapping[str, Any], source: str) -> None:
    """Refuse ``[train.pretrain_po]`` for a kind that cannot learn from a presence-only site, before any ETL runs: one
    fitted in memory, or a net reading a feature set glc does not build at the PO sites (:func:`po_capable`)."""
    from glc.features.sets import FEATURE_SETS, po_capable

    if not spec.needs_inputs:
        raise ConfigError(
            f"{source}: [train.pretrain_po] is enabled, but model.kind={spec.kind!r} is fitted in memory, not trained "
            "as a net, and would ignore it; the PO term is for the trained kinds (e.g. geolocation, tile_cnn, fusion): "
            "disable [train.pretrain_po] here"
        )
    reads = spec.features(model) if spec.po_features is None else spec.po_features(model)
    if reads is None:
        raise ConfigError(
            f"{source}: [train.pretrain_po] is enabled, but model.kind={spec.kind!r} with this [model] table has no "
            "branch a PO site can feed (its PO-capable branch, e.g. the fusion's image, is off): turn it on (e.g. "
            'model.image = "dct16") or disable [train.pretrain_po]'
        )
    lacking = [n for n in reads if n not in FEATURE_SETS or not po_capable(n)]
    if lacking:
        hint = (
            " (glc makes the PO patches' DCT tiles only: read the patch as patch_dct / patch_dct16, e.g. "
            'model.image = "dct16")'
            if "patch_raw" in lacking
            else ""
        )
        raise ConfigError(
            f"{source}: [train.pretrain_po] is enabled, but model.kind={spec.kind!r} reads {lacking}, "
            "which glc does not build at the presence-only sites (a PO site has its location, its satellite patch as "
            f"DCT tiles and the environmental rasters' tiles){hint}: drop those inputs or disable [train.pretrain_po]"
        )


def _toml_path(name_or_path: str, folder: Path, what: str) -> Path:
    """A ``.toml`` path as given, or ``folder/<name>.toml``; raises naming the known ones."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        return p
    cand = folder / f"{name_or_path}.toml"
    if cand.exists():
        return cand
    known = sorted(q.stem for q in folder.glob("*.toml"))
    raise ConfigError(f"no {what} {name_or_path!r}: expected {cand} or an existing .toml path; known {what}s: {known}")


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML table of ``path`` with ``name`` defaulting to the file stem."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    raw.setdefault("name", path.stem)
    return raw


def experiment_path(name_or_path: str) -> Path:
    """Map an experiment name (``frequency``) or a path to its TOML file."""
    return _toml_path(name_or_path, tasks_dir(), "experiment")


def experiment_table(name_or_path: str) -> dict[str, Any]:
    """The raw TOML table of an experiment file (``name`` defaulting to the file stem), not yet resolved: to derive
    variants from it (e.g. the rows of ``bench/fusion_ablation.py``) before :func:`resolve`."""
    return _read_toml(experiment_path(name_or_path))


def load_experiment(name_or_path: str, edition: Any = None) -> dict[str, Any]:
    """Load, resolve and check one experiment file (see the module docstring).

    Args:
        name_or_path: a name in ``tasks/`` or a ``.toml`` path.
        edition: the data root's :class:`glc.data.layout.Edition` (optional): the feature sets the experiment's
            model reads are checked against it (:func:`check_edition`), and its ``validation_scheme`` is the
            default of ``[validation] scheme`` (a scheme the file sets wins).
    """
    path = experiment_path(name_or_path)
    table = _read_toml(path)
    if (
        edition is not None
        and edition.validation_scheme != "blocks"
        and isinstance(table.setdefault("validation", {}), dict)
    ):
        table["validation"].setdefault(
            "scheme", edition.validation_scheme
        )  # a [validation] that is not a table fails in resolve
    cfg = resolve(table, str(path))
    if edition is not None:
        check_edition(cfg, edition, str(path))
    return cfg


def check_edition(
    cfg: Mapping[str, Any], edition: Any, source: str = "<config>", _seen: frozenset[str] = frozenset()
) -> None:
    """Refuse an experiment whose model reads a feature set the data root's edition does not ship, whose pretrained
    encoder (``tasks/encoders/``) reads one, or a late fusion with such a member.

    Raises:
        ConfigError: naming the file, the feature set(s) and the edition (e.g. a raster group on GLC25).
    """
    from glc.features.sets import EditionError
    from glc.features.sets import check_edition as check_sets
    from glc.models.registry import get_model

    if cfg["name"] in _seen:
        return  # members listing each other: each is checked once
    spec = get_model(cfg["model"]["kind"])
    try:
        check_sets(spec.features(cfg["model"]), edition, f"experiment {cfg['name']!r}")
    except EditionError as e:
        raise ConfigError(f"{source}: {e}") from None
    from glc.features.sets import feature_set

    # a pretrained encoder's inputs are the experiment's inputs too: the encoders that initialise its net, and those
    # whose embeddings it reads as feature sets (an Embeddings artifact)
    encoders = list(spec.encoders(cfg["model"]))
    for fs in map(feature_set, spec.features(cfg["model"])):
        if fs.artifact == "Embeddings" and fs.params.get("encoder") not in encoders:
            encoders.append(fs.params["encoder"])
    for name in encoders:
        try:
            enc_cfg = load_encoder_config(name)
        except ConfigError:
            continue  # an unknown encoder fails where it is pretrained, with its own message
        try:
            check_encoder_edition(enc_cfg, edition, str(encoder_path(name)))
        except ConfigError as e:
            raise ConfigError(f"{source}: its encoder {name!r} is refused: {e}") from None
    for member in spec.members(cfg["model"]):  # a late fusion needs what its members read
        if member == cfg["name"]:
            continue  # a fusion listing itself is refused by Predict, naming that
        try:
            member_cfg = load_experiment(member)
        except ConfigError:
            continue  # an unknown or broken member fails where the member is run, with its own message
        try:
            check_edition(member_cfg, edition, str(experiment_path(member)), _seen | {cfg["name"]})
        except ConfigError as e:
            raise ConfigError(f"{source}: member experiment {member!r} is refused: {e}") from None


#: Keys added to the schema after artifacts were built with it: at these values they are left out of the hash, so
#: an existing experiment keeps its artifacts (a non-default value is part of the hash like any other key).
UNHASHED_DEFAULTS: dict[tuple[str, str], Any] = {
    ("train", "devices"): 1,
    ("train", "strategy"): "auto",
    ("train", "deterministic"): True,
    ("train", "compile_short_batches"): "eager",
    ("validation", "scheme"): "blocks",
    ("train", "pretrain_po"): {k: p.default for k, p in SCHEMA["train"]["pretrain_po"].items()},  # type: ignore[union-attr]
}


#: Keys that never change what is built (how often a run checkpoints or checks its loss): never part of the hash, so
#: changing one resumes the same run instead of starting another.
UNHASHED_KEYS: tuple[tuple[str, str], ...] = (("train", "checkpoint_minutes"), ("train", "finite_check_every"))


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Short stable hash of a resolved config (part of experiment artifact paths); see :data:`UNHASHED_DEFAULTS` and
    :data:`UNHASHED_KEYS`."""
    slim = {k: dict(v) if isinstance(v, Mapping) else v for k, v in cfg.items()}
    for section, key in UNHASHED_KEYS:
        if isinstance(slim.get(section), dict):
            slim[section].pop(key, None)
    for (section, key), default in UNHASHED_DEFAULTS.items():
        if isinstance(slim.get(section), dict) and slim[section].get(key, default) == default:
            slim[section].pop(key, None)
    return hashlib.sha256(json.dumps(slim, sort_keys=True).encode()).hexdigest()[:10]


#: The sections of a resolved experiment that decide its trained model (decoder or W&B edits do not retrain).
MODEL_SECTIONS = ("seed", "validation", "inputs", "model", "train")


def model_key(cfg: Mapping[str, Any]) -> str:
    """Short stable hash of the sections of a resolved config that decide the trained model (:data:`MODEL_SECTIONS`)."""
    return config_hash({k: cfg[k] for k in MODEL_SECTIONS})


# ------------------------------------------------------------------------------------------------ encoders
def _encoder_kinds() -> tuple[str, ...]:
    from glc.models.registry import encoder_kinds

    return encoder_kinds()


#: Every setting of an encoder file (``tasks/encoders/<name>.toml``); ``[encoder]`` holds ``kind`` plus the kind's
#: own keys (from the encoder registry, :class:`glc.models.registry.EncoderSpec`).
ENCODER_SCHEMA: Schema = {
    "name": Param("tile2vec", "encoder name (defaults to the file stem; names its embedding feature sets' artifact)"),
    "seed": Param(0, "seed: initial weights, triplet / pair sampling, the hold-out", min=0),
    "encoder": {"kind": Param("tile2vec", "encoder kind (glc.models.registry encoders)", choices=_encoder_kinds)},
    "pretrain": {
        "max_epochs": Param(
            30, "pretraining epochs at most (0 = publish the seeded, untrained encoder: a control)", min=0
        ),
        "patience": Param(5, "early stopping on the encoder's validation monitor (epochs)", min=1),
        "batch_size": Param(256, "triplets / pairs per batch", min=2),
        "lr": Param(1e-3, "learning rate", min=0.0, min_exclusive=True),
        "weight_decay": Param(1e-4, "weight decay (AdamW: decoupled)", min=0.0),
        "accelerator": Param("auto", "auto uses a GPU when present", choices=("auto", "cpu", "gpu", "cuda", "mps")),
        "precision": Param("32-true", "Lightning precision", choices=("32-true", "16-mixed", "bf16-mixed")),
    },
    "validation": SCHEMA["validation"],
    "wandb": SCHEMA["wandb"],
}


def resolve_encoder(overrides: Mapping[str, Any] | None = None, source: str = "<overrides>") -> dict[str, Any]:
    """The full encoder config: :data:`ENCODER_SCHEMA` defaults + the kind's ``[encoder]`` keys, every value checked.

    Raises:
        ConfigError: unknown key, wrong type, bad value (naming ``source``).
    """
    from glc.models.registry import encoder_kinds, get_encoder

    over = dict(overrides or {})
    enc_over = over.get("encoder", {})
    if not isinstance(enc_over, Mapping):
        raise ConfigError(f"{source}: 'encoder' must be a table, got {enc_over!r}")
    kind = enc_over.get("kind", "tile2vec")
    if kind not in encoder_kinds():
        raise ConfigError(
            f"{source}: encoder.kind = {kind!r}: not a known encoder; valid kinds are {list(encoder_kinds())}"
        )
    spec = get_encoder(kind)
    schema = {**ENCODER_SCHEMA, "encoder": {**ENCODER_SCHEMA["encoder"], **spec.params}}  # type: ignore[dict-item]
    cfg = check_table(schema, over, "", source)
    if spec.check is not None:
        try:
            spec.check(cfg["encoder"])
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    return cfg


def encoder_feature_sets(enc_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The feature sets an encoder file reads: its ``[encoder]`` tile and cube sets."""
    enc = enc_cfg["encoder"]
    return (*enc.get("tiles", ()), *enc.get("cubes", ()))


def check_encoder_edition(enc_cfg: Mapping[str, Any], edition: Any, source: str = "<encoder>") -> None:
    """Refuse an encoder whose tiles or cubes need data the edition does not ship.

    Raises:
        ConfigError: naming the file, the feature set(s) and the edition.
    """
    from glc.features.sets import EditionError
    from glc.features.sets import check_edition as check_sets

    try:
        check_sets(encoder_feature_sets(enc_cfg), edition, f"encoder {enc_cfg['name']!r}")
    except EditionError as e:
        raise ConfigError(f"{source}: {e}") from None


def encoder_path(name_or_path: str) -> Path:
    """Map an encoder name (``tile2vec``) or a path to its TOML file."""
    return _toml_path(name_or_path, encoders_dir(), "encoder")


def load_encoder_config(name_or_path: str) -> dict[str, Any]:
    """Load, resolve and check one encoder file (``tasks/encoders/<name>.toml``)."""
    path = encoder_path(name_or_path)
    return resolve_encoder(_read_toml(path), str(path))
