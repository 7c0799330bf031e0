"""``PatchTiles``: satellite patches -> DCT features (and optionally the raw bytes), one row per survey.

Artifact (one row per PA survey, train and test, sorted by ``surveyId``)::

    surveyId long, split string,
    dct array<float>   # 4 * k * k, channel-major: dct[(c * k + u) * k + v], channels R, G, B, NIR
    raw binary         # only with keep_raw (GLC24): the (4, 128, 128) uint8 patch, C order (channel, row, column)
    nodata int         # only for GeoTIFF patches (GLC25): nodata pixels of the survey's patch, over its 4 bands

``dct`` of channel ``c`` is :func:`glc.features.dct.dct2` (orthonormal DCT-II, top-left ``k x k`` block) of the patch
channel as float32, channels ``R, G, B, NIR`` in each edition's reader (:data:`glc.data.patches.PATCH_FORMATS`):

* GLC24 (``jpeg_pair``): the uint8 pixels of the RGB and NIR JPEGs (malpolon's ``concat(R, G, B, NIR)``), 128 px;
* GLC25 (``geotiff``): the int16 reflectances of the 4-band GeoTIFF, 64 px (so ``k <= 64``; ``k = 64`` is
  lossless). A nodata pixel (-1) is never averaged in: it is filled with the mean of its band's valid pixels in
  the same patch before the transform, and counted in ``nodata`` (the ``_SUCCESS`` summary adds the surveys with
  any nodata and the pixels). Normalisation is left to the model-input table, which records the train-split
  mean and standard deviation of every coefficient (``meta.json``), so no ``/255`` or fixed reflectance scale is
  assumed anywhere.

``u`` is the vertical frequency (rows, north to south), ``v`` the horizontal one.

Spark: surveys are range-partitioned on their patch folder (``CD/AB`` = the last two, then the previous two digits
of the id, see :func:`glc.data.layout.patch_subdirs`), so a partition reads the files of neighbouring folders; each
executor decodes its patches and computes the DCT of a whole batch in one pair of matrix products.

Bad input (a missing, truncated or corrupt file, a wrong mode, size, band count or dtype, a patch whose band is all
nodata): without ``skip_bad_inputs`` the job fails with a :class:`~glc.data.errors.DataError` naming the file and
the survey; with it the survey is left out of ``data/``, counted in ``_SUCCESS`` and listed in ``quarantine/``
(``surveyId, file, reason``), up to ``max_bad_fraction`` of the surveys. Pillow's ``LOAD_TRUNCATED_IMAGES`` stays
``False``: a cut JPEG is never decoded into grey filler pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from glc.data.errors import DataError
from glc.data.layout import Layout
from glc.etl.artifact import (
    arrow_schema,
    auto_partitions,
    bad_batch,
    binary_array,
    check_surveys,
    good_batch,
    list_array,
    locality_partition,
    rebatch,
    staged_schema,
    write_feature_artifact,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from glc.etl.staging import FeatureJob

log = logging.getLogger(__name__)

#: Number of channels of a patch (R, G, B, NIR).
N_CHANNELS = 4


def patch_ddl(keep_raw: bool, nodata: bool = False) -> str:
    """Feature DDL of the patch job (``nodata``: the format has nodata pixels, GLC25's GeoTIFFs)."""
    return "dct array<float>" + (", raw binary" if keep_raw else "") + (", nodata int" if nodata else "")


def fill_nodata(patches: np.ma.MaskedArray) -> tuple[np.ndarray, np.ndarray]:
    """Fill each nodata pixel with the mean of its band's valid pixels in the same patch (pure).

    Args:
        patches: ``(m, C, H, W)`` masked patches (mask True = nodata); every band of every patch has a valid pixel
            (the readers reject the others).

    Returns:
        ``(float32 (m, C, H, W) pixels, int64 (m,) nodata pixel counts)``.
    """
    data = np.asarray(patches.data, np.float32)
    mask = np.ma.getmaskarray(patches)
    counts = mask.reshape(len(data), -1).sum(axis=1).astype(np.int64)
    if counts.any():
        valid = ~mask
        n_valid = valid.sum(axis=(2, 3), keepdims=True)
        means = (np.where(valid, data, 0.0).sum(axis=(2, 3), keepdims=True, dtype=np.float64) / n_valid).astype(
            np.float32
        )
        data = np.where(mask, means, data)
    return data, counts


def patch_dct(patches: np.ndarray, k: int) -> np.ndarray:
    """DCT features of a batch of patches (pure).

    Args:
        patches: ``(m, 4, H, W)`` uint8 patches (channels R, G, B, NIR).
        k: the top-left ``k x k`` block of each channel's orthonormal 2D DCT-II is kept.

    Returns:
        ``(m, 4 * k * k)`` float32, channel-major: ``out[i, (c * k + u) * k + v] == dct2(patch[c] as float32)[u, v]``.
    """
    from glc.features.dct import dct2

    p = np.asarray(patches)
    if p.ndim != 4 or p.shape[1] != N_CHANNELS:
        raise ValueError(f"patch_dct: expected patches of shape (m, {N_CHANNELS}, H, W), got {p.shape}")
    if len(p) == 0:
        return np.zeros((0, N_CHANNELS * k * k), np.float32)
    return dct2(p.astype(np.float32), k).reshape(len(p), N_CHANNELS * k * k).astype(np.float32, copy=False)


#: Threads reading patch files ahead of the decoder. Cold small-file reads are bounded by the disk's request rate,
#: which grows with the requests in flight: 16 readers fetched 4x the files/s of one on this project's VM disk
#: (5,655 vs 1,388 files/s), and cloud persistent disks behave alike. Decoding stays on the task's own thread.
IO_THREADS = 16


def read_patch_batch(
    layout: Layout, ids: np.ndarray, splits: list[str], pool: Any = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]], np.ndarray]:
    """Read the patches of a batch of surveys in their edition's format, recording bad inputs instead of raising.

    Args:
        layout: the data root.
        ids: survey ids (m,).
        splits: ``"train"``/``"test"``/``"po"`` per survey.
        pool: a ``concurrent.futures`` executor that reads the files' bytes ahead (``None``: read inline).

    Returns:
        ``(patches, ok (m,) bool, bad, nodata (m,) int64)``: ``patches`` is ``(m, 4, S, S)`` in the format's pixels
        (GLC24: uint8, 128 px) or, for a format with nodata (GLC25), float32 with nodata filled by
        :func:`fill_nodata`; ``nodata`` counts each patch's nodata pixels. ``bad`` lists ``(row, file, reason)`` for
        surveys whose patch could not be read (their rows of ``patches`` are undefined).
    """
    from glc.data.layout import patch_subdirs
    from glc.data.patches import patch_format, read_bytes

    fmt = patch_format(layout)
    kinds = layout.edition.patch_kinds
    m = len(ids)
    raw = np.empty((m, N_CHANNELS, fmt.size, fmt.size), np.dtype(fmt.dtype))
    mask = np.zeros(raw.shape, bool) if fmt.has_nodata else None
    ok = np.zeros(m, bool)
    bad: list[tuple[int, str, str]] = []
    roots = {(s, k): str(layout.patch_root(s, k)) for s in set(splits) for k in kinds}  # type: ignore[arg-type]
    name = layout.table.paths["patch_file"]
    paths = []
    for sid, split in zip(ids, splits):
        cd, ab = patch_subdirs(int(sid))
        # the paths of Layout.patch_paths, joined as text (pathlib costs more than a JPEG header per file here)
        file = name.format(id=int(sid))
        paths.append(tuple(f"{roots[split, k]}/{cd}/{ab}/{file}" for k in kinds))
    ahead = None if pool is None else iter(pool.map(read_bytes, [p for group in paths for p in group]))
    for i, (files, sid, split) in enumerate(zip(paths, ids, splits)):
        data = None if ahead is None else tuple(next(ahead) for _ in files)
        try:
            patch = fmt.read(files, data)
            raw[i] = patch.data
            if mask is not None:
                mask[i] = np.ma.getmaskarray(patch)
            ok[i] = True
        except DataError as e:
            msg = str(e)
            named = [f for f in files if f in msg]
            bad.append((i, named[0] if len(named) == 1 else files[0], f"surveyId {int(sid)} ({split}): {msg}"))
    if mask is None:  # no nodata: the pixels as they are (the DCT casts them to float32)
        return raw, ok, bad, np.zeros(m, np.int64)
    filled, nodata = fill_nodata(np.ma.MaskedArray(raw, mask=mask))
    return filled, ok, bad, nodata


