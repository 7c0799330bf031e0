"""bench.fusion_gpu, the GPU-box runner of the fusion model, exercised on the CPU with a small fake table: overrides
parse as JSON where they can, ``run`` trains / decodes / scores the test surveys against a solution file (with and
without PO correction) from a table or its packed ``.npz``, ``profile`` times the loader and the steps, and the CLI
names a missing or doubled table argument."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import fusion_gpu
from glc.loaders.fake import make_fake_inputs
from glc.loaders.pack import read_split
from glc.loaders.tables import read_meta
from tests.bench.fusion_small import SMALL

SETS = ("patch_dct16", "landsat_cube", "bioclim_cube", "env", "plot", "gfv")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A fake fusion table, its test surveys' solution file (the table's own test labels) and a PO-correction list
    that adds one absent species to every test survey."""
    root = tmp_path_factory.mktemp("fusion_gpu")
    inputs = root / "inputs"
    make_fake_inputs(
        inputs, SETS, sizes={"train": 96, "val": 32, "test": 16}, num_classes=20, label_width=5, widths={"env": 7}
    )
    vocab = np.asarray(read_meta(inputs)["vocab"])
    test = read_split(inputs, "test")
    lists = [vocab[row[row >= 0]] for row in test["labels"]]
    truth = root / "solution.csv"
    truth.write_text(
        "surveyId,target_species_ids\n"
        + "".join(f"{int(s)},{' '.join(str(int(v)) for v in sorted(sp))}\n" for s, sp in zip(test["surveyId"], lists))
    )
    absent = [[int(next(v for v in vocab if v not in set(sp)))] for sp in lists]
    corrections = root / "corrections.parquet"
    pd.DataFrame({"surveyId": test["surveyId"].astype(np.int64), "split": "test", "species": absent}).to_parquet(
        corrections
    )
    return inputs, truth, corrections


def test_overrides_parse_as_json_where_they_can() -> None:
    cfg: dict = {"train": {"lr": 1.0}}
    for s in (
        "train.lr=0.0005",
        "train.reader=memory",
        "model.swin.depths=[1, 2]",
        'model.swin={"embed_dim": 24}',
        "train.cosine=false",
    ):
        fusion_gpu._set(cfg, s)
    assert cfg == {"train": {"lr": 0.0005, "reader": "memory", "cosine": False}, "model": {"swin": {"embed_dim": 24}}}


def test_run_trains_decodes_and_scores_the_test_surveys(table, tmp_path: Path) -> None:
    inputs, truth, corrections = table
    res = fusion_gpu.run(inputs, Path("tasks/fusion.toml"), SMALL, truth, corrections, tmp_path / "train")
    assert res["experiment"] == "fusion" and res["device"] == "cpu" and res["epochs_trained"] == 1
    assert res["surveys"] == {"train": 96, "val": 32, "test": 16} and res["num_classes"] == 20
    assert res["decoder"] == "expected_f1_platt" and 0.0 <= res["val_sample_f1_decoder_in_sample"] <= 1.0
    assert 0.0 <= res["test_sample_f1"] <= 1.0 and res["train_samples_per_s"] > 0
    # every test survey was given one species it does not hold: the corrected score is not higher
    assert res["po_correction"]["n_surveys"] == 16 and res["po_correction"]["n_without_list"] == 0
    assert res["test_sample_f1_po_correction"] <= res["test_sample_f1"]
    assert json.loads(json.dumps(res)) == res  # what --json writes


def test_the_cli_runs_a_packed_table_and_writes_the_figures(table, tmp_path: Path) -> None:
    inputs, truth, _ = table
    npz = tmp_path / "t.npz"
    assert fusion_gpu.main(["pack", "--inputs", str(inputs), "--out", str(npz), "--patch-k", "4"]) == 0
    out = tmp_path / "figures.json"
    args = [
        "run",
        "--npz",
        str(npz),
        "--experiment",
        "tasks/fusion.toml",
        "--truth",
        str(truth),
        "--work",
        str(tmp_path / "w"),
        "--json",
        str(out),
    ]
    for s in SMALL:
        args += ["--set", s]
    assert fusion_gpu.main(args) == 0
    res = json.loads(out.read_text())
    assert res["packed"]["patch_dct16"] == "4x4 block (float16)" and 0.0 <= res["test_sample_f1"] <= 1.0
    assert "test_sample_f1_po_correction" not in res  # no --corrections


