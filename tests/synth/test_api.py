"""The generator's contract: argument errors, atomic output, stale-temp cleanup, flavours, scales, components."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glc.synth.world as world
from glc.data.layout import GLC_BBOX, NUM_CLASSES, RASTER_GROUPS, detect_layout
from glc.synth import SCALES, generate_world, get_scale
from glc.synth.geography import RasterGrid, assign_regions, country_of, is_valid_site
from glc.synth.rasterwriter import group_specs
from glc.synth.species import target_prevalences

REPO = Path(__file__).resolve().parents[2]
#: A very small world for contract tests (a couple of seconds).
MICRO = get_scale(
    "tiny",
    n_pa_train=40,
    n_pa_test=12,
    n_species=60,
    richness=8.0,
    n_po_records=60,
    raster_res_deg=1.0,
    raster_tile=64,
    n_pilot=200,
    n_towns=20,
    chunk_size=16,
    po_chunk_size=32,
    block_deg=2.0,
)


def test_scales_respect_their_contract() -> None:
    tiny, demo, full = SCALES["tiny"], SCALES["demo"], SCALES["full"]
    assert tiny.n_pa_train + tiny.n_pa_test <= 500 and tiny.n_species <= 200
    assert demo.n_pa_train == 10_000 and demo.n_species == 1_500 and demo.n_po_records == 30_000
    assert (full.n_pa_train, full.n_pa_test) == (88_987, 4_716) and full.n_po_records >= 1_000_000
    assert full.n_species <= NUM_CLASSES
    with pytest.raises(ValueError, match="unknown synthetic world scale 'huge'"):
        get_scale("huge")
    with pytest.raises(ValueError, match=r"unknown ScaleParams override\(s\) \['n_surveys'\]"):
        get_scale("tiny", n_surveys=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": 1.5}, "seed must be a non-negative integer"),
        ({"flavour": "zenodo"}, "flavour must be 'kaggle' or 'seafile'"),
        ({"workers": 0}, "workers must be a positive"),
        ({"scale": "medium"}, "unknown synthetic world scale"),
        ({"po_patch_sites": -2}, "po_patch_sites must be an int >= 0"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_world(tmp_path / "w", **{"scale": MICRO, **kwargs})
    assert not (tmp_path / "w").exists()


def test_existing_world_is_not_overwritten_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "w"
    first = generate_world(out, scale=MICRO, seed=3, workers=1, progress=False)
    assert json.loads((out / "_SUCCESS").read_text())["counts"] == first["counts"]
    with pytest.raises(FileExistsError, match="already exists and is complete"):
        generate_world(out, scale=MICRO, seed=3, workers=1, progress=False)
    second = generate_world(out, scale=MICRO, seed=4, workers=1, progress=False, overwrite=True)
    assert second["seed"] == 4 and json.loads((out / "_SUCCESS").read_text())["seed"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no temporary or old folders left


def test_a_failure_leaves_no_world_and_no_debris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(world, "_write_truth", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_world(tmp_path / "w", scale=MICRO, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_generator_leaves_no_world_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "w"
    code = (
        "import sys; from glc.synth import generate_world; "
        "generate_world(sys.argv[1], scale='tiny', workers=1, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob(".w-tmp-*/PA_Train_SatellitePatches_RGB")) and time.time() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the generator finished before it could be killed; the test needs a slower world"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    debris = list(tmp_path.glob(".w-tmp-*"))
    assert len(debris) == 1
    generate_world(out, scale=MICRO, workers=1, progress=False)
    assert (out / "_SUCCESS").is_file() and not list(tmp_path.glob(".w-tmp-*"))


def test_seafile_flavour_writes_the_seafile_names(tmp_path: Path) -> None:
    out = tmp_path / "w"
    generate_world(out, scale=MICRO, flavour="seafile", workers=1, progress=False)
    layout = detect_layout(out)
    assert layout.flavour == "seafile"
    assert (out / "PresenceAbsenceSurveys" / "GLC24-PA-metadata-train.csv").is_file()
    assert (out / "PresenceOnlyOccurrences" / "GLC24-PO-metadata-train.csv").is_file()
    assert layout.env_csv("test", "human_footprint").is_file()
    assert all(layout.raster_paths(g) for g in RASTER_GROUPS)


def test_every_raster_file_has_a_spec() -> None:
    for group, rels in RASTER_GROUPS.items():
        specs = group_specs(group)
        assert [s.rel for s in specs] == list(rels)
        for s in specs:
            info = np.iinfo(s.dtype) if np.dtype(s.dtype).kind in "iu" else np.finfo(s.dtype)
            assert info.min <= s.nodata <= info.max
    hf = {s.layers[0]: s for s in group_specs("human_footprint")}
    assert (hf["Lights2009"].dtype, hf["Lights2009"].nodata) == ("uint8", 127)  # as the real GLC rasters
    assert (hf["Built2009"].dtype, hf["Built2009"].nodata) == ("int32", 2147483647)
    with pytest.raises(ValueError, match="unknown raster group"):
        group_specs("clouds")


def test_grid_and_sites() -> None:
    grid = RasterGrid.for_resolution(0.25)
    west, south, east, north = GLC_BBOX
    assert grid.west == west and grid.north == north
    assert grid.west + grid.width * grid.res >= east and grid.north - grid.height * grid.res <= south
    row, col = grid.pixel_of(np.array([2.35]), np.array([48.86]))
    lon, lat = grid.centre_of(row, col)
    assert abs(lon[0] - 2.35) <= grid.res / 2 and abs(lat[0] - 48.86) <= grid.res / 2
    with pytest.raises(ValueError, match="raster_res_deg must be within"):
        RasterGrid.for_resolution(5.0)
    # Paris and Madrid are valid sites, the Bay of Biscay and the mid-Atlantic are not
    ok = is_valid_site(np.array([2.35, -3.70, -5.0, -25.0]), np.array([48.86, 40.42, 45.5, 45.0]), grid)
    assert ok.tolist() == [True, True, False, False]
    assert country_of(np.array([2.35, 12.5, 10.2, 4.9]), np.array([48.86, 41.9, 56.2, 52.4])).tolist() == [
        "France",
        "Italy",
        "Denmark",
        "Netherlands",
    ]


def test_sites_are_checked_where_the_csv_puts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A site is validated (on land, its pixel centre on land) at the rounded place the CSV writes: a PO site valid
    before rounding and 1 m into a sea pixel after it had nodata rasters and undefined species logits."""
    import glc.synth.sites as sites

    grid = RasterGrid.for_resolution(0.05)
    checked: set[tuple[float, float]] = set()

    def recording(lon: np.ndarray, lat: np.ndarray, g: RasterGrid) -> np.ndarray:
        ok = is_valid_site(lon, lat, g)
        checked.update(zip(np.asarray(lon)[ok].tolist(), np.asarray(lat)[ok].tolist()))
        return ok

    monkeypatch.setattr(sites, "is_valid_site", recording)
    town = (np.array([2.35, 12.57, -9.14]), np.array([48.86, 55.68, 38.72]))  # Paris, Copenhagen, Lisbon (coasts)
    po = sites.make_po_surveys(
        np.random.default_rng(3), 3000, 1.3, grid, *town, np.array([2e6, 6e5, 5e5]), np.full(3, 8.0)
    )
    pa = sites.sample_pa_sites(np.random.default_rng(4), 1500, grid, 6.0, 4.0)
    for df in (po, pa):
        assert all((lo, la) in checked for lo, la in zip(df["lon"].tolist(), df["lat"].tolist()))
        assert is_valid_site(df["lon"].to_numpy(), df["lat"].to_numpy(), grid).all()


