"""bench.table_load: every step timed both ways over the same packed table, the two loads and the two ways to a
fold's views compared (a reader that loads differently on more threads, or views that differ, fail the benchmark), a
missing table named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import table_load


def test_it_times_unpack_and_load_both_ways_and_compares_the_loads(tmp_path: Path) -> None:
    npz = table_load._fake_npz(tmp_path)
    res = table_load.run(npz, rounds=2, work=tmp_path / "w")
    assert res["train_rows"] == 3000 and res["rounds"] == 2
    for step, before in (("unpack", "one_thread"), ("load", "one_thread"), ("views", "two_decodes")):
        times = res[f"{step}_seconds_all"]
        assert [len(v) for v in times.values()] == [2, 2] and min(min(v) for v in times.values()) > 0
        assert res[f"{step}_seconds_{before}"] == pytest.approx(sum(times[before]) / 2, abs=0.011)
        assert res[f"{step}_speedup"] > 0
    assert set(res["views_seconds_all"]) == {"two_decodes", "one_decode"}


def test_loads_that_differ_fail_the_benchmark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npz = table_load._fake_npz(tmp_path)
    real = table_load.load_train

    def skewed(root: Path, threads: int, verify: bool):
        seconds, tensors = real(root, threads, verify)
        if threads > 1 or not verify:
            tensors = {**tensors, "env": torch.flip(tensors["env"], [0])}
        return seconds, tensors

    monkeypatch.setattr(table_load, "load_train", skewed)
    with pytest.raises(RuntimeError, match="differ"):
        table_load.run(npz, rounds=1, work=tmp_path / "w")


def test_a_missing_table_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert table_load.main(["--npz", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz does not exist" in capsys.readouterr().err


def test_views_that_differ_fail_the_benchmark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npz = table_load._fake_npz(tmp_path)
    real = table_load.fold_views

    def dropped(root: Path, one_decode: bool):
        seconds, views = real(root, one_decode)
        if one_decode:  # the held-out view one row short
            views = {**views, "val": {k: v[1:] for k, v in views["val"].items()}}
        return seconds, views

    monkeypatch.setattr(table_load, "fold_views", dropped)
    with pytest.raises(RuntimeError, match="views from one decode differ"):
        table_load.run(npz, rounds=1, work=tmp_path / "w")
