"""EnvFeatures ETL: dirty environmental CSVs -> clean vectors equal to a pandas reference of the documented rule;
every correction counted; imputation uses train surveys only; surveys missing from a CSV are kept and counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glc.data.errors import DataError
from glc.data.layout import ENV_COLUMNS, Layout
from glc.etl.env import CORRECTIONS, ENV_BOUNDS, ENV_FEATURE_COLUMNS, ENV_FEATURE_COMPONENTS, write_env_features
from tests.etl.test_patches import survey_frame

HF_BUILT = "HumanFootprint-Built1994"
HF_LIGHTS = "HumanFootprint-Lights2009"


def clean_env_values(surveys: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Plausible values for every component (one row per survey)."""
    rng = np.random.default_rng(seed)
    n = len(surveys)
    vals: dict[str, pd.DataFrame] = {}
    for comp in ENV_FEATURE_COMPONENTS:
        cols = ENV_COLUMNS[comp]
        if comp == "bioclimatic":
            data = rng.integers(100, 30000, size=(n, len(cols))).astype(float)
        elif comp == "elevation":
            data = rng.uniform(-5, 2500, size=(n, 1)).round(1)
        elif comp == "landcover":
            data = rng.integers(1, 18, size=(n, 1)).astype(float)
        elif comp == "human_footprint":
            data = rng.integers(0, 11, size=(n, len(cols))).astype(float)
            data[:, -2:] = rng.uniform(0, 50, size=(n, 2)).round(3)
        else:
            data = rng.integers(0, 1500, size=(n, len(cols))).astype(float)
        vals[comp] = pd.DataFrame(
            data, columns=list(cols), index=pd.Index(surveys["surveyId"].to_numpy(), name="surveyId")
        )
    return vals


def write_env_csvs(layout: Layout, surveys: pd.DataFrame, values: dict[str, pd.DataFrame]) -> None:
    """Write each component's CSV per split (rows of ``values`` whose survey is in that split, plus any extra rows)."""
    split_of = dict(zip(surveys["surveyId"], surveys["split"]))
    for comp, df in values.items():
        for split in ("train", "test"):
            part = df[[split_of.get(s, "train") == split for s in df.index]]
            p = layout.env_csv(split, comp)
            p.parent.mkdir(parents=True, exist_ok=True)
            part.reset_index().to_csv(p, index=False, na_rep="")


