"""Acceptance (b): same scale and seed give byte-identical files whatever the worker count; another seed differs."""

from __future__ import annotations

from pathlib import Path

from tests.synth.conftest import file_digests


def test_same_seed_is_byte_identical_across_worker_counts(tiny_world: Path, tiny_world_one_worker: Path) -> None:
    a, b = file_digests(tiny_world), file_digests(tiny_world_one_worker)
    assert len(a) > 1000  # every JPEG, cube, CSV, GeoTIFF and truth file is compared
    assert a.keys() == b.keys()
    differing = sorted(k for k in a if a[k] != b[k])
    assert not differing, f"{len(differing)} files differ, e.g. {differing[:5]}"
    assert any(k.endswith(".tif") for k in a) and any(k.endswith(".pt") for k in a)


def test_another_seed_gives_another_world(tiny_world: Path, tiny_world_seed1: Path) -> None:
    a, b = file_digests(tiny_world), file_digests(tiny_world_seed1)
    for name in (
        "GLC24_PA_metadata_train.csv",
        "GLC24_P0_metadata_train.csv",
        "_truth/pa_test_truth.npz",
        "EnvironmentalRasters/EnvironmentalRasters/Climate/BioClimatic_Average_1981-2010/bio1.tif",
    ):
        assert a[name] != b[name], name
    patches = [k for k in a if k.endswith(".jpeg")]
    assert len(set(patches) & set(b)) < 0.1 * len(patches)  # survey ids (hence patch paths) are redrawn too
