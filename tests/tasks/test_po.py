"""The POSites artifact: one labelled row per presence-only site, from the raw PO CSV through Spark."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import pytest

from glc.data.layout import detect_layout
from glc.tasks.po import POSites
from glc.training.po_pretrain import read_po_sites

EXPERIMENT = """
name = "geoloc-po-test"
seed = 0
[model]
kind = "geolocation"
hidden = 32
[train]
max_epochs = 2
batch_size = 64
reader = "arrow"
[train.pretrain_po]
enabled = true
epochs = 2
batch_size = 128
[decoder]
kind = "topk"
compare = false
"""


def test_po_sites_group_the_records_by_site_with_their_distinct_species(
    spark, tiny_world: Path, tmp_path: Path
) -> None:
    task = POSites(data_root=str(tiny_world), out_root=str(tmp_path))
    assert luigi.build([task], local_scheduler=True, workers=1)
    sites = read_po_sites(task.output().dir)
    raw = pd.read_csv(detect_layout(tiny_world).po_metadata()).dropna(subset=["speciesId"])
    want = raw.groupby("surveyId")["speciesId"].agg(lambda s: sorted({int(v) for v in s}))
    assert len(sites) == len(want) and sites["surveyId"].is_monotonic_increasing
    got = dict(zip(sites["surveyId"].astype(int), sites["speciesIds"].map(list)))
    assert got == {int(k): v for k, v in want.items()}
    assert (sites["n_records"].to_numpy() == raw.groupby("surveyId").size().loc[sites["surveyId"]].to_numpy()).all()
    first = raw.sort_values(["surveyId", "speciesId"]).groupby("surveyId").first()
    assert np.allclose(sites["lon"], first.loc[sites["surveyId"], "lon"]) and np.isfinite(sites[["x", "y"]]).all().all()
    report = json.loads((task.output().dir / "report.json").read_text())
    assert report["n_sites"] == len(sites) and report["n_records"] == int(sites["n_records"].sum())
    assert report["po_records"]["total_rows"] >= report["n_records"]


def test_train_model_requires_the_po_sites_and_reports_its_pretraining(
    spark, tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glc.tasks import TrainModel

    monkeypatch.setenv("WANDB_MODE", "offline")
    exp = tmp_path / "geoloc-po-test.toml"
    exp.write_text(EXPERIMENT)
    task = TrainModel(data_root=str(tiny_world), out_root=str(tmp_path / "out"), experiment=str(exp))
    assert isinstance(task.requires()["po_sites"], POSites)
    assert luigi.build([task], local_scheduler=True, workers=1)
    summary = json.loads((task.output().dir / "_SUCCESS").read_text())
    po = summary["pretrain_po"]
    sites = json.loads((task.requires()["po_sites"].output().dir / "report.json").read_text())
    assert po["sites_read"] == sites["n_sites"] and 0 < po["sites_used"] <= po["sites_read"]
    assert po["epochs"] == 2 and len(po["epoch_loss"]) == 2 and po["pa_epochs"] >= 1 and po["inputs"]


TILE_EXPERIMENT = """
name = "tile-po-test"
seed = 0
[model]
kind = "tile_cnn"
tiles = ["patch_dct"]
[train.pretrain_po]
enabled = true
epochs = 0
aux_weight = 1.0
loss = "multinomial"
[decoder]
kind = "topk"
compare = false
"""


def test_po_patch_tiles_hold_the_sites_with_a_patch_and_count_the_others(spark, tmp_path: Path) -> None:
    """POPatchTiles: the PO sites' patches through the PatchTiles ETL; sites without one counted, none refused."""
    from glc.synth import generate_world
    from glc.tasks import TrainModel
    from glc.tasks.po import POPatchTiles, sites_with_patches
    from tests.etl.test_patches import reference_patch_features

    world = tmp_path / "tiny-seed0"
    generate_world(world, scale="tiny", seed=0, workers=1, progress=False, po_patch_sites=15)
    layout = detect_layout(world)
    ids = read_po_sites_ids(world, tmp_path)
    strict = POPatchTiles(data_root=str(world), out_root=str(tmp_path / "out"))
    assert not luigi.build([strict], local_scheduler=True, workers=1)  # 15 of the sites: over the 0.5 ceiling
    with pytest.raises(ValueError, match=rf"{len(ids) - 15} of {len(ids)} presence-only sites have no patch"):
        sites_with_patches(layout, ids, 0.5)
    task = POPatchTiles(data_root=str(world), out_root=str(tmp_path / "out"), max_missing_fraction=1.0)
    assert luigi.build([task], local_scheduler=True, workers=1)
    report = json.loads((task.output().dir / "report.json").read_text())
    assert report["n_sites"] == len(ids) and report["n_with_patch"] == 15
    assert report["n_without_patch"] == len(ids) - 15 and report["by_split"] == {"po": 15}
    data = pd.read_parquet(task.output().dir / "data")
    ref = reference_patch_features(layout, data[["surveyId"]].assign(split="po"), 8)
    for sid, dct in zip(data["surveyId"], data["dct"]):
        np.testing.assert_array_equal(dct, ref[sid][0])
    # an image net's PO term requires the patch tiles of its patch sets
    exp = tmp_path / "tile-po-test.toml"
    exp.write_text(TILE_EXPERIMENT)
    req = TrainModel(data_root=str(world), out_root=str(tmp_path / "out"), experiment=str(exp)).requires()
    assert isinstance(req["po_input:patch_dct"], POPatchTiles) and req["po_input:patch_dct"].k == 8


