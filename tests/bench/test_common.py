"""``bench.common``: result files name paths relative to the repository, never this machine's."""

from __future__ import annotations

from bench.common import REPO, repo_relative


def test_repo_relative_rewrites_paths_inside_any_string() -> None:
    obj = {
        "world": f"{REPO}/data/synthetic/demo-seed0",
        "steps": [f"Neighbours --data-root {REPO}/data/x --out-root {REPO}"],
        "other": "/elsewhere/data",
        "n": 3,
        "pair": (f"{REPO}/a", 1.5),
    }
    assert repo_relative(obj) == {
        "world": "data/synthetic/demo-seed0",
        "steps": ["Neighbours --data-root data/x --out-root ."],
        "other": "/elsewhere/data",
        "n": 3,
        "pair": ["a", 1.5],
    }
