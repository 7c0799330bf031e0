"""CubeFeatures ETL: the documented NaN rule, series order and trimming; Spark output equals a per-survey reference
for both sources (.pt cubes and CSVs); all-NaN and missing cubes fail or are quarantined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.fft

from glc.data.cubes import write_cube
from glc.data.errors import DataError, DataFileNotFoundError
from glc.data.layout import ENV_COLUMNS, LANDSAT_BANDS, LANDSAT_CSV_COLUMNS, Layout
from glc.etl.cubes import (
    chronological_series,
    fill_missing,
    resolve_sources,
    trim_cubes,
    write_cube_features,
)
from tests.etl.test_patches import survey_frame


# ---------------------------------------------------------------------------------------------------------------
# Fixture writers (also used by tests/tasks/test_features.py)
# ---------------------------------------------------------------------------------------------------------------
def make_cubes(surveys: pd.DataFrame, seed: int = 0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Integer-valued cubes (like the real files) with NaN after a survey year, scattered NaN and a few inf."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, sid in enumerate(surveys["surveyId"]):
        land = rng.integers(0, 256, size=(6, 4, 21)).astype(np.float32)
        year = 2017 + i % 5
        land[:, :, year - 2000 + 1 :] = np.nan  # quarters after the survey year are empty
        land[rng.random(land.shape) < 0.05] = np.nan
        if i % 4 == 1:
            land[2, 1, :] = np.nan  # a whole (band, quarter) series empty -> band mean
            land[0, 0, :3] = np.nan  # leading gap -> backward fill
        bio = rng.integers(2000, 4000, size=(4, 19, 12)).astype(np.float32)
        bio[rng.random(bio.shape) < 0.02] = np.nan
        if i % 5 == 2:
            bio[1, 4, 7] = np.inf
        out[int(sid)] = (land, bio)
    return out


def write_cube_files(layout: Layout, surveys: pd.DataFrame, cubes: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the .pt cubes with the real storage layout."""
    for sid, split in zip(surveys["surveyId"], surveys["split"]):
        land, bio = cubes[int(sid)]
        write_cube(layout.cube_path(split, "landsat", int(sid)), land, "landsat")
        write_cube(layout.cube_path(split, "bioclim", int(sid)), bio, "bioclim")


