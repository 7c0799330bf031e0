"""Model-input table writer/checks and the three readers: exact epoch orders, each row once, same content as the
parquet, corrupt files and wrong columns named in the error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from glc.data.errors import DataError, DataFileNotFoundError
from glc.loaders.readers import (
    READER_CHOICES,
    READERS,
    EpochPlan,
    PetastormSource,
    make_source,
    multi_hot,
    piece_plan,
    rebatch,
    to_torch_batch,
)
from glc.loaders.tables import read_meta, scan_split, write_meta
from tests.loaders import input_frame, make_model_inputs, write_frame

COLUMNS = ("surveyId", "x", "y", "lon", "lat", "year", "region", "env", "labels")


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path_factory.mktemp("model_inputs")
    return root, make_model_inputs(root)


@pytest.fixture(scope="module")
def sources(table):
    root, _ = table
    info = scan_split(root / "train", read_meta(root), COLUMNS)
    return {r: make_source(r, info, shuffle_buffer=60) for r in READER_CHOICES}


def epoch(source, epoch_no: int, *, seed: int = 0, shuffle: bool = True, batch_size: int = 32, workers: int = 1):
    """All torch batches of one epoch, workers' batches concatenated in worker order."""
    out = []
    for w in range(workers):
        plan = EpochPlan(epoch_no, seed, shuffle, batch_size, w, workers)
        out += [to_torch_batch(b, 50, True) for b in source.batches(plan)]
    return out


def ids(batches) -> np.ndarray:
    return np.concatenate([b["surveyId"].numpy() for b in batches])


# ---------------------------------------------------------------------------------------------------------------
# Writer and meta
# ---------------------------------------------------------------------------------------------------------------
def test_writer_layout_and_types(table):
    root, frames = table
    files = sorted((root / "train").glob("part-*.parquet"))
    assert len(files) == 4 and (root / "train" / "_SUCCESS").exists()
    pf = pq.ParquetFile(files[0])
    assert pf.metadata.num_row_groups == 4  # 80 rows in groups of 25
    schema = pf.schema_arrow
    assert str(schema.field("surveyId").type) == "int64" and str(schema.field("year").type) == "int32"
    assert str(schema.field("labels").type) == "list<element: int32>"  # Spark's (compliant) list layout
    assert str(schema.field("env").type) == "list<element: float>"
    back = pq.read_table(root / "train" / files[0].name).to_pandas()
    np.testing.assert_array_equal(back["surveyId"], frames["train"]["surveyId"][:80])
    np.testing.assert_array_equal(np.stack(back["labels"]), np.stack(frames["train"]["labels"][:80]))
    assert read_meta(root)["splits"] == {"train": 300, "val": 100, "test": 60}


def test_writer_rejects_unequal_lists(tmp_path):
    df = input_frame(5, 10, 3, 2, np.random.default_rng(0))
    df.at[3, "labels"] = np.array([1, 2], np.int32)
    with pytest.raises(DataError, match=r"column 'labels': every row must hold 3 values .* row 3 has 2"):
        write_frame(df, tmp_path / "train")
    assert not (tmp_path / "train").exists()


def test_writer_takes_whole_arrays_and_threads_write_the_same_files(tmp_path):
    """A mapping of ``[n, *shape]`` arrays writes the same parquet bytes as the frame of per-row arrays, and several
    threads the same part files as one; an array of the wrong row shape is refused naming the column."""
    from glc.loaders.tables import write_input_table
    from tests.loaders import frame_specs

    df = input_frame(70, 10, 3, 4, np.random.default_rng(5))
    specs = frame_specs(df)
    one = write_input_table(df, tmp_path / "one", specs, rows_per_file=20, row_group_size=10)
    whole = {k: (np.stack(df[k].to_list()) if specs.get(k) and specs[k].is_array else df[k].to_numpy()) for k in df}
    many = write_input_table(whole, tmp_path / "many", specs, rows_per_file=20, row_group_size=10, threads=3)
    assert [p.name for p in one] == [p.name for p in many] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, many))
    whole["env"] = whole["env"][:, :3]
    with pytest.raises(DataError, match=r"column 'env': every row must hold 4 values .* rows of shape \[3\]"):
        write_input_table(whole, tmp_path / "bad", specs)
    assert not (tmp_path / "bad").exists()


