"""The executor-side load step: bucketed staging, the sorted merge, fast row gathers, counts and the lost-file check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glc.data.layout import Layout
from glc.etl import staging
from glc.etl.artifact import list_array
from glc.etl.patches import write_patch_tiles
from glc.etl.staging import Staged, merge_bucket, n_buckets, run_merge, sum_counts, take_rows
from tests.etl.test_patches import survey_frame, write_patches


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "surveyId": pa.array(rng.permutation(n).astype(np.int64) * 7 + 3),
            "split": pa.array(rng.choice(["train", "test"], n)),
            "dct": list_array(rng.normal(size=(n, 6)).astype(np.float32)),
            "inside": list_array(rng.random((n, 2)) < 0.5, pa.bool_()),
            "raw": pa.array([bytes(rng.integers(0, 256, 5, dtype=np.uint8)) for _ in range(n)], pa.binary()),
            "ragged": pa.array([list(range(i % 3)) for i in range(n)], pa.list_(pa.int32())),
        }
    )


def test_take_rows_equals_pyarrow_take_on_every_column_kind() -> None:
    t = _table(50)
    order = np.random.default_rng(1).permutation(50)
    got = take_rows(t, order)
    assert got.equals(t.take(pa.array(order)))  # fixed-width lists and binary (fast path), ragged list (fallback)
    sliced = t.slice(10, 30)  # non-zero offsets into the value buffers
    order = np.random.default_rng(2).permutation(30)
    assert take_rows(sliced, order).equals(sliced.take(pa.array(order)))
    with_null = pa.table({"v": pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float32()))})
    assert take_rows(with_null, np.array([2, 0, 1])).equals(with_null.take(pa.array([2, 0, 1])))


def test_sum_counts_adds_nested_counts_key_by_key() -> None:
    parts = [{"n": 1, "per": {"a": 2}}, {"n": 3, "per": {"a": 1, "b": 5}, "m": 0}]
    assert sum_counts(parts) == {"n": 4, "per": {"a": 3, "b": 5}, "m": 0}
    assert sum_counts([]) == {}


def test_n_buckets_sizes_files_and_uses_the_cores_only_when_large() -> None:
    assert n_buckets(30, 1_000, 8) == 1  # a small artifact stays one file
    assert n_buckets(100_000, 100, 2) == 2  # one bucket per core once each holds >= MIN_ROWS_PER_BUCKET rows
    assert n_buckets(10_000, staging.TARGET_FILE_BYTES // 100, 2) == 100  # file size bounds the bucket


def _write_ipc(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.ipc.new_file(str(path), table.schema) as w:
        w.write_table(table)


def test_merge_bucket_sorts_stably_writes_atomically_and_counts(tmp_path: Path) -> None:
    t = _table(40).drop(["ragged"])
    _write_ipc(tmp_path / "s" / "p00000.arrow", t.slice(0, 25))
    _write_ipc(tmp_path / "s" / "p00001.arrow", t.slice(25))
    out = tmp_path / "part-00000.parquet"
    n, counts, seconds = merge_bucket(
        [str(tmp_path / "s" / "p00000.arrow"), str(tmp_path / "s" / "p00001.arrow")],
        out,
        "zstd",
        16,
        lambda tb: {
            "rows": tb.num_rows,
            "per": {"inside0": int(np.sum([r[0] for r in tb.column("inside").to_pylist()]))},
        },
    )
    got = pq.read_table(out)
    assert n == 40 and got.num_rows == 40 and got.equals(t.sort_by("surveyId"))
    assert pq.ParquetFile(out).metadata.num_row_groups == 3  # 16 rows per group
    assert counts == {"rows": 40, "per": {"inside0": int(np.sum([r[0] for r in t.column("inside").to_pylist()]))}}
    assert set(seconds) == {"merge_read", "merge_sort", "merge_write"}
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["part-00000.parquet"]  # no temporary left


def test_run_merge_fails_when_a_staged_file_lost_rows(spark, tmp_path: Path) -> None:
    t = _table(20).drop(["ragged", "raw", "inside"])
    f = tmp_path / "s" / "b00000" / "p00000.arrow"
    _write_ipc(f, t)
    schema = t.schema.append(pa.field("file", pa.string())).append(pa.field("reason", pa.string()))
    staged = Staged({0: [str(f)]}, [], {"train": 15, "test": 10}, {})  # the compute job claimed 25 rows
    with pytest.raises(RuntimeError, match=r"gave 20 rows in 1 file\(s\), but the compute job staged 25 rows"):
        run_merge(spark, staged, schema, tmp_path / "data", 32)


def test_several_buckets_give_files_in_surveyid_order_equal_to_one_bucket(spark, tmp_path: Path, monkeypatch) -> None:
    """Bucketing only spreads rows over files: the same rows, globally sorted, whatever the number of buckets."""
    layout = Layout(tmp_path / "w")
    surveys = survey_frame(30, 10, seed=5)
    write_patches(layout, surveys, seed=5)
    sdf = spark.createDataFrame(surveys)
    one = write_patch_tiles(spark, layout, sdf, tmp_path / "one", k=2)
    monkeypatch.setattr(staging, "MIN_ROWS_PER_BUCKET", 4)
    monkeypatch.setattr(staging, "TARGET_FILE_BYTES", 10 * 88)  # 10 rows of 88 bytes (k=2) per file: 4 buckets
    many = write_patch_tiles(spark, layout, sdf, tmp_path / "many", k=2, partitions=3)
    files = sorted((tmp_path / "many" / "data").glob("*.parquet"))
    assert len(files) >= 3 and len(list((tmp_path / "one" / "data").glob("*.parquet"))) == 1
    parts = [pd.read_parquet(f) for f in files]
    ids = np.concatenate([p["surveyId"].to_numpy() for p in parts])
    assert (np.diff(ids) > 0).all() and all(len(p) for p in parts)  # file order is surveyId order, no empty file
    a, b = pd.read_parquet(tmp_path / "one" / "data"), pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(a.drop(columns="dct"), b.drop(columns="dct"))
    np.testing.assert_array_equal(np.stack(a["dct"]), np.stack(b["dct"]))
    assert one["by_split"] == many["by_split"] and many["n_written"] == len(surveys)
    assert not list((tmp_path / "many").glob("_staging*")) and not list(tmp_path.glob("*.glc-tmp-*"))


def test_empty_artifact_has_one_empty_file_with_the_schema(spark, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "w")
    sdf = spark.createDataFrame(survey_frame(3, 1, seed=6)).limit(0)
    summary = write_patch_tiles(spark, layout, sdf, tmp_path / "e", k=2)
    df = pd.read_parquet(tmp_path / "e" / "data")
    assert df.empty and list(df.columns) == ["surveyId", "split", "dct"]
    assert summary["n_written"] == 0 and summary["n_surveys"] == 0
