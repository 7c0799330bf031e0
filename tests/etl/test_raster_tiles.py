"""RasterTiles ETL: the Spark job equals a single-process extraction and the naive per-site reference (edges,
corners, nodata, a site outside), is independent of the partitioning, and isolates surveys on corrupt blocks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from glc.data.errors import DataError
from glc.data.layout import Layout, LayoutError
from glc.etl.raster_tiles import plan_rasters, write_raster_tiles
from glc.features.tiles import TileExtractor, TileSpec, extract_tiles
from tests.features.reference import pixel_centre, reference_tiles, write_raster

RES = 0.05
#: Lights: covers lon -6..19, lat 39..56 (the fake worlds' survey area); Roads: a smaller window inside it.
LIGHTS = ("HumanFootprint/detailed/Lights2009_WGS84.tif", Affine(RES, 0, -6.0, 0, -RES, 56.0), (340, 500))
ROADS = ("HumanFootprint/detailed/Roads_WGS84.tif", Affine(RES, 0, -2.0, 0, -RES, 54.0), (200, 300))


def write_group_rasters(layout: Layout, seed: int = 0) -> list[Path]:
    """Two human-footprint rasters under the data root: Lights (uint8, nodata 127, nodata patches) and Roads
    (int32, 2 bands, nodata 2147483647) on a smaller extent, so some sites fall outside it."""
    rng = np.random.default_rng(seed)
    paths = []
    for (rel, transform, (h, w)), dtype, nodata, bands in ((LIGHTS, "uint8", 127, 1), (ROADS, "int32", 2147483647, 2)):
        yy, xx = np.mgrid[0:h, 0:w]
        data = np.stack(
            [
                (5 + 5 * np.sin(xx / (9 + b)) * np.cos(yy / 7) + rng.normal(0, 1, (h, w))).clip(0, 10)
                for b in range(bands)
            ]
        )
        data = data.round().astype(dtype)
        data[:, 20:32, 40:70] = nodata  # a nodata patch (partly valid tiles around it)
        path = layout.env_root() / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_raster(path, data, transform, nodata=nodata, compress="deflate", tiled=True, blockxsize=64, blockysize=64)
        paths.append(path)
    return paths


def edge_sites(tile: int) -> list[tuple[float, float]]:
    """lon/lat of pixel centres within half a tile of every edge and corner of the Lights raster, and one outside."""
    _, transform, (h, w) = LIGHTS
    half = tile // 2
    rows = [0, 1, half - 1, h // 2, h - half, h - 1]
    cols = [0, 1, half - 1, w // 2, w - half, w - 1]
    return [pixel_centre(transform, r, c) for r in rows for c in cols] + [(30.0, 60.0)]


@pytest.fixture(scope="module")
def tile_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, pd.DataFrame]:
    layout = Layout(tmp_path_factory.mktemp("tile_world"))
    write_group_rasters(layout, seed=2)
    rng = np.random.default_rng(2)
    pts = [(float(x), float(y)) for x, y in zip(rng.uniform(-6, 19, 40), rng.uniform(39, 56, 40))] + edge_sites(16)
    ids = rng.choice(np.arange(1000, 9_000_000), len(pts), replace=False)
    surveys = pd.DataFrame(
        {
            "surveyId": ids.astype(np.int64),
            "split": np.where(np.arange(len(pts)) % 4 == 0, "test", "train"),
            "lon": [p[0] for p in pts],
            "lat": [p[1] for p in pts],
        }
    )
    return layout, surveys


def test_raster_tiles_equal_single_process_and_naive_reference(spark, tile_world, tmp_path: Path) -> None:
    layout, surveys = tile_world
    tile, k = 16, 4
    summary = write_raster_tiles(
        spark,
        layout,
        spark.createDataFrame(surveys),
        tmp_path / "t",
        "human_footprint",
        k=k,
        tile_size=tile,
        partitions=3,
        batch_size=7,
    )
    df = pd.read_parquet(tmp_path / "t" / "data")
    assert list(df.columns) == ["surveyId", "split", "dct", "valid_fraction", "inside"]
    assert df["surveyId"].tolist() == sorted(surveys["surveyId"])
    s = surveys.set_index("surveyId").loc[df["surveyId"]]
    paths = layout.raster_paths("human_footprint")
    assert [Path(p).name for p in paths] == ["Lights2009_WGS84.tif", "Roads_WGS84.tif"]
    assert summary["bands"] == ["Lights2009_WGS84:1", "Roads_WGS84:1", "Roads_WGS84:2"]
    assert (
        len(summary["absent_rasters"]) == 14
        and "HumanFootprint/detailed/Built1994_WGS84.tif" in summary["absent_rasters"]
    )
    dct = np.stack(df["dct"])
    frac = np.stack(df["valid_fraction"])
    inside = np.stack(df["inside"])
    assert dct.shape == (len(s), 3 * k * k) and frac.shape == (len(s), 3) and inside.shape == (len(s), 2)
    assert np.isfinite(dct).all() and np.isfinite(frac).all() and dct.dtype == np.float32
    # exactly what one single-process call per raster gives, with the driver's global means
    col = 0
    for path, plan in zip(paths, plan_rasters(paths, tile, k)):
        one = extract_tiles(
            path, s.index.to_numpy(), s["lon"].to_numpy(), s["lat"].to_numpy(), tile, k, global_means=plan.global_means
        )
        nb = one["dct"].shape[1]
        np.testing.assert_array_equal(dct[:, col * k * k : (col + nb) * k * k], one["dct"].reshape(len(s), -1))
        np.testing.assert_array_equal(frac[:, col : col + nb], one["valid_fraction"])
        np.testing.assert_array_equal(inside[:, paths.index(path)], one["inside"])
        # and the naive per-site loop (rasterio boundless window + scipy dctn)
        ref, rfrac = reference_tiles(
            path, s["lon"].to_numpy(), s["lat"].to_numpy(), tile, k, np.asarray(plan.global_means)
        )
        np.testing.assert_allclose(
            dct[:, col * k * k : (col + nb) * k * k], ref.reshape(len(s), -1), rtol=1e-5, atol=1e-3
        )
        np.testing.assert_allclose(frac[:, col : col + nb], rfrac, atol=1e-7)
        col += nb
    # edges and corners: full-shape, finite, partly valid; the outside site is flagged and counted
    outside_sid = int(surveys["surveyId"].iloc[-1])
    row = df.set_index("surveyId").loc[outside_sid]
    assert not row["inside"].any() and (row["valid_fraction"] == 0).all()
    corner = df.set_index("surveyId").loc[int(surveys["surveyId"].iloc[40])]  # Lights pixel (0, 0)
    assert corner["inside"][0] and 0 < corner["valid_fraction"][0] < 1
    n_out_roads = int((~inside[:, 1]).sum())
    assert summary["n_outside"] == {"Lights2009_WGS84": 1, "Roads_WGS84": n_out_roads} and n_out_roads > 1
    assert summary["n_outside_any"] == n_out_roads
    assert summary["n_empty_tiles"]["Lights2009_WGS84:1"] == int((frac[:, 0] == 0).sum()) >= 1
    assert summary["n_written"] == len(surveys) and summary["n_skipped"] == 0
    assert json.loads((tmp_path / "t" / "_SUCCESS").read_text())["bands"] == summary["bands"]


def test_partitioning_does_not_change_bytes(spark, tile_world, tmp_path: Path) -> None:
    from pyspark.testing import assertDataFrameEqual

    layout, surveys = tile_world
    sdf = spark.createDataFrame(surveys)
    write_raster_tiles(spark, layout, sdf, tmp_path / "a", "human_footprint", k=2, tile_size=8, partitions=1)
    write_raster_tiles(
        spark, layout, sdf, tmp_path / "b", "human_footprint", k=2, tile_size=8, partitions=5, batch_size=4
    )
    assertDataFrameEqual(
        spark.read.parquet(str(tmp_path / "a" / "data")),
        spark.read.parquet(str(tmp_path / "b" / "data")),
        checkRowOrder=True,
    )


def _garble(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    a, b = int(len(raw) * 0.45), int(len(raw) * 0.55)
    raw[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))


@pytest.fixture()
def corrupt_world(tmp_path: Path) -> tuple[Layout, pd.DataFrame, Path, set[int]]:
    """One raster (no nodata) whose middle strips are garbled; sites on a vertical line across it."""
    layout = Layout(tmp_path / "w")
    transform = Affine(RES, 0, 0.0, 0, -RES, 50.0)
    data = np.random.default_rng(3).integers(0, 250, size=(1, 300, 120)).astype(np.uint8)
    path = layout.env_root() / "Elevation" / "ASTER_Elevation.tif"
    path.parent.mkdir(parents=True)
    write_raster(path, data, transform, nodata=None, compress="deflate")
    _garble(path)
    pts = [pixel_centre(transform, r, 60) for r in range(10, 290, 10)]
    surveys = pd.DataFrame(
        {
            "surveyId": np.arange(100, 100 + len(pts)),
            "split": "train",
            "lon": [p[0] for p in pts],
            "lat": [p[1] for p in pts],
        }
    )
    bad = set()
    with TileExtractor(path, TileSpec(16, 2), global_means=[0.0]) as ex:
        for sid, x, y in zip(surveys["surveyId"], surveys["lon"], surveys["lat"]):
            try:
                ex.extract([sid], [x], [y])
            except DataError:
                bad.add(int(sid))
    assert 0 < len(bad) < len(surveys)  # the fixture corrupts some windows, not all
    return layout, surveys, path, bad


def test_corrupt_block_fails_naming_file_window_and_survey(spark, corrupt_world, tmp_path: Path) -> None:
    layout, surveys, path, bad = corrupt_world
    first = min(bad)
    with pytest.raises(
        DataError, match=rf"RasterTiles\(elevation, k=2, tile_size=16\): {len(bad)} bad input\(s\)"
    ) as err:
        write_raster_tiles(
            spark, layout, spark.createDataFrame(surveys), tmp_path / "out", "elevation", k=2, tile_size=16
        )
    msg = str(err.value)
    assert f"surveyId {first}: GeoTIFF raster {path}: reading window row_off=" in msg
    assert re.search(r"failed 3 times", msg) and not (tmp_path / "out").exists()


def test_corrupt_block_skips_exactly_the_unreadable_sites(spark, corrupt_world, tmp_path: Path) -> None:
    layout, surveys, path, bad = corrupt_world
    s = write_raster_tiles(
        spark,
        layout,
        spark.createDataFrame(surveys),
        tmp_path / "out",
        "elevation",
        k=2,
        tile_size=16,
        skip_bad_inputs=True,
        batch_size=64,
        max_bad_fraction=1.0,
    )
    q = pd.read_parquet(tmp_path / "out" / "quarantine")
    assert set(q["surveyId"]) == bad and (q["file"] == str(path)).all()
    assert q["reason"].str.contains("reading window row_off=").all()
    data = pd.read_parquet(tmp_path / "out" / "data")
    assert set(data["surveyId"]) == set(surveys["surveyId"]) - bad  # no zero tile stands in for an unreadable one
    assert s["n_skipped"] == len(bad) and s["n_written"] == len(surveys) - len(bad)
    good = surveys[~surveys["surveyId"].isin(bad)]
    ref, _ = reference_tiles(path, good["lon"].to_numpy(), good["lat"].to_numpy(), 16, 2, np.zeros(1))
    np.testing.assert_allclose(np.stack(data["dct"]), ref.reshape(len(good), -1), rtol=1e-5, atol=1e-3)


def test_skip_bad_inputs_has_a_ceiling(spark, corrupt_world, tmp_path: Path) -> None:
    """A raster unreadable for half of the sites is broken as a whole: even with skip_bad_inputs the job fails
    (default ceiling max_bad_fraction=0.01) instead of writing a 'successful' artifact without those surveys."""
    layout, surveys, path, bad = corrupt_world
    assert len(bad) > 0.01 * len(surveys)
    with pytest.raises(
        DataError,
        match=(
            rf"{len(bad)} of {len(surveys)} surveys have bad inputs .* more "
            r"than max_bad_fraction=0.01 allows even with skip_bad_inputs"
        ),
    ):
        write_raster_tiles(
            spark,
            layout,
            spark.createDataFrame(surveys),
            tmp_path / "out",
            "elevation",
            k=2,
            tile_size=16,
            skip_bad_inputs=True,
            batch_size=64,
        )
    assert not (tmp_path / "out").exists()


def test_missing_raster_group_is_a_layout_error(spark, tile_world) -> None:
    layout, surveys = tile_world
    with pytest.raises(LayoutError, match="no GeoTIFF of raster group 'soilgrids'"):
        write_raster_tiles(spark, layout, spark.createDataFrame(surveys), "/nonexistent/out", "soilgrids")
