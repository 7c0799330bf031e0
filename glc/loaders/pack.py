"""Pack a model-input table into one compact ``.npz`` and back: how a table too large to copy is carried to a GPU box.

A GPU machine may take only tens of MiB per transfer; the full-scale world's fusion table is several hundred. The
packing is **lossy** and says so in the unpacked table's ``meta.json`` (``unpacked_from``):

* float array columns in float16 (scaled per element where a value would overflow float16);
* the Landsat / bioclim cubes as the first ``cube_coefs`` 1-D DCT coefficients of each channel's chronological
  series (Landsat ``series[4 y + q]``, bioclim ``series[12 y + m]``: the order of :mod:`glc.etl.cubes`), rebuilt as
  the low-pass series put back in cube order;
* a patch DCT block cut to ``patch_k`` x ``patch_k`` (zero-padded back);
* the dense GFV as its ``gfv_top`` largest entries (dense again, zeros elsewhere);
* labels as ragged lists (exact); ids, coordinates and codes as they are.

:func:`unpack` rebuilds a table of the same columns, shapes and splits with :func:`glc.loaders.tables.write_input_table`
and recomputes the train statistics of the columns that have them (the low-pass cubes' differ). Needs numpy, pandas
and pyarrow only (no Spark).
"""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["pack", "read_split", "unpack"]

SPLITS = ("train", "val", "test")
#: Rows per row group (and per part file) of an unpacked table. The memory reader decodes a split a row group per
#: thread: the full world's 71,192 training surveys are 15 groups, one per core of a 16-core GPU machine (in
#: 20,000-row groups, 4 of its 16 cores did that work).
_ROW_GROUP = 5_000
#: Cube columns, packed as 1-D DCT coefficients of their chronological series (:func:`_to_series`).
_CUBES: tuple[str, ...] = ("landsat_cube", "bioclim_cube")


def _to_series(name: str, cube: np.ndarray) -> np.ndarray:
    """``[n, C, a, b]`` cubes -> ``[n, C, T]`` chronological series (see :data:`_CUBES`)."""
    if name == "landsat_cube":  # (band, quarter, year): series[4y + q]
        return cube.transpose(0, 1, 3, 2).reshape(cube.shape[0], cube.shape[1], -1)
    return cube.reshape(cube.shape[0], cube.shape[1], -1)  # (var, year, month): series[12y + m]


