"""Fixture helpers for the loader tests, over the one shared fake-table maker :mod:`glc.loaders.fake`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from glc.loaders.fake import _frame as fake_frame
from glc.loaders.fake import fake_meta, make_fake_inputs
from glc.loaders.tables import ColumnSpec, write_input_table


def _sets(env_dim: int, gfv_dim: int) -> tuple[str, ...]:
    return (("env",) if env_dim else ()) + (("gfv",) if gfv_dim else ())


def input_frame(
    n: int,
    num_classes: int,
    label_width: int,
    env_dim: int,
    rng: np.random.Generator,
    labelled: bool = True,
    first_id: int = 1000,
    gfv_dim: int = 0,
) -> pd.DataFrame:
    """``n`` random surveys with distinct ids, 1..L species each (padded with -1; all -1 when not labelled), an
    ``env`` vector of width E (when > 0) and a sparse ``gfv`` of width G (when > 0; may differ from C to build bad
    tables)."""
    meta = fake_meta(
        _sets(env_dim, gfv_dim), {"train": n, "val": 0, "test": 0}, num_classes, label_width, {"env": env_dim}
    )
    if gfv_dim:
        meta["columns"]["gfv"]["shape"] = [gfv_dim]
    return fake_frame(n, meta, rng, labelled, first_id, distinct=False)


def frame_specs(df: pd.DataFrame) -> dict[str, ColumnSpec]:
    """Column specs inferred from a frame as it is (scalars by dtype, arrays by the first cell), so a test can write
    a split that disagrees with meta.json on purpose."""
    specs = {}
    for name in df.columns:
        if name == "surveyId":
            continue
        first = df[name].iloc[0]
        if isinstance(first, (np.ndarray, list)):
            a = np.asarray(first)
            dtype = {"f": "float32", "i": "int32", "u": "uint8"}[a.dtype.kind]
            specs[name] = ColumnSpec(name, dtype, tuple(a.shape))
        else:
            kind = df[name].dtype.kind
            specs[name] = ColumnSpec(name, "float64" if kind == "f" else "int32")
    return specs


def write_frame(df: pd.DataFrame, path: Path, **kw: int) -> list[Path]:
    """:func:`write_input_table` with the frame's own column specs."""
    return write_input_table(df, path, frame_specs(df), **kw)


def make_model_inputs(
    root: str | Path,
    sizes: dict[str, int] | None = None,
    num_classes: int = 50,
    label_width: int = 8,
    env_dim: int = 4,
    rows_per_file: int = 80,
    row_group_size: int = 25,
    seed: int = 0,
    gfv_dim: int = 0,
) -> dict[str, pd.DataFrame]:
    """A small model-input table with the ``env`` (width E) and, when ``gfv_dim``, ``gfv`` (width C) feature sets."""
    if gfv_dim and gfv_dim != num_classes:
        raise ValueError("the gfv feature set is dense over the species columns: gfv_dim must equal num_classes")
    return make_fake_inputs(
        root,
        _sets(env_dim, gfv_dim),
        sizes,
        num_classes,
        label_width,
        {"env": env_dim},
        rows_per_file,
        row_group_size,
        seed,
    )
