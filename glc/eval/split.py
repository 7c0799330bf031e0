"""Spatial validation splits: whole square blocks of EPSG:3035 space go to one fold.

Random survey-level splits leak: neighbouring plots (and repeat visits of one site) share species, so a model that
memorises locations looks good. Every report and benchmark in glc therefore validates on **whole spatial blocks**.

Blocks: the plane of EPSG:3035 (ETRS89-LAEA, metres) is cut into ``block_km x block_km`` squares aligned to the CRS
origin (the alignment of the EEA reference grid): block ``(floor(x / B), floor(y / B))`` with ``B = 1000 * block_km``.
Repeat visits of a site have the same coordinates, hence the same block, hence the same fold.

Fold assignment rule (:func:`spatial_block_folds`): the non-empty blocks are put in a random order by a permutation
seeded with ``seed`` (``numpy.random.default_rng(seed).permutation``), and then each block in turn goes **whole** to
the fold that currently holds the fewest points (ties: the lowest fold id). Greedy least-loaded assignment keeps the
folds' point counts within one block's size of each other while the random order keeps the folds spatially mixed.

Hold-out rule (:func:`spatial_holdout`): blocks in the same seeded random order are taken as validation until the
validation point count is as close as possible to ``val_fraction * n`` (the shortest such prefix).

Validation schemes (``validation.scheme``, :data:`VALIDATION_SCHEMES`):

* ``"blocks"`` (default): the hold-out above, blocks in uniform random order. It predicts the test score when the
  test surveys are spread like the training ones (GLC24).
* ``"test_like"`` (:func:`test_like_holdout`): the same whole blocks, but drawn in proportion to how much more the
  **test** surveys crowd their neighbourhood than the training surveys do (the ratio of the two kernel densities
  within ``5 x block_km`` of the block, from the unlabelled test locations), so the validation set is spread like a
  geographically shifted test set (GLC25: a different country mix). Weighted sampling without replacement by
  seeded Gumbel keys, then the same closest-prefix rule.

Block size (``validation.block_km``): a held-out survey should lie about as far from the nearest training survey as
a test survey does, or the validation score flatters the models that interpolate between nearby surveys (a
location-only net most). :func:`holdout_distances` (CLI: ``python -m glc holdout-distances --data-root ...``)
tabulates both distances, test and hold-out per block size, from the unlabelled locations. On the synthetic GLC24
demo world a test survey lies a median 20 km from the nearest training survey; 10 km blocks hold out surveys 6 km from
it, 50 km blocks 20 km (the geolocation experiments use 50 km).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "VALIDATION_SCHEMES",
    "block_ids",
    "holdout_distances",
    "spatial_block_folds",
    "spatial_holdout",
    "test_like_holdout",
    "training_folds",
    "validation_mask",
]

#: The validation hold-out schemes (see the module docstring).
VALIDATION_SCHEMES: tuple[str, ...] = ("blocks", "test_like")


def _check_xy(x: np.ndarray, y: np.ndarray, block_km: float, check_crs: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"x and y must be 1-D arrays of equal length (EPSG:3035 metres), got shapes {x.shape} and {y.shape}"
        )
    if x.size == 0:
        raise ValueError("no points to split: x and y are empty")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"point {i} has non-finite coordinates ({x[i]}, {y[i]}); drop or fix it before splitting")
    if not (np.isfinite(block_km) and block_km > 0):
        raise ValueError(f"block_km={block_km!r} must be a positive number of kilometres")
    if check_crs and x.size > 1 and np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90):
        raise ValueError(
            "x/y all lie within +-180/+-90: these look like lon/lat degrees, but blocks are measured in EPSG:3035 "
            "metres. Project with glc.geo.to_laea(lon, lat) first (or pass check_crs=False if these really are metres)"
        )
    return x, y


def block_ids(
    x: np.ndarray, y: np.ndarray, block_km: float = 10.0, check_crs: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Dense block index per point and the number of points per block.

    Args:
        x: EPSG:3035 easting in metres, one per point.
        y: EPSG:3035 northing in metres.
        block_km: block side in kilometres.
        check_crs: refuse coordinates that look like degrees.

    Returns:
        ``(block, counts)``: ``block[i]`` in ``0..B-1`` (blocks numbered in (column, row) order), ``counts`` (B,).
    """
    x, y = _check_xy(x, y, block_km, check_crs)
    side = 1000.0 * float(block_km)
    cells = np.stack([np.floor(x / side), np.floor(y / side)], axis=1).astype(np.int64)
    _, inv, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    return inv.reshape(-1).astype(np.int64), counts.astype(np.int64)