def test_the_memory_reader_loads_the_same_tensors_on_any_number_of_threads(fresh):
    """Row groups decoded on several threads land in stored order, a view (``keep``) keeps exactly its rows, and the
    tensors are writable and equal to the one-thread load's."""
    from glc.loaders.readers import MemorySource

    info = scan_split(fresh / "train", read_meta(fresh), COLUMNS, verify=False)
    assert len(info.pieces) >= 6
    one = MemorySource(info, threads=1)
    many = MemorySource(info, threads=4)
    stored = pq.read_table(fresh / "train", columns=["surveyId"]).column("surveyId").to_numpy()
    np.testing.assert_array_equal(one.tensors["surveyId"].numpy(), stored)
    assert one.tensors.keys() == many.tensors.keys()
    assert all(torch.equal(one.tensors[k], many.tensors[k]) for k in one.tensors)
    keep = stored[[0, 5, 19, 20, 21, 77, 119]]
    view = MemorySource(info, keep=keep, threads=4)
    np.testing.assert_array_equal(view.tensors["surveyId"].numpy(), keep)
    assert all(torch.equal(view.tensors[k], one.tensors[k][[0, 5, 19, 20, 21, 77, 119]]) for k in one.tensors)
    view.tensors["env"][0] += 1  # torch may write into its batches' sources
    assert not torch.equal(view.tensors["env"][0], one.tensors["env"][0])
    # several views from one read: each is the view decoded alone, a copy of its own (writing it leaves others)
    both = MemorySource.views(info, {"a": keep[::-1], "b": stored[::2], "none": [-1, -2]}, threads=3)
    assert list(both) == ["a", "b", "none"] and both["a"].info is info
    assert all(torch.equal(both["a"].tensors[k], one.tensors[k][[0, 5, 19, 20, 21, 77, 119]]) for k in one.tensors)
    assert all(torch.equal(both["b"].tensors[k], one.tensors[k][::2]) for k in one.tensors)
    both["a"].tensors["env"][0] += 1  # stored row 0, in both views
    assert torch.equal(both["b"].tensors["env"][0], one.tensors["env"][0])
    assert both["none"].num_rows == 0  # ids the split lacks are not rows (the data module counts them)


def test_meta_errors(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=r"meta\.json"):
        read_meta(tmp_path)
    meta = {
        "num_classes": 3,
        "vocab": [1, 2],
        "label_width": 2,
        "n_regions": 0,
        "regions": [],
        "splits": {"train": 1, "val": 1, "test": 1},
        "columns": {"labels": {"dtype": "int32", "shape": [2]}},
    }
    with pytest.raises(DataError, match=r"vocab'\] has 2 entries but num_classes is 3"):
        write_meta(tmp_path, meta)
    meta["vocab"] = [1, 2, 3]
    meta["columns"]["env"] = {"dtype": "float16", "shape": [4]}
    with pytest.raises(DataError, match=r"meta\['columns'\]\['env'\] = .* is not a valid column"):
        write_meta(tmp_path, meta)
    meta["columns"]["env"] = {"dtype": "float32", "shape": [4]}
    meta["columns"]["labels"]["shape"] = [3]
    with pytest.raises(DataError, match=r"'labels'\] must be int32 of shape \[label_width=2\]"):
        write_meta(tmp_path, meta)
    (tmp_path / "meta.json").write_text(json.dumps({"num_classes": 3}))
    with pytest.raises(DataError, match=r"meta\.json: meta is missing key\(s\) \['vocab'"):
        read_meta(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Orders: (a) same seed+epoch -> same order, (b) other epoch -> other order, (c) each row once
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", READERS)
def test_epoch_order_is_exact_and_changes_with_epoch(sources, reader):
    src = sources[reader]
    e0, e0_again, e1 = ids(epoch(src, 0)), ids(epoch(src, 0)), ids(epoch(src, 1))
    other_seed = ids(epoch(src, 0, seed=1))
    np.testing.assert_array_equal(e0, e0_again)
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, other_seed)
    for order in (e0, e1, other_seed):  # (c) each row exactly once
        assert len(order) == 300 and len(np.unique(order)) == 300


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_one_epoch_visits_each_row_once_over_workers(sources, table, reader, workers):
    _, frames = table
    batches = epoch(sources[reader], 2, batch_size=32, workers=workers)
    seen = ids(batches)
    assert len(seen) == len(np.unique(seen)) == 300
    assert set(seen) == set(frames["train"]["surveyId"])
    plans = [EpochPlan(2, 0, True, 32, w, workers) for w in range(workers)]
    for plan in plans:  # every batch of a worker is full but its last
        sizes = [len(b["surveyId"]) for b in sources[reader].batches(plan)]
        assert all(s == 32 for s in sizes[:-1]) and 0 < sizes[-1] <= 32
        assert sum(sizes) == sources[reader].worker_rows(plan)
    assert sum(sources[reader].worker_rows(p) for p in plans) == 300


