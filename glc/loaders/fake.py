"""Seeded fake model-input tables in the exact layout of :mod:`glc.etl.inputs`, for tests and benchmarks.

:func:`make_fake_inputs` writes ``meta.json`` and the three splits with the columns of any feature sets of
:mod:`glc.features.sets` (``location`` and ``meta`` always), values drawn per the registry's dtypes and shapes:
float arrays standard normal (``gfv``: sparse, non-negative), ``uint8`` arrays uniform bytes, and, when
``distinct=True``, every array row filled so that each (survey, channel) pair is recognisable:
``value = surveyId * 1000 + channel`` plus a per-element ramp — the fixture that catches channel interleaving across
samples (DS@GT's ``view`` bug, pitfall 4 (docs/contributing.md)). Labels are 1..L distinct species per survey (test rows
all -1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glc.features.sets import ALWAYS, feature_set, resolve_feature_sets
from glc.loaders.tables import PAD, column_specs, set_train_stats, write_input_table, write_meta

__all__ = ["REGIONS", "distinct_values", "fake_meta", "make_fake_inputs"]

REGIONS = ["alpine", "atlantic", "continental", "mediterranean"]
COUNTRIES = ["France", "Germany", "Spain"]


def _shapes(names: tuple[str, ...], widths: Mapping[str, int], num_classes: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for n in names:
        for c in feature_set(n).columns:
            shape = list(c.shape)
            if shape[:1] == [-1]:
                lead = num_classes if n == "gfv" else widths.get(n)
                if lead is None:
                    raise ValueError(
                        f"make_fake_inputs: feature set {n!r} has an open first dimension; pass widths={{{n!r}: ...}}"
                    )
                shape[0] = int(lead)
            out[c.name] = shape
    return out


def fake_meta(
    feature_sets: tuple[str, ...],
    sizes: Mapping[str, int],
    num_classes: int,
    label_width: int,
    widths: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The ``meta.json`` of a fake table (no statistics; see :func:`make_fake_inputs`)."""
    names = resolve_feature_sets(feature_sets)
    shapes = _shapes(names, dict(widths or {}), num_classes)
    columns: dict[str, Any] = {}
    for n in names:
        for c in feature_set(n).columns:
            columns[c.name] = {"dtype": c.dtype, "shape": shapes[c.name], "feature_set": n}
    columns["labels"] = {"dtype": "int32", "shape": [label_width], "feature_set": None}
    return {
        "num_classes": num_classes,
        "vocab": list(range(10_000, 10_000 + num_classes)),
        "label_width": label_width,
        "mean_richness": (label_width + 1) / 2,
        "n_regions": len(REGIONS),
        "regions": list(REGIONS),
        "n_countries": len(COUNTRIES),
        "countries": list(COUNTRIES),
        "splits": {k: int(v) for k, v in sizes.items()},
        "feature_sets": list(names),
        "shuffled": [],
        "seed": 0,
        "columns": columns,
        "feature_info": {
            n: {"description": feature_set(n).description, "artifact": feature_set(n).artifact, "fake": True}
            for n in names
        },
    }


