"""Species maps: the grid, the GeoTIFF (CRS, transform, bands, nodata at sea) and its PNG preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glc.data.extent import data_extent
from glc.predict.maps import NODATA, map_grid, preview_png, write_species_map
from glc.predict.points import PointModel
from tests.predict.conftest import knn_cfg


def test_grid_checks_its_arguments(mask_raster: Path) -> None:
    ext = data_extent("unused", raster=mask_raster)
    with pytest.raises(ValueError, match="outside the data extent"):
        map_grid(ext, (100, 10, 110, 20), 10)
    with pytest.raises(ValueError, match="positive number of kilometres"):
        map_grid(ext, None, 0)
    with pytest.raises(ValueError, match="geographic"):
        map_grid(ext, None, 10, crs="EPSG:4326")
    g = map_grid(ext, None, 20)
    assert g.west % 20000 == 0 and g.north % 20000 == 0 and g.width > 10 and g.height > 10


def test_map_geotiff_reads_back_with_crs_bands_and_nodata_at_sea(
    train_surveys: pd.DataFrame, mask_raster: Path, tmp_path: Path
) -> None:
    import rasterio

    from glc.geo import to_lonlat

    ext = data_extent("unused", raster=mask_raster)
    model = PointModel(knn_cfg(), train_surveys, extent=ext)
    grid = map_grid(ext, None, 20)
    tif = tmp_path / "map.tif"
    s = write_species_map(model, grid, tif, species=[500, 3], richness=True, tile=16, memory_mb=1, progress=False)
    assert s["land"] > 0 and s["sea"] > 0
    with rasterio.open(tif) as src:
        assert src.crs.to_epsg() == 3035
        assert src.descriptions == ("species 500", "species 3", "richness")
        assert src.nodata == NODATA and src.count == 3
        assert src.transform == grid.transform
        a = src.read()
        rows, cols = np.meshgrid(np.arange(src.height), np.arange(src.width), indexing="ij")
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
    lon, lat = to_lonlat(np.asarray(xs), np.asarray(ys))
    status = ext.status_codes(lon, lat).reshape(a.shape[1:])
    land = status == 0
    assert land.sum() == s["land"]
    assert (a[:, ~land] == NODATA).all()  # sea and outside: nodata, never a zero
    assert ((a[:2, land] >= 0) & (a[:2, land] <= 1)).all()
    assert np.allclose(a[0, land], 1.0)  # species 500 is in every training survey
    assert (a[2, land] >= a[0, land] - 1e-6).all()  # richness >= any one species
    png = preview_png(tif, 3, tmp_path / "richness.png")
    from PIL import Image

    with Image.open(png) as im:
        im.load()
        assert im.size[0] > 100


def test_unknown_species_fails_before_writing(train_surveys: pd.DataFrame, mask_raster: Path, tmp_path: Path) -> None:
    ext = data_extent("unused", raster=mask_raster)
    model = PointModel(knn_cfg(), train_surveys, extent=ext)
    with pytest.raises(KeyError, match="424242"):
        write_species_map(model, map_grid(ext, None, 50), tmp_path / "m.tif", species=[424242], progress=False)
    assert not (tmp_path / "m.tif").exists()