def spatial_block_folds(
    x: np.ndarray, y: np.ndarray, n_folds: int = 5, block_km: float = 10.0, seed: int = 0, check_crs: bool = True
) -> np.ndarray:
    """Fold id (``0..n_folds-1``) per point; whole blocks go to one fold, folds balanced by point count.

    See the module docstring for the block grid and the assignment rule. Deterministic for a given ``seed``.

    Args:
        x: EPSG:3035 easting in metres.
        y: EPSG:3035 northing in metres.
        n_folds: number of folds (>= 2).
        block_km: block side in kilometres.
        seed: seed of the block permutation.
        check_crs: refuse coordinates that look like degrees.

    Returns:
        int64 array of fold ids, one per point; every fold is non-empty.

    Raises:
        ValueError: bad coordinates or parameters, or fewer non-empty blocks than folds.
    """
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds={n_folds!r} must be an integer >= 2")
    block, counts = block_ids(x, y, block_km, check_crs)
    n_blocks = counts.size
    if n_blocks < n_folds:
        raise ValueError(
            f"only {n_blocks} non-empty {block_km:g} km block(s) for "
            f"n_folds={n_folds}; use smaller blocks or fewer folds"
        )
    order = np.random.default_rng(seed).permutation(n_blocks)
    fold_of_block = np.empty(n_blocks, np.int64)
    heap = [(0, f) for f in range(int(n_folds))]  # (points so far, fold id): pops the least loaded, lowest id on ties
    for b in order:
        load, f = heapq.heappop(heap)
        fold_of_block[b] = f
        heapq.heappush(heap, (load + int(counts[b]), f))
    return fold_of_block[block]


