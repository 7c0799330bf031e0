"""Shared helpers for the benchmark scripts: machine description and atomic JSON results."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
#: The repository root: result files name paths relative to it (:func:`repo_relative`), never this machine's.
REPO = RESULTS.parents[1]


def repo_relative(obj: Any) -> Any:
    """``obj`` with every absolute path below the repository, inside any string, written relative to it
    (``/home/me/glc/data/synthetic/demo-seed0`` -> ``data/synthetic/demo-seed0``), so a result file means the
    same on every machine."""
    root = str(REPO)
    if isinstance(obj, str):
        return obj.replace(root + "/", "").replace(root, ".")
    if isinstance(obj, dict):
        return {k: repo_relative(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [repo_relative(v) for v in obj]
    return obj


def machine() -> dict[str, Any]:
    """Cores, RAM and platform of this machine (every result JSON carries it)."""
    import psutil

    return {
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_result(name: str, results: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write ``bench/results/<name>.json`` = ``{"machine": ..., "results": ...}`` atomically."""
    from glc.io import write_json

    path = RESULTS / f"{name}.json"
    write_json(path, repo_relative({"machine": machine(), "results": results, **(extra or {})}))
    return path


def select_models(names: str) -> dict[str, dict[str, Any]] | None:
    """``--models a,b`` -> that subset of :func:`glc.eval.benchmark.bench_models` (None = all); unknown names exit."""
    from glc.eval.benchmark import bench_models

    known = bench_models()
    if not names:
        return None
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in wanted if n not in known]
    if bad:
        raise SystemExit(f"--models: unknown {bad}; valid: {sorted(known)}")
    return {n: known[n] for n in wanted}


def merge_models(name: str, result: dict[str, Any], rerun: dict[str, Any] | None) -> dict[str, Any]:
    """With ``--models`` (a subset re-run), keep the other models' rows of the existing ``<name>.json`` (same
    protocol only) so the table stays complete; rows are re-sorted by mean sample-F1."""
    import json

    path = RESULTS / f"{name}.json"
    if rerun is None or not path.exists():
        return result
    old = json.loads(path.read_text())
    if {k: v for k, v in old.get("protocol", {}).items() if k != "dataset"} != {
        k: v for k, v in result["protocol"].items() if k != "dataset"
    }:
        return result
    rows = [r for r in old.get("models", []) if r["model"] not in rerun] + result["models"]
    rows.sort(key=lambda r: -r["sample_f1_mean"])
    return {**result, "models": rows}
