"""Acceptance (a): every file of the tiny world reads through the glc.data readers, and the modalities agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glc.data.cubes import CUBE_STRIDES, read_bioclim_cube, read_landsat_cube
from glc.data.env import read_env_csv
from glc.data.layout import (
    BIOCLIM_YEARS,
    ENV_COLUMNS,
    ENV_COMPONENTS,
    GLC_BBOX,
    LANDSAT_BANDS,
    LANDSAT_YEARS,
    NUM_CLASSES,
    RASTER_GROUPS,
    Layout,
    detect_layout,
)
from glc.data.metadata import read_pa_metadata, read_po_metadata, read_solution, read_submission, survey_table
from glc.data.patches import read_patch
from glc.data.rasters import lonlat_to_pixel, raster_info, read_window
from glc.data.timeseries import read_landsat_csvs

SPLITS = ("train", "test")


@pytest.fixture(scope="module")
def layout(tiny_world: Path) -> Layout:
    return detect_layout(tiny_world)


@pytest.fixture(scope="module")
def surveys(layout: Layout) -> dict[str, pd.DataFrame]:
    return {s: survey_table(read_pa_metadata(layout.pa_metadata(s), s)) for s in SPLITS}


def expected_files(layout: Layout, surveys: dict[str, pd.DataFrame]) -> set[Path]:
    """Every path the Layout says a GLC24 root holds for these surveys (plus the rasters)."""
    files = {layout.pa_metadata(s) for s in SPLITS} | {layout.po_metadata(), layout.sample_submission()}
    for s in SPLITS:
        for sid in surveys[s]["surveyId"]:
            files |= {layout.patch_path(s, sid, "rgb"), layout.patch_path(s, sid, "nir")}
            files |= {layout.cube_path(s, "landsat", sid), layout.cube_path(s, "bioclim", sid)}
        files |= {layout.landsat_csv(s, b) for b in LANDSAT_BANDS}
        files |= {layout.env_csv(s, c) for c in ENV_COMPONENTS}
    for group in RASTER_GROUPS:
        files |= set(layout.raster_paths(group))
    return files


def test_world_holds_exactly_the_glc24_files(tiny_world: Path, layout: Layout, surveys) -> None:
    found = {p for p in tiny_world.rglob("*") if p.is_file()}
    hidden = {p for p in found if p.name == "_SUCCESS" or "_truth" in p.relative_to(tiny_world).parts}
    assert {p.relative_to(tiny_world).as_posix() for p in hidden} == {
        "_SUCCESS",
        "_truth/GLC24_SOLUTION_FILE.csv",
        "_truth/pa_test_truth.npz",
    }
    assert found - hidden == expected_files(layout, surveys)
    summary = json.loads((tiny_world / "_SUCCESS").read_text())
    assert summary["counts"]["pa_train_surveys"] == len(surveys["train"])
    assert summary["counts"]["pa_test_surveys"] == len(surveys["test"])


def test_metadata_reads_and_has_the_glc24_quirks(tiny_world: Path, layout: Layout, surveys) -> None:
    train = read_pa_metadata(layout.pa_metadata("train"), "train")
    test = read_pa_metadata(layout.pa_metadata("test"), "test")
    po = read_po_metadata(layout.po_metadata())
    assert train.attrs["bad_rows"] == test.attrs["bad_rows"] == po.attrs["bad_rows"] == 0
    assert len(surveys["train"]) <= 500 and len(surveys["test"]) + len(surveys["train"]) <= 500
    assert test["surveyId"].is_unique and len(test) == len(surveys["test"])
    # raw text quirks
    head = (tiny_world / "GLC24_P0_metadata_train.csv").read_text().splitlines()
    assert head[0] == "year,month,day,lat,lon,geoUncertaintyInM,taxonRank,date,dayOfYear,speciesId,surveyId"
    raw_train = pd.read_csv(layout.pa_metadata("train"), dtype=str, keep_default_na=False)
    assert list(raw_train.columns) == [
        "lon",
        "lat",
        "year",
        "geoUncertaintyInM",
        "areaInM2",
        "region",
        "country",
        "speciesId",
        "surveyId",
    ]
    assert raw_train["speciesId"].str.fullmatch(r"\d+\.0").all()
    assert {"", "-inf"} <= set(raw_train["areaInM2"])
    assert (raw_train["geoUncertaintyInM"] == "").any()
    raw_test = pd.read_csv(layout.pa_metadata("test"), dtype=str, keep_default_na=False)
    assert list(raw_test.columns) == [
        "lon",
        "lat",
        "year",
        "geoUncertaintyInM",
        "areaInM2",
        "region",
        "country",
        "surveyId",
    ]
    # ids: disjoint splits, a short id exercising the no-padding rule, species spread over 0..11254
    ids = {s: set(surveys[s]["surveyId"]) for s in SPLITS}
    po_ids = set(po["surveyId"])
    assert not ids["train"] & ids["test"] and not ids["train"] & po_ids and not ids["test"] & po_ids
    assert 642 in ids["test"] and 212 in ids["train"]
    assert (tiny_world / "PA_Test_SatellitePatches_RGB/pa_test_patches_rgb/42/6/642.jpeg").is_file()
    species = np.concatenate([train["speciesId"].to_numpy(), po["speciesId"].to_numpy()])
    assert species.min() >= 0 and species.max() < NUM_CLASSES and np.ptp(species) > NUM_CLASSES / 2
    assert train.groupby("surveyId")["speciesId"].size().min() >= 1
    # places and times
    west, south, east, north = GLC_BBOX
    for df in (train, test, po):
        assert df["lon"].between(west, east).all() and df["lat"].between(south, north).all()
    assert set(train["year"]) <= set(range(2017, 2022))
    assert set(train["region"]) <= {
        "ALPINE",
        "ATLANTIC",
        "BLACK SEA",
        "BOREAL",
        "CONTINENTAL",
        "MACARONESIAN",
        "MEDITERRANEAN",
        "PANNONIAN",
        "STEPPIC",
    }
    assert len(set(train["region"])) >= 3 and train["country"].nunique() >= 5
    # PO: float month/day, ISO dates agreeing with the day of year, PO surveys grouping records of one place
    assert ((po["month"] >= 1) & (po["month"] <= 12)).all()
    raw_po = pd.read_csv(layout.po_metadata())
    doy = pd.to_datetime(raw_po["date"]).dt.dayofyear
    assert (doy == raw_po["dayOfYear"]).all()
    assert raw_po["surveyId"].is_monotonic_increasing
    assert (raw_po.groupby("surveyId")[["lat", "lon", "date"]].nunique() == 1).all().all()


def test_test_split_is_made_of_whole_spatial_blocks(tiny_world: Path, surveys) -> None:
    block = json.loads((tiny_world / "_SUCCESS").read_text())["params"]["block_deg"]

    def blocks(df: pd.DataFrame) -> set[tuple[int, int]]:
        return set(zip(np.floor(df["lon"] / block).astype(int), np.floor(df["lat"] / block).astype(int)))

    assert not blocks(surveys["train"]) & blocks(surveys["test"])
    # plots are revisited: some train plots carry several surveys in different years
    visits = surveys["train"].groupby(["lon", "lat"])["year"].agg(["size", "nunique"])
    assert (visits["size"] > 1).any() and (visits["size"] == visits["nunique"]).all()


def test_modalities_agree(layout: Layout, surveys) -> None:
    """Patches and Landsat series are driven by the same habitat mix: their NIR brightness correlates."""
    ids, values = read_landsat_csvs(layout, "train")
    summer_nir = np.nanmean(values[:, LANDSAT_BANDS.index("nir"), 1:3, :], axis=(1, 2))
    patch_nir = np.array([read_patch(layout, "train", int(sid))[3].mean() for sid in ids])
    assert np.corrcoef(summer_nir, patch_nir)[0, 1] > 0.5


def test_every_patch_reads(layout: Layout, surveys) -> None:
    means = []
    for s in SPLITS:
        for sid in surveys[s]["surveyId"]:
            patch = read_patch(layout, s, int(sid))
            assert patch.shape == (4, 128, 128) and patch.dtype == np.uint8
            means.append(patch.reshape(4, -1).mean(axis=1))
    means = np.array(means)
    assert 40 < means[:, :3].mean() < 130 and means[:, 3].mean() > means[:, :3].mean()  # NIR bright (vegetation)
    assert means.std(axis=0).min() > 3  # patches differ from survey to survey


def test_every_cube_reads_and_matches_the_csvs(layout: Layout, surveys) -> None:
    for s in SPLITS:
        ids, values = read_landsat_csvs(layout, s)
        np.testing.assert_array_equal(ids, np.sort(surveys[s]["surveyId"].to_numpy()))
        monthly = read_env_csv(layout, s, "bioclimatic_monthly")
        years = surveys[s].set_index("surveyId")["year"]
        for i, sid in enumerate(ids):
            cube = read_landsat_cube(layout, s, int(sid))
            np.testing.assert_array_equal(cube, values[i])  # NaN positions included
            after = np.asarray(LANDSAT_YEARS) > years[sid]
            assert np.isnan(cube[:, :, after]).all()
            assert np.isfinite(cube[:, :, ~after]).mean() > 0.95
            assert np.nanmax(cube) <= 255 and np.nanmin(cube) >= 0
            bio = read_bioclim_cube(layout, s, int(sid))
            np.testing.assert_array_equal(bio.ravel(), monthly.loc[sid].to_numpy(np.float32))
            assert (bio[2] >= bio[1]).all() and (bio[1] >= bio[3]).all()  # tasmax >= tas >= tasmin
            assert bio.shape == (4, len(BIOCLIM_YEARS), 12)


def test_cubes_have_the_real_storage_layout(layout: Layout, surveys) -> None:
    import torch

    sid = int(surveys["test"]["surveyId"].iloc[0])
    for kind in ("landsat", "bioclim"):
        t = torch.load(layout.cube_path("test", kind, sid), weights_only=True)
        assert t.dtype == torch.float32 and t.stride() == CUBE_STRIDES[kind]
    assert layout.cube_path("train", "landsat", 212).name == "GLC24-PA-train-landsat-time-series_212_cube.pt"
    assert layout.cube_path("train", "landsat", 212).is_file()


def test_every_env_csv_reads_and_equals_the_rasters(layout: Layout, surveys) -> None:
    # raster group -> (env component, column, raster file index, band)
    checks = [
        ("climate", "bioclimatic", "Bio1", 0, 1),
        ("climate", "bioclimatic", "Bio12", 11, 1),
        ("elevation", "elevation", "Elevation", 0, 1),
        ("landcover", "landcover", "LandCover", 0, 1),
        ("human_footprint", "human_footprint", "HumanFootprint-HFP2009", 15, 1),
        ("human_footprint", "human_footprint", "HumanFootprint-Built2009", 1, 1),
        ("soilgrids", "soilgrids", "Soilgrid-phh2o", 5, 1),
    ]
    for s in SPLITS:
        env = {c: read_env_csv(layout, s, c) for c in ENV_COMPONENTS}
        for c, df in env.items():
            assert list(df.columns) == list(ENV_COLUMNS[c])
            assert set(df.index) == set(surveys[s]["surveyId"])
        bio = env["bioclimatic"]
        assert (bio == np.round(bio)).all().all() and bio["Bio1"].between(2400, 3100).all()
        assert env["landcover"]["LandCover"].between(1, 17).all()
        site = surveys[s].set_index("surveyId")
        for group, comp, column, file_index, band in checks:
            path = layout.raster_paths(group)[file_index]
            info = raster_info(path)
            col, row = lonlat_to_pixel(info, site["lon"].to_numpy(), site["lat"].to_numpy())
            with __import__("rasterio").open(path) as src:
                for sid, c, r in zip(site.index, np.floor(col).astype(int), np.floor(row).astype(int)):
                    data, valid = read_window(src, c, r, 1, band=band)
                    assert valid.all(), f"{path.name}: no data at survey {sid}"
                    csv_value = env[comp].loc[sid, column]
                    if np.isfinite(csv_value) and 0 <= csv_value < 1e6:  # skip the deliberately dirty HF cells
                        assert csv_value == pytest.approx(float(data[0, 0, 0]), rel=1e-6), (path.name, sid)
    hf = read_env_csv(layout, "train", "human_footprint")
    dirty = (~np.isfinite(hf)) | (hf < 0) | (hf > 1e6)
    assert 0 < dirty.any(axis=1).sum() <= 0.05 * len(hf)


def test_every_raster_reads(layout: Layout) -> None:
    west, south, east, north = GLC_BBOX
    n_files = 0
    for group, rels in RASTER_GROUPS.items():
        paths = layout.raster_paths(group)
        assert len(paths) == len(rels)
        for path in paths:
            info = raster_info(path)
            assert info.crs.to_epsg() == 4326 and info.nodata is not None
            assert info.bounds.left == pytest.approx(west) and info.bounds.top == pytest.approx(north)
            assert info.bounds.right >= east and info.bounds.bottom <= south
            assert info.count == (13 if group == "landcover" else 1)
            data, valid = read_window(path, 0, 0, max(info.width, info.height))
            assert 0.15 < valid[0].mean() < 0.9  # land has data, the sea is nodata
            with __import__("rasterio").open(path) as src:
                assert src.profile["tiled"] and src.profile["compress"] == "deflate"
            n_files += 1
    assert n_files == 19 + 1 + 16 + 1 + 9


def test_submission_and_solution_read(tiny_world: Path, layout: Layout, surveys) -> None:
    sub = read_submission(layout.sample_submission())
    sol = read_solution(tiny_world / "_truth" / "GLC24_SOLUTION_FILE.csv")
    test_ids = surveys["test"]["surveyId"].tolist()
    assert list(sub) == test_ids and list(sol) == test_ids
    assert all(len(v) == 25 for v in sub.values())
    assert all(len(v) >= 1 for v in sol.values())
