"""glc.eval.split: spatial block folds and hold-out (EPSG:3035 metres)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glc.eval.split import block_ids, holdout_distances, spatial_block_folds, spatial_holdout


@pytest.fixture(scope="module")
def sites() -> tuple[np.ndarray, np.ndarray]:
    """3,000 survey points in EPSG:3035 around central Europe, clustered like plots, with repeat visits."""
    rng = np.random.default_rng(0)
    centres = np.c_[rng.uniform(3.5e6, 5.0e6, 60), rng.uniform(2.5e6, 3.5e6, 60)]
    idx = rng.integers(0, 60, size=2400)
    pts = centres[idx] + rng.normal(0, 15_000, size=(2400, 2))
    repeats = pts[rng.integers(0, 2400, size=600)]  # revisits: identical coordinates
    xy = np.vstack([pts, repeats])
    return xy[:, 0], xy[:, 1]


def test_every_point_in_one_fold_and_folds_balanced(sites) -> None:
    x, y = sites
    folds = spatial_block_folds(x, y, n_folds=5, block_km=10, seed=0)
    assert folds.shape == x.shape and folds.dtype == np.int64
    assert set(np.unique(folds)) == {0, 1, 2, 3, 4}
    sizes = np.bincount(folds, minlength=5)
    _, counts = block_ids(x, y, 10)
    # greedy least-loaded assignment: folds differ by at most one block's size
    assert sizes.max() - sizes.min() <= counts.max()
    assert sizes.max() - sizes.min() <= 0.05 * len(x)


def test_no_block_split_across_folds(sites) -> None:
    x, y = sites
    folds = spatial_block_folds(x, y, n_folds=4, block_km=25, seed=3)
    cell = pd.DataFrame({"bx": np.floor(x / 25_000), "by": np.floor(y / 25_000), "fold": folds})
    assert (cell.groupby(["bx", "by"])["fold"].nunique() == 1).all()


def test_repeat_visits_share_a_fold(sites) -> None:
    x, y = sites
    folds = spatial_block_folds(x, y, n_folds=5, seed=1)
    df = pd.DataFrame({"x": x, "y": y, "fold": folds})
    per_site = df.groupby(["x", "y"])["fold"].agg(["nunique", "size"])
    assert (per_site["size"] > 1).sum() > 100  # the fixture really has revisits
    assert (per_site["nunique"] == 1).all()


def test_deterministic_for_a_seed(sites) -> None:
    x, y = sites
    a = spatial_block_folds(x, y, seed=7)
    np.testing.assert_array_equal(a, spatial_block_folds(x.copy(), y.copy(), seed=7))
    assert not np.array_equal(a, spatial_block_folds(x, y, seed=8))
    h = spatial_holdout(x, y, seed=7)
    np.testing.assert_array_equal(h, spatial_holdout(x, y, seed=7))
    assert not np.array_equal(h, spatial_holdout(x, y, seed=8))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35])
def test_holdout_fraction_and_whole_blocks(sites, fraction: float) -> None:
    x, y = sites
    mask = spatial_holdout(x, y, val_fraction=fraction, block_km=10, seed=2)
    assert mask.dtype == bool
    block, counts = block_ids(x, y, 10)
    assert abs(mask.mean() - fraction) * len(x) <= counts.max()  # within one block of the target
    per_block = pd.Series(mask).groupby(block).nunique()
    assert (per_block == 1).all()  # a block is entirely validation or entirely training


def test_real_glc24_test_surveys_split(shared_data) -> None:
    from glc.geo import to_laea

    meta = pd.read_csv(shared_data / "glc24-real" / "GLC24_PA_metadata_test.csv")
    x, y = to_laea(meta["lon"].to_numpy(), meta["lat"].to_numpy())
    folds = spatial_block_folds(x, y, n_folds=5, block_km=10, seed=0)
    sizes = np.bincount(folds, minlength=5)
    assert sizes.sum() == len(meta) == 4716
    assert sizes.min() > 0.9 * len(meta) / 5
    bx, by = np.floor(x / 10_000), np.floor(y / 10_000)
    assert (pd.DataFrame({"bx": bx, "by": by, "f": folds}).groupby(["bx", "by"])["f"].nunique() == 1).all()


def test_errors() -> None:
    lon, lat = np.array([2.3, 13.4, 4.9]), np.array([48.8, 52.5, 52.4])
    with pytest.raises(ValueError, match="look like lon/lat degrees.*glc.geo.to_laea"):
        spatial_block_folds(lon, lat, n_folds=2)
    x, y = np.array([4.0e6, 4.0e6 + 1, 4.5e6]), np.array([3.0e6, 3.0e6, 3.0e6])
    with pytest.raises(ValueError, match="only 2 non-empty 10 km block"):
        spatial_block_folds(x, y, n_folds=3)
    with pytest.raises(ValueError, match="n_folds=1 must be an integer >= 2"):
        spatial_block_folds(x, y, n_folds=1)
    with pytest.raises(ValueError, match="point 1 has non-finite coordinates"):
        spatial_holdout(np.array([4.0e6, np.nan]), np.array([3.0e6, 3.0e6]))
    with pytest.raises(ValueError, match="val_fraction=1.0 must lie strictly between 0 and 1"):
        spatial_holdout(x, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="all points fall in one 10 km block"):
        spatial_holdout(x[:2], y[:2])
    with pytest.raises(ValueError, match="block_km=0 must be a positive number"):
        block_ids(x, y, 0)


def test_test_like_holdout_follows_the_test_surveys() -> None:
    """Blocks are drawn toward where test surveys are denser than training ones: with the test set crowded in the
    east, the test-like hold-out lies further east than the uniform one, at the same size and always whole blocks."""
    from glc.eval.split import spatial_holdout, test_like_holdout, validation_mask

    rng = np.random.default_rng(0)
    x = rng.uniform(3.0e6, 5.0e6, 4000)
    y = rng.uniform(2.0e6, 3.0e6, 4000)
    qx = rng.uniform(4.5e6, 5.0e6, 600)  # the test set: only the eastern quarter
    qy = rng.uniform(2.0e6, 3.0e6, 600)
    like = test_like_holdout(x, y, qx, qy, val_fraction=0.2, block_km=50, seed=1)
    uniform = spatial_holdout(x, y, val_fraction=0.2, block_km=50, seed=1)
    assert abs(like.mean() - 0.2) < 0.05 and abs(uniform.mean() - 0.2) < 0.05
    assert np.median(x[like]) > 4.4e6 > np.median(x[uniform])
    block, _ = block_ids(x, y, 50)
    for b in np.unique(block):  # whole blocks only
        assert len(set(like[block == b])) == 1
    np.testing.assert_array_equal(like, test_like_holdout(x, y, qx, qy, val_fraction=0.2, block_km=50, seed=1))
    train = pd.DataFrame({"x": x, "y": y})
    cfg = {"seed": 1, "validation": {"block_km": 50, "val_fraction": 0.2, "scheme": "test_like"}}
    np.testing.assert_array_equal(validation_mask(train, cfg, pd.DataFrame({"x": qx, "y": qy})), like)
    with pytest.raises(ValueError, match="'test_like' draws the hold-out toward the test surveys: pass them"):
        validation_mask(train, cfg)
    np.testing.assert_array_equal(
        validation_mask(train, {"seed": 1, "validation": {"block_km": 50, "val_fraction": 0.2}}), uniform
    )


def test_holdout_distances_measure_the_gap_each_block_size_leaves() -> None:
    """Training surveys on a 5 km lattice around a 60 km hole that holds the test surveys: a test survey lies up to
    30 km from the nearest training one; a 10 km block holds out surveys a few km from the kept ones, 100 km blocks
    tens of km; the table's numbers are those distances."""
    from scipy.spatial import cKDTree

    g = np.arange(3_800_000.0, 4_200_000.0, 5_000.0)
    gx, gy = np.meshgrid(g, g - 1_000_000.0)
    x, y = gx.ravel(), gy.ravel()
    hole = (np.abs(x - 4_000_000) < 30_000) & (np.abs(y - 3_000_000) < 30_000)
    qx, qy = x[hole], y[hole]
    x, y = x[~hole], y[~hole]
    t = holdout_distances(x, y, qx, qy, block_kms=(10.0, 100.0), val_fraction=0.2, seed=3)
    assert list(t.index) == ["test", "blocks 10 km", "blocks 100 km"]
    exact = np.median(cKDTree(np.c_[x, y]).query(np.c_[qx, qy])[0]) / 1000
    assert t.loc["test", "q50"] == pytest.approx(exact, abs=0.01) and t.loc["test", "n"] == hole.sum()
    assert t.loc["blocks 10 km", "q50"] < t.loc["test", "q50"] < t.loc["blocks 100 km", "q50"]
    held = spatial_holdout(x, y, 0.2, 100.0, 3)
    assert t.loc["blocks 100 km", "n"] == held.sum()
    d = cKDTree(np.c_[x[~held], y[~held]]).query(np.c_[x[held], y[held]])[0] / 1000
    assert t.loc["blocks 100 km", "q90"] == pytest.approx(np.quantile(d, 0.9), abs=0.01)
    ratio = t.loc["blocks 100 km", "q50"] / t.loc["test", "q50"]
    assert t.loc["blocks 100 km", "median_ratio"] == pytest.approx(ratio, abs=0.01)
    assert np.isnan(t.loc["test", "median_ratio"])


