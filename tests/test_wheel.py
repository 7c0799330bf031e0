"""Installed use: a non-editable wheel of glc, run from a project folder that is not the source checkout, finds the
experiment files in the working directory's ``tasks/`` (or ``--tasks-dir`` / ``GLC_TASKS_DIR``) and runs an
experiment's whole DAG through ``luigi --module glc.tasks`` and the ``glc`` CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """glc built as a wheel (no build isolation: no network) and installed, without its dependencies (those of this
    venv serve), into a folder of its own; returns that folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy: an in-tree build would leave build/ and glc.egg-info/ changes in the checkout
    src = tmp / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "out*",
            "data",
            "site",
            "build",
            "*.egg-info",
            "__pycache__",
            ".ruff_cache",
            "notebooks",
            "bench",
        ),
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    wheel = next((tmp / "dist").glob("glc-*.whl"))
    site = tmp / "site"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (site / "glc" / "tasks" / "__init__.py").exists() and not (site / "tasks").exists()
    return site


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LUIGI_CONFIG_PATH", "GLC_TASKS_DIR", "GLC_CONF_DIR")}
    return {**env, "PYTHONPATH": str(site), **extra}


def test_the_wheel_runs_an_experiment_from_a_project_folder(installed: Path, tiny_world: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    shutil.copy(REPO / "tasks" / "frequency.toml", project / "tasks")
    env = _env(installed)
    where = subprocess.run(
        [sys.executable, "-c", "import glc, glc.config as c; print(glc.__file__); print(c.tasks_dir())"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(installed), where  # the installed copy, not the checkout
    assert Path(where[1]) == project / "tasks"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "luigi",
            "--module",
            "glc.tasks",
            "Submission",
            "--experiment",
            "frequency",
            "--data-root",
            str(tiny_world),
            "--out-root",
            "out",
            "--local-scheduler",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    subs = list((project / "out").rglob("submission.csv"))
    assert len(subs) == 1
    assert len(pd.read_csv(subs[0])) == len(pd.read_csv(tiny_world / "GLC24_PA_metadata_test.csv")["surveyId"].unique())
    show = subprocess.run(
        [
            sys.executable,
            "-m",
            "glc",
            "show",
            "--experiment",
            "frequency",
            "--data-root",
            str(tiny_world),
            "--out-root",
            "out",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0 and "submission" in show.stdout.lower(), show.stdout + show.stderr


def test_the_cli_says_where_experiments_are_looked_for(installed: Path, tmp_path: Path) -> None:
    env = _env(installed)
    run = subprocess.run(
        [sys.executable, "-m", "glc", "show", "--experiment", "frequency"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "--tasks-dir" in run.stderr and "GLC_TASKS_DIR" in run.stderr, run.stderr
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(REPO / "tasks" / "knn.toml", tmp_path / "elsewhere" / "mine.toml")
    out = subprocess.run(
        [sys.executable, "-m", "glc", "--tasks-dir", str(tmp_path / "elsewhere"), "show", "--experiment", "nope"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "mine" in out.stderr, out.stderr  # the known experiments of that folder are listed
