"""The real labelled benchmark dataset: the 4,716 GLC24 PA-test surveys with their released labels.

Features available for these surveys: location (+ EPSG:3035 x/y), year, region, country, area, uncertainty.
Species ids outside 0..11254 in the solution file stay in the truth (no model can predict them) and duplicates
count once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

METADATA = "GLC24_PA_metadata_test.csv"
SOLUTION = "GLC24_SOLUTION_FILE.csv"
#: Where the real files live: ``$GLC_REAL_DATA``, else ``data/real`` in the checkout (put the files, or a link to
#: their folder, there). It holds ``glc24-real/`` (the labelled surveys: :data:`METADATA` and :data:`SOLUTION`),
#: ``glc24-samples/`` (sample patches, cubes and the :data:`REAL_RASTERS` under ``rasters/``) and ``glc25-samples/``.
REAL_DATA_ENV = "GLC_REAL_DATA"


def real_data_dir() -> Path:
    """The folder of the real files (:data:`REAL_DATA_ENV`, default ``<checkout>/data/real``; it may not exist)."""
    from glc.config import REPO_ROOT

    return Path(os.environ.get(REAL_DATA_ENV) or REPO_ROOT / "data" / "real")


def load_real_surveys(real_dir: str | Path) -> pd.DataFrame:
    """The real labelled survey table: metadata + x/y (EPSG:3035) + speciesIds.

    Raises:
        ValueError: if a metadata survey has no row in the solution file.
    """
    from glc.data.metadata import read_pa_metadata, read_solution
    from glc.geo import to_laea

    real_dir = Path(real_dir)
    meta = read_pa_metadata(real_dir / METADATA, "test")
    sol = read_solution(real_dir / SOLUTION)
    meta = meta.drop_duplicates("surveyId").reset_index(drop=True)
    missing = set(meta["surveyId"]) - set(sol)
    if missing:
        raise ValueError(
            f"{real_dir / SOLUTION}: {len(missing)} surveys of the "
            f"test metadata have no labels, e.g. {sorted(missing)[:5]}"
        )
    meta["speciesIds"] = [np.unique(np.asarray(sol[int(s)], np.int64)) for s in meta["surveyId"]]
    meta["x"], meta["y"] = to_laea(meta["lon"].to_numpy(), meta["lat"].to_numpy())
    return meta


#: The two real full-extent human-footprint GeoTIFFs shipped with the samples (``glc24-samples/rasters/`` of
#: :func:`real_data_dir`).
REAL_RASTERS: tuple[str, ...] = ("Built2009_WGS84.tif", "Lights2009_WGS84.tif")


def add_raster_features(
    frame: pd.DataFrame, rasters: list[str | Path]
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """``frame`` with one ``feat_<raster stem>`` column per GeoTIFF: the value at each survey's lon/lat
    (:func:`glc.data.rasters.sample_points`; NaN outside the raster or on nodata, counted in the returned dict —
    tree models split on NaN, nothing is filled in)."""
    import re

    from glc.data.rasters import sample_points

    out = frame.copy()
    counts = {}
    for p in rasters:
        name = "feat_" + re.sub(r"[^a-z0-9]+", "_", Path(p).stem.lower().removesuffix("_wgs84"))
        out[name], counts[name] = sample_points(p, out["lon"].to_numpy(), out["lat"].to_numpy())
    return out, counts
