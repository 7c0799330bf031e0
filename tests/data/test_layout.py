"""``glc.data.layout``: file names of both distributions, checked against the real sample tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from glc.data.layout import (
    ENV_COLUMNS,
    LANDSAT_CSV_COLUMNS,
    Layout,
    LayoutError,
    detect_layout,
    patch_subdirs,
    survey_id_from_cube_name,
)

from .conftest import SAMPLE_SURVEY


def test_patch_subdirs_no_padding() -> None:
    assert patch_subdirs(642) == ("42", "6")
    assert patch_subdirs(1322301) == ("01", "23")
    assert patch_subdirs(80000) == ("00", "00")
    assert patch_subdirs(7) == ("7", "")
    with pytest.raises(ValueError, match="surveyId must be non-negative"):
        patch_subdirs(-1)


def test_kaggle_paths_exist_in_the_real_samples(kaggle_samples: Layout, samples: Path) -> None:
    for kind in ("rgb", "nir"):
        assert kaggle_samples.patch_path("train", SAMPLE_SURVEY, kind).is_file()
    for kind in ("landsat", "bioclim"):
        path = kaggle_samples.cube_path("train", kind, SAMPLE_SURVEY)
        assert path.is_file(), path
        assert survey_id_from_cube_name(path.name) == SAMPLE_SURVEY
    # every real patch file sits where patch_path puts it
    for jpeg in (samples / "PA_Train_SatellitePatches_RGB").rglob("*.jpeg"):
        assert kaggle_samples.patch_path("train", int(jpeg.stem), "rgb") == jpeg


def test_kaggle_quirks() -> None:
    k = Layout(Path("/d"), "kaggle")
    assert k.cube_path("test", "landsat", 642).as_posix() == (
        "/d/TimeSeries-Cubes/TimeSeries-Cubes/GLC24-PA-test-landsat_time_series/GLC24-PA-test-landsat_time_series_642_cube.pt"
    )
    assert k.cube_path("train", "landsat", 642).name == "GLC24-PA-train-landsat-time-series_642_cube.pt"
    assert k.env_csv("train", "bioclimatic").as_posix() == (
        "/d/EnvironmentalRasters/EnvironmentalRasters/Climate/Average 1981-2010/GLC24-PA-train-bioclimatic.csv"
    )
    assert "Human Footprint/GLC24-PA-test-human_footprint.csv" in k.env_csv("test", "human_footprint").as_posix()
    assert k.landsat_csv("test", "swir2").as_posix() == "/d/PA-test-landsat_time_series/GLC24-PA-test-landsat_time_series-swir2.csv"
    assert k.po_metadata().name == "GLC24_P0_metadata_train.csv"  # digit zero


def test_seafile_names() -> None:
    s = Layout(Path("/s"), "seafile")
    assert s.pa_metadata("train").as_posix() == "/s/PresenceAbsenceSurveys/GLC24-PA-metadata-train.csv"
    assert s.po_metadata().as_posix() == "/s/PresenceOnlyOccurrences/GLC24-PO-metadata-train.csv"
    assert s.env_csv("test", "bioclimatic").name == "GLC24-PA-test-bioclimatic-average.csv"
    assert "Soilgrids/GLC24-PA-train-soilgrids.csv" in s.env_csv("train", "soilgrids").as_posix()
    assert s.landsat_csv("train", "red").as_posix() == "/s/SatelliteTimeSeries/GLC24-PA-train-landsat-time-series-red.csv"
    assert s.cube_path("test", "bioclim", 5).name == "GLC24-PA-test-bioclimatic-monthly_5_cube.pt"


def test_po_letter_o_fallback(tmp_path: Path) -> None:
    (tmp_path / "GLC24_PO_metadata_train.csv").write_text("x\n")
    assert Layout(tmp_path, "kaggle").po_metadata().name == "GLC24_PO_metadata_train.csv"
    (tmp_path / "GLC24_P0_metadata_train.csv").write_text("x\n")
    assert Layout(tmp_path, "kaggle").po_metadata().name == "GLC24_P0_metadata_train.csv"


def test_detect_layout(tmp_path: Path) -> None:
    kaggle = tmp_path / "k"
    kaggle.mkdir()
    (kaggle / "GLC24_PA_metadata_test.csv").write_text("x\n")
    assert detect_layout(kaggle).flavour == "kaggle"
    seafile = tmp_path / "s"
    (seafile / "PresenceAbsenceSurveys").mkdir(parents=True)
    (seafile / "PresenceAbsenceSurveys" / "GLC24-PA-metadata-train.csv").write_text("x\n")
    assert detect_layout(seafile) == Layout(seafile, "seafile")
    with pytest.raises(LayoutError, match="holds neither GLC24 layout"):
        detect_layout(tmp_path)
    with pytest.raises(LayoutError, match="does not exist"):
        detect_layout(tmp_path / "missing")


def test_raster_paths_case_insensitive(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "seafile")
    hf = tmp_path / "EnvironmentalRasters" / "HumanFootprint" / "detailed"
    hf.mkdir(parents=True)
    (hf / "Croplands1992_WGS84.tif").write_bytes(b"")  # GLC23 README casing
    (hf / "Lights2009_WGS84.tif").write_bytes(b"")
    found = layout.raster_paths("human_footprint")
    assert sorted(p.name for p in found) == ["Croplands1992_WGS84.tif", "Lights2009_WGS84.tif"]
    with pytest.raises(LayoutError, match="no GeoTIFF of raster group 'soilgrids'"):
        layout.raster_paths("soilgrids")


def test_column_constants() -> None:
    assert len(LANDSAT_CSV_COLUMNS) == 84 and LANDSAT_CSV_COLUMNS[:5] == ("2000_1", "2000_2", "2000_3", "2000_4", "2001_1")
    assert len(ENV_COLUMNS["bioclimatic_monthly"]) == 912 and "Bio-pr_01_2000" in ENV_COLUMNS["bioclimatic_monthly"]
    assert len(ENV_COLUMNS["human_footprint"]) == 16 and len(ENV_COLUMNS["soilgrids"]) == 9


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="flavour must be 'kaggle' or 'seafile'"):
        Layout(Path("/x"), "zenodo")  # type: ignore[arg-type]
    layout = Layout(Path("/x"))
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        layout.pa_metadata("val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Landsat band must be one of"):
        layout.landsat_csv("train", "pan")
    with pytest.raises(ValueError, match="not a GLC24 cube file name"):
        survey_id_from_cube_name("cube.pt")


def test_glc25_names() -> None:
    g = Layout(Path("/g"), "glc25")
    assert g.pa_metadata("test").as_posix() == "/g/GLC25_PA_metadata_test.csv"
    assert g.po_metadata().name == "GLC25_P0_metadata_train.csv" and g.sample_submission().name == "GLC25_SAMPLE_SUBMISSION.csv"
    assert g.patch_path("train", 1027998, "tiff").as_posix() == "/g/SatelitePatches/PA-train/98/79/1027998.tiff"
    assert g.patch_paths("test", 642) == (Path("/g/SatelitePatches/PA-test/42/6/642.tiff"),)
    assert g.cube_path("train", "landsat", 7).as_posix() == (
        "/g/SateliteTimeSeries-Landsat/cubes/PA-train/GLC25-PA-train-landsat-time-series_7_cube.pt")
    assert g.cube_path("test", "landsat", 7).name == "GLC25-PA-test-landsat_time_series_7_cube.pt"
    assert g.cube_path("test", "bioclim", 7).as_posix() == (
        "/g/BioclimTimeSeries/cubes/PA-test/GLC25-PA-test-bioclimatic_monthly_7_cube.pt")
    assert g.po_cube_path("landsat", 1322301).as_posix() == (
        "/g/SateliteTimeSeries-Landsat/cubes/PO-train/01/23/GLC25-PO-train-landsat_time_series_1322301_cube.pt")
    assert g.po_cube_path("bioclim", 642).name == "GLC25-P0-train-bioclimatic_monthly_642_cube.pt"
    assert g.env_csv("train", "bioclimatic").as_posix() == (
        "/g/EnvironmentalValues/ClimateAverage_1981-2010/GLC25-PA-train-bioclimatic.csv")
    assert g.env_csv("test", "human_footprint").as_posix() == "/g/EnvironmentalValues/HumanFootprint/GLC25-PA-test-human_footprint.csv"
    assert g.env_csv("test", "bioclimatic_monthly").as_posix() == "/g/BioclimTimeSeries/values/GLC25-PA-test-bioclimatic_monthly.csv"
    assert g.landsat_csv("test", "nir").as_posix() == (
        "/g/SateliteTimeSeries-Landsat/values/PA-test/GLC25-PA-test-landsat_time_series-nir.csv")
    assert g.edition.test_id_min == 5_000_000 and g.edition.patch_format == "geotiff"
    with pytest.raises(LayoutError, match="GLC25 .* ships no full-extent environmental GeoTIFFs"):
        g.raster_paths("climate")
    with pytest.raises(ValueError, match=r"patch kind must be one of \('tiff',\) for GLC25"):
        g.patch_root("train", "rgb")
    with pytest.raises(LayoutError, match="'kaggle' has no po_cube landsat"):
        Layout(Path("/k"), "kaggle").po_cube_path("landsat", 5)


def test_no_known_edition_names_what_is_missing_for_each(tmp_path: Path) -> None:
    (tmp_path / "GLC24_PA_metadata.csv").write_text("x\n")  # a near miss
    with pytest.raises(LayoutError) as e:
        detect_layout(tmp_path)
    msg = str(e.value)
    for name in ("GLC24 kaggle: missing GLC24_PA_metadata_train.csv", "GLC24 seafile: missing PresenceAbsenceSurveys/",
                 "GLC25 glc25: missing GLC25_PA_metadata_train.csv, GLC25_PA_metadata_test.csv"):
        assert name in msg


def test_every_glc24_environmental_csv_path() -> None:
    """The full path of every component in both GLC24 distributions (pinned: the templates are root-relative)."""
    from glc.data.layout import ENV_COMPONENTS

    kaggle = {c: Layout(Path("/d"), "kaggle").env_csv("train", c).as_posix() for c in ENV_COMPONENTS}
    seafile = {c: Layout(Path("/s"), "seafile").env_csv("test", c).as_posix() for c in ENV_COMPONENTS}
    base = "/d/EnvironmentalRasters/EnvironmentalRasters/"
    assert kaggle == {
        "bioclimatic": base + "Climate/Average 1981-2010/GLC24-PA-train-bioclimatic.csv",
        "bioclimatic_monthly": base + "Climate/Monthly/GLC24-PA-train-bioclimatic_monthly.csv",
        "elevation": base + "Elevation/GLC24-PA-train-elevation.csv",
        "human_footprint": base + "Human Footprint/GLC24-PA-train-human_footprint.csv",
        "landcover": base + "LandCover/GLC24-PA-train-landcover.csv",
        "soilgrids": base + "SoilGrids/GLC24-PA-train-soilgrids.csv",
    }
    assert seafile == {
        "bioclimatic": "/s/EnvironmentalRasters/Climate/GLC24-PA-test-bioclimatic-average.csv",
        "bioclimatic_monthly": "/s/EnvironmentalRasters/Climate/GLC24-PA-test-bioclimatic-monthly.csv",
        "elevation": "/s/EnvironmentalRasters/Elevation/GLC24-PA-test-elevation.csv",
        "human_footprint": "/s/EnvironmentalRasters/HumanFootprint/GLC24-PA-test-human-footprint.csv",
        "landcover": "/s/EnvironmentalRasters/LandCover/GLC24-PA-test-landcover.csv",
        "soilgrids": "/s/EnvironmentalRasters/Soilgrids/GLC24-PA-test-soilgrids.csv",
    }