def spatial_holdout(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float = 0.2,
    block_km: float = 10.0,
    seed: int = 0,
    check_crs: bool = True,
) -> np.ndarray:
    """Boolean mask of validation points: whole blocks, about ``val_fraction`` of the points.

    Blocks are taken in a seeded random order until the validation count is closest to ``val_fraction * n``; at
    least one block is held out and at least one is kept for training.

    Args:
        x: EPSG:3035 easting in metres.
        y: EPSG:3035 northing in metres.
        val_fraction: target fraction of points in validation, in (0, 1).
        block_km: block side in kilometres.
        seed: seed of the block order.
        check_crs: refuse coordinates that look like degrees.

    Raises:
        ValueError: bad coordinates or parameters, or fewer than two non-empty blocks.
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} must lie strictly between 0 and 1")
    block, counts = block_ids(x, y, block_km, check_crs)
    n_blocks = counts.size
    if n_blocks < 2:
        raise ValueError(
            f"all points fall in one {block_km:g} km block; a spatial "
            "hold-out needs at least two blocks (use smaller blocks)"
        )
    order = np.random.default_rng(seed).permutation(n_blocks)
    return _prefix_mask(block, counts, order, val_fraction)


def _prefix_mask(block: np.ndarray, counts: np.ndarray, order: np.ndarray, val_fraction: float) -> np.ndarray:
    """Validation mask: the blocks in ``order`` up to the prefix whose point count is closest to the target."""
    n_blocks = counts.size
    cum = np.cumsum(counts[order])
    target = float(val_fraction) * block.size
    m = int(np.argmin(np.abs(cum[:-1] - target))) + 1  # number of validation blocks, 1..B-1 (first minimum)
    is_val_block = np.zeros(n_blocks, bool)
    is_val_block[order[:m]] = True
    return is_val_block[block]


def test_like_holdout(
    x: np.ndarray,
    y: np.ndarray,
    query_x: np.ndarray,
    query_y: np.ndarray,
    val_fraction: float = 0.2,
    block_km: float = 10.0,
    seed: int = 0,
    radius_km: float | None = None,
    check_crs: bool = True,
) -> np.ndarray:
    """Boolean mask of validation points: whole blocks drawn toward where the query (test) points are denser than the
    training points, about ``val_fraction`` of the points (see the module docstring).

    A block's weight is ``(q + 1/2) / Q`` over ``(t + 1/2) / T``: ``q`` of the ``Q`` query points and ``t`` of the
    ``T`` points lie within ``radius_km`` (default ``5 * block_km``) of the block's centroid. Blocks are ordered by
    ``log(weight)`` plus seeded Gumbel noise (sampling without replacement, proportional to weight) and the
    closest prefix to ``val_fraction * T`` is held out, as in :func:`spatial_holdout`.

    Raises:
        ValueError: bad coordinates or parameters, no query point, or fewer than two non-empty blocks.
    """
    from scipy.spatial import cKDTree

    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} must lie strictly between 0 and 1")
    block, counts = block_ids(x, y, block_km, check_crs)
    qx, qy = _check_xy(query_x, query_y, block_km, check_crs)
    if counts.size < 2:
        raise ValueError(
            f"all points fall in one {block_km:g} km block; a spatial "
            "hold-out needs at least two blocks (use smaller blocks)"
        )
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    centres = np.column_stack([np.bincount(block, x) / counts, np.bincount(block, y) / counts])
    r = 1000.0 * float(radius_km if radius_km is not None else 5.0 * block_km)
    q = cKDTree(np.column_stack([qx, qy])).query_ball_point(centres, r, return_length=True)
    t = cKDTree(np.column_stack([x, y])).query_ball_point(centres, r, return_length=True)
    weight = ((np.asarray(q) + 0.5) / qx.size) / ((np.asarray(t) + 0.5) / x.size)
    keys = np.log(weight) + np.random.default_rng(seed).gumbel(size=counts.size)
    return _prefix_mask(block, counts, np.argsort(-keys, kind="stable"), val_fraction)


def validation_mask(train: pd.DataFrame, cfg: Mapping[str, Any], query: pd.DataFrame | None = None) -> np.ndarray:
    """Boolean mask of the training surveys an experiment holds out for validation: whole spatial blocks of
    ``cfg["validation"]["block_km"]`` (EPSG:3035 ``x``/``y``), ``val_fraction`` of the surveys, seeded by
    ``cfg["seed"]``, in the order of ``cfg["validation"]["scheme"]`` (default ``"blocks"``, :func:`spatial_holdout`;
    ``"test_like"``, :func:`test_like_holdout` toward the ``query`` surveys, the test set). Every model kind and
    ``ModelInputs`` use this one hold-out.

    Raises:
        ValueError: an unknown scheme, or ``"test_like"`` without ``query`` surveys.
    """
    v = cfg["validation"]
    scheme = v.get("scheme", "blocks")
    if scheme == "blocks":
        mask = spatial_holdout(
            train["x"].to_numpy(),
            train["y"].to_numpy(),
            val_fraction=v["val_fraction"],
            block_km=v["block_km"],
            seed=cfg["seed"],
        )
    elif scheme == "test_like":
        if query is None or len(query) == 0:
            raise ValueError(
                "validation.scheme = 'test_like' draws the hold-out toward the test surveys: pass them (query=...)"
            )
        mask = test_like_holdout(
            train["x"].to_numpy(),
            train["y"].to_numpy(),
            query["x"].to_numpy(),
            query["y"].to_numpy(),
            val_fraction=v["val_fraction"],
            block_km=v["block_km"],
            seed=cfg["seed"],
        )
    else:
        raise ValueError(f"validation.scheme={scheme!r}: expected one of {VALIDATION_SCHEMES}")
    return np.asarray(mask, bool)


def _quantile_name(q: float) -> str:
    """Column name of quantile ``q``: ``q50`` for 0.5, ``q12.5`` for 0.125 (distinct for quantiles 1e-8 or more
    apart)."""
    pct = round(100 * q, 6)
    return f"q{int(pct):02d}" if pct == int(pct) else "q" + np.format_float_positional(pct, trim="-")


def holdout_distances(
    x: np.ndarray,
    y: np.ndarray,
    query_x: np.ndarray,
    query_y: np.ndarray,
    block_kms: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0),
    val_fraction: float = 0.2,
    seed: int = 0,
    quantiles: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9),
    check_crs: bool = True,
    scheme: str = "blocks",
) -> pd.DataFrame:
    """How far the test surveys and each block size's hold-out lie from the nearest training survey (km).

    Row ``"test"``: each query (test) point's distance to the nearest of the points ``x, y`` (the training surveys).
    Row ``"blocks <B> km"``: each point the ``scheme``'s hold-out (:func:`validation_mask`: :func:`spatial_holdout`,
    or :func:`test_like_holdout` toward the query points) holds out with ``block_km = B`` (``val_fraction``, ``seed``),
    to the nearest point it keeps for training; a repeated size is measured once. Columns: the ``quantiles`` of
    those distances (``"q50"`` ...), ``"n"`` and, on the hold-out rows, ``"median_ratio"`` (hold-out median over
    test median; pick the block size nearest 1; NaN where the test median is 0).

    Raises:
        ValueError: bad coordinates or parameters (as :func:`spatial_holdout`), or no query point.
    """
    import pandas as pd
    from scipy.spatial import cKDTree

    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles={quantiles!r} must be a non-empty tuple of values in [0, 1]")
    if not block_kms:
        raise ValueError("block_kms is empty: give at least one block size (km)")
    if np.asarray(query_x).size == 0:
        raise ValueError("no query (test) point: holdout_distances compares the hold-out with the test surveys")
    x, y = _check_xy(x, y, float(min(block_kms)), check_crs)
    qx, qy = _check_xy(query_x, query_y, float(min(block_kms)), check_crs)
    pts = np.column_stack([x, y])
    train, query = pd.DataFrame({"x": x, "y": y}), pd.DataFrame({"x": qx, "y": qy})
    rows: dict[str, dict[str, float]] = {}
    medians: dict[str, float] = {}

    def add(name: str, d_m: np.ndarray) -> None:
        d = np.asarray(d_m) / 1000.0
        rows[name] = {**{_quantile_name(q): round(float(np.quantile(d, q)), 2) for q in qs}, "n": d.size}
        medians[name] = float(np.median(d))

    add("test", cKDTree(pts).query(np.column_stack([qx, qy]))[0])
    for b in dict.fromkeys(float(b) for b in block_kms):
        cfg = {"seed": seed, "validation": {"scheme": scheme, "block_km": b, "val_fraction": val_fraction}}
        held = validation_mask(train, cfg, query)  # the hold-out the experiments use
        add(f"blocks {b:g} km", cKDTree(pts[~held]).query(pts[held])[0])
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["n"] = out["n"].astype(int)
    ratio = pd.Series(medians) / medians["test"] if medians["test"] > 0 else pd.Series(np.nan, index=out.index)
    out["median_ratio"] = ratio.round(2).where(out.index != "test")
    return out


def training_folds(x: np.ndarray, y: np.ndarray, n_folds: int, block_km: float, seed: int) -> np.ndarray:
    """The spatial folds of an experiment's **training split** (the training surveys outside its validation
    hold-out): :func:`spatial_block_folds` of their EPSG:3035 ``x``/``y`` with ``n_folds``, ``block_km`` and
    ``seed`` (the experiment's ``validation.block_km`` and ``seed``).

    One function for both users, so their folds are the same: the k-fold trainer (fold ``f`` trains on the other
    folds and stops early on ``f``, :mod:`glc.training.kfold`) and the out-of-fold feature artifacts built for that
    table (``GraphFeatures`` with a hold-out: a training row's GFV comes from the other folds only). The assignment
    depends only on the set of points (blocks are numbered by position), not on their order.
    """
    return spatial_block_folds(
        np.asarray(x, np.float64),
        np.asarray(y, np.float64),
        n_folds=int(n_folds),
        block_km=float(block_km),
        seed=int(seed),
    )