def test_profile_times_the_loader_and_the_steps(table) -> None:
    import torch

    inputs, _, _ = table
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    res = fusion_gpu.profile(inputs, Path("tasks/fusion.toml"), SMALL, steps=1, batches=2)
    assert res["device"] == "cpu" and res["batch_size"] == 32 and not res["bf16"] and res["parameters"] > 0
    assert res["loader_samples_per_s"] > 0 and res["host_to_device_ms"] >= 0
    for key in ("train_step", "train_step_deterministic", "module_train_step", "image_branch_step", "eval_step"):
        assert res[key]["ms"] > 0 and res[key]["samples_per_s"] > 0, key
    # profile() leaves the process-wide switch as it found it
    assert (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    ) == before


@pytest.mark.parametrize("table_args", [[], ["--inputs", "a", "--npz", "b"]])
def test_the_cli_names_a_missing_or_doubled_table(table_args: list[str]) -> None:
    with pytest.raises(SystemExit, match="profile: give exactly one of --inputs or --npz"):
        fusion_gpu.main(["profile", "--experiment", "tasks/fusion.toml", *table_args])


def test_ab_adds_one_switch_per_row_and_reports_each_against_the_row_before(table, tmp_path: Path) -> None:
    """The A/B table on CPU (rows up to channels_last; compile needs a C compiler or a GPU): one trained row per
    switch, each with the earlier ones kept, speed-up vs the row before, no GPU busy figure without nvidia-smi."""
    inputs, _, _ = table
    small = [s for s in SMALL if not s.startswith("train.max_epochs")] + ["train.max_epochs=2", "train.patience=2"]
    res = fusion_gpu.ab(inputs, Path("tasks/fusion.toml"), small, ["+ channels_last"], tmp_path)
    rows = res["rows"]
    assert [r["row"] for r in rows] == ["baseline (fp32)", "+ bf16 autocast", "+ channels_last"]
    assert all(r["samples_per_s"] > 0 and 0.0 <= r["val_sample_f1"] <= 1.0 and r["epochs"] == 2 for r in rows)
    assert rows[0]["speedup"] is None and all(r["speedup"] > 0 for r in rows[1:])
    assert all(r["gpu_busy_median"] is None and r["gpu_peak_mb"] is None for r in rows)
    for r in rows:  # per epoch, from the run's files: the best epoch's F1 is the row's
        assert len(r["epoch_seconds_each"]) == 2 and all(x > 0 for x in r["epoch_seconds_each"])
        assert len(r["val_sample_f1_by_epoch"]) == 2
        assert max(r["val_sample_f1_by_epoch"]) == pytest.approx(r["val_sample_f1"], abs=1e-4)
        assert r["compiled_graphs"] == 0  # eager rows compile nothing
    assert res["limit_image_branch_samples_per_s"] > 0 and res["fusion_over_limit"] > 0


def test_ab_rows_double_the_batch_where_asked() -> None:
    names = [n for n, _ in fusion_gpu.AB_ROWS]
    assert len(set(names)) == len(names)
    got = fusion_gpu._row_sets(["a=1"], ["train.batch_size=2*", "train.lr_base_batch=*"], 256)
    assert got == ["a=1", "train.batch_size=512", "train.lr_base_batch=256"]


