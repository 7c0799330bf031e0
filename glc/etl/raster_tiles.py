"""``RasterTiles``: DCT tiles of every GeoTIFF of a raster group at every PA survey (Spark wrapper over
:func:`glc.features.tiles.extract_tiles`).

Artifact (one row per PA survey, train and test, sorted by ``surveyId``)::

    surveyId long, split string,
    dct array<float>             # n_raster_bands * k * k, see "layout" below
    valid_fraction array<float>  # n_raster_bands: fraction of the tile's pixels that are valid (0 = none)
    inside array<boolean>        # n_rasters: is the survey's pixel inside that raster?

Layout of ``dct``: raster-major (the order of :meth:`glc.data.layout.Layout.raster_paths`), then band (1-based band
order of the file), then the ``k x k`` block row-major (vertical frequency ``u``, then horizontal ``v``)::

    dct[((j * k) + u) * k + v]   where j enumerates the (raster, band) pairs, listed in ``_SUCCESS`` "bands"

Tile conventions (site pixel, centring of even tiles, the fill rule for nodata / out-of-raster pixels, finite
outputs) are those of :mod:`glc.features.tiles`. The global means used for tiles with no valid pixel are computed
**once on the driver** per raster and passed to every executor, so every partition fills identically.

Sites outside a raster are kept (their row is computed by the same rule, with ``valid_fraction == 0`` when their
window misses the raster entirely) and flagged in ``inside``; ``_SUCCESS`` counts them per raster
(``n_outside``), so a caller can drop or keep them knowingly.

Spark: the survey table is range-partitioned on a lon/lat grid cell (``cell_deg``, row-major from the north-west),
and sorted within partitions, so each partition holds one compact strip of Europe; every executor opens each
raster **once per partition** (paths are shipped, never pixels) and processes ``batch_size`` sites per call (by
default the whole partition: larger batches share more window reads between neighbouring sites). The tiles never
pass through the JVM: the executors spill them to ``surveyId`` buckets and write the sorted ``data/`` files
themselves (:mod:`glc.etl.staging`); ``_SUCCESS`` carries a profile of where the time went (:mod:`glc.etl.profile`).

Bad input (a corrupt or truncated block, an unreadable file): the batch is bisected until the failing sites are
isolated, so exactly the surveys whose own window cannot be read are reported. Without ``skip_bad_inputs`` the job
fails with a :class:`~glc.data.errors.DataError` naming the file, the window and the surveys; with it they are
counted, logged and written to ``quarantine/`` (``surveyId, file, reason``) and left out of ``data/``. A tile
that could not be read is never written as a zero tile.

The job is written by the writer every per-survey feature job shares (:func:`glc.etl.artifact.write_feature_artifact`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from glc.data.errors import DataError
from glc.data.layout import RASTER_GROUPS, Layout
from glc.etl.artifact import (
    arrow_schema,
    auto_partitions,
    bad_batch,
    check_surveys,
    good_batch,
    list_array,
    list_matrix,
    locality_partition,
    rebatch,
    staged_schema,
    write_feature_artifact,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from glc.etl.staging import FeatureJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RasterPlan:
    """What an executor needs to tile one raster: its path, bands and the driver-computed global means."""

    path: str
    bands: tuple[int, ...]
    global_means: tuple[float, ...] | None

    @property
    def band_names(self) -> list[str]:
        """``<file stem>:<band>`` for each band."""
        return [f"{Path(self.path).stem}:{b}" for b in self.bands]


def plan_rasters(paths: Sequence[str | Path], tile_size: int, k: int, fill: str = "tile_mean") -> list[RasterPlan]:
    """Open each raster once on the driver: bands, and the global means used for tiles with no valid pixel.

    When the global means cannot be computed (a corrupt block in the decimated read, a band without any valid
    pixel), the plan carries ``None`` and a warning is logged: executors then compute them only if a tile needs
    them, so that failure is attributed to (and fails or quarantines) exactly the surveys that need the fallback.

    Raises:
        DataFileNotFoundError: if a raster is missing.
        DataError: if a raster cannot be opened or has no CRS (naming the file).
    """
    from glc.features.tiles import TileExtractor, TileSpec

    spec = TileSpec(tile_size=tile_size, k=k, fill=fill)  # type: ignore[arg-type]
    plans = []
    for p in paths:
        with TileExtractor(p, spec) as ex:
            try:
                means: tuple[float, ...] | None = tuple(float(m) for m in ex.global_means())
            except DataError as e:
                log.warning("global means of %s unavailable (%s); only tiles that need them will fail", p, e)
                means = None
            plans.append(RasterPlan(str(p), tuple(ex.bands), means))
    return plans


#: Feature columns of the raster-tile job.
TILES_DDL = "dct array<float>, valid_fraction array<float>, inside array<boolean>"


def _extract_isolating(
    ex: Any, ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, rows: np.ndarray, out: dict, bad: list
) -> None:
    """Extract ``rows``; on a DataError bisect until the failing sites are single (each then recorded as bad)."""
    try:
        res = ex.extract(ids[rows], lon[rows], lat[rows])
    except DataError as e:
        if len(rows) == 1:
            bad.append((int(rows[0]), str(ex.path), f"surveyId {int(ids[rows[0]])}: {e}"))
            return
        mid = len(rows) // 2
        _extract_isolating(ex, ids, lon, lat, rows[:mid], out, bad)
        _extract_isolating(ex, ids, lon, lat, rows[mid:], out, bad)
        return
    out["dct"][rows] = res["dct"].reshape(len(rows), -1)
    out["valid_fraction"][rows] = res["valid_fraction"]
    out["inside"][rows] = res["inside"]


def tile_batch(
    extractors: Sequence[Any], ids: np.ndarray, lons: np.ndarray, lats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
    """DCT tiles of a batch of sites over several rasters (pure; one open extractor per raster).

    Args:
        extractors: :class:`glc.features.tiles.TileExtractor` per raster, all with the same ``k``.
        ids: survey ids (n,).
        lons: WGS84 longitudes (n,).
        lats: WGS84 latitudes (n,).

    Returns:
        ``(dct (n, sum(bands) * k * k) float32, valid_fraction (n, sum(bands)) float32, inside (n, rasters) bool,
        bad)`` where ``bad`` lists ``(row, file, reason)`` for sites whose window could not be read (their rows in
        the arrays are undefined and must not be used).
    """
    n = len(ids)
    dcts, fracs, insides, bad = [], [], [], []
    for ex in extractors:
        nb, k = len(ex.bands), ex.spec.k
        out = {
            "dct": np.zeros((n, nb * k * k), np.float32),
            "valid_fraction": np.zeros((n, nb), np.float32),
            "inside": np.zeros(n, bool),
        }
        if n:
            _extract_isolating(ex, ids, lons, lats, np.arange(n), out, bad)
        dcts.append(out["dct"])
        fracs.append(out["valid_fraction"])
        insides.append(out["inside"])
    return np.concatenate(dcts, axis=1), np.concatenate(fracs, axis=1), np.stack(insides, axis=1), bad


def _tile_partition_fn(
    plans: Sequence[RasterPlan], tile_size: int, k: int, fill: str, batch_size: int, schema: pa.Schema, acc: Any = None
) -> Callable:
    """The ``mapInArrow`` function: opens every raster once per partition, tiles ``batch_size`` sites per call."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from glc.etl.profile import PhaseClock
        from glc.features.tiles import TileExtractor, TileSpec

        clock = PhaseClock(acc)
        spec = TileSpec(tile_size=tile_size, k=k, fill=fill)  # type: ignore[arg-type]
        extractors = []
        try:
            for p in plans:
                means = None if p.global_means is None else list(p.global_means)
                extractors.append(TileExtractor(p.path, spec, list(p.bands), means))
                extractors[-1].clock = clock
            clock.lap("open")
            for rb in clock.batches(rebatch(batches, batch_size)):
                ids = rb.column("surveyId").to_numpy(zero_copy_only=False).astype(np.int64)
                splits = rb.column("split").to_pylist()
                lon = rb.column("lon").to_numpy(zero_copy_only=False).astype(np.float64)
                lat = rb.column("lat").to_numpy(zero_copy_only=False).astype(np.float64)
                clock.rows += len(ids)
                clock.lap("arrow")
                dct, frac, inside, bad = tile_batch(extractors, ids, lon, lat)
                clock.lap("transform")
                ok = np.ones(len(ids), bool)
                ok[[i for i, _, _ in bad]] = False
                if ok.any():
                    yield from clock.emit(
                        good_batch(
                            schema,
                            {
                                "surveyId": pa.array(ids[ok], pa.int64()),
                                "split": pa.array([s for s, g in zip(splits, ok) if g], pa.string()),
                                "dct": list_array(dct[ok]),
                                "valid_fraction": list_array(frac[ok]),
                                "inside": list_array(inside[ok], pa.bool_()),
                            },
                        )
                    )
                if bad:
                    yield from clock.emit(bad_batch(schema, bad, ids, splits))
        finally:
            for ex in extractors:
                ex.close()
            clock.flush()

    return run