def test_unshuffled_order_is_stored_order(sources, table):
    _, frames = table
    for reader in READERS:
        np.testing.assert_array_equal(ids(epoch(sources[reader], 5, shuffle=False)), frames["train"]["surveyId"])


def test_shuffle_mixes_rows_across_row_groups(sources):
    """Rows of a batch come from several row groups, and row-group starts are not batch starts."""
    src = sources["arrow"]
    first_ids = {p.first_id for p in src.info.pieces}
    order = ids(epoch(src, 0))
    stored = np.concatenate([pq.read_table(f, columns=["surveyId"]).column(0).to_numpy() for f in src.info.files])
    group_of = dict(zip(stored, np.repeat(np.arange(len(src.info.pieces)), [p.num_rows for p in src.info.pieces])))
    assert len({group_of[i] for i in order[:32]}) >= 2
    assert order[0] not in first_ids or order[32] not in first_ids


@pytest.mark.parametrize("petastorm", ["petastorm", "petastorm-public"])
def test_petastorm_and_arrow_give_identical_batches(sources, petastorm):
    """Both Petastorm collations and the native reader yield the same batches, dtypes included."""
    for workers in (1, 2):
        for e in (0, 1):
            a = epoch(sources["arrow"], e, workers=workers)
            p = epoch(sources[petastorm], e, workers=workers)
            assert len(a) == len(p)
            for ba, bp in zip(a, p):
                assert ba.keys() == bp.keys()
                for k in ba:
                    torch.testing.assert_close(ba[k], bp[k], rtol=0, atol=0)


def test_piece_plan_deals_row_groups_round_robin(sources):
    info = sources["arrow"].info
    files, mine = piece_plan(info, EpochPlan(3, 0, True, 32, 1, 2))
    sequence = [p for f in files for p in info.pieces_of(f)]
    assert mine == sequence[1::2]
    assert sorted(files) == sorted(info.files) and files != info.files or len(files) < 3


# ---------------------------------------------------------------------------------------------------------------
# (d) Same content as the parquet, for all readers
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", READERS)
def test_rows_match_the_parquet(sources, table, reader):
    _, frames = table
    df = frames["train"].set_index("surveyId")
    batches = epoch(sources[reader], 4, workers=2)
    got = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    assert set(got) == {"surveyId", "x", "y", "lon", "lat", "year", "region", "env", "target"}
    assert got["x"].dtype == torch.float32 and got["year"].dtype == torch.int64
    assert got["env"].shape == (300, 4) and got["target"].shape == (300, 50) and got["target"].dtype == torch.float32
    sid = got["surveyId"].numpy()
    rows = df.loc[sid]
    for col in ("x", "y", "lon", "lat"):
        np.testing.assert_array_equal(got[col].numpy(), rows[col].to_numpy().astype(np.float32))
    for col in ("year", "region"):
        np.testing.assert_array_equal(got[col].numpy(), rows[col].to_numpy())
    np.testing.assert_array_equal(got["env"].numpy(), np.stack(rows["env"]))
    expected = np.zeros((300, 50), np.float32)
    for i, labels in enumerate(rows["labels"]):
        expected[i, labels[labels >= 0]] = 1
    np.testing.assert_array_equal(got["target"].numpy(), expected)
    assert got["target"].sum(1).min() >= 1  # every training survey has a species


def test_multi_hot_ignores_padding_and_rejects_out_of_range():
    labels = torch.tensor([[3, 0, -1], [-1, -1, -1], [2, 2, 4]])
    target = multi_hot(labels, 5)
    assert target.dtype == torch.float32
    np.testing.assert_array_equal(target.numpy(), [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 1]])
    with pytest.raises(DataError, match="label index 5 >= num_classes 5"):
        multi_hot(torch.tensor([[5, -1]]), 5)