def _patch_partition_fn(
    layout: Layout, k: int, keep_raw: bool, batch_size: int, schema: pa.Schema, acc: Any = None, nodata: bool = False
) -> Callable:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from concurrent.futures import ThreadPoolExecutor

        from glc.etl.profile import PhaseClock

        clock = PhaseClock(acc)
        with ThreadPoolExecutor(IO_THREADS, thread_name_prefix="patch-io") as pool:
            yield from _patch_batches(clock, batches, pool)
        clock.flush()

    def _patch_batches(clock: Any, batches: Iterator[pa.RecordBatch], pool: Any) -> Iterator[pa.RecordBatch]:
        for rb in clock.batches(rebatch(batches, batch_size)):
            ids = rb.column("surveyId").to_numpy(zero_copy_only=False).astype(np.int64)
            splits = rb.column("split").to_pylist()
            clock.rows += len(ids)
            clock.lap("arrow")
            patches, ok, bad, n_nodata = read_patch_batch(layout, ids, splits, pool)
            clock.lap("read")
            if ok.any():
                good = patches[ok]
                dct = patch_dct(good, k)
                clock.lap("transform")
                cols: dict[str, Any] = {
                    "surveyId": pa.array(ids[ok], pa.int64()),
                    "split": pa.array([s for s, g in zip(splits, ok) if g], pa.string()),
                    "dct": list_array(dct),
                }
                if keep_raw:
                    cols["raw"] = binary_array(good)
                if nodata:
                    cols["nodata"] = pa.array(n_nodata[ok].astype(np.int32), pa.int32())
                yield from clock.emit(good_batch(schema, cols))
            if bad:
                yield from clock.emit(bad_batch(schema, bad, ids, splits))

    return run