def test_regions_follow_the_rules() -> None:
    lon = np.array([8.0, 10.0, -1.0, 13.0, 19.5, 25.0, 20.0])
    lat = np.array([46.5, 56.3, 47.5, 41.5, 47.0, 62.0, 50.0])
    elev = np.array([1800.0, 20.0, 50.0, 200.0, 100.0, 150.0, 250.0])
    dry = np.array([0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0])
    country = np.array(["Switzerland", "Denmark", "France", "Italy", "Hungary", "Finland", "Poland"], dtype=object)
    assert assign_regions(lon, lat, elev, dry, country).tolist() == [
        "ALPINE",
        "CONTINENTAL",
        "ATLANTIC",
        "MEDITERRANEAN",
        "PANNONIAN",
        "BOREAL",
        "CONTINENTAL",
    ]


def test_target_prevalences_are_long_tailed_and_sum_to_richness() -> None:
    p = target_prevalences(np.random.default_rng(0), 1500, 18.0, 1.8, 0.45)
    assert p.sum() == pytest.approx(18.0) and p.max() <= 0.45 + 1e-12
    assert (p < 1e-3).mean() > 0.05 and (p > 0.1).sum() >= 3
    with pytest.raises(ValueError, match="cannot be reached"):
        target_prevalences(np.random.default_rng(0), 10, 18.0, 1.8, 0.45)


