"""Generate a synthetic GLC world: every file of the GLC24 Kaggle (or Seafile) layout, or of the GLC25 one, from
one latent model.

GLC25 (``flavour="glc25"``) differs from GLC24 the way the real editions do: one int16 4-band GeoTIFF patch per
survey (:func:`glc.synth.modalities.render_patch_glc25`, with the real files' profile), GLC25 file names, no full
GeoTIFF rasters (they are rendered to a scratch folder only to sample the site values, then deleted), pre-extracted
``EnvironmentalValues`` CSVs (the test landcover CSV with its extra leading index column), a few train rows with an
empty ``speciesId``, test ids from 5,000,000, GLC25's test/train size ratio (14,784 / 88,987) and a
**geographically shifted** test set (:data:`GLC25_SHIFT`, see :func:`glc.synth.sites.make_pa_surveys`; its size is
in the ``_SUCCESS`` summary under ``shift``).

Stages (see :func:`generate_world`):

1. the latent environment (:mod:`glc.synth.fields`), the PA plots and visits, the PO occurrences and their ids
   (:mod:`glc.synth.sites`);
2. the GeoTIFF rasters, computed in row blocks by the workers and written by the main process, which copies out the
   raster values at every site (:mod:`glc.synth.rasterwriter`);
3. the species (:mod:`glc.synth.species`), calibrated on pilot sites;
4. PA surveys in fixed-size chunks (workers): Bernoulli species draws, patches, cubes, and the CSV text of the
   metadata, Landsat and environmental files, appended by the main process in chunk order;
5. PO chunks; then the sample submission, the test truth under ``_truth/`` and the ``_SUCCESS`` marker.

Determinism: every random draw comes from a :class:`numpy.random.SeedSequence` keyed by ``(seed, stream, item)``
where the item is a fixed chunk index or a survey/site id, and BLAS runs single-threaded, so the bytes do not
depend on the number of workers. The world is built in ``<parent>/.<name>-tmp-<pid>`` and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glc.data.layout import (
    ENV_COLUMNS,
    FLAVOURS,
    LANDSAT_BANDS,
    LANDSAT_CSV_COLUMNS,
    Layout,
)
from glc.synth import modalities as M
from glc.synth.fields import EnvironmentModel, monthly_climatology
from glc.synth.geography import RasterGrid, assign_regions, local_xy_km
from glc.synth.rasterwriter import RasterSetWriter, compute_block
from glc.synth.scales import ScaleParams, get_scale
from glc.synth.sites import assign_ids, draw_areas, make_pa_surveys, make_po_surveys, sample_pa_sites
from glc.synth.species import SiteFeatures, SpeciesPool, calibrate_intercepts, make_species_pool, niche_variables

logger = logging.getLogger(__name__)

#: Name of the completion marker (a JSON summary) written last.
SUCCESS = "_SUCCESS"
#: Folder of the hidden truth (never read by the pipeline).
TRUTH_DIR = "_truth"
TRUTH_NPZ = "pa_test_truth.npz"
SOLUTION_CSV = "GLC24_SOLUTION_FILE.csv"
#: Probabilities below this are not stored in the truth file.
TRUTH_MIN_PROB = 1e-6
GENERATOR_VERSION = 1

# Random streams (first element of every SeedSequence spawn key).
_S_FIELDS, _S_SPECIES, _S_PA, _S_PILOT, _S_PO, _S_IDS, _S_HAB, _S_EFFECT = 1, 2, 3, 4, 5, 6, 7, 8
_S_PA_CHUNK, _S_PO_CHUNK, _S_SITE, _S_SURVEY = 9, 10, 11, 12
_S_PO_PATCH = 13
_S_EMPTY_SPECIES = 14

#: GLC25's PA test/train size ratio (14,784 test surveys for 88,987 train surveys).
GLC25_TEST_RATIO = 14_784 / 88_987
#: GLC25 test shift: blocks of the marked countries are this many times as likely to be test blocks.
GLC25_SHIFT = 8.0
#: Rate of GLC25 train surveys given an extra metadata row with an empty speciesId (a quirk of the real file).
GLC25_EMPTY_SPECIES_RATE = 0.003
#: The CRS of the real GLC25 patch GeoTIFFs (Lambert azimuthal equal-area, lat 52, lon 10: EPSG:3035's parameters,
#: written by the organizers without the EPSG code).
GLC25_PATCH_CRS_WKT = (
    'PROJCS["unknown",GEOGCS["unknown",DATUM["Unknown_based_on_GRS80_ellipsoid",SPHEROID["GRS 1980",6378137,'
    '298.257222101004,AUTHORITY["EPSG","7019"]]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433,'
    'AUTHORITY["EPSG","9122"]]],PROJECTION["Lambert_Azimuthal_Equal_Area"],PARAMETER["latitude_of_center",52],'
    'PARAMETER["longitude_of_center",10],PARAMETER["false_easting",4321000],PARAMETER["false_northing",3210000],'
    'UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)

#: Raster stems of the human-footprint CSV columns, in the CSV's column order.
HF_STEMS: tuple[str, ...] = tuple(c.removeprefix("HumanFootprint-") for c in ENV_COLUMNS["human_footprint"])
_HF_INT = tuple(s.startswith(("Built", "Lights")) for s in HF_STEMS)
#: Dirty human-footprint cells (glc24-format.md section 6: +-inf, negatives, nodata-like outliers).
_DIRTY_HF = ("inf", "-inf", "-1.0", "-9999.0", "2147483647.0", "3.4028234663852886e+38", "65535.0")
_DIRTY_HF_RATE = 0.01
#: Soil raster layer names in the soil CSV's column order.
_SOIL_VARS: tuple[str, ...] = tuple(c.removeprefix("Soilgrid-") for c in ENV_COLUMNS["soilgrids"])
#: Landsat cell texts by value 0..255, and "" (NaN) at index 256.
_LANDSAT_TEXT = [f"{v}.0" for v in range(256)] + [""]


def _rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, *key)))


# ----------------------------------------------------------------------------------------------- worker state
@dataclass
class _State:
    seed: int
    root: Path
    flavour: str
    model: EnvironmentModel
    grid: RasterGrid
    pool: SpeciesPool | None = None


_STATE: _State | None = None


def _init_worker(state: _State) -> None:
    global _STATE
    _STATE = state
    _limit_threads()


_THREAD_LIMIT: Any = None


def _limit_threads() -> None:
    """Run BLAS (and torch) single-threaded so floating-point results never depend on thread counts."""
    global _THREAD_LIMIT
    try:
        from threadpoolctl import threadpool_limits

        _THREAD_LIMIT = threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    torch = sys.modules.get("torch")  # only if already imported (fork inherits it); never import it here
    if torch is not None:
        torch.set_num_threads(1)


def _raster_block_task(rows: tuple[int, int]) -> tuple[int, dict[str, np.ndarray]]:
    assert _STATE is not None
    return rows[0], compute_block(_STATE.model, _STATE.grid, rows[0], rows[1])


@contextlib.contextmanager
def _executor(workers: int, state: _State) -> Iterator[Callable[[Callable, Iterable], Iterator]]:
    """Yield an ordered ``map(fn, items)``: a process pool for ``workers > 1``, else in-process."""
    global _STATE
    if workers <= 1:
        old = _STATE
        _STATE = state
        try:
            yield lambda fn, items: map(fn, items)
        finally:
            _STATE = old
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
        yield lambda fn, items: pool.imap(fn, items, chunksize=1)


def _bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", disable=not progress, leave=False)


# ---------------------------------------------------------------------------------------------- text helpers
def _fnum(x: float) -> str:
    """Shortest round-trip text of a float (``9.67188``)."""
    return repr(float(x))


def _int_float(v: float) -> str:
    """An integer value written as float text (``184.0``)."""
    return f"{int(v)}.0"


def _hf_text(values: np.ndarray) -> list[str]:
    return [_int_float(v) if is_int else str(np.float32(v)) for v, is_int in zip(values, _HF_INT)]


class _CsvSet:
    """CSV files open for appending, each with its header written on open."""

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}

    def open(self, key: str, path: Path, header: Iterable[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("w", encoding="utf-8", newline="")
        f.write(",".join(header) + "\n")
        self.files[key] = f

    def write(self, key: str, text: str) -> None:
        self.files[key].write(text)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files = {}


# -------------------------------------------------------------------------------------------------- PA chunks
@dataclass
class _PAChunk:
    """Everything a worker needs to produce one chunk of PA surveys (rows aligned)."""

    split: str
    index: int
    survey_id: np.ndarray
    site: np.ndarray
    year: np.ndarray
    meta_prefix: list[str]  # "lon,lat,year,unc,area,region,country" per survey
    env: dict[str, np.ndarray]
    features: SiteFeatures
    climate: np.ndarray  # (n, 6): t_mean, t_amp, p_ann, dtr, cont, dry
    xy: np.ndarray | None = None  # (n, 2) EPSG:3035 metres of the site: GLC25 GeoTIFF patches only


def _pa_chunk_task(chunk: _PAChunk) -> dict[str, Any]:
    """Draw species and write patches and cubes of one chunk; return CSV text blocks (and the truth for test)."""
    st = _STATE
    assert st is not None and st.pool is not None
    layout = Layout(st.root, st.flavour)  # type: ignore[arg-type]
    from glc.data.cubes import write_cube

    split_code = 0 if chunk.split == "train" else 1
    rng = _rng(st.seed, _S_PA_CHUNK, split_code, chunk.index)
    n = len(chunk.survey_id)
    prob = st.pool.probabilities(chunk.features)
    present = rng.random(prob.shape) < prob
    for _ in range(100):  # a recorded survey lists at least one species: redraw empty ones
        empty = np.flatnonzero(~present.any(axis=1))
        if len(empty) == 0:
            break
        present[empty] = rng.random((len(empty), prob.shape[1])) < prob[empty]
    for i in np.flatnonzero(~present.any(axis=1)):
        present[i, np.argmax(prob[i])] = True
    ids = st.pool.ids
    out: dict[str, Any] = {"split": chunk.split, "index": chunk.index, "n": n}
    meta: list[str] = []
    for i in range(n):
        sid = int(chunk.survey_id[i])
        if chunk.split == "train":
            sp = rng.permutation(np.flatnonzero(present[i]))
            meta.extend(f"{chunk.meta_prefix[i]},{int(ids[j])}.0,{sid}\n" for j in sp)
        else:
            meta.append(f"{chunk.meta_prefix[i]},{sid}\n")
    if chunk.xy is not None and chunk.split == "train":  # GLC25: a few extra rows with an empty speciesId
        extra = _rng(st.seed, _S_EMPTY_SPECIES, chunk.index).random(n) < GLC25_EMPTY_SPECIES_RATE
        meta.extend(f"{chunk.meta_prefix[i]},,{int(chunk.survey_id[i])}\n" for i in np.flatnonzero(extra))
        out["empty_species_rows"] = int(extra.sum())
    out["meta"] = "".join(meta)
    out["rows"] = int(present.sum()) if chunk.split == "train" else n
    if chunk.split == "train":
        out["species_counts"] = present.sum(axis=0).astype(np.int64)
    else:
        keep = prob >= TRUTH_MIN_PROB
        out["truth"] = {
            "survey_id": chunk.survey_id.astype(np.int64),
            "nnz": keep.sum(axis=1).astype(np.int64),
            "index": np.nonzero(keep)[1].astype(np.int32),
            "prob": prob[keep].astype(np.float32),
            "label_nnz": present.sum(axis=1).astype(np.int64),
            "label_index": np.nonzero(present)[1].astype(np.int32),
        }
    # patches, cubes, time series
    comp = chunk.features.hab
    landsat_lines: list[list[str]] = [[] for _ in LANDSAT_BANDS]
    monthly_lines: list[str] = []
    tm, pm, dm = monthly_climatology(*(chunk.climate[:, k] for k in range(6)))
    for i in range(n):
        sid = int(chunk.survey_id[i])
        site = int(chunk.site[i])
        year = int(chunk.year[i])
        if chunk.xy is not None:
            patch = M.render_patch_glc25(
                _rng(st.seed, _S_SITE, 0, site), _rng(st.seed, _S_SURVEY, 0, sid), comp[i], year
            )
            write_glc25_patch(layout.patch_path(chunk.split, sid, "tiff"), patch, *chunk.xy[i])  # type: ignore[arg-type]
        else:
            rgb, nir = M.render_patch(_rng(st.seed, _S_SITE, 0, site), _rng(st.seed, _S_SURVEY, 0, sid), comp[i], year)
            for kind, data in (("rgb", rgb), ("nir", nir)):
                p = layout.patch_path(chunk.split, sid, kind)  # type: ignore[arg-type]
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        t_jan = float(tm[0, i])
        ls = M.landsat_cube(_rng(st.seed, _S_SITE, 1, site), _rng(st.seed, _S_SURVEY, 1, sid), comp[i], year, t_jan)
        bc = M.bioclim_cube(_rng(st.seed, _S_SURVEY, 2, sid), tm[:, i], pm[:, i], dm[:, i])
        write_cube(layout.cube_path(chunk.split, "landsat", sid), ls, "landsat")  # type: ignore[arg-type]
        write_cube(layout.cube_path(chunk.split, "bioclim", sid), bc, "bioclim")  # type: ignore[arg-type]
        flat = ls.transpose(0, 2, 1).reshape(6, -1)  # (band, year*quarter), year-major like the CSV header
        codes = np.where(np.isnan(flat), 256, flat).astype(np.int64).tolist()
        for b in range(6):
            landsat_lines[b].append(f"{sid}," + ",".join([_LANDSAT_TEXT[v] for v in codes[b]]) + "\n")
        monthly_lines.append(f"{sid}," + ",".join(map(str, bc.ravel().astype(np.int64).tolist())) + "\n")
    out["landsat"] = ["".join(lines) for lines in landsat_lines]
    out["bioclimatic_monthly"] = "".join(monthly_lines)
    # environmental CSVs: the raster values at the site
    env = chunk.env
    dirty = rng.random(n) < _DIRTY_HF_RATE
    bio, elev, lc, hf, soil = [], [], [], [], []
    for i in range(n):
        sid = int(chunk.survey_id[i])
        bio.append(f"{sid}," + ",".join(str(int(env[f"bio{k}"][i])) for k in range(1, 20)) + "\n")
        elev.append(f"{sid},{_int_float(env['elevation'][i])}\n")
        lc.append(f"{sid},{_int_float(env['landcover_1'][i])}\n")
        cells = _hf_text(np.array([env[s][i] for s in HF_STEMS]))
        if dirty[i]:
            for k in rng.choice(len(cells), size=int(rng.integers(1, 3)), replace=False):
                cells[k] = _DIRTY_HF[int(rng.integers(len(_DIRTY_HF)))]
        hf.append(f"{sid}," + ",".join(cells) + "\n")
        soil.append(f"{sid}," + ",".join(_int_float(env[v][i]) for v in _SOIL_VARS) + "\n")
    out["bioclimatic"] = "".join(bio)
    out["elevation"] = "".join(elev)
    out["landcover"] = "".join(lc)
    out["human_footprint"] = "".join(hf)
    out["soilgrids"] = "".join(soil)
    out["n_dirty_hf"] = int(dirty.sum())
    return out


# -------------------------------------------------------------------------------------------------- PO chunks
@dataclass
class _POChunk:
    index: int
    prefix: list[str]  # "year,month,day,lat,lon,unc,taxonRank,date,dayOfYear" per PO survey
    survey_id: np.ndarray
    n_records: np.ndarray
    features: SiteFeatures
    year: np.ndarray | None = None  # survey years, only where patches are rendered
    patch: np.ndarray | None = None  # bool per survey: render its PO patch pair
    xy: np.ndarray | None = None  # (n, 2) EPSG:3035 metres: GLC25 GeoTIFF patches only


def _po_chunk_task(chunk: _POChunk) -> dict[str, Any]:
    """Draw the reported species of one chunk of PO surveys (without replacement, by probability x detectability)."""
    st = _STATE
    assert st is not None and st.pool is not None
    rng = _rng(st.seed, _S_PO_CHUNK, chunk.index)
    prob = st.pool.probabilities(chunk.features)
    with np.errstate(divide="ignore"):
        keys = np.log(prob * st.pool.detectability) + rng.gumbel(size=prob.shape)
    ids = st.pool.ids
    lines: list[str] = []
    counts = np.zeros(len(ids), dtype=np.int64)
    for i in range(len(chunk.survey_id)):
        k = int(min(chunk.n_records[i], len(ids)))
        top = np.argpartition(-keys[i], k - 1)[:k]
        top = top[np.argsort(-keys[i][top], kind="stable")]
        counts[top] += 1
        sid = int(chunk.survey_id[i])
        lines.extend(f"{chunk.prefix[i]},{int(ids[j])}.0,{sid}\n" for j in top)
    n_patches = 0
    if chunk.patch is not None and chunk.patch.any():
        layout = Layout(st.root, st.flavour)  # type: ignore[arg-type]
        for i in np.flatnonzero(chunk.patch):
            sid = int(chunk.survey_id[i])
            if chunk.xy is not None:
                patch = M.render_patch_glc25(
                    _rng(st.seed, _S_PO_PATCH, 0, sid),
                    _rng(st.seed, _S_PO_PATCH, 1, sid),
                    chunk.features.hab[i],
                    int(chunk.year[i]),
                )  # type: ignore[index]
                write_glc25_patch(layout.patch_path("po", sid, "tiff"), patch, *chunk.xy[i])
                n_patches += 1
                continue
            rgb, nir = M.render_patch(
                _rng(st.seed, _S_PO_PATCH, 0, sid),
                _rng(st.seed, _S_PO_PATCH, 1, sid),
                chunk.features.hab[i],
                int(chunk.year[i]),
            )  # type: ignore[index]
            for kind, data in (("rgb", rgb), ("nir", nir)):
                path = layout.patch_path("po", sid, kind)  # type: ignore[arg-type]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            n_patches += 1
    return {
        "index": chunk.index,
        "text": "".join(lines),
        "rows": len(lines),
        "species_counts": counts,
        "patches": n_patches,
    }


def write_glc25_patch(path: Path, patch: np.ndarray, x: float, y: float) -> None:
    """Write one GLC25 patch GeoTIFF with the real files' profile: 4 bands (red, green, blue, nir) of int16, nodata
    -1, LZW, pixel-interleaved strips of 16 rows, 10 m pixels in LAEA Europe, centred on the site's EPSG:3035
    ``x, y`` (snapped to the 10 m grid)."""
    import rasterio
    from affine import Affine

    half = 10.0 * patch.shape[-1] / 2
    left = 10.0 * round(x / 10.0) - half
    top = 10.0 * round(y / 10.0) + half
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        rasterio.Env(GDAL_NUM_THREADS="1"),
        rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=patch.shape[2],
            height=patch.shape[1],
            count=4,
            dtype="int16",
            nodata=-1,
            crs=rasterio.crs.CRS.from_wkt(GLC25_PATCH_CRS_WKT),
            transform=Affine(10.0, 0.0, left, 0.0, -10.0, top),
            compress="lzw",
            interleave="pixel",
            tiled=False,
            blockysize=16,
        ) as dst,
    ):
        dst.write(patch)
        dst.descriptions = ("red", "green", "blue", "nir")


#: ``add_po_patches(sites=...)``: where the PO patches are rendered
PO_PATCH_SITES = ("draw", "world")


def read_po_surveys(world: str | Path, flavour: str = "kaggle") -> pd.DataFrame:
    """The PO surveys of a generated world, read back from its PO metadata CSV (one row per record): per
    ``surveyId``, in the order the CSV first names it, the place, date, uncertainty text, rank and record count, as
    :func:`glc.synth.sites.make_po_surveys` drew them (plus ``surveyId``).

    Raises:
        FileNotFoundError: the world has no PO metadata.
    """
    path = Layout(Path(world), flavour).po_metadata()  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the world has no PO metadata to read its PO surveys from")
    t = pd.read_csv(path, dtype={"geoUncertaintyInM": str}, keep_default_na=False)
    g = t.groupby("surveyId", sort=False)
    first = g.first()
    return pd.DataFrame(
        {
            "lon": first["lon"].astype(np.float64).to_numpy(),
            "lat": first["lat"].astype(np.float64).to_numpy(),
            "year": first["year"].astype(np.int64).to_numpy(),
            "month": first["month"].astype(np.float64).astype(np.int64).to_numpy(),
            "day": first["day"].astype(np.float64).astype(np.int64).to_numpy(),
            "dayOfYear": first["dayOfYear"].astype(np.int64).to_numpy(),
            "date": first["date"].astype(str).to_numpy(),
            "unc_text": first["geoUncertaintyInM"].astype(str).to_numpy(dtype=object),
            "n_records": g.size().to_numpy(),
            "taxonRank": first["taxonRank"].astype(str).to_numpy(dtype=object),
            "surveyId": first.index.to_numpy(np.int64),
        }
    )


def add_po_patches(
    world: str | Path,
    n: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    sites: str = "world",
) -> dict[str, Any]:
    """Render the presence-only patches of an already generated world, leaving every other file untouched.

    The world (its ``_SUCCESS`` names scale, seed and flavour) is generated again beside it with
    ``po_patch_sites = n`` (``None`` or ``n <= 0``: every PO survey), and its PO patch folders are moved into the
    world. Nothing else of the world changes, so artifacts built from it stay valid (their raw inputs keep their
    fingerprints). The world's ``_SUCCESS`` counts 0 PO patches while earlier ones are swapped out, then the new
    count: a crash midway never leaves a count that promises patches which are not there. The copy lives in
    ``.<name>-po-<pid>`` beside the world; one left by a killed run is removed by the next.

    ``sites``: ``"world"`` (the default) takes the PO surveys from the world's own PO metadata
    (:func:`read_po_surveys`), so a world an earlier generator version drew (whose PO draws the current one no longer
    repeats) gets them too; the regenerated environment (its rasters; GLC25, which ships none: its PA training
    metadata) must be byte-identical to the world's, so each patch shows its site's habitat in the world the other
    files describe. For a world of this version the patches are the same bytes either way. ``"draw"`` draws the PO
    surveys again, and the regenerated PO metadata must be byte-identical to the world's.

    Returns:
        ``{"po_patches": rendered, "seconds": ..., "sites": sites}``.

    Raises:
        FileNotFoundError: ``world`` is not a complete synthetic world.
        ValueError: ``sites`` is unknown; the regenerated PO records (``"draw"``) or environment (``"world"``) differ
            (a world from another generator version or custom parameters).
    """
    import filecmp

    if sites not in PO_PATCH_SITES:
        raise ValueError(f"sites={sites!r}: expected one of {PO_PATCH_SITES}")
    world = Path(world)
    flag = world / "_SUCCESS"
    if not flag.exists():
        raise FileNotFoundError(f"{world}: not a complete synthetic world (no _SUCCESS); generate it with 'glc synth'")
    info = json.loads(flag.read_text())
    t0 = time.time()
    total = int(info["counts"]["po_surveys"])
    n = total if n is None or int(n) <= 0 else min(int(n), total)
    given = read_po_surveys(world, info["flavour"]) if sites == "world" else None
    _clean_stale_tmp(world.parent, f"{world.name}-po")
    tmp = world.parent / f".{world.name}-po-tmp-{os.getpid()}"
    try:
        # the world's own parameters (a world drawn with e.g. --po-records differs from its scale's defaults)
        params = {k: v for k, v in info.get("params", {}).items() if k != "name"}
        scale = get_scale(info["scale"], **params)
        generate_world(tmp, scale, int(info["seed"]), info["flavour"], workers, progress, True, n, given)
        old, new = Layout(world, info["flavour"]), Layout(tmp, info["flavour"])
        if given is None and not filecmp.cmp(old.po_metadata(), new.po_metadata(), shallow=False):
            raise ValueError(
                f"{world}: regenerating ({info['scale']}, seed {info['seed']}) gave other PO records than the world's "
                f"{old.po_metadata().name}; the world comes from another generator version or parameters: render "
                f"its patches at its own PO sites (sites='world', the default) or generate it anew with "
                f"'glc synth --po-patches {n}'"
            )
        if given is not None:
            differ = _environment_differs(old, new)
            if differ:
                raise ValueError(
                    f"{world}: regenerating ({info['scale']}, seed {info['seed']}) gave another environment than the "
                    f"world's ({differ[:3]} differ): its PO patches would not show its own habitats; generate the "
                    f"world anew with 'glc synth --po-patches {n}'"
                )
        kinds = old.edition.patch_kinds
        missing = [str(new.patch_root("po", k)) for k in kinds if not new.patch_root("po", k).is_dir()]
        if missing:
            raise RuntimeError(f"{world}: the regenerated world has no PO patch folder {missing}; nothing was changed")
        _write_counts(flag, info, 0)
        for kind in kinds:
            src, dst = new.patch_root("po", kind), old.patch_root("po", kind)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                os.replace(dst, new.root / f"old-po-{kind}")  # out of the way, removed with the copy
            os.replace(src, dst)
        _write_counts(flag, info, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"po_patches": n, "seconds": round(time.time() - t0, 1), "sites": sites}


def _environment_differs(old: Layout, new: Layout) -> list[str]:
    """The files of the environment that differ between two worlds: every raster (GLC24), else the PA training
    metadata (GLC25 ships no full rasters; its species draws follow the same fields)."""
    import filecmp

    root = old.env_root()
    if root.is_dir() and any(root.rglob("*.tif*")):
        rel = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        return [
            r
            for r in rel
            if not (new.env_root() / r).is_file() or not filecmp.cmp(root / r, new.env_root() / r, shallow=False)
        ]
    a, b = old.pa_metadata("train"), new.pa_metadata("train")
    return [] if filecmp.cmp(a, b, shallow=False) else [a.name]


def _write_counts(flag: Path, info: dict[str, Any], po_patches: int) -> None:
    """Rewrite a world's ``_SUCCESS`` summary with ``counts.po_patches`` (atomically)."""
    from glc.io import atomic_file

    info["counts"]["po_patches"] = int(po_patches)
    with atomic_file(flag, "w") as fh:
        fh.write(json.dumps(info, indent=2, sort_keys=True))


