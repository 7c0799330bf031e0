"""Fixtures of the synthetic-world tests.

The tiny world itself is the session fixture ``tiny_world`` of ``tests/conftest.py`` (generated once per run with
the default worker count and shared with every other test package). Here: a second generation with the same seed
but one worker (determinism, worker independence) and one with another seed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def file_digests(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``root`` except the ``_SUCCESS`` summary (it holds timings)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "_SUCCESS":
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def tiny_world_one_worker(tmp_path_factory) -> Path:
    """The tiny world, seed 0 again, generated in-process (``workers=1``)."""
    from glc.synth import generate_world

    root = tmp_path_factory.mktemp("synth_again") / "tiny-seed0"
    generate_world(root, scale="tiny", seed=0, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_world_seed1(tmp_path_factory) -> Path:
    """The tiny world with seed 1."""
    from glc.synth import generate_world

    root = tmp_path_factory.mktemp("synth_seed1") / "tiny-seed1"
    generate_world(root, scale="tiny", seed=1, workers=2, progress=False)
    return root
