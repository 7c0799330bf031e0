"""``bench.leaderboard``: where a run's world, artifacts and results go."""

from __future__ import annotations

import pytest

from bench.leaderboard import REPO, world_paths


@pytest.mark.parametrize(
    ("edition", "seed", "po", "world", "out", "suffix"),
    [
        ("glc24", 0, None, "demo-seed0", "leaderboard", ""),
        ("glc24", 1, None, "demo-seed1", "leaderboard-seed1", "_seed1"),
        ("glc25", 1, None, "glc25-demo-seed1", "leaderboard-glc25-seed1", "_glc25_seed1"),
        ("glc24", 0, 510000, "demo-seed0-po510000", "leaderboard-po510000", "_po510000"),
        ("glc24", 1, 510000, "demo-seed1-po510000", "leaderboard-seed1-po510000", "_seed1_po510000"),
    ],
)
def test_a_variant_world_gets_its_own_world_output_root_and_results(edition, seed, po, world, out, suffix) -> None:
    w, o, s = world_paths(edition, seed, po)
    assert (w, o, s) == (REPO / "data" / "synthetic" / world, REPO / "out-bench" / out, suffix)
    # only the default world writes the unsuffixed results file the docs and README tables read
    assert (s == "") == (edition == "glc24" and seed == 0 and po is None)
