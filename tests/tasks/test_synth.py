"""``SyntheticWorld`` and ``raw_data_task``: a synthetic data root's name says its scale, seed and edition."""

from __future__ import annotations

from pathlib import Path

from glc.tasks.raw import GLC24Data
from glc.tasks.synth import SyntheticWorld, raw_data_task, synthetic_edition, world_dir_name


def test_a_synthetic_root_name_gives_its_world() -> None:
    task = raw_data_task("data/synthetic/glc25-demo-seed3")
    assert isinstance(task, SyntheticWorld)
    assert (task.edition, task.scale, task.seed) == ("glc25", "demo", 3)
    assert Path(task.output().path) == Path("data/synthetic/glc25-demo-seed3/_SUCCESS")
    glc24 = raw_data_task("data/synthetic/tiny-seed0")
    assert (glc24.edition, glc24.scale, glc24.seed) == ("glc24", "tiny", 0)
    assert Path(glc24.output().path) == Path("data/synthetic/tiny-seed0/_SUCCESS")
    assert isinstance(raw_data_task("/data/glc25"), GLC24Data)  # a real root of any edition: an external task
    assert isinstance(raw_data_task("data/other/glc25-demo-seed0"), GLC24Data)  # only below a synthetic/ folder
    assert [synthetic_edition(p) for p in ("data/synthetic/glc25-full-seed0", "data/synthetic/demo-seed0", "/x/y")] == [
        "glc25",
        "glc24",
        None,
    ]
    assert (
        world_dir_name("glc25", "tiny", 1) == "glc25-tiny-seed1" and world_dir_name("glc24", "tiny", 1) == "tiny-seed1"
    )
    dense = raw_data_task("data/synthetic/glc25-demo-seed2-po500000")
    assert (dense.edition, dense.scale, dense.seed, dense.po_records) == ("glc25", "demo", 2, 500000)
    assert world_dir_name("glc25", "demo", 2, 500000) == "glc25-demo-seed2-po500000"
    assert synthetic_edition("data/synthetic/demo-seed0-po510000") == "glc24"
    assert isinstance(raw_data_task("data/synthetic/demo-seed0-po0"), GLC24Data)  # po0 names no world glc makes


def test_the_po_patches_of_a_synthetic_root_are_rendered_on_first_use(tmp_path: Path) -> None:
    import json

    import luigi

    from glc.tasks.synth import SyntheticPOPatches, po_patches_task

    root = tmp_path / "synthetic" / "tiny-seed0"
    task = po_patches_task(raw_data_task(str(root)))
    assert isinstance(task, SyntheticPOPatches) and (task.scale, task.seed) == ("tiny", 0)
    assert isinstance(po_patches_task(raw_data_task("/data/glc24")), GLC24Data)
    assert not task.complete()
    assert luigi.build([task], local_scheduler=True, workers=1)
    counts = json.loads((root / "_SUCCESS").read_text())["counts"]
    rgb = list((root / "SatellitePatches" / "PO-Train-SatellitePatches-RGB").rglob("*.jpeg"))
    assert counts["po_patches"] == counts["po_surveys"] == len(rgb) > 0 and task.complete()


def test_a_world_named_with_its_po_records_is_drawn_with_them_and_gets_its_po_patches(tmp_path: Path) -> None:
    import json

    import luigi

    from glc.tasks.synth import SyntheticPOPatches, po_patches_task

    root = tmp_path / "synthetic" / "tiny-seed2-po5000"
    task = po_patches_task(raw_data_task(str(root)))
    assert isinstance(task, SyntheticPOPatches) and task.po_records == 5000
    assert luigi.build([task], local_scheduler=True, workers=1)
    info = json.loads((root / "_SUCCESS").read_text())
    # drawn with the records its name says (the tiny scale draws about 2,000), and the PO patches rendered from the
    # same parameters (add_po_patches regenerates the world with them and checks the PO records are the same)
    assert info["params"]["n_po_records"] == 5000 and 4500 < info["counts"]["po_records"] < 5500
    assert info["counts"]["po_patches"] == info["counts"]["po_surveys"] and task.complete()