def patch_tiles_job(
    spark: SparkSession,
    layout: Layout,
    surveys: DataFrame,
    *,
    k: int = 8,
    keep_raw: bool = False,
    partitions: int = 0,
    batch_size: int = 256,
    acc: Any = None,
) -> FeatureJob:
    """Transform: the patch-feature job of ``surveys`` (lazy; run by :func:`glc.etl.artifact.write_feature_artifact`).

    Args:
        spark: the session.
        layout: the data root.
        surveys: ``surveyId, split`` (the SurveyTable).
        k: DCT block kept per channel (1..patch size: 128 for GLC24, 64 for GLC25).
        keep_raw: also emit the raw ``(4, 128, 128)`` uint8 bytes (GLC24's JPEG patches only).
        partitions: Spark partitions (``0``: one per 5,000 surveys, at least one per core).
        batch_size: patches decoded and transformed per batch.
        acc: a :func:`glc.etl.profile.phase_accumulator` for the executors' per-phase seconds (optional).

    Returns:
        The job; its frame has the columns of :func:`glc.etl.artifact.staged_schema` of :func:`patch_ddl`.
    """
    from pyspark.sql import functions as F

    from glc.data.patches import patch_format
    from glc.etl.staging import FeatureJob

    fmt = patch_format(layout)
    size = fmt.size
    if not (isinstance(k, int) and 1 <= k <= size):
        raise ValueError(
            f"PatchTiles: k must be an int in 1..{size} (DCT block kept; {layout.edition.title} patches are "
            f"{size} px), got {k!r}"
        )
    if keep_raw and fmt.dtype != "uint8":
        raise ValueError(
            f"PatchTiles: keep_raw stores GLC24's uint8 JPEG pixels; {layout.edition.title} patches are "
            f"{fmt.dtype} GeoTIFFs. Use k={size} instead: the full DCT block is lossless."
        )
    nodata = fmt.has_nodata
    check_surveys(surveys)
    parts = auto_partitions(spark, surveys, 5_000, partitions)
    ddl = staged_schema(patch_ddl(keep_raw, nodata))
    schema = arrow_schema(spark, ddl)
    fn = _patch_partition_fn(layout, k, keep_raw, batch_size, schema, acc, nodata)
    sid = F.col("surveyId")
    folder = [sid % 100, F.floor(sid / 100) % 100]  # CD, then AB: the patch folder of the survey
    rows = locality_partition(surveys.select("surveyId", "split"), parts, folder)
    row_bytes = 24 + 4 * N_CHANNELS * k * k + (N_CHANNELS * size * size if keep_raw else 0) + (4 if nodata else 0)
    return FeatureJob(rows, fn, ddl, schema, row_bytes, surveys)