def test_rebatch_sizes_and_order():
    chunks = [{"surveyId": np.arange(s, s + n)} for s, n in ((0, 7), (7, 3), (10, 11))]
    plain = list(rebatch(iter(chunks), 4, None, 100))
    assert [len(b["surveyId"]) for b in plain] == [4, 4, 4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([b["surveyId"] for b in plain]), np.arange(21))
    mixed = list(rebatch(iter(chunks), 4, np.random.default_rng(0), 8))
    assert [len(b["surveyId"]) for b in mixed][:-1] == [4] * 5
    assert sorted(np.concatenate([b["surveyId"] for b in mixed])) == list(range(21))


def test_petastorm_short_reads_are_repaired(sources, monkeypatch):
    """Petastorm 0.13.1 may end a read early; the missing row groups must be re-read, not lost."""
    src = sources["petastorm"]
    real_open = PetastormSource._open
    calls = []

    class Truncated:  # the first reader stops after 2 row groups, like the pool race does
        def __init__(self, reader):
            self.reader, self.n = reader, 0

        def __next__(self):
            if self.n == 2:
                raise StopIteration
            self.n += 1
            return next(self.reader)

        def stop(self):
            self.reader.stop()

        def join(self):
            self.reader.join()

    def flaky_open(self, files, shard):
        calls.append(shard)
        reader = real_open(self, files, shard)
        return Truncated(reader) if len(calls) == 1 else reader

    monkeypatch.setattr(PetastormSource, "_open", flaky_open)
    before = src.rereads
    got = ids(epoch(src, 7))
    # one re-read for our truncation (the real race may add more: each is repaired the same way)
    assert src.rereads >= before + 1 and len(calls) >= 2
    monkeypatch.undo()
    np.testing.assert_array_equal(got, ids(epoch(sources["arrow"], 7)))


# ---------------------------------------------------------------------------------------------------------------
# (e) corrupt files, (f) wrong columns: errors name the file and column
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture()
def fresh(tmp_path) -> Path:
    root = tmp_path / "t"
    make_model_inputs(root, sizes={"train": 120, "val": 40, "test": 20}, rows_per_file=50, row_group_size=20)
    return root


def test_truncated_file_is_named(fresh):
    bad = fresh / "train" / "part-00001.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"corrupt parquet file .*train/part-00001\.parquet"):
        scan_split(fresh / "train", read_meta(fresh), COLUMNS)


def test_garbage_file_is_named(fresh):
    bad = fresh / "train" / "part-00002.parquet"
    bad.write_bytes(np.random.default_rng(0).bytes(bad.stat().st_size))
    with pytest.raises(DataError, match=r"corrupt parquet file .*train/part-00002\.parquet"):
        scan_split(fresh / "train", read_meta(fresh), COLUMNS, verify=False)


def _corrupt_labels_page(bad: Path, where: str) -> None:
    """Overwrite 8 bytes of the first row group's ``labels`` column chunk (its page header or its data)."""
    md = pq.ParquetFile(bad).metadata
    names = [md.row_group(0).column(i).path_in_schema for i in range(md.num_columns)]
    col = md.row_group(0).column(names.index("labels.list.element"))
    data = bytearray(bad.read_bytes())
    start = col.data_page_offset + (8 if where == "page header" else int(0.3 * col.total_compressed_size))
    data[start : start + 8] = (b"\xff" if where == "page header" else b"\x5a") * 8
    bad.write_bytes(bytes(data))


@pytest.mark.parametrize("reader", ["petastorm", "arrow"])
@pytest.mark.parametrize("where", ["page header", "page data"])
def test_corrupt_data_page_is_named_by_verify_and_by_the_readers(fresh, reader, where):
    """Garbage inside a column chunk (footer intact): setup's verification read names the file; without it,
    the reader names it when it reaches that row group. (Not every flipped byte is detectable: pyarrow 14 has no
    page checksums, so garbage inside float values can decode silently; these two positions are detected.)"""
    _corrupt_labels_page(fresh / "train" / "part-00000.parquet", where)
    meta = read_meta(fresh)
    with pytest.raises(DataError, match=r"train/part-00000\.parquet"):
        scan_split(fresh / "train", meta, COLUMNS)
    src = make_source(reader, scan_split(fresh / "train", meta, COLUMNS, verify=False))
    with pytest.raises(DataError, match=r"train/part-00000\.parquet"):
        list(src.batches(EpochPlan(0, 0, False, 16)))