def test_po_patches_are_rendered_for_the_first_po_surveys(tmp_path: Path) -> None:
    from PIL import Image

    from glc.data.layout import Layout
    from glc.data.metadata import read_po_metadata

    summary = generate_world(
        tmp_path / "w", scale=MICRO, seed=1, flavour="seafile", workers=1, progress=False, po_patch_sites=12
    )
    layout = Layout(tmp_path / "w", "seafile")
    files = sorted(layout.patch_root("po", "rgb").rglob("*.jpeg"))
    assert summary["counts"]["po_patches"] == 12 and len(files) == 12
    po_ids = set(read_po_metadata(layout.po_metadata())["surveyId"].astype(int))
    for f in files:
        sid = int(f.stem)
        assert sid in po_ids
        with Image.open(f) as rgb, Image.open(layout.patch_path("po", sid, "nir")) as nir:
            assert (rgb.mode, rgb.size, nir.mode, nir.size) == ("RGB", (128, 128), "L", (128, 128))


def test_glc25_world_has_the_glc25_layout_and_a_shifted_test_set(tmp_path: Path) -> None:
    """GLC25 names and patch profile, no full rasters, test ids from 5,000,000 at GLC25's test/train ratio, the
    test landcover CSV's extra index column, and the shift recorded in the summary."""
    import rasterio

    from glc.data.metadata import read_pa_metadata
    from glc.data.patches import read_geotiff_patch

    out = tmp_path / "g"
    summary = generate_world(out, scale=MICRO, flavour="glc25", workers=1, progress=False)
    layout = detect_layout(out)
    assert (layout.flavour, layout.edition.name) == ("glc25", "glc25")
    assert not (out / "EnvironmentalRasters").exists() and not (out / "_scratch_rasters").exists()
    assert not list(out.rglob("*.tif")) and not list(out.rglob("*.jpeg"))
    test = read_pa_metadata(layout.pa_metadata("test"), "test")
    train = read_pa_metadata(layout.pa_metadata("train"), "train")
    assert len(test) == summary["counts"]["pa_test_surveys"] == round(MICRO.n_pa_train * world.GLC25_TEST_RATIO)
    assert sorted(test["surveyId"]) == list(range(5_000_000, 5_000_000 + len(test)))
    assert train["surveyId"].max() < 5_000_000
    for sid, split in [(int(test["surveyId"].iloc[0]), "test"), (int(train["surveyId"].iloc[0]), "train")]:
        path = layout.patch_path(split, sid, "tiff")  # type: ignore[arg-type]
        with rasterio.open(path) as src:
            assert (src.count, src.dtypes[0], src.nodata, src.width, src.height, src.res) == (
                4,
                "int16",
                -1.0,
                64,
                64,
                (10.0, 10.0),
            )
            assert src.compression.name == "lzw" and src.descriptions == ("red", "green", "blue", "nir")
            assert src.crs.to_dict()["proj"] == "laea" and src.crs.to_dict()["lat_0"] == 52
        assert read_geotiff_patch(path).mean() > 100  # reflectances, not 0..255
    header = layout.env_csv("test", "landcover").read_text().splitlines()[0]
    assert header == ",surveyId,LandCover"
    assert layout.env_csv("train", "landcover").read_text().splitlines()[0] == "surveyId,LandCover"
    shift = summary["shift"]
    assert shift["shift_factor"] == world.GLC25_SHIFT and 0 < shift["country_tv_distance"] <= 1
    assert (out / "_truth" / world.TRUTH_NPZ).is_file() and layout.sample_submission().is_file()


def test_glc25_shift_over_represents_the_marked_countries() -> None:
    """The shifted split draws marked countries' blocks first: test and train country mixes differ more than
    GLC24's uniform split of the same sites (measured on a demo-size draw, no files written)."""
    from glc.synth.sites import make_pa_surveys

    grid = RasterGrid.for_resolution(0.5)

    def tv(shift: float) -> float:
        pa = make_pa_surveys(np.random.default_rng(3), 3000, 500, grid, 0.5, 4.0, 3.0, shift=shift)
        country = pa.sites["country"].reindex(pa.surveys["site"]).to_numpy()
        test = pa.surveys["split"].to_numpy() == "test"
        a = pd.Series(country[test]).value_counts(normalize=True)
        b = pd.Series(country[~test]).value_counts(normalize=True)
        idx = a.index.union(b.index)
        return float(0.5 * (a.reindex(idx, fill_value=0) - b.reindex(idx, fill_value=0)).abs().sum())

    assert tv(world.GLC25_SHIFT) > tv(1.0) + 0.1


