"""Summary statistics of a generated world, read back from its files (used by the statistics tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glc.data.layout import detect_layout


def _sample_raster(path: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Band-1 values at points (NaN at nodata or outside the raster)."""
    import rasterio

    with rasterio.open(path) as src:
        band = src.read(1, masked=True)
        rows, cols = rasterio.transform.rowcol(src.transform, lon, lat)
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < band.shape[0]) & (cols >= 0) & (cols < band.shape[1])
    out = np.full(len(lon), np.nan)
    vals = band[rows[inside], cols[inside]]
    out[inside] = np.ma.filled(vals.astype(np.float64), np.nan)
    return out


def world_stats(world_dir: str | Path) -> dict[str, Any]:
    """Statistics of a world, computed from its files.

    Returns:
        A dict with ``pa_train_surveys``, ``pa_train_rows``, ``pa_test_surveys``, ``po_records``, ``po_surveys``,
        ``species_in_pa_train``, ``species_in_po``, ``mean_species_per_pa_survey``, ``frac_species_lt10_surveys``
        (among species seen in PA train), ``max_species_prevalence`` (fraction of PA train surveys),
        ``mean_species_small_plots`` / ``mean_species_large_plots`` (area <= 25 m2 / >= 100 m2),
        ``mean_hfp_pa`` / ``mean_hfp_po`` (HFP2009 raster at PA and PO sites), ``regions``, ``countries``,
        ``years``.

    Raises:
        glc.data.layout.LayoutError: if ``world_dir`` is not a GLC24 data root.
    """
    layout = detect_layout(world_dir)
    train = pd.read_csv(layout.pa_metadata("train"), dtype={"region": str, "country": str})
    test = pd.read_csv(layout.pa_metadata("test"), dtype={"region": str, "country": str})
    po = pd.read_csv(layout.po_metadata(), usecols=["lat", "lon", "speciesId", "surveyId"])
    pairs = train[["surveyId", "speciesId"]].drop_duplicates()
    n_train = int(train["surveyId"].nunique())
    per_species = pairs["speciesId"].value_counts()
    richness = pairs.groupby("surveyId").size()
    area = pd.to_numeric(train.drop_duplicates("surveyId").set_index("surveyId")["areaInM2"], errors="coerce")
    area = area.replace([np.inf, -np.inf], np.nan).reindex(richness.index)
    pa_sites = pd.concat([train.drop_duplicates("surveyId")[["lon", "lat"]], test[["lon", "lat"]]])
    po_sites = po.drop_duplicates("surveyId")
    hfp_path = next(p for p in layout.raster_paths("human_footprint") if p.name.lower().startswith("hfp2009"))
    hfp_pa = _sample_raster(hfp_path, pa_sites["lon"].to_numpy(), pa_sites["lat"].to_numpy())
    hfp_po = _sample_raster(hfp_path, po_sites["lon"].to_numpy(), po_sites["lat"].to_numpy())
    return {
        "pa_train_surveys": n_train,
        "pa_train_rows": int(len(train)),
        "pa_test_surveys": int(test["surveyId"].nunique()),
        "po_records": int(len(po)),
        "po_surveys": int(po["surveyId"].nunique()),
        "species_in_pa_train": int(len(per_species)),
        "species_in_po": int(po["speciesId"].nunique()),
        "mean_species_per_pa_survey": float(len(pairs) / max(n_train, 1)),
        "frac_species_lt10_surveys": float((per_species < 10).mean()),
        "max_species_prevalence": float(per_species.max() / max(n_train, 1)),
        "mean_species_small_plots": float(richness[area <= 25].mean()),
        "mean_species_large_plots": float(richness[area >= 100].mean()),
        "mean_hfp_pa": float(np.nanmean(hfp_pa)),
        "mean_hfp_po": float(np.nanmean(hfp_po)),
        "hfp_missing_pa": int(np.isnan(hfp_pa).sum()),
        "hfp_missing_po": int(np.isnan(hfp_po).sum()),
        "regions": sorted(pd.concat([train["region"], test["region"]]).dropna().unique().tolist()),
        "countries": int(pd.concat([train["country"], test["country"]]).nunique()),
        "years": sorted(int(y) for y in train["year"].unique()),
    }
