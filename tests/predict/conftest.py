"""Fixtures for the point/map tests: a small land-mask raster and a fake training-survey table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture()
def mask_raster(tmp_path: Path) -> Path:
    """A 1-degree EPSG:4326 raster over lon 0..10, lat 40..50: land (value 1) where lon < 5, nodata (255) east of it."""
    import rasterio
    from rasterio.transform import from_origin

    a = np.full((10, 10), 255, np.uint8)
    a[:, :5] = 1
    p = tmp_path / "mask.tif"
    with rasterio.open(
        p,
        "w",
        driver="GTiff",
        width=10,
        height=10,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(0.0, 50.0, 1.0, 1.0),
        nodata=255,
    ) as dst:
        dst.write(a, 1)
    return p


@pytest.fixture()
def train_surveys() -> pd.DataFrame:
    """200 seeded training surveys on the land half of :func:`mask_raster`, species tied to longitude."""
    from glc.geo import to_laea

    rng = np.random.default_rng(0)
    lon = rng.uniform(0.2, 4.8, 200)
    lat = rng.uniform(40.2, 49.8, 200)
    x, y = to_laea(lon, lat)
    species = [np.array(sorted({int(lo) + 1, int(la) + 100, 500}), np.int64) for lo, la in zip(lon, lat)]
    return pd.DataFrame(
        {
            "surveyId": np.arange(1000, 1200),
            "lon": lon,
            "lat": lat,
            "x": x,
            "y": y,
            "year": rng.integers(2017, 2022, 200),
            "region": np.where(lat > 45, "ATLANTIC", "MEDITERRANEAN"),
            "country": "France",
            "speciesIds": species,
            "split": "train",
        }
    )


def knn_cfg(top_n: int = 50, name: str = "knn-test") -> dict:
    from glc.config import resolve

    return resolve({"name": name, "model": {"kind": "knn", "k": 5, "top_n": top_n}}, "test")
