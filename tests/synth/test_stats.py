"""Acceptance (c): statistics of the tiny world within loose bounds; the demo world's calibration (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from glc.synth import world_stats
from glc.synth.oracle import frequency_baseline_sample_f1, oracle_sample_f1


def test_tiny_world_statistics(tiny_world: Path) -> None:
    s = world_stats(tiny_world)
    assert s["pa_train_surveys"] + s["pa_test_surveys"] <= 500
    assert s["species_in_pa_train"] <= 200
    assert 10 <= s["mean_species_per_pa_survey"] <= 25
    assert s["frac_species_lt10_surveys"] >= 0.05
    assert s["max_species_prevalence"] >= 0.10
    assert s["mean_species_large_plots"] > s["mean_species_small_plots"]
    assert s["mean_hfp_po"] > s["mean_hfp_pa"]
    assert s["hfp_missing_pa"] == 0
    assert s["po_records"] >= 1000 and s["po_surveys"] < s["po_records"]
    assert len(s["regions"]) >= 3 and s["years"] == [2017, 2018, 2019, 2020, 2021]


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory) -> Path:
    from glc.synth import generate_world

    root = tmp_path_factory.mktemp("synth_demo") / "demo-seed0"
    generate_world(root, scale="demo", seed=0, progress=False)
    return root


@pytest.mark.slow
def test_demo_world_calibration(demo_world: Path) -> None:
    s = world_stats(demo_world)
    assert 9_000 <= s["pa_train_surveys"] <= 11_000 and s["species_in_pa_train"] >= 1_000
    assert 14 <= s["mean_species_per_pa_survey"] <= 20
    assert s["frac_species_lt10_surveys"] >= 0.05
    assert s["max_species_prevalence"] >= 0.10
    assert s["mean_hfp_po"] > s["mean_hfp_pa"]
    assert 25_000 <= s["po_records"] <= 35_000
    oracle = oracle_sample_f1(demo_world)
    assert 0.40 <= oracle <= 0.80
    _, freq = frequency_baseline_sample_f1(demo_world)
    assert freq < oracle / 2
