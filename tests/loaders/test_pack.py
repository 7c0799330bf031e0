"""Packing a model-input table for a GPU box: the unpacked table has the same splits, columns and shapes, labels and
ids are exact, the cubes are exactly the low-pass series of the originals, the patch block and the GFV keep what was
packed, float16 overflow is scaled away, and the trainer reads the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glc.features.dct import dct1, idct1
from glc.loaders.fake import make_fake_inputs
from glc.loaders.pack import pack, read_split, unpack
from glc.loaders.tables import read_meta

SETS = ("landsat_cube", "bioclim_cube", "patch_dct", "env", "gfv", "plot")


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("to_pack") / "inputs"
    frames = make_fake_inputs(
        root, SETS, sizes={"train": 60, "val": 20, "test": 10}, num_classes=30, label_width=6, widths={"env": 5}
    )
    # a column beyond float16's range (bioclim precipitation in raw units can be) must survive
    for split in frames:
        frames[split]["bioclim_cube"] = [v * 1e5 for v in frames[split]["bioclim_cube"]]
    from glc.loaders.tables import column_specs, write_input_table

    specs = column_specs(read_meta(root))
    for split, df in frames.items():
        write_input_table(df, root / split, specs)
    out = root.parent / "t.npz"
    info = pack(root, out, cube_coefs=8, patch_k=4, gfv_top=5)
    back = unpack(out, root.parent / "unpacked")
    return root, back, info


def test_round_trip_keeps_shapes_ids_and_labels_and_low_passes_the_cubes(packed) -> None:
    root, back, info = packed
    assert info["surveys"] == 90 and info["bytes_per_survey"] > 0 and info["packed"]["labels"] == "ragged"
    m0, m1 = read_meta(root), read_meta(back)
    assert m1["splits"] == m0["splits"] and {k: v["shape"] for k, v in m1["columns"].items()} == {
        k: v["shape"] for k, v in m0["columns"].items()
    }
    assert m1["unpacked_from"]["packed"]["landsat_cube"].startswith("dct1 8")
    for split in ("train", "val", "test"):
        a, b = read_split(root, split), read_split(back, split)
        np.testing.assert_array_equal(a["surveyId"], b["surveyId"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["x"], b["x"])
        lo = idct1(dct1(a["landsat_cube"].transpose(0, 1, 3, 2).reshape(len(a["x"]), 6, -1).astype(np.float64), 8), 80)
        want = lo.reshape(len(a["x"]), 6, 20, 4).transpose(0, 1, 3, 2)
        np.testing.assert_allclose(b["landsat_cube"], want, rtol=2e-3, atol=2e-2)
        bio = idct1(dct1(a["bioclim_cube"].reshape(len(a["x"]), 4, -1).astype(np.float64), 8), 216).reshape(
            -1, 4, 18, 12
        )
        assert np.isfinite(b["bioclim_cube"]).all()
        np.testing.assert_allclose(b["bioclim_cube"], bio, rtol=2e-3, atol=2e-3 * np.abs(bio).max())
        np.testing.assert_allclose(b["patch_dct"][..., :4, :4], a["patch_dct"][..., :4, :4], rtol=2e-3, atol=1e-2)
        assert not b["patch_dct"][..., 4:, :].any() and not b["patch_dct"][..., :, 4:].any()
        for g0, g1 in zip(a["gfv"], b["gfv"]):
            top = np.argsort(-g0, kind="stable")[:5]
            np.testing.assert_allclose(g1[top], g0[top], rtol=2e-3, atol=1e-3)
            assert np.count_nonzero(g1) <= 5
    assert (
        "stats" in m1["columns"]["landsat_cube"]
        and m1["columns"]["landsat_cube"]["stats"] != m0["columns"]["landsat_cube"]["stats"]
    )


def test_the_trainer_reads_the_unpacked_table(packed, tmp_path: Path) -> None:
    from glc.config import resolve
    from glc.training.trainer import train_model

    _, back, _ = packed
    cfg = resolve({"model": {"kind": "timeseries_cnn", "series": ["landsat_dct"]}, "train": {"max_epochs": 1}})
    with pytest.raises(KeyError, match="landsat_dct"):  # the table holds what was packed, no more
        train_model(back, tmp_path, cfg, "x", progress=False, wandb=False)
    cfg = resolve(
        {
            "model": {"kind": "geolocation", "hidden": 8, "extras": ["env", "gfv"]},
            "train": {"max_epochs": 1, "batch_size": 32, "reader": "memory", "accelerator": "cpu"},
        }
    )
    s = train_model(back, tmp_path / "w", cfg, "x", progress=False, wandb=False)
    assert s["epochs_trained"] == 1 and s["train_samples"] == 60 and s["train_samples_per_s"] > 0


def test_the_unpacked_files_do_not_depend_on_the_threads(packed, tmp_path: Path, monkeypatch) -> None:
    """One thread or four: the same part files (a row group each: 16 rows here), byte for byte, and the same
    meta.json."""
    import pyarrow.parquet as pq

    import glc.loaders.pack as pack_module

    _, _, info = packed
    monkeypatch.setattr(pack_module, "_ROW_GROUP", 16)
    one = unpack(Path(info["file"]), tmp_path / "one", threads=1)
    four = unpack(Path(info["file"]), tmp_path / "four", threads=4)
    for split, files in (("train", 4), ("val", 2), ("test", 1)):
        a = sorted((one / split).glob("part-*.parquet"))
        b = sorted((four / split).glob("part-*.parquet"))
        assert [p.name for p in a] == [p.name for p in b] and len(a) == files
        assert all(pq.ParquetFile(x).metadata.num_row_groups == 1 for x in a)
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert read_meta(one) == read_meta(four)
