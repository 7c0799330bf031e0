"""Write the GeoTIFF raster groups of a synthetic world and sample them at the survey sites.

Every group of :data:`glc.data.layout.RASTER_GROUPS` is written in EPSG:4326 over the GLC bounding box at the world's
resolution, tiled and deflate-compressed, each file with a nodata value (the sea, and for land cover also the
area outside the MODIS-like coverage). Rows are computed in blocks of one tile height, so memory stays bounded at
any resolution. While a block is in memory, the values of the pixels holding survey sites are copied out: the
environmental CSVs are therefore exactly the raster values at the sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glc.data.layout import HF_RASTER_STEMS, RASTER_GROUPS, SOILGRID_VARS
from glc.synth import fields as F
from glc.synth._landmask import load_landmask
from glc.synth.geography import RasterGrid


@dataclass(frozen=True)
class LayerSpec:
    """One raster file: its layer name(s), dtype and nodata."""

    rel: str
    layers: tuple[str, ...]
    dtype: str
    nodata: float


_F32_NODATA = -3.4028234663852886e38


def _hf_spec(stem: str) -> tuple[str, float]:
    if stem.startswith("Built"):
        return "int32", 2147483647
    if stem.startswith("Lights"):
        return "uint8", 127
    return "float32", _F32_NODATA


def group_specs(group: str) -> list[LayerSpec]:
    """The files of a raster group with their layer names (the keys of the sampled values), dtypes and nodata.

    Raises:
        ValueError: for a group that is not in :data:`glc.data.layout.RASTER_GROUPS`.
    """
    if group not in RASTER_GROUPS:
        raise ValueError(f"unknown raster group {group!r}; expected one of {tuple(RASTER_GROUPS)}")
    rels = RASTER_GROUPS[group]
    if group == "climate":
        return [LayerSpec(rel, (f"bio{i}",), "int32", -2147483648) for i, rel in enumerate(rels, start=1)]
    if group == "elevation":
        return [LayerSpec(rels[0], ("elevation",), "int16", -32768)]
    if group == "human_footprint":
        stems = HF_RASTER_STEMS + ("HFP1993", "HFP2009")
        return [LayerSpec(rel, (stem,), *_hf_spec(stem)) for rel, stem in zip(rels, stems)]
    if group == "landcover":
        return [LayerSpec(rels[0], tuple(f"landcover_{b}" for b in range(1, 14)), "uint8", 255)]
    if group == "soilgrids":
        return [LayerSpec(rel, (v,), "int16", -32768) for rel, v in zip(rels, SOILGRID_VARS)]
    raise ValueError(f"raster group {group!r} has no layer specification in glc.synth.rasterwriter")


def _block_layers(
    group: str, f: dict[str, np.ndarray], igbp: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> dict[str, np.ndarray]:
    """Values of every layer of ``group`` on one block (before the nodata mask)."""
    if group == "climate":
        tm, pm, dm = F.monthly_climatology(f["t_mean"], f["t_amp"], f["p_ann"], f["dtr"], f["cont"], f["dry"])
        bio = F.bioclim_from_monthly(tm, pm, dm)
        return {f"bio{i + 1}": bio[i] for i in range(19)}
    if group == "elevation":
        return {"elevation": np.rint(f["elev"])}
    if group == "human_footprint":
        return F.human_footprint(f, igbp)
    if group == "landcover":
        covered = (lon2 > -25.0) & (lat2 < 71.0)
        bands = F.landcover_bands(igbp, f["confidence"], covered)
        return {f"landcover_{b + 1}": bands[b] for b in range(13)}
    if group == "soilgrids":
        return F.soil(f, igbp)
    raise ValueError(f"unknown raster group {group!r}")


def compute_block(model: F.EnvironmentModel, grid: RasterGrid, r0: int, r1: int) -> dict[str, np.ndarray]:
    """Every layer of every raster group on rows ``r0..r1``, cast to its file's dtype, nodata at sea.

    Returns:
        ``{"<group>/<file index>": array (bands, rows, width)}`` in the dtype of that file.
    """
    mask = load_landmask()
    lats = grid.row_lats(r0, r1)
    lons = grid.col_lons()
    f = model.grid_fields(lats, lons)
    lat2, lon2 = np.meshgrid(lats, lons, indexing="ij")
    land = mask.is_land(lon2, lat2)
    igbp = F.igbp_class(f, lat2)
    igbp[~land] = F.IGBP_WATER
    out: dict[str, np.ndarray] = {}
    for group in RASTER_GROUPS:
        layers = _block_layers(group, f, igbp, lat2, lon2)
        for i, s in enumerate(group_specs(group)):
            stack = np.empty((len(s.layers), r1 - r0, grid.width), dtype=s.dtype)
            for b, name in enumerate(s.layers):
                v = layers[name] if group == "landcover" else np.where(land, layers[name], s.nodata)
                stack[b] = v.astype(s.dtype)
            out[f"{group}/{i}"] = stack
    return out


class RasterSetWriter:
    """All GeoTIFFs of a world, open for writing block by block, sampling the pixels of the survey sites.

    Use as a context manager; feed :func:`compute_block` results in any order with :meth:`write_block`.

    Args:
        grid: the raster grid.
        env_root: the folder the relative paths of :data:`glc.data.layout.RASTER_GROUPS` live under.
        tile: GeoTIFF tile size (multiple of 16).
        rows, cols: pixels to sample (int arrays of equal length).
    """

    def __init__(self, grid: RasterGrid, env_root: Path, tile: int, rows: np.ndarray, cols: np.ndarray) -> None:
        if tile % 16:
            raise ValueError(f"raster tile size must be a multiple of 16, got {tile}")
        self.grid, self.env_root, self.tile = grid, Path(env_root), tile
        self.rows, self.cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        self.specs = {f"{g}/{i}": s for g in RASTER_GROUPS for i, s in enumerate(group_specs(g))}
        self.samples = {name: np.full(len(self.rows), np.nan) for s in self.specs.values() for name in s.layers}
        self._dsts: dict = {}
        self._env = None

    def __enter__(self) -> RasterSetWriter:
        import rasterio
        from affine import Affine

        g = self.grid
        base = dict(
            driver="GTiff",
            width=g.width,
            height=g.height,
            crs="EPSG:4326",
            transform=Affine(g.res, 0.0, g.west, 0.0, -g.res, g.north),
            tiled=True,
            blockxsize=self.tile,
            blockysize=self.tile,
            compress="deflate",
        )
        self._env = rasterio.Env(GDAL_NUM_THREADS="1")
        self._env.__enter__()
        try:
            for key, s in self.specs.items():
                path = self.env_root / s.rel
                path.parent.mkdir(parents=True, exist_ok=True)
                self._dsts[key] = rasterio.open(path, "w", count=len(s.layers), dtype=s.dtype, nodata=s.nodata, **base)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def write_block(self, r0: int, block: dict[str, np.ndarray]) -> None:
        """Write one :func:`compute_block` result starting at row ``r0`` and copy out the sampled pixels."""
        from rasterio.windows import Window

        any_stack = next(iter(block.values()))
        r1 = r0 + any_stack.shape[1]
        sel = np.flatnonzero((self.rows >= r0) & (self.rows < r1))
        for key, stack in block.items():
            s = self.specs[key]
            self._dsts[key].write(stack, window=Window(0, r0, self.grid.width, r1 - r0))
            for b, name in enumerate(s.layers):
                self.samples[name][sel] = stack[b][self.rows[sel] - r0, self.cols[sel]].astype(np.float64)

    def __exit__(self, *exc: object) -> None:
        for d in self._dsts.values():
            d.close()
        self._dsts = {}
        if self._env is not None:
            self._env.__exit__(None, None, None)
            self._env = None
