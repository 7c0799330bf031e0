"""Predict anywhere: points files, statuses from the land mask, point frames and the point model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glc.data.extent import data_extent
from glc.predict.points import (
    PointInputError,
    PointModel,
    check_point_capable,
    point_frame,
    read_points,
    write_point_predictions,
)
from tests.predict.conftest import knn_cfg


def test_read_points_names_the_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "pts.csv"
    p.write_text("lon,lat\n1.0,45.0\n2.0,north\n")
    with pytest.raises(ValueError, match=r"line 3.*lat='north'"):
        read_points(p)
    p.write_text("lon,lat\n1.0,45.0\n200.0,45.0\n")
    with pytest.raises(ValueError, match=r"line 3.*not a WGS84"):
        read_points(p)
    p.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="needs lon,lat"):
        read_points(p)
    p.write_text("id,lon,lat\n7,1,45\n7,2,46\n")
    with pytest.raises(ValueError, match="id 7 appears more than once"):
        read_points(p)


def test_blank_year_uses_the_latest_training_year_and_says_so(tmp_path: Path, train_surveys: pd.DataFrame) -> None:
    p = tmp_path / "pts.csv"
    p.write_text("id,lon,lat,year\n1,1.0,45.0,2018\n2,2.0,46.0,\n")
    pts = read_points(p)
    f = point_frame(pts, train_surveys)
    assert f["year"].tolist() == [2018, int(train_surveys["year"].max())]
    assert f["year_source"].tolist()[0] == "given" and "latest training year" in f["year_source"].tolist()[1]


def test_statuses_from_the_land_mask(mask_raster: Path) -> None:
    ext = data_extent("unused", raster=mask_raster)
    st = ext.statuses(np.array([2.0, 7.0, 20.0, np.nan]), np.array([45.0, 45.0, 45.0, 45.0]))
    assert st.tolist() == ["ok", "sea", "outside_extent", "outside_extent"]
    with pytest.raises(ValueError, match="outside the data extent"):
        ext.check_bbox((100, 10, 110, 20))


def test_data_extent_without_rasters_falls_back_to_the_study_box(tmp_path: Path) -> None:
    from tests.fakes import make_fake_metadata

    make_fake_metadata(tmp_path, seed=0)
    ext = data_extent(tmp_path)
    assert ext.land is None and "land unknown" in ext.source
    assert ext.statuses(np.array([5.0, 100.0]), np.array([45.0, 10.0])).tolist() == ["ok", "outside_extent"]


def test_region_of_a_new_point_comes_from_the_nearest_training_survey(train_surveys: pd.DataFrame) -> None:
    pts = pd.DataFrame({"id": [1, 2], "lon": [2.0, 2.0], "lat": [48.0, 41.0], "region": [None, "ALPINE"]})
    f = point_frame(pts, train_surveys)
    assert f["region"].tolist() == ["ATLANTIC", "ALPINE"]
    assert f["region_from_km"].iloc[0] > 0 and f["region_from_km"].iloc[1] == 0.0


def test_models_reading_per_survey_inputs_cannot_predict_at_points() -> None:
    from glc.config import resolve

    cfg = resolve({"name": "t", "model": {"kind": "tile_cnn"}}, "test")
    with pytest.raises(PointInputError, match=r"patch_dct.*does not have"):
        check_point_capable(cfg)
    check_point_capable(knn_cfg())  # location models can


def test_point_model_scores_only_land_points_and_dense_matches_the_scores(
    train_surveys: pd.DataFrame, mask_raster: Path, tmp_path: Path
) -> None:
    model = PointModel(knn_cfg(top_n=500), train_surveys, extent=data_extent("unused", raster=mask_raster))
    pts = pd.DataFrame({"id": [1, 2, 3], "lon": [1.5, 7.0, 3.5], "lat": [44.5, 45.0, 47.2]})
    frame = model.frame(pts)
    assert frame["status"].tolist() == ["ok", "sea", "ok"]
    sc = model.scores(frame)
    assert sc.survey_ids.tolist() == [1, 3]
    species = [2, 500, 144]
    P, rich = model.dense(frame[frame["status"] == "ok"], species)
    for i in range(2):
        row = dict(zip(sc.species[i].tolist(), sc.prob[i].tolist()))
        assert P[i].tolist() == pytest.approx([row.get(s, 0.0) for s in species])
        assert rich[i] == pytest.approx(sc.prob[i].sum() + sc.prob_rest[i], rel=1e-5)
    assert P[:, 1].tolist() == pytest.approx([1.0, 1.0])  # species 500 is in every training survey
    with pytest.raises(KeyError, match=r"\[999999\]"):
        model.dense(frame, [999999])
    out = write_point_predictions(tmp_path / "pred.csv", frame, sc, k=5)
    back = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert back["status"].tolist() == ["ok", "sea", "ok"]
    assert back.loc[1, "species"] == "" and back.loc[0, "species"] != ""
    assert out["id"].tolist() == [1, 2, 3]
