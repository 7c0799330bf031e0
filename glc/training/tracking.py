"""Weights & Biases for glc's runs: the mode, the logger, the run summary and artifacts.

W&B modes (``wandb_cfg["mode"]``): ``"offline"`` (default; run files in ``out_dir/wandb/offline-run-*``, upload later
with ``wandb sync``), ``"online"`` (needs ``wandb login``) or ``"disabled"`` (no W&B at all). The environment variable
``WANDB_MODE=offline|disabled`` can only *lower* the mode (a safety switch for tests and CI); it never turns a run
online. The run id is kept in ``out_dir/wandb/glc-run-id`` so a resumed fit continues the same W&B run.

:func:`wandb_settings` turns a resolved experiment config into the ``[wandb]`` settings of its runs (grouped per
experiment, the model family as a tag); :func:`make_logger` starts a run; :func:`log_report` and
:func:`log_artifact` record a report and files on it; :func:`finish_logger` closes it with its files complete.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pytorch_lightning.loggers import Logger, WandbLogger

__all__ = [
    "WANDB_KEYS",
    "finish_logger",
    "log_artifact",
    "log_report",
    "make_logger",
    "resolve_wandb_mode",
    "wandb_settings",
]

log = logging.getLogger(__name__)

#: Keys accepted in ``wandb_cfg`` (the experiment's ``[wandb]`` table).
WANDB_KEYS = frozenset({"mode", "project", "entity", "group", "tags", "notes", "job_type"})
_MODES = ("online", "offline", "disabled")
_RUN_ID_FILE = "glc-run-id"


def resolve_wandb_mode(wandb_cfg: Mapping[str, Any] | None) -> str:
    """The effective W&B mode: ``wandb_cfg["mode"]`` (default ``"offline"``), lowered by ``WANDB_MODE``.

    Raises:
        ValueError: an unknown key in ``wandb_cfg`` or an unknown mode.
    """
    cfg = dict(wandb_cfg or {})
    unknown = sorted(set(cfg) - WANDB_KEYS)
    if unknown:
        raise ValueError(f"wandb_cfg has unknown keys {unknown}; valid keys are {sorted(WANDB_KEYS)}")
    mode = str(cfg.get("mode", "offline")).strip().lower()
    if mode not in _MODES:
        raise ValueError(f"wandb_cfg['mode']={cfg.get('mode')!r} must be one of {list(_MODES)}")
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    env = "offline" if env == "dryrun" else env
    if env in _MODES and _MODES.index(env) > _MODES.index(mode):
        log.info("W&B mode %r lowered to %r by WANDB_MODE", mode, env)
        mode = env
    return mode


def _run_id(save_dir: Path) -> str:
    """The W&B run id stored under ``save_dir/wandb`` (created once, reused on resume)."""
    path = save_dir / "wandb" / _RUN_ID_FILE
    if path.is_file():
        rid = path.read_text().strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", rid):
            raise ValueError(f"{path}: holds {rid!r}, not a W&B run id; delete the file to start a new W&B run")
        return rid
    rid = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's id alphabet
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(rid + "\n")
    os.replace(tmp, path)
    return rid


def wandb_settings(cfg: Mapping[str, Any], enabled: bool = True) -> dict[str, Any]:
    """The W&B settings of a resolved experiment config: runs are grouped **per experiment** (W&B group = the
    experiment name, so its training run, report and artifacts sit together), and the ``[wandb] group`` of the
    experiment file (its model family, e.g. ``tile_cnn``) becomes a tag, as filterable across experiments."""
    if not enabled:
        return {"mode": "disabled"}
    w = dict(cfg.get("wandb", {}))
    family = w.get("group")
    w["group"] = str(cfg.get("name") or family or "glc")
    w["tags"] = list(dict.fromkeys([*(w.get("tags") or []), *([family] if family else [])]))
    return w


def log_artifact(
    logger: Logger | None,
    name: str,
    kind: str,
    files: Mapping[str, str | os.PathLike[str]],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Log ``files`` (name in the artifact -> local path) as one W&B artifact of type ``kind`` on ``logger``'s run
    (offline runs keep it for ``wandb sync``). Missing files raise; a non-W&B logger or None does nothing."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    missing = [str(p) for p in files.values() if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"W&B artifact {name!r}: file(s) {missing} do not exist")
    art = wandb.Artifact(re.sub(r"[^A-Za-z0-9._-]+", "-", name), type=kind, metadata=_to_builtin(dict(metadata or {})))
    for arc, p in files.items():
        art.add_file(os.fspath(p), name=arc)
    logger.experiment.log_artifact(art)


def make_logger(
    wandb_cfg: Mapping[str, Any] | None,
    save_dir: str | os.PathLike[str],
    run_name: str | None,
    config: Mapping[str, Any] | None,
) -> WandbLogger | None:
    """A ``WandbLogger`` writing under ``save_dir/wandb/``, with ``config`` logged; None when W&B is disabled.

    Args:
        wandb_cfg: the experiment's ``[wandb]`` table: ``mode`` (offline | online | disabled, default offline),
            ``project`` (default "glc"), ``entity`` ("" = default), ``group``, ``tags``, ``notes``, ``job_type``.
            None means all defaults (offline).
        save_dir: run folder; W&B files go to ``save_dir/wandb/`` (offline runs: ``offline-run-*``).
        run_name: display name of the run.
        config: hyper-parameters / the experiment config, logged with ``logger.log_hyperparams``.

    Returns:
        The logger (its W&B run already started), or None for mode ``disabled``. Call :func:`finish_logger` when
        done (:func:`glc.training.fit.fit_model` does it for loggers it creates).

    Raises:
        ValueError: bad ``wandb_cfg`` (see :func:`resolve_wandb_mode`) or ``tags`` not a list of strings.
    """
    mode = resolve_wandb_mode(wandb_cfg)
    if mode == "disabled":
        return None
    cfg = dict(wandb_cfg or {})
    tags = cfg.get("tags") or []
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"wandb_cfg['tags']={tags!r} must be a list of strings")
    save = Path(save_dir)
    save.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        name=run_name,
        save_dir=os.fspath(save),
        project=str(cfg.get("project") or "glc"),
        entity=cfg.get("entity") or None,
        group=cfg.get("group") or None,
        tags=list(tags),
        notes=cfg.get("notes") or None,
        job_type=cfg.get("job_type") or None,
        mode=mode,
        id=_run_id(save),
        resume="allow",
        log_model=False,
    )
    if config:
        logger.log_hyperparams(dict(config))
    return logger


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def log_report(logger: Logger | Iterable[Logger] | None, report: Mapping[str, Any]) -> None:
    """Record a final report (benchmark scores, sizes, timings) in the run summary.

    For a ``WandbLogger`` every key of ``report`` goes into ``run.summary`` (nested mappings stay nested); for other
    loggers the numeric scalars are logged as metrics with ``/``-joined names. ``None`` does nothing.

    Raises:
        ValueError: a numeric report value is NaN or infinite (a silent NaN in a report hides a failure).
    """
    if logger is None:
        return
    loggers = [logger] if isinstance(logger, Logger) else list(logger)
    flat = _flatten(report)
    bad = [k for k, v in flat.items() if isinstance(v, (float, np.floating)) and not np.isfinite(v)]
    if bad:
        raise ValueError(f"report values {bad} are NaN or infinite; fix the computation instead of logging it")
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.summary.update(_to_builtin(dict(report)))
        else:
            nums = {
                k: float(v)
                for k, v in flat.items()
                if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            }
            if nums:
                lg.log_metrics(nums)
                lg.save()


def _to_builtin(v: Any) -> Any:
    """numpy scalars/arrays and Paths as JSON-able builtins (W&B summaries must be JSON)."""
    if isinstance(v, Mapping):
        return {str(k): _to_builtin(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_builtin(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


def finish_logger(logger: Logger | None) -> None:
    """Finish the W&B run of ``logger`` so its files are complete on return and the process does not wait at exit.

    ``run.finish()`` alone returns before wandb 0.31's background service has written the offline transaction log
    (``run-<id>.wandb`` can still hold only its 7-byte header), so when no other run is active the W&B service is
    shut down too (``wandb.teardown()``, ~10 ms; the next run starts a new service, ~0.5 s). Other loggers and None:
    nothing to do.
    """
    if not isinstance(logger, WandbLogger) or logger._experiment is None:
        return
    import wandb

    logger.experiment.finish()
    if wandb.run is None:
        wandb.teardown()
