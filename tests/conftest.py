"""Shared fixtures: one SparkSession per test run, fake metadata worlds, the tiny synthetic world, real data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glc.eval.real import real_data_dir

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = real_data_dir()

os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("GLC_SPARK_CONF", "spark.sql.shuffle.partitions=4,spark.driver.memory=3g")


@pytest.fixture(scope="session")
def spark():
    """The shared SparkSession (starting one costs ~20 s; never stop it inside a test)."""
    from glc.spark import get_spark

    s = get_spark("glc-tests")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real files (``$GLC_REAL_DATA`` or ``data/real``); tests that need them skip with a reason when absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (set GLC_REAL_DATA or link it at data/real)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fake_world(tmp_path_factory) -> Path:
    """A small Kaggle-layout metadata world with deliberately bad rows (see tests/fakes.py)."""
    from tests.fakes import make_fake_metadata

    root = tmp_path_factory.mktemp("fake_world")
    make_fake_metadata(root, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """The tiny synthetic world (all modalities), generated once per test run."""
    from glc.synth import generate_world

    root = tmp_path_factory.mktemp("synth") / "tiny-seed0"
    generate_world(root, scale="tiny", seed=0, progress=False)
    return root