@pytest.mark.parametrize("where", ["page header", "page data"])
def test_the_memory_reader_names_a_corrupt_page_at_setup_without_a_verifying_scan(fresh, where):
    """The data module's ``memory`` reader skips the verifying scan (it decodes and checks every row group as it
    loads them): a corrupt page still fails the setup, naming the file."""
    from glc.loaders import SurveyDataModule

    _corrupt_labels_page(fresh / "train" / "part-00000.parquet", where)
    dm = SurveyDataModule(fresh, batch_size=16, reader="memory", verify=True)
    with pytest.raises(DataError, match=r"train/part-00000\.parquet"):
        dm.setup("fit")


def test_missing_column_is_named(fresh):
    path = fresh / "val" / "part-00000.parquet"
    pq.write_table(pq.read_table(path).drop(["region"]), path)
    with pytest.raises(DataError, match=r"val/part-00000\.parquet: column 'region' is missing"):
        scan_split(fresh / "val", read_meta(fresh), COLUMNS)
    scan_split(fresh / "val", read_meta(fresh), ("surveyId", "x", "labels"))  # not requested: fine


def test_wrong_label_width_is_named(fresh):
    df = input_frame(40, 50, 7, 4, np.random.default_rng(1))  # L = 7 where meta.json says 8
    write_frame(df, fresh / "val", rows_per_file=50, row_group_size=20)
    with pytest.raises(
        DataError,
        match=r"val/part-00000\.parquet \(row group 0\): column 'labels' must hold lists "
        r"of exactly 8 values .* row 0 has 7 values",
    ):
        scan_split(fresh / "val", read_meta(fresh), COLUMNS)


@pytest.mark.parametrize(
    ("collate", "message"), [("arrow", "must hold lists of exactly 4 values"), ("petastorm", r"has shape \(20, 3\)")]
)
def test_wrong_env_width_is_named_by_petastorm_reader_without_verify(fresh, collate, message):
    df = input_frame(40, 50, 8, 3, np.random.default_rng(1))  # E = 3 where meta.json says 4
    write_frame(df, fresh / "val", rows_per_file=50, row_group_size=20)
    info = scan_split(fresh / "val", read_meta(fresh), COLUMNS, verify=False)
    with pytest.raises(DataError, match=r"val/part-00000\.parquet \(row group 0\): column 'env' " + message):
        list(PetastormSource(info, collate=collate).batches(EpochPlan(0, 0, False, 16)))


def test_label_out_of_range_and_duplicate_ids_and_count_mismatch(fresh):
    meta = read_meta(fresh)
    df = input_frame(40, 60, 8, 4, np.random.default_rng(2))  # class ids up to 59 >= C = 50
    write_frame(df, fresh / "val")
    with pytest.raises(DataError, match=r"column 'labels' holds .*expected class indices 0\.\.49"):
        scan_split(fresh / "val", meta, COLUMNS)
    df = input_frame(40, 50, 8, 4, np.random.default_rng(3))
    df.loc[5, "surveyId"] = df.loc[9, "surveyId"]
    write_frame(df, fresh / "val")
    with pytest.raises(DataError, match=r"surveyId value\(s\) occur more than once"):
        scan_split(fresh / "val", meta, COLUMNS)
    write_frame(input_frame(41, 50, 8, 4, np.random.default_rng(4)), fresh / "val")
    with pytest.raises(DataError, match=r"holds 41 rows but meta\.json says splits\['val'\] = 40"):
        scan_split(fresh / "val", meta, COLUMNS)


def test_incomplete_split_is_refused(fresh):
    (fresh / "train" / "_SUCCESS").unlink()
    with pytest.raises(DataFileNotFoundError, match=r"train has no _SUCCESS flag"):
        scan_split(fresh / "train", read_meta(fresh), COLUMNS)
    shutil.rmtree(fresh / "val")
    with pytest.raises(DataFileNotFoundError, match=r"model-input split not found: .*val"):
        scan_split(fresh / "val", read_meta(fresh), COLUMNS)