def read_po_sites_ids(world: Path, tmp_path: Path) -> np.ndarray:
    """The PO site ids of a world (its POSites artifact, built in ``tmp_path / "out"``)."""
    task = POSites(data_root=str(world), out_root=str(tmp_path / "out"))
    assert luigi.build([task], local_scheduler=True, workers=1)
    return read_po_sites(task.output().dir)["surveyId"].to_numpy()


def test_po_patch_tiles_of_a_world_without_po_patches_say_how_to_get_them(tiny_world: Path) -> None:
    from glc.tasks.po import sites_with_patches

    with pytest.raises(FileNotFoundError, match=r"none of the 3 presence-only sites has a patch.*--add-po-patches"):
        sites_with_patches(detect_layout(tiny_world), np.array([5, 7, 9]), 0.5)


def test_po_raster_tiles_are_the_raster_tiles_at_every_po_site(spark, tiny_world: Path, tmp_path: Path) -> None:
    """PORasterTiles: every PO site's tile of each raster, exactly the single-process extraction at its lon/lat."""
    from glc.etl.raster_tiles import plan_rasters
    from glc.features.tiles import extract_tiles
    from glc.tasks.po import PORasterTiles, po_input_task

    task = PORasterTiles(data_root=str(tiny_world), out_root=str(tmp_path), raster_group="landcover", k=4, tile_size=16)
    assert luigi.build([task], local_scheduler=True, workers=1)
    sites = read_po_sites(task.requires()["sites"].output().dir).set_index("surveyId")
    data = pd.read_parquet(task.output().dir / "data").set_index("surveyId")
    assert sorted(data.index) == sorted(sites.index) and set(data["split"]) == {"po"}
    (path,) = detect_layout(tiny_world).raster_paths("landcover")
    (plan,) = plan_rasters([path], 16, 4)
    s = sites.loc[data.index]
    one = extract_tiles(path, data.index.to_numpy(), s["lon"], s["lat"], 16, 4, global_means=plan.global_means)
    np.testing.assert_array_equal(np.stack(data["dct"]), one["dct"].reshape(len(data), -1))
    # the tile nets' raster sets are made at the PO sites with the set's parameters; env vectors are not
    made = po_input_task(task, "raster_climate")
    assert isinstance(made, PORasterTiles) and (made.raster_group, made.k) == ("climate", 8)
    assert po_input_task(task, "env") is None and po_input_task(task, "landsat_cube") is None