def make_dirty(surveys: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Clean values plus every kind of defect the cleaning rule handles."""
    v = clean_env_values(surveys, seed)
    ids = surveys["surveyId"].to_numpy()
    train = surveys.loc[surveys["split"] == "train", "surveyId"].to_numpy()
    test = surveys.loc[surveys["split"] == "test", "surveyId"].to_numpy()
    hf = v["human_footprint"]
    hf.loc[train[0], HF_BUILT] = np.inf
    hf.loc[test[0], HF_BUILT] = -np.inf
    hf.loc[train[1], HF_BUILT] = -1.0
    hf.loc[train[2], HF_BUILT] = 2147483647.0
    hf.loc[train[3], HF_LIGHTS] = 127.0
    hf.loc[train[4], HF_LIGHTS] = np.nan
    v["landcover"].loc[train[5], "LandCover"] = 255.0
    v["elevation"].loc[train[6], "Elevation"] = -9999.0
    v["elevation"].loc[test, "Elevation"] = 8000.0  # valid but extreme: must not move the (train) imputation mean
    v["elevation"].loc[test[1], "Elevation"] = np.nan
    v["bioclimatic"].loc[test[2], "Bio12"] = 65535.0
    v["soilgrids"].loc[train[7], "Soilgrid-soc"] = -32768.0
    v["elevation"] = v["elevation"].drop(index=[train[8]])  # a train survey missing from a CSV
    v["soilgrids"] = v["soilgrids"].drop(index=[test[3]])  # a test survey missing from a CSV
    extra = pd.DataFrame({"LandCover": [3.0]}, index=pd.Index([int(ids.max()) + 1], name="surveyId"))
    v["landcover"] = pd.concat([v["landcover"], extra])  # a row of no known survey
    return v


def reference_env(surveys: pd.DataFrame, values: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    """The documented rule in pandas: (surveyId, env, n_imputed) and per-column counts."""
    table = surveys.set_index("surveyId")[["split"]].copy()
    counts: dict[str, dict[str, int]] = {}
    clean = pd.DataFrame(index=table.index)
    for comp in ENV_FEATURE_COMPONENTS:
        has = table.index.isin(values[comp].index)
        for c in ENV_COLUMNS[comp]:
            raw = values[comp][c].reindex(table.index)
            lo, hi = ENV_BOUNDS[c]
            fin = has & np.isfinite(raw.to_numpy())
            counts[c] = {
                "missing_row": int((~has).sum()),
                "missing_value": int((has & raw.isna().to_numpy()).sum()),
                "inf": int((has & np.isinf(raw.to_numpy())).sum()),
                "below_min": int((fin & (raw.to_numpy() < lo)).sum()),
                "above_max": int((fin & (raw.to_numpy() > hi)).sum()),
            }
            clean[c] = raw.where(fin & (raw >= lo) & (raw <= hi))
    means = clean[table["split"] == "train"].mean()
    env = clean.fillna(means)
    out = pd.DataFrame(
        {
            "surveyId": table.index,
            "env": list(env[list(ENV_FEATURE_COLUMNS)].to_numpy(np.float32)),
            "n_imputed": clean.isna().sum(axis=1).to_numpy(),
        }
    ).sort_values("surveyId", ignore_index=True)
    return out, {"counts": counts, "means": means}


@pytest.fixture(scope="module")
def env_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, pd.DataFrame, dict]:
    layout = Layout(tmp_path_factory.mktemp("env_world"))
    surveys = survey_frame(14, 6, seed=7)
    values = make_dirty(surveys, seed=7)
    write_env_csvs(layout, surveys, values)
    return layout, surveys, values


def test_env_features_equal_reference_and_count_every_correction(spark, env_world, tmp_path: Path) -> None:
    layout, surveys, values = env_world
    report = write_env_features(spark, layout, spark.createDataFrame(surveys), tmp_path / "env")
    df = pd.read_parquet(tmp_path / "env" / "data")
    ref, rref = reference_env(surveys, values)
    assert list(df.columns) == ["surveyId", "split", "env", "n_imputed"]
    assert df["surveyId"].tolist() == ref["surveyId"].tolist()  # every survey kept, sorted
    got = np.stack(df["env"])
    assert got.dtype == np.float32 and got.shape == (len(surveys), 46) and np.isfinite(got).all()
    np.testing.assert_allclose(got, np.stack(ref["env"]), rtol=1e-6)
    assert df["n_imputed"].tolist() == ref["n_imputed"].tolist()
    # the report: names in order, each counter per column, train means
    assert report["columns"] == list(ENV_FEATURE_COLUMNS) and len(report["columns"]) == 46
    for c in ENV_FEATURE_COLUMNS:
        assert {k: report["corrections"][c][k] for k in CORRECTIONS} == rref["counts"][c], c
        assert report["corrections"][c]["train_mean"] == pytest.approx(rref["means"][c], rel=1e-12)
    hf = report["corrections"][HF_BUILT]
    assert (hf["inf"], hf["below_min"], hf["above_max"]) == (2, 1, 1)  # +inf (train) and -inf (test); -1; 2147483647
    assert hf["imputed"] == {"train": 3, "test": 1}
    assert report["corrections"][HF_LIGHTS]["above_max"] == 1 and report["corrections"][HF_LIGHTS]["missing_value"] == 1
    assert (
        report["corrections"]["LandCover"]["above_max"] == 1 and report["corrections"]["Soilgrid-soc"]["below_min"] == 1
    )
    assert report["corrections"]["Bio12"]["above_max"] == 1
    assert report["rows"]["elevation"]["missing_rows"] == 1 and report["rows"]["soilgrids"]["missing_rows"] == 1
    assert report["rows"]["landcover"]["extra_rows"] == 1 and report["rows"]["bioclimatic"]["extra_rows"] == 0
    assert report["surveys_with_imputed_values"] == int((ref["n_imputed"] > 0).sum())
    # no test leakage: the imputed Elevation is the train mean, although every test survey sits at 8000 m
    train_elev = values["elevation"]["Elevation"].reindex(surveys.loc[surveys.split == "train", "surveyId"])
    train_elev = train_elev[(train_elev >= -500) & (train_elev <= 9000)]
    assert report["corrections"]["Elevation"]["train_mean"] == pytest.approx(train_elev.mean())
    assert train_elev.mean() < 3000
    # the summary and report.json hold the same names list
    for f in ("_SUCCESS", "report.json"):
        assert json.loads((tmp_path / "env" / f).read_text())["columns"] == list(ENV_FEATURE_COLUMNS)


def test_column_without_valid_train_value_is_an_error(spark, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "w")
    surveys = survey_frame(4, 2, seed=8)
    values = clean_env_values(surveys, seed=8)
    train = surveys.loc[surveys.split == "train", "surveyId"]
    values["human_footprint"].loc[train, "HumanFootprint-Roads"] = 255.0  # nodata everywhere in train
    write_env_csvs(layout, surveys, values)
    with pytest.raises(DataError, match=r"env column 'HumanFootprint-Roads': no valid value among the 4 train surveys"):
        write_env_features(spark, layout, spark.createDataFrame(surveys), tmp_path / "env")
    assert not (tmp_path / "env").exists()


def test_malformed_csv_fails_naming_file_and_line(spark, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "w")
    surveys = survey_frame(4, 2, seed=9)
    write_env_csvs(layout, surveys, clean_env_values(surveys, seed=9))
    p = layout.env_csv("train", "elevation")
    lines = p.read_text().splitlines()
    lines[2] = lines[2] + ",7"  # a row with one field too many
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"elevation CSV \(train\) .*GLC24-PA-train-elevation\.csv: line 3: expected 2"):
        write_env_features(spark, layout, spark.createDataFrame(surveys), tmp_path / "env")