def distinct_values(ids: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(n, *shape)`` float32 where row ``i``, channel ``c`` (first axis), element ``e`` (C order within the channel)
    holds ``(ids[i] % 1024) * P + c + e / E`` (``P`` = the channel count rounded up to a power of two, ``E`` the
    elements per channel): exact in float32, so a value says which survey and channel it came from."""
    n_chan = shape[0]
    per = math.prod(shape[1:]) if len(shape) > 1 else 1
    P = 1 << max(0, (n_chan - 1).bit_length())
    base = (np.asarray(ids, np.int64) % 1024).astype(np.float64) * P
    chan = np.arange(n_chan, dtype=np.float64)
    elem = np.arange(per, dtype=np.float64) / per
    v = base[:, None, None] + chan[None, :, None] + elem[None, None, :]
    return v.reshape(len(base), *shape).astype(np.float32)


def _frame(
    n: int, meta: Mapping[str, Any], rng: np.random.Generator, labelled: bool, first_id: int, distinct: bool
) -> pd.DataFrame:
    C, L = int(meta["num_classes"]), int(meta["label_width"])
    ids = first_id + rng.choice(50 * n, size=n, replace=False)
    labels = np.full((n, L), PAD, np.int32)
    if labelled:
        for i, k in enumerate(rng.integers(1, L + 1, size=n)):
            m = min(int(k), C)  # a label width above the class count: at most every class once
            labels[i, :m] = rng.choice(C, size=m, replace=False)
    df = pd.DataFrame(
        {
            "surveyId": ids.astype(np.int64),
            "x": rng.uniform(2.5e6, 7.5e6, n),
            "y": rng.uniform(1.0e6, 5.5e6, n),
            "lon": rng.uniform(-10.0, 30.0, n),
            "lat": rng.uniform(35.0, 70.0, n),
            "year": rng.integers(2017, 2022, n).astype(np.int32),
            "region": rng.integers(0, len(REGIONS), n).astype(np.int32),
            "country": rng.integers(0, len(COUNTRIES), n).astype(np.int32),
        }
    )
    for name, spec in column_specs(meta).items():
        if name in df.columns or name == "labels" or not spec.is_array:
            continue
        shape = (n, *spec.shape)
        if spec.dtype == "uint8":
            values = rng.integers(0, 256, shape, dtype=np.uint8)
        elif name == "gfv":
            values = (rng.uniform(0.0, 1.0, shape) * (rng.uniform(size=shape) < 0.2)).astype(np.float32)
        elif distinct:
            values = distinct_values(ids, spec.shape)
        else:
            values = rng.standard_normal(shape).astype(np.float32)
        df[name] = list(np.ascontiguousarray(values))
    df["labels"] = list(labels)
    return df


def make_fake_inputs(
    root: str | Path,
    feature_sets: tuple[str, ...] = ("env",),
    sizes: Mapping[str, int] | None = None,
    num_classes: int = 50,
    label_width: int = 8,
    widths: Mapping[str, int] | None = None,
    rows_per_file: int = 80,
    row_group_size: int = 25,
    seed: int = 0,
    distinct: bool = False,
) -> dict[str, pd.DataFrame]:
    """Write a small model-input table (several part files and row groups per split) and return its frames.

    Args:
        root: the table root to create.
        feature_sets: feature sets besides ``location``/``meta`` (:data:`glc.features.sets.FEATURE_SETS`).
        sizes: rows per split (default train 300, val 100, test 60).
        num_classes: C.
        label_width: L.
        widths: the open first dimension of sets that have one (``{"env": 4}``, raster bands, ...; ``gfv`` is C).
        rows_per_file: rows per part file.
        row_group_size: rows per row group.
        seed: the random seed.
        distinct: fill float arrays with per-(survey, channel) recognisable values (see the module docstring).

    Returns:
        ``{"train": df, "val": df, "test": df}`` exactly as written (array cells in their shapes).
    """
    sizes = dict(sizes or {"train": 300, "val": 100, "test": 60})
    unknown = [n for n in feature_sets if n in ALWAYS]
    feature_sets = tuple(n for n in feature_sets if n not in unknown)
    meta = fake_meta(feature_sets, sizes, num_classes, label_width, widths)
    rng = np.random.default_rng(seed)
    specs = column_specs(meta)
    frames = {}
    for i, (split, n) in enumerate(sizes.items()):
        frames[split] = _frame(n, meta, rng, split != "test", 1_000_000 * (i + 1), distinct)
        write_input_table(
            frames[split], Path(root) / split, specs, rows_per_file=rows_per_file, row_group_size=row_group_size
        )
    train = frames.get("train")
    if train is not None:  # train statistics, as the Spark writer records them for sets with `stats`
        set_train_stats(meta, {name: train[name].to_numpy() for name in specs})
    write_meta(root, meta)
    return frames