def test_po_patches_added_to_an_existing_world_leave_its_other_files_untouched(tmp_path: Path) -> None:
    """``glc synth --add-po-patches``: the PO patches of the same world, nothing else rewritten."""
    from glc.data.layout import Layout
    from glc.synth.world import add_po_patches

    root = tmp_path / "tiny-seed0"
    generate_world(root, scale="tiny", seed=0, workers=1, progress=False)
    layout = Layout(root, "kaggle")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != "_SUCCESS"}
    assert not layout.patch_root("po", "rgb").exists()
    done = add_po_patches(root, 7, workers=1, progress=False)
    assert done["po_patches"] == 7
    rgb = sorted(layout.patch_root("po", "rgb").rglob("*.jpeg"))
    nir = sorted(layout.patch_root("po", "nir").rglob("*.jpeg"))
    assert len(rgb) == len(nir) == 7
    assert {p: p.stat().st_mtime_ns for p in before} == before  # every earlier file kept as it was
    assert json.loads((root / "_SUCCESS").read_text())["counts"]["po_patches"] == 7
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the regenerated copy is gone
    # the same patches as a world generated with them from the start
    ref = tmp_path / "ref"
    generate_world(ref, scale="tiny", seed=0, workers=1, progress=False, po_patch_sites=7)
    for p in rgb:
        assert p.read_bytes() == (ref / p.relative_to(root)).read_bytes()
    # a second run replaces the patches (3 now) and its count
    assert add_po_patches(root, 3, workers=1, progress=False)["po_patches"] == 3
    assert len(list(layout.patch_root("po", "nir").rglob("*.jpeg"))) == 3
    assert json.loads((root / "_SUCCESS").read_text())["counts"]["po_patches"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileNotFoundError, match="not a complete synthetic world"):
        add_po_patches(tmp_path / "nowhere", 1)


def test_po_patches_of_a_world_an_earlier_generator_drew(tmp_path: Path) -> None:
    """A world whose PO records the generator no longer draws again (here: one record's uncertainty text and one
    survey's place edited, as a generator change would move them) gets its patches at the sites its CSV names with
    ``sites="world"``; ``"draw"`` refuses it; and a world whose environment differs is refused either way."""
    from glc.data.layout import Layout
    from glc.synth.world import add_po_patches, read_po_surveys

    root = tmp_path / "tiny-seed0"
    generate_world(root, scale="tiny", seed=0, workers=1, progress=False)
    layout = Layout(root, "kaggle")
    csv = layout.po_metadata()
    drawn = read_po_surveys(root)
    assert len(drawn) == json.loads((root / "_SUCCESS").read_text())["counts"]["po_surveys"]
    assert drawn["n_records"].sum() == len(pd.read_csv(csv))
    lines = csv.read_text().splitlines(keepends=True)
    head, rows = lines[0], lines[1:]
    first = rows[0].split(",")
    moved = int(first[-1])  # the first PO survey, moved 0.001 degrees east
    edited = []
    for line in rows:
        f = line.rstrip("\n").split(",")
        if int(f[-1]) == moved:
            f[4] = repr(round(float(f[4]) + 0.001, 5))
        edited.append(",".join(f) + "\n")
    f = edited[-1].rstrip("\n").split(",")
    f[5] = "123.25"  # another survey's uncertainty text
    edited[-1] = ",".join(f) + "\n"
    csv.write_text(head + "".join(edited))
    with pytest.raises(ValueError, match="gave other PO records"):
        add_po_patches(root, 0, workers=1, progress=False, sites="draw")
    done = add_po_patches(root, 0, workers=1, progress=False)
    assert done["sites"] == "world" and done["po_patches"] == len(drawn)
    ref = tmp_path / "ref"
    generate_world(ref, scale="tiny", seed=0, workers=1, progress=False, po_patch_sites=len(drawn))
    rgb = sorted(layout.patch_root("po", "rgb").rglob("*.jpeg"))
    assert len(rgb) == len(drawn)
    same = [p.read_bytes() == (ref / p.relative_to(root)).read_bytes() for p in rgb]
    # every patch but the moved survey's is the one a fresh world renders (the moved one shows its new place, which
    # may lie in the same raster pixel)
    assert any(p.stem == str(moved) for p in rgb) and sum(same) >= len(rgb) - 1
    with pytest.raises(ValueError, match="sites='nope'"):
        add_po_patches(root, 0, sites="nope")
    tif = sorted(layout.env_root().rglob("*.tif*"))[0]
    data = bytearray(tif.read_bytes())
    data[-1] ^= 0xFF
    tif.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="gave another environment"):
        add_po_patches(root, 0, workers=1, progress=False)