def write_cube_csvs(layout: Layout, surveys: pd.DataFrame, cubes: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the same values as the per-band Landsat CSVs and the monthly bioclimatic CSV (empty cells for NaN)."""
    for split in ("train", "test"):
        part = surveys[surveys["split"] == split]
        ids = part["surveyId"].to_numpy()
        for b, band in enumerate(LANDSAT_BANDS):
            vals = np.stack([cubes[int(s)][0][b].T.reshape(-1) for s in ids]) if len(ids) else np.zeros((0, 84))
            df = pd.DataFrame(vals, columns=list(LANDSAT_CSV_COLUMNS))
            df.insert(0, "surveyId", ids)
            p = layout.landsat_csv(split, band)
            p.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(p, index=False, na_rep="")
        vals = np.stack([cubes[int(s)][1].reshape(-1) for s in ids]) if len(ids) else np.zeros((0, 912))
        df = pd.DataFrame(vals, columns=list(ENV_COLUMNS["bioclimatic_monthly"]))
        df.insert(0, "surveyId", ids)
        p = layout.env_csv(split, "bioclimatic_monthly")
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(p, index=False, na_rep="")


# ---------------------------------------------------------------------------------------------------------------
# Independent reference (pandas fills, scipy DCT), one survey at a time
# ---------------------------------------------------------------------------------------------------------------
def reference_fill(cube: np.ndarray, kind: str) -> np.ndarray:
    """ffill then bfill along the years per (channel, season) with pandas; empty series -> channel mean."""
    c = cube.astype(np.float64).copy()
    c[~np.isfinite(c)] = np.nan
    out = c.copy()
    for ch in range(c.shape[0]):
        mean = np.nanmean(c[ch])
        seasons = c.shape[1] if kind == "landsat" else c.shape[2]
        for s in range(seasons):
            series = c[ch, s, :] if kind == "landsat" else c[ch, :, s]
            filled = pd.Series(series).ffill().bfill().fillna(mean).to_numpy()
            if kind == "landsat":
                out[ch, s, :] = filled
            else:
                out[ch, :, s] = filled
    return out.astype(np.float32)


def _dct_n(series: list[float], n: int) -> np.ndarray:
    c = scipy.fft.dct(np.asarray(series, np.float64), norm="ortho")[:n]
    return np.pad(c, (0, n - len(c)))  # a series shorter than n has no higher frequencies: zeros


def reference_features(land: np.ndarray, bio: np.ndarray, n: int) -> dict[str, np.ndarray]:
    fl, fb = reference_fill(land, "landsat"), reference_fill(bio, "bioclim")
    ldct = [_dct_n([fl[b, q, y] for y in range(21) for q in range(4)], n) for b in range(6)]
    bdct = [_dct_n([fb[v, y, m] for y in range(19) for m in range(12)], n) for v in range(4)]
    return {
        "landsat_dct": np.concatenate(ldct).astype(np.float32),
        "bioclim_dct": np.concatenate(bdct).astype(np.float32),
        "landsat_cube": fl[:, :, 1:].reshape(-1),
        "bioclim_cube": fb[:, 1:, :].reshape(-1),
        "landsat_n_missing": int((~np.isfinite(land)).sum()),
        "bioclim_n_missing": int((~np.isfinite(bio)).sum()),
    }


def assert_matches_reference(df: pd.DataFrame, cubes: dict[int, tuple[np.ndarray, np.ndarray]], n: int) -> None:
    for _, row in df.iterrows():
        ref = reference_features(*cubes[int(row["surveyId"])], n)
        for col in ("landsat_cube", "bioclim_cube"):
            np.testing.assert_array_equal(row[col], ref[col], err_msg=f"{col} of {row['surveyId']}")
        for col in ("landsat_dct", "bioclim_dct"):
            scale = float(np.abs(ref[col]).max())
            np.testing.assert_allclose(
                row[col], ref[col], rtol=1e-6, atol=1e-6 * scale, err_msg=f"{col} of {row['surveyId']}"
            )
        assert (
            row["landsat_n_missing"] == ref["landsat_n_missing"]
            and row["bioclim_n_missing"] == ref["bioclim_n_missing"]
        )
    for col in ("landsat_dct", "bioclim_dct", "landsat_cube", "bioclim_cube"):
        assert np.isfinite(np.stack(df[col])).all(), col


# ---------------------------------------------------------------------------------------------------------------
# Pure transforms
# ---------------------------------------------------------------------------------------------------------------
def test_fill_rule_on_a_hand_made_cube() -> None:
    land = np.arange(6 * 4 * 21, dtype=np.float32).reshape(6, 4, 21)
    land[0, 0, [0, 1, 10, 19, 20]] = np.nan  # leading, middle, trailing gaps
    land[1, 2, :] = np.nan  # an empty (band, quarter) series
    land[3, 3, 5] = np.inf
    filled, n_missing, empty = fill_missing(land[None], "landsat")
    f = filled[0]
    assert f[0, 0, 0] == f[0, 0, 1] == land[0, 0, 2]  # backward fill of the leading gap
    assert f[0, 0, 10] == land[0, 0, 9]  # forward fill inside
    assert f[0, 0, 19] == f[0, 0, 20] == land[0, 0, 18]  # forward fill of the trailing gap
    band1 = land[1][np.isfinite(land[1])]
    np.testing.assert_allclose(f[1, 2, :], band1.mean(), rtol=1e-6)  # the band's survey mean
    assert f[3, 3, 5] == land[3, 3, 4]  # inf is missing, forward-filled
    assert n_missing[0] == 5 + 21 + 1 and not empty.any()
    np.testing.assert_array_equal(f, reference_fill(land, "landsat"))


def test_empty_channels_and_all_nan_cubes_are_flagged() -> None:
    land = np.ones((3, 6, 4, 21), np.float32)
    land[1, 4] = np.nan  # one band empty
    land[2] = np.nan  # all NaN
    _, n_missing, empty = fill_missing(land, "landsat")
    assert empty.tolist() == [[False] * 6, [False, False, False, False, True, False], [True] * 6]
    assert n_missing.tolist() == [0, 84, 504]
    with pytest.raises(ValueError, match=r"expected cubes of shape \(m, 4, 19, 12\)"):
        fill_missing(land, "bioclim")


@pytest.mark.parametrize("seed", range(4))
def test_fill_equals_pandas_reference_on_random_gaps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bio = rng.normal(3000, 500, size=(5, 4, 19, 12)).astype(np.float32)
    bio[rng.random(bio.shape) < 0.4] = np.nan
    bio[0, 2, :, 3] = np.nan
    filled, _, empty = fill_missing(bio, "bioclim")
    assert not empty.any()
    for i in range(5):
        np.testing.assert_array_equal(filled[i], reference_fill(bio[i], "bioclim"))


def test_series_order_and_trimming() -> None:
    b, q, y = np.meshgrid(np.arange(6), np.arange(4), np.arange(21), indexing="ij")
    land = (1000 * b + 10 * y + q).astype(np.float32)[None]
    s = chronological_series(land, "landsat")
    assert s.shape == (1, 6, 84)
    assert s[0, 2, 5 * 4 + 3] == land[0, 2, 3, 5]  # band 2, year 2005, Q4
    assert s[0, 0, :5].tolist() == [0, 1, 2, 3, 10]  # 2000 Q1..Q4, then 2001 Q1
    t = trim_cubes(land, "landsat").reshape(6, 4, 20)
    np.testing.assert_array_equal(t, land[0][:, :, 1:])  # year 2000 dropped, 2001..2020 kept
    v, yy, m = np.meshgrid(np.arange(4), np.arange(19), np.arange(12), indexing="ij")
    bio = (1000 * v + 12 * yy + m).astype(np.float32)[None]
    sb = chronological_series(bio, "bioclim")
    assert sb.shape == (1, 4, 228) and sb[0, 3, 7 * 12 + 2] == bio[0, 3, 7, 2]
    np.testing.assert_array_equal(trim_cubes(bio, "bioclim").reshape(4, 18, 12), bio[0][:, 1:, :])


def test_sources_are_resolved_per_kind_and_split(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    with pytest.raises(
        DataFileNotFoundError, match="landsat time series of split 'train' not found: no .* and no cube folder"
    ):
        resolve_sources(layout, "auto")
    layout.cube_dir("train", "landsat").mkdir(parents=True)
    with pytest.raises(DataFileNotFoundError, match="landsat cubes of split 'test' not found"):
        resolve_sources(layout, "cubes")
    with pytest.raises(ValueError, match="cube_source must be"):
        resolve_sources(layout, "pt")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Spark
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cube_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, pd.DataFrame, dict]:
    layout = Layout(tmp_path_factory.mktemp("cube_world"))
    surveys = survey_frame(9, 4, seed=5)
    cubes = make_cubes(surveys, seed=5)
    write_cube_files(layout, surveys, cubes)
    write_cube_csvs(layout, surveys, cubes)
    return layout, surveys, cubes


def test_cube_features_equal_reference_from_cubes_and_from_csvs(spark, cube_world, tmp_path: Path) -> None:
    from pyspark.testing import assertDataFrameEqual

    layout, surveys, cubes = cube_world
    n = 96  # > 84 Landsat samples: the Landsat DCT is zero-padded, the bioclim one truncated
    sdf = spark.createDataFrame(surveys)
    s1 = write_cube_features(spark, layout, sdf, tmp_path / "pt", n=n, cube_source="cubes", partitions=2)
    s2 = write_cube_features(spark, layout, sdf, tmp_path / "csv", n=n, cube_source="csv", partitions=3)
    assert set(s1["sources"].values()) == {"cubes"} and set(s2["sources"].values()) == {"csv"}
    df = pd.read_parquet(tmp_path / "pt" / "data")
    assert df["surveyId"].tolist() == sorted(surveys["surveyId"])
    assert [len(df[c][0]) for c in ("landsat_dct", "bioclim_dct", "landsat_cube", "bioclim_cube")] == [
        6 * n,
        4 * n,
        480,
        864,
    ]
    assert_matches_reference(df, cubes, n)
    assert (np.stack(df["landsat_dct"])[:, 84:n] == 0).all()  # zero padding beyond the series length
    a, b = spark.read.parquet(str(tmp_path / "pt" / "data")), spark.read.parquet(str(tmp_path / "csv" / "data"))
    assertDataFrameEqual(a, b, checkRowOrder=True)  # both sources give identical bytes
    assert s1["filled"]["landsat_cells"] == sum(int((~np.isfinite(c[0])).sum()) for c in cubes.values())
    assert s1["n_written"] == len(surveys) and s1["n_skipped"] == 0


@pytest.fixture()
def bad_cube_world(tmp_path: Path) -> tuple[Layout, pd.DataFrame, dict]:
    layout = Layout(tmp_path / "w")
    surveys = survey_frame(4, 2, seed=6)
    cubes = make_cubes(surveys, seed=6)
    s_nan, s_band = int(surveys["surveyId"][2]), int(surveys["surveyId"][3])
    cubes[s_nan][0][:] = np.nan  # an all-NaN Landsat cube
    cubes[s_band][1][3] = np.nan  # an empty bioclim variable (tasmin)
    write_cube_files(layout, surveys, cubes)
    write_cube_csvs(layout, surveys, cubes)
    s_missing = int(surveys["surveyId"][5])
    layout.cube_path(surveys["split"][5], "bioclim", s_missing).unlink()
    return layout, surveys, {"nan": s_nan, "band": s_band, "missing": s_missing, "cubes": cubes}


def test_all_nan_cube_fails_naming_file_and_survey(spark, bad_cube_world, tmp_path: Path) -> None:
    layout, surveys, bad = bad_cube_world
    with pytest.raises(DataError, match=r"CubeFeatures\(n=8\): 3 bad input\(s\) for 3 survey\(s\)") as err:
        write_cube_features(spark, layout, spark.createDataFrame(surveys), tmp_path / "out", n=8, cube_source="cubes")
    msg = str(err.value)
    assert all(f"surveyId {s}" in msg for s in (bad["nan"], bad["band"], bad["missing"]))  # all three are quoted
    split = surveys.set_index("surveyId").loc[bad["nan"], "split"]
    assert str(layout.cube_path(split, "landsat", bad["nan"])) in msg and "all NaN" in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["cubes", "csv"])
def test_bad_cubes_are_quarantined_with_counts(spark, bad_cube_world, tmp_path: Path, source: str) -> None:
    layout, surveys, bad = bad_cube_world
    s = write_cube_features(
        spark,
        layout,
        spark.createDataFrame(surveys),
        tmp_path / "out",
        n=8,
        cube_source=source,
        skip_bad_inputs=True,
        max_bad_fraction=1.0,  # type: ignore[arg-type]
    )
    q = pd.read_parquet(tmp_path / "out" / "quarantine").set_index("surveyId")
    expected = {bad["nan"], bad["band"]} | ({bad["missing"]} if source == "cubes" else set())
    assert set(q.index) == expected and s["n_skipped"] == len(expected) == s["n_bad_inputs"]
    assert "the landsat cube is all NaN" in q.loc[bad["nan"], "reason"]
    assert "bioclim channel(s) ['tasmin'] have no finite value" in q.loc[bad["band"], "reason"]
    if source == "cubes":
        assert (
            q.loc[bad["missing"], "file"].endswith(f"_{bad['missing']}_cube.pt")
            and "not found" in q.loc[bad["missing"], "reason"]
        )
    else:
        assert q.loc[bad["nan"], "file"].endswith("landsat_time_series")
    data = pd.read_parquet(tmp_path / "out" / "data")
    assert sorted(data["surveyId"]) == sorted(set(surveys["surveyId"]) - expected)
    assert_matches_reference(data, bad["cubes"], 8)


def test_survey_missing_from_the_csv_is_a_bad_input(spark, cube_world, tmp_path: Path) -> None:
    layout, surveys, cubes = cube_world
    extra = pd.DataFrame({"surveyId": [999_999_999], "split": ["train"], "lon": [5.0], "lat": [45.0]})
    sdf = spark.createDataFrame(pd.concat([surveys, extra], ignore_index=True))
    s = write_cube_features(
        spark, layout, sdf, tmp_path / "out", n=4, cube_source="csv", skip_bad_inputs=True, max_bad_fraction=1.0
    )
    q = pd.read_parquet(tmp_path / "out" / "quarantine")
    assert q["surveyId"].tolist() == [999_999_999, 999_999_999]  # one row per kind
    assert q["reason"].str.contains("not in the (landsat|bioclim) CSV").all()
    assert s["n_written"] == len(surveys)


def test_real_sample_cubes(spark, shared_data: Path, tmp_path: Path) -> None:
    """The real Landsat and bioclim cubes of survey 1322301 (NaN quarters after 2021 included) give finite features."""
    from glc.data.cubes import read_cube

    layout = Layout(shared_data / "glc24-samples")
    surveys = pd.DataFrame({"surveyId": [1322301], "split": ["train"], "lon": [4.4], "lat": [50.8]})
    s = write_cube_features(spark, layout, spark.createDataFrame(surveys), tmp_path / "real", n=16)
    assert s["sources"] == {"landsat/train": "cubes", "bioclim/train": "cubes"}
    land = read_cube(layout.cube_path("train", "landsat", 1322301), "landsat")
    bio = read_cube(layout.cube_path("train", "bioclim", 1322301), "bioclim")
    assert_matches_reference(pd.read_parquet(tmp_path / "real" / "data"), {1322301: (land, bio)}, 16)