def test_empty_part_files_do_not_end_an_epoch_early(fresh):
    """Spark writes empty part files for empty partitions; every reader still sees every row, any worker count."""
    empty = pq.read_table(fresh / "train" / "part-00000.parquet").slice(0, 0)
    pq.write_table(empty, fresh / "train" / "part-00000a.parquet")  # one row group of 0 rows
    pq.write_table(empty, fresh / "train" / "part-00001a.parquet")
    info = scan_split(fresh / "train", read_meta(fresh), COLUMNS)
    assert info.num_rows == 120 and sum(p.num_rows == 0 for p in info.pieces) == 2
    for reader in READER_CHOICES:
        src = make_source(reader, info)
        for workers in (1, 2, 3):
            seen = np.concatenate(
                [b["surveyId"] for w in range(workers) for b in src.batches(EpochPlan(1, 0, True, 16, w, workers))]
            )
            assert len(seen) == len(np.unique(seen)) == 120, (reader, workers)


# ---------------------------------------------------------------------------------------------------------------
# The optional graph feature vector column (gfv feature set, width C from meta.json columns)
# ---------------------------------------------------------------------------------------------------------------
GFV_COLUMNS = ("surveyId", "x", "y", "env", "gfv", "labels")


@pytest.fixture()
def gfv_table(tmp_path) -> tuple[Path, dict[str, pd.DataFrame]]:
    root = tmp_path / "g"
    return root, make_model_inputs(
        root, sizes={"train": 90, "val": 30, "test": 20}, rows_per_file=40, row_group_size=15, gfv_dim=50
    )


def test_split_info_widths(gfv_table, table):
    root, _ = gfv_table
    info = scan_split(root / "train", read_meta(root), GFV_COLUMNS)
    assert (info.width("labels"), info.width("env"), info.width("gfv")) == (8, 4, 50)
    with pytest.raises(KeyError, match=r"'x' is not a loaded array column"):
        info.width("x")
    old_root, _ = table  # no gfv feature set: the column is not in meta.json, so it cannot be loaded
    assert "gfv" not in read_meta(old_root)["columns"]
    with pytest.raises(KeyError, match=r"'gfv' is not a loaded array column"):
        scan_split(old_root / "val", read_meta(old_root), COLUMNS).width("gfv")


@pytest.mark.parametrize("reader", READER_CHOICES)
def test_gfv_rows_match_the_parquet(gfv_table, reader):
    root, frames = gfv_table
    assert (
        str(pq.ParquetFile(next((root / "train").glob("part-*.parquet"))).schema_arrow.field("gfv").type)
        == "list<element: float>"
    )
    src = make_source(reader, scan_split(root / "train", read_meta(root), GFV_COLUMNS), shuffle_buffer=30)
    batches = epoch(src, 2, workers=2, batch_size=16)
    gfv = torch.cat([b["gfv"] for b in batches])
    assert gfv.dtype == torch.float32 and gfv.shape == (90, 50)
    rows = frames["train"].set_index("surveyId").loc[ids(batches)]
    np.testing.assert_array_equal(gfv.numpy(), np.stack(rows["gfv"]))
    np.testing.assert_array_equal(torch.cat([b["env"] for b in batches]).numpy(), np.stack(rows["env"]))


def test_wrong_gfv_width_and_nan_are_named(gfv_table):
    root, _ = gfv_table
    meta = read_meta(root)
    write_frame(input_frame(30, 50, 8, 4, np.random.default_rng(5), gfv_dim=49), root / "val")
    with pytest.raises(
        DataError,
        match=r"val/part-00000\.parquet \(row group 0\): column 'gfv' must hold lists of "
        r"exactly 50 values .* row 0 has 49 values",
    ):
        scan_split(root / "val", meta, GFV_COLUMNS)
    info = scan_split(root / "val", meta, GFV_COLUMNS, verify=False)
    with pytest.raises(DataError, match=r"column 'gfv' has shape \(30, 49\), expected \[30, 50\]"):
        list(PetastormSource(info, collate="petastorm").batches(EpochPlan(0, 0, False, 16)))
    df = input_frame(30, 50, 8, 4, np.random.default_rng(6), gfv_dim=50)
    df.at[7, "gfv"] = np.full(50, np.nan, np.float32)
    write_frame(df, root / "val")
    with pytest.raises(DataError, match=r"column 'gfv' holds NaN or inf"):
        scan_split(root / "val", meta, GFV_COLUMNS)


