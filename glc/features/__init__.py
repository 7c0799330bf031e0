"""Feature extraction: orthonormal DCT math and augmentations (:mod:`glc.features.dct`) and DCT tiles of GeoTIFF
rasters around survey sites (:mod:`glc.features.tiles`)."""