def _to_cube(name: str, series: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_to_series` for per-row ``shape`` ``(C, a, b)``."""
    n = series.shape[0]
    if name == "landsat_cube":
        c, q, y = shape
        return series.reshape(n, c, y, q).transpose(0, 1, 3, 2)
    return series.reshape(n, *shape)


#: Largest magnitude a packed value gets (float16 holds up to 65504): larger columns are scaled down per element.
_F16_MAX = 30000.0


def _put_f16(arrays: dict[str, np.ndarray], key: str, values: np.ndarray) -> None:
    """``values`` as float16 under ``key`` and its per-element scale (>= 1) under ``key + "/scale"``."""
    v = np.asarray(values, np.float64)
    scale = np.maximum(np.abs(v).max(axis=0) / _F16_MAX, 1.0) if len(v) else np.ones(v.shape[1:])
    arrays[key] = (v / scale).astype(np.float16)
    arrays[key + "/scale"] = scale.astype(np.float32)


def _get_f16(z: Any, key: str) -> np.ndarray:
    """Inverse of :func:`_put_f16`, float32."""
    return (z[key].astype(np.float32) * z[key + "/scale"]).astype(np.float32)


def read_split(root: Path, split: str) -> dict[str, np.ndarray]:
    """Every column of one split of a model-input table as numpy arrays in their shapes (uint8 arrays decoded)."""
    import pyarrow.parquet as pq

    from glc.loaders.tables import column_specs, read_meta

    meta = read_meta(root)
    specs = column_specs(meta)
    t = pq.read_table(root / split)
    out: dict[str, np.ndarray] = {}
    n = t.num_rows
    for name, spec in specs.items():
        col = t.column(name)
        if not spec.is_array:
            out[name] = col.to_numpy()
        elif spec.dtype == "uint8":
            out[name] = np.frombuffer(b"".join(col.to_pylist()), np.uint8).reshape(n, *spec.shape)
        else:
            out[name] = col.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(n, *spec.shape)
    return out


def pack(inputs: Path, out: Path, cube_coefs: int = 8, patch_k: int = 4, gfv_top: int = 16) -> dict[str, Any]:
    """Pack the model-input table ``inputs`` into one compressed ``.npz`` (see the module docstring).

    Returns:
        ``{"file", "bytes", "surveys", "bytes_per_survey", "packed": {column: how}}``.
    """
    from glc.features.dct import dct1
    from glc.io import atomic_file
    from glc.loaders.tables import read_meta

    meta = read_meta(inputs)
    arrays: dict[str, np.ndarray] = {}
    packed: dict[str, str] = {}
    for split in SPLITS:
        cols = read_split(inputs, split)
        for name, v in cols.items():
            key = f"{split}/{name}"
            spec = meta["columns"].get(name, {})
            if name == "labels":
                lens = (v >= 0).sum(axis=1)
                arrays[key + "/flat"] = v[v >= 0].astype(np.uint16 if meta["num_classes"] < 65536 else np.int32)
                arrays[key + "/lens"] = lens.astype(np.uint16)
                packed[name] = "ragged"
            elif name in _CUBES:
                _put_f16(arrays, key, dct1(_to_series(name, v.astype(np.float64)), cube_coefs))
                packed[name] = f"dct1 {cube_coefs} coefficients per channel (float16)"
            elif name.startswith("patch_dct"):
                _put_f16(arrays, key, v[..., :patch_k, :patch_k])
                packed[name] = f"{patch_k}x{patch_k} block (float16)"
            elif name == "gfv":
                top = np.argsort(-v, axis=1, kind="stable")[:, :gfv_top]
                arrays[key + "/idx"] = top.astype(np.uint16)
                arrays[key + "/val"] = np.take_along_axis(v, top, axis=1).astype(np.float16)
                packed[name] = f"top {gfv_top} entries"
            elif spec.get("shape") and v.dtype != np.uint8:
                _put_f16(arrays, key, v)
                packed[name] = "float16"
            else:
                arrays[key] = v
    buf = io.BytesIO()
    buf.write(json.dumps({"meta": meta, "packed": packed}).encode())
    arrays["meta.json"] = np.frombuffer(buf.getvalue(), np.uint8)
    with atomic_file(out, "wb") as fh:  # a file object: numpy adds no ".npz" to the temporary name
        np.savez_compressed(fh, **arrays)
    n = sum(int(meta["splits"][s]) for s in SPLITS)
    return {
        "file": str(out),
        "bytes": out.stat().st_size,
        "surveys": n,
        "bytes_per_survey": round(out.stat().st_size / n, 1),
        "packed": packed,
    }


def unpack(npz: Path, root: Path, threads: int | None = None) -> Path:
    """Rebuild a model-input table at ``root`` from :func:`pack`'s file (see the module docstring); returns ``root``.

    The splits are written at once, each a part file per row group on ``threads`` threads (all cores by default);
    the files' contents do not depend on ``threads``."""
    from glc.features.dct import idct1
    from glc.io import atomic_dir
    from glc.loaders.tables import column_specs, set_train_stats, write_input_table, write_meta

    z = np.load(npz)
    head = json.loads(bytes(z["meta.json"]).decode())
    meta = head["meta"]
    specs = column_specs(meta)
    frames: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        cols: dict[str, Any] = {}
        n = int(meta["splits"][split])
        for name, spec in specs.items():
            key = f"{split}/{name}"
            shape = spec.shape
            if name == "labels":
                lens = z[key + "/lens"].astype(np.int64)
                flat = z[key + "/flat"].astype(np.int32)
                lab = np.full((n, shape[0]), -1, np.int32)
                pos = np.repeat(np.arange(n), lens)
                within = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
                lab[pos, within] = flat
                v = lab
            elif name in _CUBES:
                c = _get_f16(z, key).astype(np.float64)
                length = int(np.prod(shape[1:]))
                v = _to_cube(name, idct1(c, length), shape).astype(np.float32)
            elif name.startswith("patch_dct"):
                block = _get_f16(z, key)
                v = np.zeros((n, *shape), np.float32)
                v[..., : block.shape[-2], : block.shape[-1]] = block
            elif name == "gfv":
                v = np.zeros((n, *shape), np.float32)
                idx = z[key + "/idx"].astype(np.intp)
                v[np.arange(n)[:, None], idx] = z[key + "/val"].astype(np.float32)
            elif key + "/scale" in z:
                v = _get_f16(z, key)
            else:
                v = z[key]
            cols[name] = v  # array columns as one [n, *shape] array: written without per-row copies
        frames[split] = cols
    set_train_stats(meta, frames["train"])  # the rebuilt values' statistics (the low-pass cubes' differ)
    meta["unpacked_from"] = {"file": str(npz), "packed": head["packed"]}
    # a part file per row group, written on as many cores as there are (a GPU machine's idle CPUs): the same row
    # groups as one file per split, in a fraction of the time
    cores = threads or os.cpu_count() or 1
    with atomic_dir(root, {"unpacked_from": str(npz)}) as tmp:  # all splits and meta.json, or nothing
        with ThreadPoolExecutor(min(len(frames), cores)) as pool:
            jobs = [
                pool.submit(write_input_table, cols, tmp / split, specs, _ROW_GROUP, _ROW_GROUP, cores)
                for split, cols in frames.items()
            ]
            for job in jobs:
                job.result()
        write_meta(tmp, meta)
    return root
