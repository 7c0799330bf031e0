"""Predict anywhere, maps and the HTML report on the tiny synthetic world, through the DAG and the CLI."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from luigi.execution_summary import LuigiStatusCode

from glc.cli import main as cli
from glc.predict.scores import read_scores

GEO = """
name = "geoloc-points"
seed = 0
[model]
kind = "geolocation"
encoder = "sinusoidal"
hidden = 32
extras = ["year"]
[train]
max_epochs = 2
patience = 2
batch_size = 64
reader = "arrow"
[decoder]
kind = "topk"
compare = false
[wandb]
mode = "disabled"
"""


@pytest.fixture(scope="module")
def runs(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """knn and a small geolocation experiment run to their submissions (W&B offline)."""
    import luigi

    from glc.tasks import Submission

    out = tmp_path_factory.mktemp("maps_out")
    geo = tmp_path_factory.mktemp("exp") / "geoloc-points.toml"
    geo.write_text(GEO)
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    try:
        tasks = {e: Submission(experiment=e, data_root=str(tiny_world), out_root=str(out)) for e in ("knn", str(geo))}
        res = luigi.build(list(tasks.values()), local_scheduler=True, detailed_summary=True, workers=1)
    finally:
        mp.undo()
    assert res.status == LuigiStatusCode.SUCCESS, res.summary_text
    return {"out": out, "geo": str(geo), "tasks": tasks}


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.src.append(dict(attrs)["src"])


def test_html_report_has_six_decodable_plots_and_a_richness_map(runs: dict) -> None:
    import rasterio
    from PIL import Image

    from glc.tasks import Report

    task = runs["tasks"]["knn"]
    rep_dir = Report(experiment="knn", data_root=task.data_root, out_root=task.out_root).output().dir
    p = _Images()
    p.feed((rep_dir / "report.html").read_text())
    assert len(p.src) >= 6
    for src in p.src:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.size[0] >= 200 and im.size[1] >= 150
    rep = json.loads((rep_dir / "report.json").read_text())
    with rasterio.open(rep["richness_map"]) as src:
        assert src.crs.to_epsg() == 3035 and src.descriptions == ("richness",)
        a = src.read(1)
        land = a != src.nodata
        assert 0 < land.sum() < a.size  # land and sea both present
        assert np.isfinite(a).all() and (a[land] >= 0).all() and a[land].max() > 1


def _test_points(runs: dict, experiment: str, tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    from glc.tasks import SurveyTable
    from glc.tasks.surveys import read_surveys

    task = runs["tasks"]["knn"]
    s = read_surveys(SurveyTable(data_root=task.data_root, out_root=task.out_root).output())
    test = s[s["split"] == "test"]
    pts = tmp_path / "pts.csv"
    test.rename(columns={"surveyId": "id"})[["id", "lon", "lat", "year", "region", "country"]].to_csv(pts, index=False)
    return test, pts


@pytest.mark.parametrize("which", ["knn", "geo"])
def test_cli_predict_at_test_locations_matches_predict(runs: dict, which: str, tmp_path: Path) -> None:
    from glc.tasks import Predict

    experiment = "knn" if which == "knn" else runs["geo"]
    task = runs["tasks"]["knn"]
    test, pts = _test_points(runs, experiment, tmp_path)
    out = tmp_path / "pred.csv"
    rc = cli(
        [
            "predict",
            "--experiment",
            experiment,
            "--points",
            str(pts),
            "--out",
            str(out),
            "--top",
            "20",
            "--data-root",
            task.data_root,
            "--out-root",
            task.out_root,
        ]
    )
    assert rc == 0
    got = pd.read_csv(out, keep_default_na=False).set_index("id")
    ref = read_scores(
        Predict(experiment=experiment, data_root=task.data_root, out_root=task.out_root).output().dir / "test"
    )
    assert set(got.index) == set(test["surveyId"].astype(int))
    n_checked = 0
    for i, sid in enumerate(ref.survey_ids):
        row = got.loc[int(sid)]
        if row["status"] != "ok":  # a test survey on a coastal pixel the coarse mask calls sea: listed, not scored
            assert row["species"] == ""
            continue
        keep = ref.prob[i, :20] > 0
        assert [int(v) for v in str(row["species"]).split()] == ref.species[i, :20][keep].tolist()
        assert [float(v) for v in str(row["probs"]).split()] == pytest.approx(ref.prob[i, :20][keep].tolist(), abs=2e-6)
        n_checked += 1
    assert n_checked >= 0.8 * len(ref)


def test_point_model_on_10000_land_points_matches_the_loader_path(runs: dict, spark, tmp_path: Path) -> None:
    """The in-memory point batches equal what the Spark model-input writer + the trained model's Predict path give
    for the same 10,000 random land points (a new 'test' split written by the one writer)."""
    from glc.config import load_experiment
    from glc.etl.inputs import surveys_frame, write_model_inputs
    from glc.tasks import TrainModel
    from glc.tasks.maps import build_point_model
    from glc.training.runners import CHECKPOINT
    from glc.training.trainer import predict_splits

    task = runs["tasks"]["knn"]
    model = build_point_model(runs["geo"], task.data_root, task.out_root)
    rng = np.random.default_rng(1)
    w, s, e, n = model.extent.bbox
    lon, lat = rng.uniform(w, e, 60000), rng.uniform(s, n, 60000)
    land = model.extent.status_codes(lon, lat) == 0
    assert land.sum() >= 10000
    pts = pd.DataFrame(
        {
            "id": np.arange(10000),
            "lon": lon[land][:10000],
            "lat": lat[land][:10000],
            "year": rng.integers(2017, 2022, 10000),
        }
    )
    frame = model.frame(pts)
    assert (frame["status"] == "ok").all()
    mine = model.scores(frame, top=25)

    cfg = load_experiment(runs["geo"])
    query = frame[["surveyId", "lon", "lat", "x", "y", "year", "region", "country"]].assign(speciesIds=None)
    root = tmp_path / "inputs"
    val_ids = model.train["surveyId"].to_numpy(np.int64)[:5]  # predict_splits scores a val split too
    write_model_inputs(spark, surveys_frame(spark, model.train, query), root, val_ids, {}, seed=0)
    ckpt = (
        TrainModel(experiment=runs["geo"], data_root=task.data_root, out_root=task.out_root).output().dir / CHECKPOINT
    )
    _, ref, _ = predict_splits(root, ckpt, {**cfg, "model": {**cfg["model"], "top_n": 25}})
    assert ref.survey_ids.tolist() == sorted(mine.survey_ids.tolist())
    order = np.argsort(mine.survey_ids)
    assert (ref.species == mine.species[order]).mean() > 0.999  # ties of float32 sigmoids may swap a rank
    assert np.allclose(ref.prob, mine.prob[order], atol=1e-6)


def test_cli_errors_name_the_problem(runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    task = runs["tasks"]["knn"]
    roots = ["--data-root", task.data_root, "--out-root", task.out_root]
    assert cli(["map", "--experiment", "knn", "--species", "987654321", *roots]) == 2
    assert "987654321" in capsys.readouterr().err
    assert cli(["map", "--experiment", "knn", "--richness", "--bbox", "100,10,110,20", *roots]) == 2
    assert "outside the data extent" in capsys.readouterr().err
    assert cli(["map", "--experiment", "tile-cnn", "--richness", *roots]) == 2
    assert "patch_dct" in capsys.readouterr().err
    pts = tmp_path / "p.csv"
    pts.write_text("lon,lat\n5,45\nx,46\n")
    assert cli(["predict", "--experiment", "knn", "--points", str(pts), *roots]) == 2
    assert "line 3" in capsys.readouterr().err


def test_cli_map_writes_species_bands(runs: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import rasterio

    from glc.tasks.maps import build_point_model

    task = runs["tasks"]["knn"]
    sp = [int(s) for s in build_point_model("knn", task.data_root, task.out_root).vocab[:2]]
    rc = cli(
        [
            "map",
            "--experiment",
            "knn",
            "--species",
            ",".join(map(str, sp)),
            "--resolution-km",
            "50",
            "--bbox=-5,40,20,55",
            "--data-root",
            task.data_root,
            "--out-root",
            task.out_root,
        ]
    )
    assert rc == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("map: "))
    tif = Path(line.split()[1])
    with rasterio.open(tif) as src:
        assert src.descriptions == tuple(f"species {s}" for s in sp)
        a = src.read()
        land = a[0] != src.nodata
        assert land.any() and ((a[:, land] >= 0) & (a[:, land] <= 1)).all()
    assert (tif.parent / f"species_{sp[0]}.png").exists()