def raster_tiles_job(
    spark: SparkSession,
    surveys: DataFrame,
    plans: Sequence[RasterPlan],
    *,
    tile_size: int = 128,
    k: int = 8,
    fill: str = "tile_mean",
    partitions: int = 0,
    batch_size: int = 50_000,
    cell_deg: float = 1.0,
    acc: Any = None,
) -> FeatureJob:
    """Transform: the raster-tile job of ``surveys`` over the planned rasters (lazy; run by
    :func:`write_feature_artifact`).

    Args:
        spark: the session.
        surveys: ``surveyId, split, lon, lat`` (the SurveyTable).
        plans: from :func:`plan_rasters`.
        tile_size: window side in pixels.
        k: DCT block kept.
        fill: fill rule of :class:`glc.features.tiles.TileSpec`.
        partitions: Spark partitions (``0``: one per 50,000 sites, at least one per core).
        batch_size: sites per :meth:`~glc.features.tiles.TileExtractor.extract` call.
        cell_deg: side of the lon/lat grid cells the sites are range-partitioned and sorted on.
        acc: a :func:`glc.etl.profile.phase_accumulator` the executors add their per-phase seconds to (optional).

    Returns:
        The job; its :meth:`~glc.etl.staging.FeatureJob.frame` has the columns of :func:`staged_schema` of
        :data:`TILES_DDL`.
    """
    from pyspark.sql import functions as F

    from glc.etl.staging import FeatureJob

    check_surveys(surveys, ("surveyId", "split", "lon", "lat"))
    if not plans:
        raise ValueError("no raster to tile: plans is empty (Layout.raster_paths found no GeoTIFF)")
    if not cell_deg > 0:
        raise ValueError(f"cell_deg must be > 0 degrees, got {cell_deg}")
    parts = auto_partitions(spark, surveys, 50_000, partitions)
    sites = surveys.select("surveyId", "split", "lon", "lat").withColumns(
        {"_cy": F.floor((90.0 - F.col("lat")) / cell_deg), "_cx": F.floor((F.col("lon") + 180.0) / cell_deg)}
    )
    ddl = staged_schema(TILES_DDL)
    schema = arrow_schema(spark, ddl)
    fn = _tile_partition_fn(list(plans), tile_size, k, fill, batch_size, schema, acc)
    rows = locality_partition(sites, parts, ["_cy", "_cx"]).select("surveyId", "split", "lon", "lat")
    n_bands = sum(len(p.bands) for p in plans)
    row_bytes = 24 + 4 * n_bands * (k * k + 1) + len(plans)
    return FeatureJob(rows, fn, ddl, schema, row_bytes, surveys)


