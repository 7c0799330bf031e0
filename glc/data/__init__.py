"""Readers for every GLC24 component, under both the Kaggle and the Seafile file names.

Modules (each locates files only through :class:`glc.data.layout.Layout`):

* :mod:`glc.data.layout`: where every file lives (the only module that knows GLC24 file names);
* :mod:`glc.data.errors`: :class:`DataError` and :class:`DataFileNotFoundError`;
* :mod:`glc.data.metadata`: PA/PO metadata CSVs, survey tables, solution and submission files;
* :mod:`glc.data.patches`: Sentinel-2 RGB + NIR JPEG patches -> ``(4, 128, 128) uint8``;
* :mod:`glc.data.cubes`: Landsat and bioclimatic ``.pt`` cubes (read, and write with the real storage layout);
* :mod:`glc.data.timeseries`: the six per-band Landsat CSVs -> cube-ordered arrays;
* :mod:`glc.data.env`: pre-extracted environmental CSVs (bioclim, elevation, land cover, human footprint, soil);
* :mod:`glc.data.rasters`: GeoTIFF metadata and boundless windowed reads with validity masks.

The heavy modules (torch, rasterio) are not imported here, so ``import glc.data.layout`` stays cheap.
"""

from __future__ import annotations

from glc.data.errors import DataError, DataFileNotFoundError

__all__ = ["DataError", "DataFileNotFoundError"]