def test_ab_records_a_failing_row_drops_its_switch_and_saves_after_every_row(
    table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A switch the machine cannot run is a row with its error, the rows after it train without it (their speed-up
    is against the last row that trained), and the JSON holds every finished row as it goes."""
    inputs, _, _ = table
    rows = [
        ("baseline (fp32)", []),
        ("+ a bad switch", ['train.precision="fp8-imaginary"']),
        ("+ bf16 autocast", ['train.precision="bf16-mixed"']),
    ]
    monkeypatch.setattr(fusion_gpu, "AB_ROWS", rows)
    saved: list[int] = []
    real_row = fusion_gpu._ab_row

    def spy(*args, **kwargs):  # the JSON on disk before each row trains
        out = tmp_path / "ab.json"
        saved.append(len(json.loads(out.read_text())["rows"]) if out.exists() else -1)
        return real_row(*args, **kwargs)

    monkeypatch.setattr(fusion_gpu, "_ab_row", spy)
    res = fusion_gpu.ab(inputs, Path("tasks/fusion.toml"), SMALL, None, tmp_path / "w", json_path=tmp_path / "ab.json")
    got = res["rows"]
    assert [r["row"] for r in got] == [n for n, _ in rows]
    assert "fp8-imaginary" in got[1]["error"] and got[1]["samples_per_s"] is None and got[1]["speedup"] is None
    assert got[2]["samples_per_s"] > 0
    assert got[2]["speedup"] == round(got[2]["samples_per_s"] / got[0]["samples_per_s"], 3)
    assert saved == [0, 1, 2]  # the limit was saved before the first row, each row before the next
    assert json.loads((tmp_path / "ab.json").read_text()) == json.loads(json.dumps(res))
    assert res["surveys"] == {"train": 96, "val": 32, "test": 16}


def test_subset_keeps_a_seeded_choice_of_rows_and_the_full_tables_statistics(table, tmp_path: Path) -> None:
    inputs, _, _ = table
    out = fusion_gpu.subset(inputs, tmp_path / "sub", {"train": 40, "val": 8})
    meta, full = read_meta(out), read_meta(inputs)
    assert meta["splits"] == {"train": 40, "val": 8, "test": 16}
    assert meta["columns"] == full["columns"]  # the full table's statistics: the net normalises as on the full one
    for split, n in (("train", 40), ("val", 8), ("test", 16)):
        sub, whole = read_split(out, split), read_split(inputs, split)
        row_of = {int(s): i for i, s in enumerate(whole["surveyId"])}
        idx = np.array([row_of[int(s)] for s in sub["surveyId"]])
        assert len(sub["surveyId"]) == n and np.all(np.diff(idx) > 0)  # distinct rows, in table order
        for k in ("labels", "patch_dct16", "landsat_cube"):
            np.testing.assert_array_equal(sub[k], whole[k][idx])
    again = fusion_gpu.subset(inputs, tmp_path / "again", {"train": 40, "val": 8})
    np.testing.assert_array_equal(read_split(again, "train")["surveyId"], read_split(out, "train")["surveyId"])


def test_busy_median_within_the_training_windows() -> None:
    b = fusion_gpu.BusySampler()
    b.samples = [(0.5, 5.0), (1.0, 90.0), (1.5, 80.0), (2.5, 0.0), (3.0, 95.0), (9.0, 1.0)]
    assert b.median == 42.5
    assert b.median_within([[1.0, 2.0], [3.0, 4.0]]) == 90.0
    assert b.median_within([[5.0, 6.0]]) is None


def test_busy_sampler_logs_each_reading_as_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``log`` the readings are on disk while the block still runs (a run a time limit kills keeps them)."""
    readings = iter([50.0, 60.0, 70.0])

    def read() -> float:
        return next(readings)  # StopIteration after three: the sampler's loop ends

    monkeypatch.setattr(fusion_gpu, "_utilisation_reader", lambda: ("fake", read))
    log = tmp_path / "sub" / fusion_gpu.BUSY_LOG
    with fusion_gpu.BusySampler(interval_s=0.01, log=log) as b:
        deadline = time.time() + 10
        while (not log.is_file() or len(log.read_text().splitlines()) < 3) and time.time() < deadline:
            time.sleep(0.01)
        on_disk = [float(line.split()[1]) for line in log.read_text().splitlines()]
    assert on_disk == [50.0, 60.0, 70.0] == [u for _, u in b.samples]


def test_ab_starts_at_a_row_with_the_switches_of_the_rows_before(
    table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, _, _ = table
    trained: list[tuple[str, list[str]]] = []
    real_row = fusion_gpu._ab_row

    def spy(inputs, experiment, acc, name, work):
        trained.append((name, list(acc)))
        return real_row(inputs, experiment, acc, name, work)

    monkeypatch.setattr(fusion_gpu, "_ab_row", spy)
    res = fusion_gpu.ab(
        inputs, Path("tasks/fusion.toml"), SMALL, ["+ fused AdamW"], tmp_path / "w", start="+ channels_last"
    )
    assert [r["row"] for r in res["rows"]] == ["+ channels_last", "+ fused AdamW"]
    assert [n for n, _ in trained] == ["+ channels_last", "+ fused AdamW"]
    assert trained[0][1] == [*SMALL, 'train.precision="bf16-mixed"', "train.channels_last=true"]
    assert trained[1][1] == [*trained[0][1], "train.fused_optimizer=true"]
    assert res["rows"][0]["speedup"] is None and res["rows"][1]["speedup"] > 0
    with pytest.raises(ValueError, match="start='nope' is not an A/B row"):
        fusion_gpu.ab(inputs, Path("tasks/fusion.toml"), SMALL, None, tmp_path / "x", start="nope")


def test_epoch_figures_of_a_run_stopped_in_its_third_epoch(tmp_path: Path) -> None:
    """A row a time limit stopped reports the epochs it finished, read from the run's files (the last record of an
    epoch wins: a resumed run rewrites it)."""
    run = tmp_path / "row0"
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "timing.jsonl").write_text(
        "".join(
            json.dumps(
                {"epoch": e, "seconds": s, "samples": 100, "gpu_peak_mb": None, "wall_start": w[0], "wall_end": w[1]}
            )
            + "\n"
            for e, s, w in ((0, 30.0, [100.0, 130.0]), (1, 9.0, [140.0, 149.0]), (1, 10.0, [140.0, 150.0]))
        )
    )
    # the sampler's readings as a killed run leaves them: the first epoch's (compilation) and the validation's
    # (between the windows) are not the training's
    (run / fusion_gpu.BUSY_LOG).write_text("110.0 5\n135.0 1\n141.5 90\n145.0 80\n149.9 84\n151.0 0\n")
    (run / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,step,train/loss,val/sample_f1\n0,9,1.5,\n0,9,,0.25\n1,19,1.2,\n1,19,,0.4\n2,25,1.1,\n"
    )
    got = fusion_gpu.epoch_figures(run)
    assert got == {
        "gpu_busy_median_logged": 84.0,
        "epoch_seconds_each": [30.0, 10.0],
        "samples_per_s_steady": 10.0,
        "val_sample_f1_by_epoch": [0.25, 0.4],
    }
    assert fusion_gpu.epoch_figures(tmp_path / "never-started") == {
        "gpu_busy_median_logged": None,
        "epoch_seconds_each": [],
        "samples_per_s_steady": None,
        "val_sample_f1_by_epoch": [],
    }


def test_a_compiled_row_counts_its_graphs_and_runs_short_batches_eagerly(table, tmp_path: Path) -> None:
    """``+ torch.compile`` on CPU (aot_eager) at batch 40 over 96 training / 32 validation surveys: batches of 40, 40
    and 16, and one of 32. The short ones run the eager net, so dynamo compiles the training (mixup) path once and
    never the evaluation path: the row reports that graph count."""
    inputs, _, _ = table
    sets = [s for s in SMALL if not s.startswith("train.batch_size")] + [
        "train.batch_size=40",
        'train.compile="default"',
        'train.compile_backend="aot_eager"',
    ]
    row = fusion_gpu._ab_row(inputs, Path("tasks/fusion.toml"), sets, "+ torch.compile", tmp_path)
    assert row["epochs"] == 1 and row["batch_size"] == 40 and 0.0 <= row["val_sample_f1"] <= 1.0
    assert row["compiled_graphs"] == 1, row