def _glc25_test_count(p: ScaleParams) -> int:
    """GLC25's test size for a scale: the train size times :data:`GLC25_TEST_RATIO` (14,784 at full scale)."""
    return int(round(p.n_pa_train * GLC25_TEST_RATIO))


# ------------------------------------------------------------------------------------------------------ main
def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _features(
    pool: SpeciesPool,
    raw_x: np.ndarray,
    hfp: np.ndarray,
    hab: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    log_area: np.ndarray,
    effect: np.ndarray,
) -> SiteFeatures:
    """Assemble the species model's inputs for a set of sites (standardized with the pool's constants)."""
    x, h = pool.standardize(raw_x, hfp)
    xx, yy = local_xy_km(lon, lat)
    return SiteFeatures(x=x, hab=hab, hfp=h, xy=np.column_stack([xx, yy]), log_area=log_area, effect=effect)


def _clean_stale_tmp(parent: Path, name: str) -> None:
    """Remove ``.<name>-tmp-<pid>`` folders left by generators that are no longer running."""
    for p in parent.glob(f".{name}-tmp-*"):
        pid_text = p.name.rsplit("-", 1)[-1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        alive = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive or pid == os.getpid():
            logger.warning("removing stale partial synthetic world %s (its generator, pid %d, is gone)", p, pid)
            shutil.rmtree(p, ignore_errors=True)


def generate_world(
    out_dir: str | Path,
    scale: str | ScaleParams = "tiny",
    seed: int = 0,
    flavour: str = "kaggle",
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    po_patch_sites: int = 0,
    po_surveys: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Generate a synthetic GLC24 world at ``out_dir``.

    The world is written to ``out_dir.parent/.<name>-tmp-<pid>``, completed with a ``_SUCCESS`` JSON summary, and
    renamed to ``out_dir`` in one step, so a crash never leaves a half world that looks complete (stale temporary
    folders of dead generators are removed on the next run).

    Args:
        out_dir: destination folder (must not exist unless ``overwrite``).
        scale: ``"tiny"``, ``"demo"``, ``"full"`` (see :data:`glc.synth.scales.SCALES`) or a
            :class:`~glc.synth.scales.ScaleParams`.
        seed: non-negative integer; the same scale and seed give byte-identical files.
        flavour: ``"kaggle"`` (default) or ``"seafile"`` GLC24 file names, or ``"glc25"`` for a GLC25 world
            (:class:`glc.data.layout.Layout`; see the module docstring for what differs).
        workers: worker processes (default: available cores, at most 8); the output does not depend on it.
        progress: show tqdm progress bars.
        overwrite: replace an existing ``out_dir``.
        po_patch_sites: render the RGB + NIR patch pair of the first ``po_patch_sites`` PO surveys (all of them if
            larger) at :meth:`~glc.data.layout.Layout.patch_root` ``("po", ...)``, for the presence-only ETL path
            (GLC24 ships PO patches in the Seafile share only; 0 = none, the default).
        po_surveys: the PO surveys to use instead of drawing them (:func:`read_po_surveys` of a world: the columns
            :func:`glc.synth.sites.make_po_surveys` returns plus ``surveyId``), so a world an earlier generator
            version drew gets its PO patches where its CSV puts its sites (:func:`add_po_patches`).

    Returns:
        The summary also stored in ``_SUCCESS``: counts, seconds per stage, parameters and paths.

    Raises:
        ValueError: for a bad scale, seed, flavour or worker count.
        FileExistsError: if ``out_dir`` exists and ``overwrite`` is False.
    """
    params = get_scale(scale)
    if not isinstance(po_patch_sites, (int, np.integer)) or isinstance(po_patch_sites, bool) or po_patch_sites < 0:
        raise ValueError(
            f"po_patch_sites must be an int >= 0 (PO surveys whose patches are rendered), got {po_patch_sites!r}"
        )
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be 'kaggle' or 'seafile' (GLC24) or 'glc25' (GLC25), got {flavour!r}")
    if workers is None:
        workers = _default_workers()
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    out = Path(out_dir).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"synthetic world folder {out} already exists"
            + (" and is complete (has _SUCCESS)" if (out / SUCCESS).exists() else " without a _SUCCESS marker")
            + "; pass overwrite=True (CLI: delete the folder) to regenerate it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(out.parent, out.name)
    tmp = out.parent / f".{out.name}-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        summary = _build(tmp, params, int(seed), flavour, int(workers), progress, int(po_patch_sites), po_surveys)
        summary["paths"] = {"root": str(out), "truth": str(out / TRUTH_DIR)}
        (tmp / SUCCESS).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            old = out.parent / f".{out.name}-old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("synthetic world %s (%s, seed %d) written in %.1f s", out, params.name, seed, summary["seconds"])
    return summary


@dataclass
class _Build:
    """What one world's generation carries from phase to phase (:func:`_build`): the inputs, then what each
    phase makes. Every random stream is keyed by ``(seed, stream)`` (:func:`_rng`), so the phases' order and split
    never change a byte of the world."""

    root: Path
    p: ScaleParams
    seed: int
    flavour: str
    workers: int
    progress: bool
    po_patch_sites: int
    po_surveys: pd.DataFrame | None  # given PO surveys instead of drawn ones (add_po_patches of an older world)
    layout: Layout
    glc25: bool
    grid: RasterGrid
    model: EnvironmentModel
    stages: dict[str, float] = field(default_factory=dict)
    made: dict[str, Any] = field(default_factory=dict)  # each phase's outputs by name

    def take(self, *names: str) -> tuple[Any, ...]:
        """The outputs of earlier phases named ``names``."""
        return tuple(self.made[n] for n in names)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a phase into ``stages[name]``."""
        t = time.perf_counter()
        yield
        self.stages[name] = time.perf_counter() - t


def _build(
    root: Path,
    p: ScaleParams,
    seed: int,
    flavour: str,
    workers: int,
    progress: bool,
    po_patch_sites: int = 0,
    po_surveys: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Generate every file of a world under ``root`` in six phases, each a function of its own (see the module
    docstring), with BLAS/OpenMP pools held to one thread; return the summary."""
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(1))
        except ImportError:  # pragma: no cover
            pass
        t0 = time.perf_counter()
        layout = Layout(root, flavour)  # type: ignore[arg-type]
        b = _Build(
            root=root,
            p=p,
            seed=seed,
            flavour=flavour,
            workers=workers,
            progress=progress,
            po_patch_sites=po_patch_sites,
            po_surveys=po_surveys,
            layout=layout,
            glc25=layout.edition.name == "glc25",
            grid=RasterGrid.for_resolution(p.raster_res_deg),
            model=EnvironmentModel.create(_rng(seed, _S_FIELDS), p.n_towns),
        )
        for name, phase in (
            ("sites", _phase_sites),
            ("rasters", _phase_rasters),
            ("species", _phase_species),
            ("pa", _phase_pa),
            ("po", _phase_po),
        ):
            with b.stage(name):
                phase(b)
        return _phase_summary(b, t0)


def _phase_sites(b: _Build) -> None:
    """1. Surveys (PA sites and their surveys, train and test), PO occurrences, ids, pilot sites."""
    p, seed, grid, model, layout, glc25 = b.p, b.seed, b.grid, b.model, b.layout, b.glc25
    n_test = _glc25_test_count(p) if glc25 else p.n_pa_test
    pa = make_pa_surveys(
        _rng(seed, _S_PA),
        p.n_pa_train,
        n_test,
        grid,
        p.block_deg,
        p.mean_sites_per_cluster,
        p.cluster_km,
        shift=GLC25_SHIFT if glc25 else 1.0,
    )
    t = model.towns
    po = make_po_surveys(
        _rng(seed, _S_PO), p.n_po_records, p.po_records_per_survey, grid, t.lon, t.lat, t.pop, t.radius_km
    )
    po["surveyId"] = assign_ids(_rng(seed, _S_IDS), pa, len(po), test_id_start=layout.edition.test_id_min)
    if b.po_surveys is not None:  # the PA ids stay as drawn: only the PO surveys are another world's
        po = b.po_surveys.reset_index(drop=True)
    pilot = sample_pa_sites(_rng(seed, _S_PILOT), p.n_pilot, grid, p.mean_sites_per_cluster, p.cluster_km)
    pilot["area"], _ = draw_areas(_rng(seed, _S_PILOT, 1), len(pilot))
    b.made.update(pa=pa, po=po, pilot=pilot)


def _phase_rasters(b: _Build) -> None:
    """2. The environmental rasters, written block by block, and their values at every site."""
    p, seed, grid, model, layout, glc25 = b.p, b.seed, b.grid, b.model, b.layout, b.glc25
    root, flavour, workers, progress = b.root, b.flavour, b.workers, b.progress
    pa, po, pilot = b.take("pa", "po", "pilot")
    sites = pa.sites
    parts = [
        (sites["lon"].to_numpy(), sites["lat"].to_numpy()),
        (pilot["lon"].to_numpy(), pilot["lat"].to_numpy()),
        (po["lon"].to_numpy(), po["lat"].to_numpy()),
    ]
    rc = [grid.pixel_of(lon, lat) for lon, lat in parts]
    rows = np.concatenate([r for r, _ in rc])
    cols = np.concatenate([c for _, c in rc])
    state = _State(seed=seed, root=root, flavour=flavour, model=model, grid=grid)
    blocks = [(r0, min(grid.height, r0 + p.raster_tile)) for r0 in range(0, grid.height, p.raster_tile)]
    # GLC25 ships no full rasters: they are written to a scratch folder only to sample the sites, then deleted.
    raster_root = root / "_scratch_rasters" if glc25 else layout.env_root()
    with (
        RasterSetWriter(grid, raster_root, p.raster_tile, rows, cols) as writer,
        _executor(min(workers, len(blocks)), state) as run,
        _bar(len(blocks), "rasters", progress) as bar,
    ):
        for r0, block in run(_raster_block_task, blocks):
            writer.write_block(r0, block)
            bar.update()
    samples = writer.samples
    if glc25:
        shutil.rmtree(raster_root)
    n_sites, n_pilot = len(sites), len(pilot)
    cut = {"pa": slice(0, n_sites), "pilot": slice(n_sites, n_sites + n_pilot), "po": slice(n_sites + n_pilot, None)}
    env = {k: {name: v[s] for name, v in samples.items()} for k, s in cut.items()}
    for k, e in env.items():
        if np.isnan(e["bio1"]).any():
            raise RuntimeError(f"internal error: {k} sites without raster values (pixel not sampled)")
    b.made.update(sites=sites, rc=rc, state=state, env=env, n_sites=n_sites, n_pilot=n_pilot)


def _phase_species(b: _Build) -> None:
    """3. Site attributes (regions, climate, habitat) and the species pool, calibrated on the pilot sites."""
    p, seed, grid, model = b.p, b.seed, b.grid, b.model
    sites, rc, env, pilot, n_pilot, state = b.take("sites", "rc", "env", "pilot", "n_pilot", "state")
    centre_lon, centre_lat = grid.centre_of(*rc[0])
    pf = model.point_fields(centre_lon, centre_lat, with_towns=False)
    sites["region"] = assign_regions(
        sites["lon"].to_numpy(), sites["lat"].to_numpy(), env["pa"]["elevation"], pf["dry"], sites["country"].to_numpy()
    )
    climate = np.column_stack([pf[k] for k in ("t_mean", "t_amp", "p_ann", "dtr", "cont", "dry")])
    hab = {
        k: M.habitat_composition(_rng(seed, _S_HAB, i), env[k]["landcover_1"], env[k]["HFP2009"])
        for i, k in enumerate(("pa", "pilot", "po"))
    }
    raw_x = {k: niche_variables(env[k]) for k in env}
    pilot_xy = np.column_stack(local_xy_km(pilot["lon"].to_numpy(), pilot["lat"].to_numpy()))
    pool = make_species_pool(
        _rng(seed, _S_SPECIES),
        p.n_species,
        raw_x["pilot"],
        env["pilot"]["HFP2009"],
        pilot_xy,
        p.richness,
        p.prevalence_sigma,
        p.max_prevalence,
        p.niche_strength,
        p.area_slope,
    )
    pilot_f = _features(
        pool,
        raw_x["pilot"],
        env["pilot"]["HFP2009"],
        hab["pilot"],
        pilot["lon"].to_numpy(),
        pilot["lat"].to_numpy(),
        np.log(pilot["area"].to_numpy() / 100.0),
        _rng(seed, _S_EFFECT, 1).normal(0.0, p.survey_effect_sd, n_pilot),
    )
    achieved = calibrate_intercepts(pool, pilot_f)
    state.pool = pool
    b.made.update(climate=climate, hab=hab, raw_x=raw_x, pool=pool, achieved=achieved)


def _phase_pa(b: _Build) -> None:
    """4. The PA surveys, in chunks: metadata, Landsat and environmental CSVs, patches, cubes, hidden labels."""
    p, seed, layout, glc25, workers, progress = b.p, b.seed, b.layout, b.glc25, b.workers, b.progress
    pa, sites, n_sites, env, hab, raw_x, pool, climate, state = b.take(
        "pa", "sites", "n_sites", "env", "hab", "raw_x", "pool", "climate", "state"
    )
    import glc.data.cubes  # noqa: F401  (import torch once here, so forked workers inherit it)

    s = pa.surveys
    site_pos = pd.Series(np.arange(n_sites), index=sites.index)
    srow = site_pos.loc[s["site"].to_numpy()].to_numpy()  # survey -> row in `sites`
    site_f = _features(
        pool,
        raw_x["pa"],
        env["pa"]["HFP2009"],
        hab["pa"],
        sites["lon"].to_numpy(),
        sites["lat"].to_numpy(),
        np.log(sites["area"].to_numpy() / 100.0),
        np.zeros(n_sites),
    )
    effect = _rng(seed, _S_EFFECT, 0).normal(0.0, p.survey_effect_sd, len(s))
    survey_f = site_f.take(srow)
    survey_f.effect = effect
    site_xy = None
    if glc25:
        from glc.geo import to_laea

        site_xy = np.column_stack(to_laea(sites["lon"].to_numpy(), sites["lat"].to_numpy()))
    prefix_site = [f"{_fnum(lo)},{_fnum(la)}" for lo, la in zip(sites["lon"], sites["lat"])]
    tail_site = [f"{a},{r},{c}" for a, r, c in zip(sites["area_text"], sites["region"], sites["country"])]
    chunks: list[_PAChunk] = []
    for split in ("train", "test"):
        idx = np.flatnonzero(s["split"].to_numpy() == split)
        for ci, start in enumerate(range(0, len(idx), p.chunk_size)):
            sel = idx[start : start + p.chunk_size]
            r = srow[sel]
            chunks.append(
                _PAChunk(
                    split=split,
                    index=ci,
                    survey_id=s["surveyId"].to_numpy()[sel],
                    site=s["site"].to_numpy()[sel],
                    year=s["year"].to_numpy()[sel],
                    meta_prefix=[
                        f"{prefix_site[j]},{y},{u},{tail_site[j]}"
                        for j, y, u in zip(r, s["year"].to_numpy()[sel], s["unc_text"].to_numpy()[sel])
                    ],
                    env={k: v[r] for k, v in env["pa"].items()},
                    features=survey_f.take(sel),
                    climate=climate[r],
                    xy=None if site_xy is None else site_xy[r],
                )
            )
    csv = _CsvSet()
    train_counts = np.zeros(pool.n, dtype=np.int64)
    truth_parts: list[dict[str, np.ndarray]] = []
    counts = {"train_rows": 0, "dirty_hf_rows": 0, "empty_species_rows": 0}
    n_landcover_test = 0
    try:
        for split in ("train", "test"):
            cols_meta = ["lon", "lat", "year", "geoUncertaintyInM", "areaInM2", "region", "country"]
            cols_meta += ["speciesId", "surveyId"] if split == "train" else ["surveyId"]
            csv.open(f"{split}/meta", layout.pa_metadata(split), cols_meta)  # type: ignore[arg-type]
            for band in LANDSAT_BANDS:
                csv.open(
                    f"{split}/landsat/{band}",
                    layout.landsat_csv(split, band),  # type: ignore[arg-type]
                    ("surveyId",) + LANDSAT_CSV_COLUMNS,
                )
            for comp, columns in ENV_COLUMNS.items():
                # GLC25's test landcover CSV has an extra leading, unnamed index column (a pandas index)
                index = ("",) if (glc25 and split == "test" and comp == "landcover") else ()
                csv.open(f"{split}/{comp}", layout.env_csv(split, comp), index + ("surveyId",) + columns)  # type: ignore[arg-type]
        with _executor(workers, state) as run, _bar(len(chunks), "PA surveys", progress) as bar:
            for res in run(_pa_chunk_task, chunks):
                sp = res["split"]
                csv.write(f"{sp}/meta", res["meta"])
                for band, text in zip(LANDSAT_BANDS, res["landsat"]):
                    csv.write(f"{sp}/landsat/{band}", text)
                for comp in ENV_COLUMNS:
                    text = res[comp]
                    if glc25 and sp == "test" and comp == "landcover":
                        lines = text.splitlines(keepends=True)
                        text = "".join(f"{n_landcover_test + j},{line}" for j, line in enumerate(lines))
                        n_landcover_test += len(lines)
                    csv.write(f"{sp}/{comp}", text)
                counts["dirty_hf_rows"] += res["n_dirty_hf"]
                counts["empty_species_rows"] += res.get("empty_species_rows", 0)
                if sp == "train":
                    train_counts += res["species_counts"]
                    counts["train_rows"] += res["rows"]
                else:
                    truth_parts.append(res["truth"])
                bar.update()
    finally:
        csv.close()
    b.made.update(s=s, train_counts=train_counts, truth_parts=truth_parts, counts=counts)


def _phase_po(b: _Build) -> None:
    """5. The presence-only occurrences, in chunks (and their patches where asked)."""
    p, layout, glc25, workers, progress, po_patch_sites = (
        b.p,
        b.layout,
        b.glc25,
        b.workers,
        b.progress,
        b.po_patch_sites,
    )
    po, env, hab, raw_x, pool, state = b.take("po", "env", "hab", "raw_x", "pool", "state")
    po_f = _features(
        pool,
        raw_x["po"],
        env["po"]["HFP2009"],
        hab["po"],
        po["lon"].to_numpy(),
        po["lat"].to_numpy(),
        np.zeros(len(po)),
        np.zeros(len(po)),
    )
    po_prefix = [
        f"{y},{m}.0,{d}.0,{_fnum(la)},{_fnum(lo)},{u},{tr},{dt},{doy}"
        for y, m, d, la, lo, u, tr, dt, doy in zip(
            po["year"],
            po["month"],
            po["day"],
            po["lat"],
            po["lon"],
            po["unc_text"],
            po["taxonRank"],
            po["date"],
            po["dayOfYear"],
        )
    ]
    po_chunks = [
        _POChunk(
            index=ci,
            prefix=po_prefix[a : a + p.po_chunk_size],
            survey_id=po["surveyId"].to_numpy()[a : a + p.po_chunk_size],
            n_records=po["n_records"].to_numpy()[a : a + p.po_chunk_size],
            features=po_f.take(slice(a, a + p.po_chunk_size)),
            year=po["year"].to_numpy()[a : a + p.po_chunk_size],
            patch=np.arange(a, min(a + p.po_chunk_size, len(po))) < int(po_patch_sites),
            xy=_po_xy(po, a, p.po_chunk_size, po_patch_sites) if glc25 else None,
        )
        for ci, a in enumerate(range(0, len(po), p.po_chunk_size))
    ]
    po_patches = 0
    po_rows = 0
    po_counts = np.zeros(pool.n, dtype=np.int64)
    csv_po = _CsvSet()
    try:
        csv_po.open(
            "po",
            layout.po_metadata(),
            (
                "year",
                "month",
                "day",
                "lat",
                "lon",
                "geoUncertaintyInM",
                "taxonRank",
                "date",
                "dayOfYear",
                "speciesId",
                "surveyId",
            ),
        )
        with _executor(workers, state) as run, _bar(len(po_chunks), "PO occurrences", progress) as bar:
            for res in run(_po_chunk_task, po_chunks):
                csv_po.write("po", res["text"])
                po_rows += res["rows"]
                po_patches += res["patches"]
                po_counts += res["species_counts"]
                bar.update()
    finally:
        csv_po.close()
    b.made.update(po_rows=po_rows, po_patches=po_patches, po_counts=po_counts)


def _phase_summary(b: _Build, t0: float) -> dict[str, Any]:
    """6. The sample submission and the hidden truth; the world's summary."""
    p, seed, flavour, workers, root, layout, glc25, grid = (
        b.p,
        b.seed,
        b.flavour,
        b.workers,
        b.root,
        b.layout,
        b.glc25,
        b.grid,
    )
    stages = b.stages
    s, pool, train_counts, truth_parts, counts, sites, n_sites = b.take(
        "s", "pool", "train_counts", "truth_parts", "counts", "sites", "n_sites"
    )
    po, po_rows, po_patches, po_counts, achieved = b.take("po", "po_rows", "po_patches", "po_counts", "achieved")
    test = s[s["split"] == "test"]
    top25 = pool.ids[np.argsort(-train_counts, kind="stable")[:25]]
    sub = " ".join(str(int(i)) for i in top25)
    with layout.sample_submission().open("w", encoding="utf-8", newline="") as f:
        f.write("surveyId,predictions\n")
        f.writelines(f"{int(sid)},{sub}\n" for sid in test["surveyId"])
    _write_truth(root / TRUTH_DIR, truth_parts, pool)

    n_train = int((s["split"] == "train").sum())
    extra: dict[str, Any] = {}
    if glc25:
        extra["edition"] = "glc25"
        extra["shift"] = shift_summary(s, sites)
        extra["counts_glc25"] = {"empty_species_rows": counts["empty_species_rows"]}
    summary = {
        "generator_version": GENERATOR_VERSION,
        "scale": p.name,
        "seed": seed,
        "flavour": flavour,
        "workers": workers,
        "params": p.to_dict(),
        "counts": {
            "pa_train_surveys": n_train,
            "pa_train_rows": counts["train_rows"],
            "pa_test_surveys": int(len(test)),
            "pa_sites": int(n_sites),
            "po_surveys": int(len(po)),
            "po_records": int(po_rows),
            "po_patches": int(po_patches),
            "species_pool": int(pool.n),
            "species_in_pa_train": int((train_counts > 0).sum()),
            "species_in_po": int((po_counts > 0).sum()),
            "mean_species_per_pa_train_survey": counts["train_rows"] / max(n_train, 1),
            "dirty_human_footprint_rows": counts["dirty_hf_rows"],
            "pilot_prevalence_max_abs_error": float(np.max(np.abs(achieved - pool.target_prevalence))),
        },
        "raster_grid": {
            "width": grid.width,
            "height": grid.height,
            "res_deg": grid.res,
            "west": grid.west,
            "north": grid.north,
        },
        "stages_seconds": {k: round(v, 3) for k, v in stages.items()},
        "seconds": round(time.perf_counter() - t0, 3),
        **extra,
    }
    return summary


def _po_xy(po: pd.DataFrame, start: int, size: int, n_patches: int) -> np.ndarray | None:
    """EPSG:3035 x/y of the PO surveys of one chunk whose GLC25 patches are rendered (zeros for the others)."""
    stop = min(start + size, len(po))
    out = np.zeros((stop - start, 2))
    k = max(0, min(stop, int(n_patches)) - start)
    if k:
        from glc.geo import to_laea

        out[:k] = np.column_stack(
            to_laea(po["lon"].to_numpy()[start : start + k], po["lat"].to_numpy()[start : start + k])
        )
    return out


def shift_summary(surveys: pd.DataFrame, sites: pd.DataFrame) -> dict[str, Any]:
    """The size of the test set's geographic shift: the total-variation distance between the train and test
    country mixes, the countries most over-represented in test, and the median distance (km) from a test survey's
    plot to the nearest train plot (the distance a model has to extrapolate)."""
    from scipy.spatial import cKDTree

    from glc.geo import to_laea

    country = sites["country"].reindex(surveys["site"].to_numpy()).to_numpy()
    is_test = (surveys["split"] == "test").to_numpy()
    tr = pd.Series(country[~is_test]).value_counts(normalize=True)
    te = pd.Series(country[is_test]).value_counts(normalize=True)
    both = tr.index.union(te.index)
    tr, te = tr.reindex(both, fill_value=0.0), te.reindex(both, fill_value=0.0)
    over = (te - tr).sort_values(ascending=False)
    x, y = to_laea(sites["lon"].to_numpy(), sites["lat"].to_numpy())
    pos = pd.Series(np.arange(len(sites)), index=sites.index)
    srow = pos.loc[surveys["site"].to_numpy()].to_numpy()
    xy = np.column_stack([x, y])[srow]
    d_test, _ = cKDTree(xy[~is_test]).query(xy[is_test])
    return {
        "shift_factor": GLC25_SHIFT,
        "country_tv_distance": round(float(0.5 * np.abs(te - tr).sum()), 4),
        # [country, share of test surveys, share of train surveys], most over-represented in test first
        "over_represented_in_test": [[str(k), round(float(te[k]), 4), round(float(tr[k]), 4)] for k in over.index[:5]],
        "median_test_to_train_km": round(float(np.median(d_test)) / 1000.0, 3),
    }


def _write_truth(folder: Path, parts: list[dict[str, np.ndarray]], pool: SpeciesPool) -> None:
    """Write the test truth: sparse true probabilities and drawn labels (npz) and the solution CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    sid = np.concatenate([q["survey_id"] for q in parts])
    nnz = np.concatenate([q["nnz"] for q in parts])
    lnnz = np.concatenate([q["label_nnz"] for q in parts])
    index = np.concatenate([q["index"] for q in parts])
    prob = np.concatenate([q["prob"] for q in parts])
    lindex = np.concatenate([q["label_index"] for q in parts])
    indptr = np.concatenate([[0], np.cumsum(nnz)]).astype(np.int64)
    lptr = np.concatenate([[0], np.cumsum(lnnz)]).astype(np.int64)
    with (folder / TRUTH_NPZ).open("wb") as f:
        np.savez_compressed(
            f,
            survey_id=sid,
            species_id=pool.ids,
            prob_indptr=indptr,
            prob_index=index,
            prob=prob,
            label_indptr=lptr,
            label_index=lindex,
            min_prob=np.float64(TRUTH_MIN_PROB),
        )
    with (folder / SOLUTION_CSV).open("w", encoding="utf-8", newline="") as f:
        f.write("surveyId,target_species_ids\n")
        for i, s in enumerate(sid):
            labels = pool.ids[lindex[lptr[i] : lptr[i + 1]]]
            f.write(f"{int(s)}," + " ".join(str(int(x)) for x in labels) + "\n")
