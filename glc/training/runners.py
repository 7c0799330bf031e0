"""How each model runner trains and predicts: the lookup table the tasks and benchmarks dispatch through.

A model kind declares its runner in the model registry (:mod:`glc.models.registry`); this table says what the
runner does:

* ``memory``: no training artifact; ``Predict`` fits the kind's ``fit_predict`` on the survey table in memory.
* ``lightning``: ``TrainModel`` runs :func:`glc.training.trainer.train_model` on the ``ModelInputs`` folder and
  publishes the best checkpoint; ``Predict`` scores the validation and test splits with it
  (:func:`glc.training.trainer.predict_splits`).

Nothing here imports Spark or Luigi.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glc.models.registry import RUNNER_NAMES, ModelSpec, get_model
from glc.predict.scores import ScoreTable

__all__ = ["RUNNERS", "Runner", "runner_of"]

#: The checkpoint file a trained model's artifact publishes.
CHECKPOINT = "model.ckpt"


def _train_lightning(
    inputs_dir: Path, work_dir: Path, cfg: Mapping[str, Any], run_name: str, **kw: Any
) -> dict[str, Any]:
    from glc.training.trainer import train_model

    summary = train_model(inputs_dir, work_dir, cfg, run_name, **kw)
    summary["publish"] = {CHECKPOINT: summary["best_checkpoint"]}
    return summary


def _predict_lightning(
    inputs_dir: Path, model_dir: Path, cfg: Mapping[str, Any]
) -> tuple[ScoreTable, ScoreTable, dict[str, Any]]:
    from glc.training.trainer import predict_splits

    return predict_splits(inputs_dir, Path(model_dir) / CHECKPOINT, cfg)


@dataclass(frozen=True)
class Runner:
    """What a runner does (see the module docstring).

    Attributes:
        name: one of :data:`glc.models.registry.RUNNER_NAMES`.
        train: ``(inputs_dir, work_dir, cfg, run_name, **kw) -> summary`` (``summary["publish"]``: artifact file
            name -> path to copy into the model artifact); None for runners without training.
        predict: ``(inputs_dir, model_dir, cfg) -> (val scores, test scores, info)``; None for ``memory``.
    """

    name: str
    train: Callable[..., dict[str, Any]] | None = None
    predict: Callable[..., tuple[ScoreTable, ScoreTable, dict[str, Any]]] | None = None


#: Every runner by name.
RUNNERS: dict[str, Runner] = {
    "memory": Runner("memory"),
    "lightning": Runner("lightning", train=_train_lightning, predict=_predict_lightning),
}
assert set(RUNNERS) == set(RUNNER_NAMES), "every runner of the model registry needs an entry here"


def runner_of(kind_or_cfg: str | Mapping[str, Any]) -> tuple[ModelSpec, Runner]:
    """The spec and runner of a model kind (or of a resolved config's ``model.kind``)."""
    kind = kind_or_cfg if isinstance(kind_or_cfg, str) else kind_or_cfg["model"]["kind"]
    spec = get_model(kind)
    return spec, RUNNERS[spec.runner]