def test_gfv_requested_from_a_table_without_it(table, tmp_path):
    root, _ = table
    with pytest.raises(DataError, match=r"column\(s\) \['gfv'\] are not in the table .*build ModelInputs"):
        scan_split(root / "val", read_meta(root), ("surveyId", "gfv"))
    meta = read_meta(root)
    meta["columns"]["gfv"] = {"dtype": "float32", "shape": [-1]}
    with pytest.raises(DataError, match=r"meta\['columns'\]\['gfv'\] = .* is not a valid column"):
        write_meta(tmp_path, meta)
    meta = read_meta(root)
    meta["columns"]["gfv"] = {"dtype": "float32", "shape": [50], "feature_set": "gfv"}  # declared but not written
    with pytest.raises(DataError, match=r"column 'gfv' is missing"):
        scan_split(root / "val", meta, ("surveyId", "gfv"))


# ---------------------------------------------------------------------------------------------------------------
# Image-like columns: multi-dimensional float planes and uint8 pixels (feature sets patch_dct, patch_raw)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_table(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    from glc.loaders.fake import make_fake_inputs

    root = tmp_path_factory.mktemp("images")
    frames = make_fake_inputs(
        root,
        ("patch_dct", "patch_raw"),
        sizes={"train": 70, "val": 20, "test": 10},
        rows_per_file=30,
        row_group_size=12,
        distinct=True,
    )
    return root, frames


@pytest.mark.parametrize("reader", READER_CHOICES)
@pytest.mark.parametrize("workers", [1, 2])
def test_planes_keep_each_survey_and_channel(image_table, reader, workers):
    """Per-sample distinct bands (value = f(surveyId, channel, element)) come back exactly, in [B, 4, 8, 8], after
    shuffling and re-batching: no interleaving of channels across samples (DS@GT's ``view`` bug)."""
    from glc.loaders.fake import distinct_values

    root, frames = image_table
    info = scan_split(root / "train", read_meta(root), ("patch_dct", "patch_raw", "labels"))
    src = make_source(reader, info, shuffle_buffer=25)
    batches = epoch(src, 3, workers=workers, batch_size=16)
    got_ids = ids(batches)
    assert sorted(got_ids) == sorted(frames["train"]["surveyId"])  # every row once
    dct = torch.cat([b["patch_dct"] for b in batches])
    raw = torch.cat([b["patch_raw"] for b in batches])
    assert dct.dtype == torch.float32 and tuple(dct.shape) == (70, 4, 8, 8)
    assert raw.dtype == torch.uint8 and tuple(raw.shape) == (70, 4, 128, 128)
    np.testing.assert_array_equal(dct.numpy(), distinct_values(got_ids, (4, 8, 8)))
    rows = frames["train"].set_index("surveyId").loc[got_ids]
    np.testing.assert_array_equal(raw.numpy(), np.stack(rows["patch_raw"]))
    # channel c of survey s is recognisable: its DC-position value is (s % 1024) * 4 + c
    np.testing.assert_array_equal(dct[:, :, 0, 0].numpy(), (got_ids[:, None] % 1024) * 4.0 + np.arange(4)[None, :])


def test_wrong_pixel_count_is_named(image_table, tmp_path):
    import shutil

    root, frames = image_table
    bad = tmp_path / "t"
    shutil.copytree(root, bad)
    df = frames["val"].copy()
    df["patch_raw"] = [np.zeros((4, 128, 127), np.uint8)] * len(df)
    write_frame(df, bad / "val")
    with pytest.raises(
        DataError, match=r"column 'patch_raw' must hold byte strings of exactly 65536 values .* row 0 has 65024"
    ):
        scan_split(bad / "val", read_meta(bad), ("patch_raw",))


@pytest.mark.parametrize("reader", READER_CHOICES)
def test_a_table_path_with_plus_and_space_reads(tmp_path, reader):
    """ModelInputs folders join feature-set names with '+' (``...-raster_climate+raster_landcover``): every reader
    must read such a path (Petastorm did not decode ``Path.as_uri``'s ``%2B``)."""
    root = tmp_path / "v10km-a+b c"
    frames = make_model_inputs(root, sizes={"train": 40, "val": 10, "test": 10})
    src = make_source(reader, scan_split(root / "train", read_meta(root), COLUMNS), shuffle_buffer=20)
    assert sorted(ids(epoch(src, 0))) == sorted(frames["train"]["surveyId"])
