"""Fixture writer for the loader tests (and any test that needs a small model-input table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from glc.loaders.tables import PAD, write_input_table, write_meta


def input_frame(n: int, num_classes: int, label_width: int, env_dim: int, rng: np.random.Generator,
                labelled: bool = True, first_id: int = 1000, gfv_dim: int = 0) -> pd.DataFrame:
    """``n`` random surveys with distinct ids, 1..L species each (padded with -1; all -1 when not labelled) and,
    with ``gfv_dim``, a sparse non-negative ``gfv`` vector (about 80 % zeros) of that width."""
    ids = first_id + rng.choice(50 * n, size=n, replace=False)
    labels = np.full((n, label_width), PAD, np.int32)
    if labelled:
        for i, k in enumerate(rng.integers(1, label_width + 1, size=n)):
            labels[i, :k] = rng.choice(num_classes, size=k, replace=False)
    df = pd.DataFrame(
        {
            "surveyId": ids.astype(np.int64),
            "x": rng.uniform(2.5e6, 7.5e6, n),
            "y": rng.uniform(1.0e6, 5.5e6, n),
            "lon": rng.uniform(-10.0, 30.0, n),
            "lat": rng.uniform(35.0, 70.0, n),
            "year": rng.integers(2017, 2022, n).astype(np.int32),
            "region": rng.integers(0, 4, n).astype(np.int32),
        }
    )
    if env_dim:
        df["env"] = list(rng.standard_normal((n, env_dim)).astype(np.float32))
    if gfv_dim:
        gfv = rng.uniform(0.0, 1.0, (n, gfv_dim)) * (rng.uniform(size=(n, gfv_dim)) < 0.2)
        df["gfv"] = list(gfv.astype(np.float32))
    df["labels"] = list(labels)
    return df


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
    """Write a small model-input table (several part files and row groups per split) and return its frames.

    Args:
        root: the table root to create.
        sizes: rows per split (default train 300, val 100, test 60).
        num_classes: C.
        label_width: L.
        env_dim: E (0 = no ``env`` column).
        rows_per_file: rows per part file.
        row_group_size: rows per row group.
        seed: the random seed.
        gfv_dim: G (0 = no ``gfv`` column and, like tables written before it existed, no ``gfv_dim`` in meta.json).

    Returns:
        ``{"train": df, "val": df, "test": df}`` exactly as written.
    """
    sizes = sizes or {"train": 300, "val": 100, "test": 60}
    rng = np.random.default_rng(seed)
    frames = {}
    for i, (split, n) in enumerate(sizes.items()):
        frames[split] = input_frame(n, num_classes, label_width, env_dim, rng, labelled=split != "test",
                                    first_id=1_000_000 * (i + 1), gfv_dim=gfv_dim)
        write_input_table(frames[split], Path(root) / split, rows_per_file=rows_per_file,
                          row_group_size=row_group_size)
    meta = {
        "num_classes": num_classes,
        "vocab": list(range(10_000, 10_000 + num_classes)),
        "label_width": label_width,
        "env_dim": env_dim,
        "n_regions": 4,
        "regions": ["alpine", "atlantic", "continental", "mediterranean"],
        "splits": {k: int(v) for k, v in sizes.items()},
    }
    if gfv_dim:
        meta["gfv_dim"] = gfv_dim
    write_meta(root, meta)
    return frames