def test_holdout_distances_test_like_scheme_and_a_test_set_on_the_training_points(sites) -> None:
    from glc.eval.split import test_like_holdout

    x, y = sites
    qx, qy = x[:300] + 40_000.0, y[:300]
    t = holdout_distances(x, y, qx, qy, block_kms=(20.0, 20.0), scheme="test_like", seed=1)
    assert list(t.index) == ["test", "blocks 20 km"]  # a repeated size is measured once
    assert t.loc["blocks 20 km", "n"] == test_like_holdout(x, y, qx, qy, 0.2, 20.0, 1).sum()
    on = holdout_distances(x, y, x[:50], y[:50], block_kms=(20.0,))  # test surveys at training sites: 0 km
    assert on.loc["test", "q50"] == 0.0 and on["median_ratio"].isna().all()
    close = holdout_distances(x, y, qx, qy, block_kms=(20.0,), quantiles=(0.12, 0.125, 0.5))
    assert [c for c in close.columns if c.startswith("q")] == ["q12", "q12.5", "q50"]  # close quantiles stay apart
    assert close.loc["test", "q12"] <= close.loc["test", "q12.5"] <= close.loc["test", "q50"]


def test_holdout_distances_errors() -> None:
    x, y = np.array([4.0e6, 4.1e6, 4.2e6]), np.array([3.0e6, 3.0e6, 3.1e6])
    with pytest.raises(ValueError, match="no query"):
        holdout_distances(x, y, np.array([]), np.array([]))
    with pytest.raises(ValueError, match="block_kms is empty"):
        holdout_distances(x, y, x, y, block_kms=())
    with pytest.raises(ValueError, match="quantiles"):
        holdout_distances(x, y, x, y, quantiles=(1.5,))
    with pytest.raises(ValueError, match="degrees"):
        holdout_distances(np.array([10.0, 11.0]), np.array([50.0, 51.0]), x, y)
    with pytest.raises(ValueError, match="scheme"):
        holdout_distances(x, y, x, y, scheme="random")