def _tile_counts(plans: Sequence[RasterPlan]) -> Callable[[pa.Table], dict[str, Any]]:
    """Per-raster sites outside, per-band empty tiles, sites outside any raster (additive over good rows)."""
    names = [n for p in plans for n in p.band_names]
    stems = [Path(p.path).stem for p in plans]

    def counts(table: pa.Table) -> dict[str, Any]:
        inside = list_matrix(table.column("inside"), len(stems), bool)
        frac = list_matrix(table.column("valid_fraction"), len(names))
        return {
            "n_outside": {s: int((~inside[:, i]).sum()) for i, s in enumerate(stems)},
            "n_outside_any": int((~inside.all(axis=1)).sum()),
            "n_empty_tiles": {n: int((frac[:, j] == 0).sum()) for j, n in enumerate(names)},
        }

    return counts


def write_raster_tiles(
    spark: SparkSession,
    layout: Layout,
    surveys: DataFrame,
    out_dir: str | Path,
    group: str,
    *,
    k: int = 8,
    tile_size: int = 128,
    fill: str = "tile_mean",
    skip_bad_inputs: bool = False,
    max_bad_fraction: float = 0.01,
    partitions: int = 0,
    batch_size: int = 50_000,
) -> dict[str, Any]:
    """Extract + transform + load of ``RasterTiles``: the artifact described in the module docstring.

    Args:
        spark: the session.
        layout: the data root (its :meth:`~glc.data.layout.Layout.raster_paths` of ``group`` are tiled).
        surveys: the SurveyTable frame.
        out_dir: the artifact folder.
        group: raster group (:data:`glc.data.layout.RASTER_GROUPS`).
        k: DCT block kept.
        tile_size: window side in pixels.
        fill: fill rule (see :mod:`glc.features.tiles`).
        skip_bad_inputs: quarantine surveys whose window cannot be read instead of failing.
        partitions: Spark partitions (0 = automatic).
        batch_size: sites per extraction call.

    Returns:
        The ``_SUCCESS`` summary: counts, the ``bands`` names in ``dct`` order, per-raster ``n_outside``, per-band
        ``n_empty_tiles``, and ``absent_rasters`` (files of the group not found under the data root, also logged).

    Raises:
        DataError: on bad inputs without ``skip_bad_inputs`` (naming file, window and surveys), or a raster that
            cannot be opened at all.
        LayoutError: if the group has no GeoTIFF under the data root.
    """
    paths = layout.raster_paths(group)
    found = {Path(p).name.lower() for p in paths}
    absent = [rel for rel in RASTER_GROUPS[group] if Path(rel).name.lower() not in found]
    if absent:
        log.warning(
            "RasterTiles(%s): %d of the group's %d GeoTIFFs are absent under %s and are left out of the features: %s",
            group,
            len(absent),
            len(RASTER_GROUPS[group]),
            layout.env_root(),
            absent,
        )
    from glc.etl.profile import DriverPhases, phase_accumulator

    phases, acc = DriverPhases(), phase_accumulator(spark)
    with phases.phase("plan"):
        plans = plan_rasters(paths, tile_size, k, fill)
    names = [n for p in plans for n in p.band_names]
    summary: dict[str, Any] = {
        "params": {"raster_group": group, "k": k, "tile_size": tile_size, "fill": fill},
        "rasters": [p.path for p in plans],
        "absent_rasters": absent,
        "bands": names,
        "global_means": {
            n: m for p in plans if p.global_means is not None for n, m in zip(p.band_names, p.global_means)
        },
        "columns": {
            "dct": f"{len(names)} raster bands x {k}x{k}: dct[((j*k)+u)*k+v], j over 'bands'",
            "valid_fraction": "one per raster band, order of 'bands'",
            "inside": "one per raster, order of 'rasters'",
        },
    }
    job = raster_tiles_job(
        spark,
        surveys,
        plans,
        tile_size=tile_size,
        k=k,
        fill=fill,
        partitions=partitions,
        batch_size=batch_size,
        acc=acc,
    )
    return write_feature_artifact(
        spark,
        job,
        out_dir,
        what=f"RasterTiles({group}, k={k}, tile_size={tile_size})",
        skip_bad_inputs=skip_bad_inputs,
        max_bad_fraction=max_bad_fraction,
        summary=summary,
        extra_summary=_tile_counts(plans),
        profile=(phases, acc),
    )