def write_patch_tiles(
    spark: SparkSession,
    layout: Layout,
    surveys: DataFrame,
    out_dir: str | Path,
    *,
    k: int = 8,
    keep_raw: bool = False,
    skip_bad_inputs: bool = False,
    max_bad_fraction: float = 0.01,
    partitions: int = 0,
    batch_size: int = 256,
    report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Extract + transform + load of ``PatchTiles`` (see the module docstring for the artifact).

    ``report``: more fields for the summary (``POPatchTiles``: the sites with and without a patch).

    Returns:
        The ``_SUCCESS`` summary (counts, skipped surveys, column layout).

    Raises:
        DataError: on bad inputs without ``skip_bad_inputs``, naming the file and the survey.
    """
    from glc.data.patches import patch_format

    fmt = patch_format(layout)
    summary: dict[str, Any] = {
        "params": {"k": k, "keep_raw": keep_raw},
        "channels": ["red", "green", "blue", "nir"],
        "columns": {
            "dct": f"4 channels x {k}x{k}, channel-major: dct[(c*k+u)*k+v]; dct2 of the uint8 patch as float32",
            **({"raw": "(4, 128, 128) uint8, C order (channel, row, column)"} if keep_raw else {}),
        },
        **dict(report or {}),
    }
    extra = None
    if fmt.has_nodata:
        summary["patch_format"] = fmt.name
        summary["columns"] = {
            "dct": f"4 channels x {k}x{k}, channel-major: dct[(c*k+u)*k+v]; dct2 of the {fmt.size} px {fmt.dtype} "
            "reflectances as float32, nodata pixels filled with their band's mean of valid pixels in the patch",
            "nodata": "nodata pixels of the patch (over its 4 bands)",
        }
        extra = _nodata_counts
    from glc.etl.profile import DriverPhases, phase_accumulator

    phases, acc = DriverPhases(), phase_accumulator(spark)
    job = patch_tiles_job(
        spark, layout, surveys, k=k, keep_raw=keep_raw, partitions=partitions, batch_size=batch_size, acc=acc
    )
    return write_feature_artifact(
        spark,
        job,
        out_dir,
        profile=(phases, acc),
        what=f"PatchTiles(k={k})",
        skip_bad_inputs=skip_bad_inputs,
        max_bad_fraction=max_bad_fraction,
        summary=summary,
        extra_summary=extra,
    )


def _nodata_counts(table: pa.Table) -> dict[str, Any]:
    """Additive nodata counts of a table of good rows (``_SUCCESS`` summary of GeoTIFF patches)."""
    n = table.column("nodata").to_numpy(zero_copy_only=False).astype(np.int64)
    return {"nodata": {"surveys_with_nodata": int((n > 0).sum()), "nodata_pixels": int(n.sum())}}
