"""The model registry: one :class:`ModelSpec` per ``model.kind``, declared in the model's own module.

A spec says everything the pipeline needs to run a model kind, so no other file lists model kinds:

* ``runner``: how it runs — ``"memory"`` (fitted on the survey table in memory; :attr:`ModelSpec.fit_predict`) or
  ``"lightning"`` (a plain ``nn.Module`` from :attr:`ModelSpec.build_net`, trained by the generic trainer
  :mod:`glc.training.trainer` on the ``ModelInputs`` parquet); the runners are implemented in
  :mod:`glc.training.runners`;
* ``params``: its ``[model]`` keys with defaults and valid values (:class:`glc.params.Param`), checked when an
  experiment is loaded (:func:`glc.config.resolve`), plus an optional cross-field ``check``;
* ``features``: the feature sets (:mod:`glc.features.sets`) it reads, as a function of its ``[model]`` table
  (``ModelInputs`` builds exactly those; ``location`` and ``meta`` are always there);
* ``monitor``: the validation metric early stopping and checkpointing follow (``val/sample_f1`` for multi-label
  models), and its mode;
* ``benchmarks``: named ``[model]`` overrides the spatial-CV benchmarks run (:mod:`glc.eval.benchmark`).

``Predict``, ``TrainModel``, ``Report``, the CV benchmarks and the config loader dispatch through :func:`get_model`.
Model modules register themselves with :func:`register` at import; the registry imports every module of the
:mod:`glc.models` package the first time it is asked (so adding a model touches only its own module, its experiment
file in ``tasks/``, a Makefile line and its tests).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glc.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from torch import nn

    from glc.predict.scores import ScoreTable

__all__ = [
    "RUNNER_NAMES",
    "EncoderSpec",
    "benchmark_entry",
    "ModelSpec",
    "encoder_kinds",
    "get_encoder",
    "get_model",
    "model_kinds",
    "register",
    "register_encoder",
    "registered_specs",
]

#: How a model kind runs (implemented in :data:`glc.training.runners.RUNNERS`).
RUNNER_NAMES: tuple[str, ...] = ("memory", "lightning")


def _no_features(model_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class ModelSpec:
    """How one ``model.kind`` is configured, built and run (see the module docstring).

    Attributes:
        kind: the ``model.kind`` value.
        description: one line for ``make help``-style listings and reports.
        runner: one of :data:`RUNNER_NAMES`.
        params: the kind's own ``[model]`` keys (besides ``kind`` and ``top_n``).
        features: ``model_cfg -> feature-set names`` it reads (besides ``location`` and ``meta``).
        fit_predict: runner ``memory``: ``(train frame, query frame, model_cfg) -> ScoreTable`` (top ``top_n``).
        build_net: runner ``lightning``: ``(model_cfg, meta) -> nn.Module`` mapping a loader batch to logits
            ``[B, meta["num_classes"]]`` (``meta`` is the model-input table's ``meta.json``).
        check: optional cross-field validation of a resolved ``model_cfg`` (raise ``ValueError`` naming the key).
        monitor: validation metric for early stopping / the best checkpoint.
        monitor_mode: ``"max"`` or ``"min"``.
        benchmarks: CV benchmark entries: name -> ``[model]`` overrides (``kind`` is added).
        encoders: ``model_cfg -> encoder names`` (``tasks/encoders/``) whose pretrained weights initialise the net:
            ``TrainModel`` requires their ``PretrainEncoder`` artifacts and ``build_net`` finds the encoder files in
            ``meta["pretrained"][name]`` while training (absent when a trained model is reloaded: its own weights win).
        members: ``model_cfg -> experiment names`` whose ``Predict`` artifacts this kind combines (late fusion): when
            non-empty, ``Predict`` requires them and calls ``combine`` instead of ``fit_predict``.
        combine: ``({experiment: (val scores, test scores)}, validation truth, model_cfg) -> (val, test, info)``.
        po_features: ``model_cfg -> inputs`` the presence-only term (``[train.pretrain_po]``) reads besides the
            location: feature-set names, or batch columns that are none (a net's ``year`` / ``region`` extras), each
            of which a PO site must have; ``None`` from it: no part of the net can read a PO site. For a net that
            learns from a PO site through one part of itself (the fusion: its image branch) or reads more than its
            feature sets. Unset: ``features``.
    """

    kind: str
    description: str
    runner: str
    params: Mapping[str, Param] = field(default_factory=dict)
    features: Callable[[Mapping[str, Any]], tuple[str, ...]] = _no_features
    fit_predict: Callable[[pd.DataFrame, pd.DataFrame, Mapping[str, Any]], ScoreTable] | None = None
    build_net: Callable[[Mapping[str, Any], Mapping[str, Any]], nn.Module] | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None
    monitor: str = "val/sample_f1"
    monitor_mode: str = "max"
    benchmarks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    encoders: Callable[[Mapping[str, Any]], tuple[str, ...]] = _no_features
    members: Callable[[Mapping[str, Any]], tuple[str, ...]] = _no_features
    combine: Callable[..., Any] | None = None
    po_features: Callable[[Mapping[str, Any]], tuple[str, ...] | None] | None = None

    def __post_init__(self) -> None:
        if self.runner not in RUNNER_NAMES:
            raise ValueError(f"model kind {self.kind!r}: runner {self.runner!r} is not one of {RUNNER_NAMES}")
        need = {"memory": "fit_predict", "lightning": "build_net"}[self.runner]
        if getattr(self, need) is None:
            raise ValueError(f"model kind {self.kind!r}: runner {self.runner!r} needs {need}")
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"model kind {self.kind!r}: monitor_mode must be 'max' or 'min'")
        for key in ("kind", "top_n"):
            if key in self.params:
                raise ValueError(f"model kind {self.kind!r}: {key!r} is a common [model] key; do not redeclare it")

    @property
    def needs_inputs(self) -> bool:
        """Trained from the ``ModelInputs`` table (a ``TrainModel`` artifact) rather than fitted in memory."""
        return self.runner != "memory"


@dataclass(frozen=True)
class EncoderSpec:
    """A self-supervised encoder kind (``[encoder] kind`` of a ``tasks/encoders/<name>.toml``), pretrained by
    ``PretrainEncoder`` with a non-multi-label objective and published as embedding feature sets (``Embeddings``).

    Attributes:
        kind: the ``encoder.kind`` value.
        description: one line.
        objective: the pretraining objective, a key of :data:`glc.training.pretrain.OBJECTIVES` (``"triplet"``,
            ``"clip"``): what batches it needs and how its loss and validation metrics are computed.
        params: the kind's own ``[encoder]`` keys (besides ``kind``).
        build: ``(encoder_cfg, data_meta) -> nn.Module``; ``data_meta`` holds the tile shape and the train-split
            tile statistics (``tile_shape``, ``tile_mean``, ``tile_std``).
        embeddings: embedding column name -> ``(net, batch) -> [B, D]`` (what ``Embeddings`` writes per survey).
        monitor: the validation metric of early stopping / the best checkpoint; ``monitor_mode`` ``"max"``/``"min"``.
        uses_neighbours: the objective samples spatial neighbours (``PretrainEncoder`` requires a ``Neighbours`` table).
        check: optional cross-field validation of a resolved ``[encoder]`` table.
    """

    kind: str
    description: str
    objective: str
    params: Mapping[str, Param]
    build: Callable[[Mapping[str, Any], Mapping[str, Any]], nn.Module]
    embeddings: Mapping[str, Callable[..., Any]]
    monitor: str
    monitor_mode: str = "max"
    uses_neighbours: bool = False
    check: Callable[[Mapping[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"encoder kind {self.kind!r}: monitor_mode must be 'max' or 'min'")
        if not self.embeddings:
            raise ValueError(f"encoder kind {self.kind!r} declares no embedding")
        if "kind" in self.params:
            raise ValueError(f"encoder kind {self.kind!r}: 'kind' is the common [encoder] key; do not redeclare it")


_SPECS: dict[str, ModelSpec] = {}
_ENCODERS: dict[str, EncoderSpec] = {}
_discovered = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` (called at import by the model's module; a kind may be registered once)."""
    old = _SPECS.get(spec.kind)
    if old is not None and old is not spec:
        raise ValueError(f"model kind {spec.kind!r} is registered twice ({old.description!r} and {spec.description!r})")
    _SPECS[spec.kind] = spec
    return spec


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Add an encoder ``spec`` (called at import by the encoder's module; a kind may be registered once)."""
    old = _ENCODERS.get(spec.kind)
    if old is not None and old is not spec:
        raise ValueError(f"encoder kind {spec.kind!r} is registered twice")
    _ENCODERS[spec.kind] = spec
    return spec


def encoder_kinds() -> tuple[str, ...]:
    """The registered ``encoder.kind`` values, sorted."""
    _discover()
    return tuple(sorted(_ENCODERS))


def get_encoder(kind: str) -> EncoderSpec:
    """The encoder spec of ``kind``.

    Raises:
        KeyError: naming the valid kinds.
    """
    _discover()
    if kind not in _ENCODERS:
        raise KeyError(f"encoder.kind={kind!r} is not a known encoder; valid kinds are {sorted(_ENCODERS)}")
    return _ENCODERS[kind]


def _discover() -> None:
    """Import every module of :mod:`glc.models` once, so each registers its kinds."""
    global _discovered
    if _discovered:
        return
    import glc.models as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name != "registry":
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    _discovered = True


def benchmark_entry(name: str) -> tuple[str, dict[str, Any]]:
    """``(kind, [model] overrides)`` of the benchmark entry ``name`` (:attr:`ModelSpec.benchmarks`).

    Raises:
        KeyError: naming the valid entries.
    """
    entries = {n: (k, dict(o)) for k, spec in registered_specs().items() for n, o in spec.benchmarks.items()}
    if name not in entries:
        raise KeyError(f"benchmark entry {name!r} is not declared by any model kind; valid: {sorted(entries)}")
    return entries[name]


def registered_specs() -> dict[str, ModelSpec]:
    """Every registered kind, by kind (after discovery)."""
    _discover()
    return dict(sorted(_SPECS.items()))


def model_kinds() -> tuple[str, ...]:
    """The registered ``model.kind`` values, sorted."""
    return tuple(registered_specs())


def get_model(kind: str) -> ModelSpec:
    """The spec of ``kind``.

    Raises:
        KeyError: naming the valid kinds.
    """
    specs = registered_specs()
    if kind not in specs:
        raise KeyError(f"model.kind={kind!r} is not a known model; valid kinds are {sorted(specs)}")
    return specs[kind]
