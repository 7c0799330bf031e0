"""bench.fusion_kfold, the k-fold cross fusion split across GPU leases, on the CPU with a small fake fusion table:
parts keep each fold's largest logits and the mass of the rest, fold 0's weights travel as float16 shards that
later folds start from, ``ship`` brings files back one call's worth at a time, and ``merge`` rebuilds the exact
k-fold ensemble's score tables (:class:`glc.training.kfold.FoldEnsemble`) from folds trained on different machines."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from bench import fusion_kfold
from bench.fusion_gpu import _config, score_tables
from glc.loaders.fake import make_fake_inputs
from glc.loaders.pack import read_split
from glc.loaders.tables import read_meta
from glc.predict.scores import top_n
from tests.bench.fusion_small import SMALL as FUSION_SMALL

SETS = ("patch_dct16", "landsat_cube", "bioclim_cube", "env", "plot", "gfv")
C = 20
#: tasks/fusion.toml at CPU-test size with 3 folds (fold 1: 2 epochs; folds 2-3: 1 fine-tuning epoch each)
SMALL = [s for s in FUSION_SMALL if s.split("=")[0] not in ("train.kfold", "train.max_epochs")] + [
    "model.top_n=8",
    "train.kfold=3",
    "train.kfold_epochs=1",
    "train.max_epochs=2",
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_a_part_keeps_the_largest_logits_in_order_and_the_mass_of_the_rest(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(100, 150))
    z = rng.normal(0, 3, (50, C)).astype(np.float32)
    p = fusion_kfold.top_part(ids, z, 6)
    order = np.argsort(ids)
    assert np.array_equal(p["survey_ids"], ids[order])
    zs = z[order]
    want = np.argsort(-zs, axis=1)[:, :6]
    assert np.array_equal(p["idx"].astype(np.int64), want)
    np.testing.assert_allclose(p["logit"], np.take_along_axis(zs, want, axis=1), atol=5e-3)
    all_mass = _sigmoid(zs.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(p["rest"], all_mass - _sigmoid(np.take_along_axis(zs, want, axis=1)).sum(axis=1), 1e-5)
    # files of a few rows each, read back whole and in order
    monkeypatch.setattr(fusion_kfold, "FILE_BYTES", 6 * 4 * 16 + 16 * 16)
    files = fusion_kfold.write_part(tmp_path, 2, "val", p)
    assert len(files) == 4 and all(f.name.startswith("fold2-val-") for f in files)
    back = fusion_kfold.read_part(tmp_path, 2, "val")
    for k in p:
        assert np.array_equal(back[k], p[k])
    with pytest.raises(FileNotFoundError, match="no fold1-val"):
        fusion_kfold.read_part(tmp_path, 1, "val")
    with pytest.raises(ValueError, match="overflows float16"):
        fusion_kfold.top_part(ids, np.full((50, C), 1e6, np.float32), 3)
    with pytest.raises(ValueError, match="expected 1..20"):
        fusion_kfold.top_part(ids, z, 21)


def test_merge_is_the_mean_of_the_folds_logits(tmp_path: Path) -> None:
    """With every column kept the merged table is the ensemble's (up to float16); with fewer, a column a fold did
    not keep enters with that fold's smallest kept logit, and the table's top columns stay the ensemble's where the
    folds agree as fine-tuned folds do (independent folds would not: the bound lifts a column one fold ranked low).
    The rest mass is the folds' mean total mass less the kept probabilities."""
    rng = np.random.default_rng(1)
    ids = np.arange(40)
    base = rng.normal(-2, 2, (40, C))  # folds fine-tuned from one model agree up to a little noise
    zs = [(base + rng.normal(0, 0.3, (40, C))).astype(np.float32) for _ in range(3)]
    mean = np.mean(zs, axis=0)
    vocab = np.arange(1000, 1000 + C)
    mass = np.mean([_sigmoid(z.astype(np.float64)).sum(axis=1) for z in zs], axis=0)  # the folds' mean total mass
    exact_rest = _sigmoid(mean).sum(axis=1) - _sigmoid(np.sort(mean, axis=1)[:, ::-1][:, :8]).sum(axis=1)
    for top, folder in ((C, tmp_path / "all"), (12, tmp_path / "some")):
        for f, z in enumerate(zs):
            fusion_kfold.write_part(folder, f, "test", fusion_kfold.top_part(ids, z, top))
        t = fusion_kfold.merge(folder, 3, vocab, 8, "test")
        want = np.argsort(-mean, axis=1)[:, :8]
        np.testing.assert_allclose(t.prob_rest, mass - t.prob.sum(axis=1), atol=1e-2)
        np.testing.assert_allclose(t.prob_rest, exact_rest, rtol=0.1)
        if top == C:
            assert np.array_equal(t.species, vocab[want])
            np.testing.assert_allclose(t.prob, _sigmoid(np.take_along_axis(mean, want, axis=1)), atol=2e-3)
        else:
            assert np.mean(t.species[:, :3] == vocab[want[:, :3]]) > 0.95
            np.testing.assert_allclose(t.prob[:, 0], _sigmoid(mean.max(axis=1)), atol=5e-3)
    # the bound, by hand: column 0 kept by fold 0 only (logit 2), folds 1 and 2 keep columns 1-2 at 3 and 1
    hand = tmp_path / "hand"
    one = np.array([7])
    parts = [
        {"idx": [[0, 1]], "logit": [[2.0, 0.5]]},
        {"idx": [[1, 2]], "logit": [[3.0, 1.0]]},
        {"idx": [[1, 2]], "logit": [[3.0, 1.0]]},
    ]
    for f, q in enumerate(parts):
        fusion_kfold.write_part(
            hand,
            f,
            "val",
            {
                "survey_ids": one,
                "idx": np.asarray(q["idx"], np.uint16),
                "logit": np.asarray(q["logit"], np.float16),
                "rest": np.zeros(1, np.float32),
            },
        )
    t = fusion_kfold.merge(hand, 3, np.arange(5), 2, "val")
    # column 1: (0.5 + 3 + 3) / 3; column 0: (2 + 1 + 1) / 3 (folds 1, 2 at their bound 1); column 2: (0.5+1+1)/3
    assert t.species.tolist() == [[1, 0]]
    np.testing.assert_allclose(t.prob[0], _sigmoid(np.array([6.5 / 3, 4.0 / 3])), rtol=1e-6)
    with pytest.raises(ValueError, match="keep fewer than model.top_n = 3"):
        fusion_kfold.merge(hand, 3, np.arange(5), 3, "val")
    bad = tmp_path / "bad"
    for f, z in enumerate(zs):
        fusion_kfold.write_part(bad, f, "test", fusion_kfold.top_part(ids + (f == 2), z, C))
    with pytest.raises(ValueError, match="fold 2's test part holds other surveys"):
        fusion_kfold.merge(bad, 3, vocab, 8, "test")


def test_ship_brings_back_one_calls_worth_of_finished_folds(tmp_path: Path, monkeypatch) -> None:
    ship = tmp_path / "w" / "ship"
    ship.mkdir(parents=True)
    for name in ("fold0-val-000.npz", "fold0-test-000.npz", "init-000.pt", "init-001.pt", "x.npz.glc-tmp-1"):
        (ship / name).write_bytes(b"x" * 10)
    assert fusion_kfold.ship_files(tmp_path / "w", tmp_path / "early") == []  # fold 0 has no summary yet
    (ship / "fold0-summary.json").write_bytes(b"x" * 10)
    monkeypatch.setattr(fusion_kfold, "SHIP_FILES", 2)
    got = [fusion_kfold.ship_files(tmp_path / "w", tmp_path / f"out{i}") for i in range(4)]
    assert got == [
        ["fold0-summary.json", "fold0-test-000.npz"],
        ["fold0-val-000.npz", "init-000.pt"],
        ["init-001.pt"],
        [],
    ]
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["fold0-val-000.npz", "init-000.pt"]
    # a call whose files did not come back: send them again
    assert fusion_kfold.ship_files(tmp_path / "w", tmp_path / "again", ["init-001.pt"]) == ["init-001.pt"]
    monkeypatch.setattr(fusion_kfold, "SHIP_FILES", 8)
    monkeypatch.setattr(fusion_kfold, "SHIP_BYTES", 26)
    for name in ("fold1-val-000.npz", "fold1-test-000.npz", "fold1-val-001.npz", "fold1-summary.json"):
        (ship / name).write_bytes(b"y" * (10 if name.endswith("npz") else 1))
    log = tmp_path / "out5" / "log.txt"  # the call's own log comes back too, and counts
    log.parent.mkdir()
    log.write_bytes(b"z" * 4)
    got5 = fusion_kfold.ship_files(tmp_path / "w", tmp_path / "out5")
    assert got5 == ["fold1-summary.json", "fold1-test-000.npz", "fold1-val-000.npz"]
    assert fusion_kfold.ship_files(tmp_path / "w", tmp_path / "out6") == ["fold1-val-001.npz"]
    assert fusion_kfold.ship_files(tmp_path / "nowhere", tmp_path / "out7") == []
    monkeypatch.setattr(fusion_kfold, "SHIP_FILE_BYTES", 5)
    (ship / "fold2-summary.json").write_bytes(b"y")
    (ship / "fold2-val-000.npz").write_bytes(b"y" * 6)
    with pytest.raises(ValueError, match=r"\['fold2-val-000.npz'\] are larger than the 5 bytes"):
        fusion_kfold.ship_files(tmp_path / "w", tmp_path / "out8")


def test_ship_brings_the_compile_cache_once_its_index_is_written(tmp_path: Path) -> None:
    ship = tmp_path / "w" / "ship"
    ship.mkdir(parents=True)
    for name in ("compile-cache-000.bin", "compile-cache-001.bin"):
        (ship / name).write_bytes(b"c" * 10)
    assert fusion_kfold.ship_files(tmp_path / "w", tmp_path / "o1") == []  # shards without their index: half written
    (ship / "compile-cache.json").write_text("{}")
    got = fusion_kfold.ship_files(tmp_path / "w", tmp_path / "o2")
    assert got == ["compile-cache.json", "compile-cache-000.bin", "compile-cache-001.bin"]


def test_a_compiled_fold_loads_the_carried_compile_cache_and_writes_one_when_none(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    from glc.training import compile_cache

    calls: dict[str, list] = {"load": [], "saver": []}
    monkeypatch.setattr(compile_cache, "load_compile_cache", lambda folders: calls["load"].append(list(folders)))

    class Saver:
        def __init__(self, folder, shard_bytes):
            calls["saver"].append((Path(folder), shard_bytes))

    monkeypatch.setattr(compile_cache, "CompileCacheSaver", Saver)
    trained: list[list] = []

    def fake_train(inputs, work, cfg, name, **kw):
        trained.append(kw["callbacks"])
        raise RuntimeError("stop here")

    import glc.training.kfold as kfold_mod
    import glc.training.trainer as trainer_mod

    monkeypatch.setattr(kfold_mod, "fold_assignment", lambda inputs, cfg: (np.arange(4), np.array([0, 1, 0, 1])))
    monkeypatch.setattr(trainer_mod, "train_model", fake_train)
    cfg = {"name": "x", "model": {"top_n": 1}, "train": {"kfold": 2, "compile": "reduce-overhead"}}
    work = tmp_path / "w"
    with pytest.raises(RuntimeError, match="stop here"):
        fusion_kfold.train_folds(tmp_path, cfg, [0], work, init=[tmp_path / "carried"])
    assert calls["load"] == [[tmp_path / "carried", work / "ship"]]
    assert calls["saver"] == [(work / "ship", fusion_kfold.FILE_BYTES)] and len(trained[0]) == 1
    (work / "ship").mkdir(parents=True)
    (work / "ship" / "compile-cache.json").write_text("{}")  # one was written: no second saver
    with pytest.raises(RuntimeError, match="stop here"):
        fusion_kfold.train_folds(tmp_path, cfg, [0], work)
    assert len(calls["saver"]) == 1 and trained[1] == []
    with pytest.raises(RuntimeError, match="stop here"):  # a net not compiled: neither load nor saver
        fusion_kfold.train_folds(tmp_path, {**cfg, "train": {"kfold": 2, "compile": "off"}}, [0], tmp_path / "w2")
    with pytest.raises(RuntimeError, match="stop here"):  # --no-compile-cache: neither
        fusion_kfold.train_folds(tmp_path, cfg, [0], tmp_path / "w3", compile_cache=False)
    assert len(calls["load"]) == 2 and len(calls["saver"]) == 1 and trained[2:] == [[], []]

    def broken(folders):
        raise ValueError("a shard is from another blob")

    monkeypatch.setattr(compile_cache, "load_compile_cache", broken)  # a broken cache costs the compile, not the call
    with pytest.raises(RuntimeError, match="stop here"), caplog.at_level("WARNING"):
        fusion_kfold.train_folds(tmp_path, cfg, [0], tmp_path / "w4")
    assert "compile cache not loaded (a shard is from another blob); compiling from scratch" in caplog.text


def test_weights_travel_as_float16_shards_and_big_tensors_in_pieces(tmp_path: Path, monkeypatch) -> None:
    state = {
        "net.a.weight": torch.randn(300, 40),  # 24,000 bytes in float16: cut into pieces of 40 rows
        "net.b.bias": torch.randn(7),
        "net.index": torch.arange(12).reshape(3, 4),
        "loss.pos_weight": torch.ones(3),  # not the net's: stays behind
    }
    ck = tmp_path / "best.ckpt"
    torch.save({"state_dict": state}, ck)
    monkeypatch.setattr(fusion_kfold, "FILE_BYTES", 2**20 + 4000)  # 4,000 bytes of tensors a shard
    shards = fusion_kfold.export_weights(ck, tmp_path / "ship")
    assert len(shards) >= 7 and all(p.stat().st_size < 2**20 + 8000 for p in shards)
    half = len(shards) // 2  # carried in two calls, into two folders
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i, p in enumerate(shards):
        shutil.copy(p, (a if i < half else b) / p.name)
    back = torch.load(fusion_kfold.import_weights([a, b], tmp_path / "init.ckpt"), weights_only=False)["state_dict"]
    assert set(back) == {"net.a.weight", "net.b.bias", "net.index"}
    assert torch.equal(back["net.a.weight"], state["net.a.weight"].half().float())
    assert torch.equal(back["net.b.bias"], state["net.b.bias"].half().float())
    assert torch.equal(back["net.index"], state["net.index"]) and back["net.index"].dtype == torch.int64
    (b / shards[-1].name).unlink()
    with pytest.raises(FileNotFoundError, match=f"shards \\['{shards[-1].name}'\\] are missing"):
        fusion_kfold.import_weights([a, b], tmp_path / "init2.ckpt")
    torch.save({"state_dict": {"net.w": torch.full((2,), 1e6)}}, tmp_path / "big.ckpt")
    with pytest.raises(ValueError, match="net.w overflows float16"):
        fusion_kfold.export_weights(tmp_path / "big.ckpt", tmp_path / "x")


def test_fold_summaries_belong_to_one_run(tmp_path: Path) -> None:
    for f in range(3):
        (tmp_path / f"fold{f}-summary.json").write_text(
            json.dumps({"fold": f, "k": 3, "config_sha": "c", "init_sha": "i"})
        )
    assert [s["fold"] for s in fusion_kfold.fold_summaries(tmp_path, 3)] == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="fold 3 has not finished"):
        fusion_kfold.fold_summaries(tmp_path, 4)
    (tmp_path / "fold2-summary.json").write_text(json.dumps({"fold": 2, "k": 3, "config_sha": "c", "init_sha": "j"}))
    with pytest.raises(ValueError, match="disagree on init_sha"):
        fusion_kfold.fold_summaries(tmp_path, 3)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fake fusion table and its test surveys' solution file (the table's own test labels)."""
    root = tmp_path_factory.mktemp("fusion_kfold")
    inputs = root / "inputs"
    make_fake_inputs(
        inputs, SETS, sizes={"train": 96, "val": 32, "test": 16}, num_classes=C, label_width=5, widths={"env": 7}
    )
    vocab = np.asarray(read_meta(inputs)["vocab"])
    test = read_split(inputs, "test")
    truth = root / "solution.csv"
    truth.write_text(
        "surveyId,target_species_ids\n"
        + "".join(
            f"{int(s)},{' '.join(str(int(v)) for v in sorted(vocab[row[row >= 0]]))}\n"
            for s, row in zip(test["surveyId"], test["labels"])
        )
    )
    return inputs, truth


def test_folds_on_two_machines_merge_into_the_k_fold_ensemble(table, tmp_path: Path, caplog) -> None:
    """Fold 1 on one "lease", folds 2-3 on another that only has fold 1's shipped float16 shards: the later folds
    start from those weights, and the parts (12 of 20 logits kept, 8 in the score tables) merge into the tables of
    the exact FoldEnsemble of the three checkpoints, and score like them."""
    from glc.training.kfold import FoldEnsemble, ensemble_state
    from glc.training.trainer import build_module, datamodule

    inputs, truth = table
    cfg = _config(Path("tasks/fusion.toml"), SMALL)
    first, second, here = tmp_path / "lease1", tmp_path / "lease2", tmp_path / "here"
    s0 = fusion_kfold.train_folds(inputs, cfg, [0], first, top=12)
    assert [s["fold"] for s in s0] == [0] and s0[0]["n_train"] + s0[0]["n_val"] == 96
    assert fusion_kfold.train_folds(inputs, cfg, [0], first, top=12) == []  # its parts are there: nothing to do
    # a call stopped after the fit but before the parts and the summary: the next one writes them, not training again
    parts = sorted((first / "ship").glob("fold0-*.npz"))
    saved = {p.name: p.read_bytes() for p in parts}
    for p in [*parts, first / "ship" / "fold0-summary.json"]:
        p.unlink()
    (first / "ship" / "fold0-test-000.npz").write_bytes(b"half written")
    last = first / "fold0" / "checkpoints" / "last.ckpt"
    stamp = last.stat().st_mtime_ns
    again = fusion_kfold.train_folds(inputs, cfg, [0], first, top=12)
    assert [a["fold"] for a in again] == [0] and last.stat().st_mtime_ns == stamp
    assert {p.name: p.read_bytes() for p in sorted((first / "ship").glob("fold0-*.npz"))} == saved
    _bring(first, here)
    carried = tmp_path / "carried"
    carried.mkdir()
    for p in here.glob("init-*.pt"):
        shutil.move(p, carried / p.name)
    with caplog.at_level("INFO", logger="glc.training.trainer"):
        s12 = fusion_kfold.train_folds(inputs, cfg, [1, 2], second, init=[carried], top=12)
    assert [s["fold"] for s in s12] == [1, 2]
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("initialised the net from")]
    assert started == [f"initialised the net from {second / 'fold0-init.ckpt'}"] * 2
    shards = sorted(carried.glob("init-*.pt"))
    assert {s["init_sha"] for s in [*s0, *s12]} == {fusion_kfold.digest(shards)}
    _bring(second, here)
    # fold 2 started from fold 1's weights as shipped: float16-rounded fp32 tensors
    best0 = json.loads((here / "fold0-summary.json").read_text())["best_checkpoint"]
    ck0 = torch.load(best0, map_location="cpu", weights_only=False)
    init = torch.load(second / "fold0-init.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    nets = {k: v for k, v in ck0["state_dict"].items() if k.startswith("net.")}
    assert set(init) == set(nets)
    for k, v in nets.items():
        if v.is_floating_point():
            assert init[k].dtype == torch.float32 and torch.equal(init[k], v.half().float())
        else:
            assert torch.equal(init[k], v)

    # the exact ensemble of the three folds' best checkpoints (the summaries name them on their machines)
    best = [json.loads((here / f"fold{f}-summary.json").read_text()) for f in range(3)]
    assert [b["fold"] for b in best] == [0, 1, 2]
    template = build_module(cfg, read_meta(inputs))
    assert isinstance(template.net, FoldEnsemble)
    template.load_state_dict(ensemble_state([b["best_checkpoint"] for b in best], template))
    dm = datamodule(inputs, {**cfg, "train": {**cfg["train"], "kfold": 1}}, "memory")
    vocab = np.asarray(read_meta(inputs)["vocab"], np.int64)
    exact_tables = {}
    for split in ("val", "test"):
        merged = fusion_kfold.merge(here, 3, vocab, 8, split)
        ids, z = fusion_kfold.fold_logits(template, dm.loader(split, shuffle=False))
        exact = z[np.argsort(ids)]
        order = np.argsort(-exact, axis=1)[:, :8]
        assert np.array_equal(merged.survey_ids, np.sort(ids))
        assert np.mean(merged.species[:, :5] == vocab[order[:, :5]]) > 0.9
        column = {int(v): j for j, v in enumerate(vocab)}
        cols = np.vectorize(column.__getitem__)(merged.species)
        # each kept species' probability is the ensemble's, or above it where a fold did not keep the species (that
        # fold's bound stands in for its logit)
        diff = merged.prob - _sigmoid(np.take_along_axis(exact, cols, axis=1))
        assert (diff > -2e-3).all() and np.mean(np.abs(diff) < 2e-3) > 0.95
        exact_rest = _sigmoid(exact.astype(np.float64)).sum(axis=1) - merged.prob.sum(axis=1)
        np.testing.assert_allclose(merged.prob_rest, exact_rest, rtol=0.05)
        exact_tables[split] = top_n(np.sort(ids), _sigmoid(exact).astype(np.float32), vocab, 8)

    # the CLI merges, decodes and scores the test surveys
    out = tmp_path / "res.json"
    sets = sum((["--set", s] for s in SMALL), [])
    rc = fusion_kfold.main(
        ["merge", "--inputs", str(inputs), "--experiment", "tasks/fusion.toml", *sets, "--parts", str(here)]
        + ["--truth", str(truth), "--json", str(out), "--work", str(tmp_path / "m")]
    )
    res = json.loads(out.read_text())
    assert rc == 0 and res["kfold"] == 3 and [f["fold"] for f in res["folds"]] == [0, 1, 2]
    want = score_tables(exact_tables["val"], exact_tables["test"], inputs, cfg, truth, None)
    assert res["decoder"] == want["decoder"] == "expected_f1_platt"
    assert abs(res["test_sample_f1"] - want["test_sample_f1"]) <= 0.02
    assert abs(res["val_sample_f1_decoder_in_sample"] - want["val_sample_f1_decoder_in_sample"]) <= 0.02


def _bring(work: Path, here: Path) -> None:
    """What the lease's calls bring back, one call's folder at a time, gathered in ``here``."""
    here.mkdir(exist_ok=True)
    for i in range(100):
        out = work.parent / f"{work.name}-call{i}"
        if not fusion_kfold.ship_files(work, out):
            return
        for p in out.iterdir():
            shutil.move(p, here / p.name)


def test_fold_refuses_a_config_without_folds_and_folds_out_of_range(table, tmp_path: Path) -> None:
    inputs, _ = table
    one = _config(Path("tasks/fusion.toml"), [*SMALL, "train.kfold=1"])
    with pytest.raises(ValueError, match="train.kfold = 1"):
        fusion_kfold.train_folds(inputs, one, [0], tmp_path)
    cfg = _config(Path("tasks/fusion.toml"), SMALL)
    with pytest.raises(ValueError, match=r"--folds \[3\]: expected fold numbers 0..2"):
        fusion_kfold.train_folds(inputs, cfg, [3], tmp_path)
    with pytest.raises(ValueError, match="below model.top_n"):
        fusion_kfold.train_folds(inputs, cfg, [0], tmp_path, top=7)
    with pytest.raises(FileNotFoundError, match="no init-"):
        fusion_kfold.train_folds(inputs, cfg, [1], tmp_path, init=[tmp_path / "nothing"], top=12)


def test_the_lease_script_trains_a_fold_and_ships_its_files(table, tmp_path: Path) -> None:
    """bench/fusion_kfold_lease.sh as a device call runs it (a small fusion instead of fusion-paper, no compile on
    the CPU): the training call brings back its log and what fits, the ship calls the rest."""
    import subprocess

    from bench import fusion_gpu

    inputs, _ = table
    npz = tmp_path / "t.npz"
    assert fusion_gpu.main(["pack", "--inputs", str(inputs), "--out", str(npz), "--patch-k", "4"]) == 0
    extra = [s.replace(" ", "") for s in SMALL] + ['train.compile="off"', "train.batch_size=32", "train.lr=0.001"]
    env = {
        **__import__("os").environ,
        "EXPERIMENT": "tasks/fusion.toml",
        "NPZ": str(npz),
        "WORK": str(tmp_path / "work"),
        "EXTRA": " ".join(f"--set {s}" for s in extra),
        "PYTHON": sys.executable,  # the venv's, whether or not it is on PATH (make test does not activate it)
    }
    got: list[str] = []
    for i, args in enumerate((["fold", "0"], ["ship"], ["ship"], ["ship"])):
        out = tmp_path / f"out{i}"
        r = subprocess.run(
            ["bash", "bench/fusion_kfold_lease.sh", *args],
            env={**env, "OUT": str(out)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        got += sorted(p.name for p in out.iterdir() if p.name != "log.txt")
    assert (tmp_path / "out0" / "log.txt").is_file()
    assert "fold0-summary.json" in got and "fold0-val-000.npz" in got and "fold0-test-000.npz" in got
    assert "init-000.pt" in got and len(got) == len(set(got))  # each file shipped once
    assert not [n for n in got if n.startswith("resume")]  # a finished fold leaves no resume set
    summary = json.loads((tmp_path / "work" / "ship" / "fold0-summary.json").read_text())
    assert summary["fold"] == 0 and summary["epochs_trained"] == 2


def _checkpoint(weights: torch.Tensor, step: int, best: str) -> dict:
    """A Lightning-like checkpoint: weights, AdamW's state (tiny squared gradients), loop counters, the checkpoint
    callbacks' states (the monitored one's best path on the machine that wrote it)."""
    g = torch.Generator().manual_seed(step)
    return {
        "epoch": step // 10 - 1,
        "global_step": step,
        "state_dict": {"net.w": weights, "net.b": torch.randn(3, generator=g), "net.n": torch.tensor(7)},
        "optimizer_states": [
            {
                "state": {
                    0: {
                        "step": torch.tensor(float(step)),
                        "exp_avg": torch.randn(64, 32, generator=g) * 1e-3,
                        "exp_avg_sq": torch.rand(64, 32, generator=g) * 1e-10,
                    }
                },
                "param_groups": [{"lr": 5e-4, "params": [0]}],
            }
        ],
        "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": step // 10}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/sample_f1', 'mode': 'max'}": {
                "monitor": "val/sample_f1",
                "best_model_score": torch.tensor(0.4375),
                "best_model_path": f"/elsewhere/fold0/checkpoints/{best}",
                "dirpath": "/elsewhere/fold0/checkpoints",
                "best_k_models": {f"/elsewhere/fold0/checkpoints/{best}": torch.tensor(0.4375)},
                "kth_best_model_path": f"/elsewhere/fold0/checkpoints/{best}",
                "last_model_path": "",
            }
        },
    }


def _tensor_bytes(files: list[Path]) -> int:
    """Bytes of the large tensors (``net.w`` and the moments) a resume set's shards hold, in pieces or whole."""
    return sum(
        v.numel() * v.element_size()
        for p in files
        if "pieces" in (z := torch.load(p, weights_only=False))
        for k, _, v in z["pieces"]
        if "net.w" in k or "exp_avg" in k
    )


def test_a_resume_set_rebuilds_the_last_and_best_checkpoints_elsewhere(tmp_path: Path, monkeypatch) -> None:
    """A paused fold's checkpoints travel as float16 weights and bfloat16 optimiser moments (AdamW's ~1e-10 squared
    gradients survive: float16 would flush them to zero) in shards, small tensors exactly; the best checkpoint keeps
    its own weights when they differ from the last's, and the rebuilt callbacks point into the new folder (so
    Lightning keeps the best score so far). Sets of another config, half-carried sets and older sets are handled."""
    from bench.fusion_kfold import export_resume, import_resume

    monkeypatch.setattr(fusion_kfold, "FILE_BYTES", 2**20 + 3000)  # 3,000 bytes of tensors a shard
    src = tmp_path / "a" / "fold0"
    (src / "checkpoints").mkdir(parents=True)
    best_w, last_w = torch.randn(64, 32), torch.randn(64, 32)
    torch.save(_checkpoint(best_w, 20, "epoch001-f10.4375.ckpt"), src / "checkpoints" / "epoch001-f10.4375.ckpt")
    last = _checkpoint(last_w, 30, "epoch001-f10.4375.ckpt")
    torch.save(last, src / "checkpoints" / "last.ckpt")
    (src / "timing.jsonl").write_text('{"epoch": 0, "seconds": 1.0, "samples": 96}\n')
    ship = tmp_path / "a" / "ship"
    files = export_resume(src, 0, ship, "cfgA")
    names = [p.name for p in files]
    assert names[-1] == "resume0-s30.pt" and len(names) >= 6
    assert all(n.startswith("resume0-s30-") for n in names[:-1])
    assert export_resume(src, 0, ship, "cfgA") == []  # this step's set is there
    size = _tensor_bytes(files)
    assert size == 64 * 32 * (2 + 2 + 2 + 2)  # last + best weights in float16, the two moments in bfloat16
    assert fusion_kfold.ship_files(tmp_path / "a", tmp_path / "o1") != []  # an unfinished fold's set ships
    # carried in two calls, into two folders, on another machine
    one, two = tmp_path / "carry1", tmp_path / "carry2"
    one.mkdir()
    two.mkdir()
    for i, p in enumerate(files):
        shutil.copy(p, (one if i % 2 else two) / p.name)
    dst = tmp_path / "b" / "fold0"
    with pytest.raises(ValueError, match="config cfgA, not this one"):
        import_resume([one, two], 0, dst, "cfgB")
    assert import_resume([one, two], 0, dst, "cfgA") is True
    assert import_resume([one, two], 0, dst, "cfgA") is False  # this machine's own last.ckpt wins from now on
    here = str((dst / "checkpoints").resolve())
    back = torch.load(dst / "checkpoints" / "last.ckpt", weights_only=False)
    assert torch.equal(back["state_dict"]["net.w"], last_w.half().float()) and back["state_dict"]["net.w"].dtype == (
        torch.float32
    )
    assert torch.equal(back["state_dict"]["net.b"], last["state_dict"]["net.b"])  # small: exact
    assert torch.equal(back["state_dict"]["net.n"], torch.tensor(7))
    st = back["optimizer_states"][0]["state"][0]
    want = last["optimizer_states"][0]["state"][0]
    assert torch.equal(st["exp_avg"], want["exp_avg"].bfloat16().float())
    assert torch.equal(st["exp_avg_sq"], want["exp_avg_sq"].bfloat16().float()) and (st["exp_avg_sq"] > 0).all()
    assert st["step"].item() == 30.0 and back["optimizer_states"][0]["param_groups"] == [{"lr": 5e-4, "params": [0]}]
    assert back["loops"] == last["loops"] and back["global_step"] == 30
    mc = next(iter(back["callbacks"].values()))
    assert mc["dirpath"] == here and mc["best_model_path"] == f"{here}/epoch001-f10.4375.ckpt"
    assert list(mc["best_k_models"]) == [f"{here}/epoch001-f10.4375.ckpt"] and mc["last_model_path"] == ""
    assert mc["best_model_score"].item() == 0.4375
    best = torch.load(dst / "checkpoints" / "epoch001-f10.4375.ckpt", weights_only=False)
    assert torch.equal(best["state_dict"]["net.w"], best_w.half().float()) and "optimizer_states" not in best
    assert (dst / "timing.jsonl").read_text() == (src / "timing.jsonl").read_text()

    # the best epoch is the last one saved: its weights travel once
    torch.save(_checkpoint(last_w, 40, "epoch003-f10.5000.ckpt"), src / "checkpoints" / "epoch003-f10.5000.ckpt")
    torch.save(_checkpoint(last_w, 40, "epoch003-f10.5000.ckpt"), src / "checkpoints" / "last.ckpt")
    newer = export_resume(src, 0, ship, "cfgA")
    assert sorted(p.name for p in ship.glob("resume0-*")) == sorted(p.name for p in newer)  # the older set went
    assert _tensor_bytes(newer) == size - 64 * 32 * 2
    dst2 = tmp_path / "c" / "fold0"
    assert import_resume([ship], 0, dst2, "cfgA")
    b2 = torch.load(dst2 / "checkpoints" / "epoch003-f10.5000.ckpt", weights_only=False)
    assert torch.equal(b2["state_dict"]["net.w"], last_w.half().float())
    # the newest set, half carried: say which file is missing rather than resume from an older epoch
    partial = tmp_path / "partial"
    partial.mkdir()
    for p in [*one.iterdir(), *two.iterdir(), *newer[1:]]:  # the older set whole, the newer one less a shard
        shutil.copy(p, partial / p.name)
    with pytest.raises(FileNotFoundError, match=f"shards \\['{newer[0].name}'\\] are missing"):
        import_resume([partial], 0, tmp_path / "d" / "fold0", "cfgA")
    (partial / newer[-1].name).unlink()
    with pytest.raises(FileNotFoundError, match="its index resume0-s40.pt is not in"):
        import_resume([partial], 0, tmp_path / "d" / "fold0", "cfgA")
    assert import_resume([tmp_path / "nothing"], 0, tmp_path / "e" / "fold0", "cfgA") is False
    assert export_resume(tmp_path / "no-fold", 0, ship, "cfgA") == []


def test_ship_brings_a_resume_set_only_whole_and_only_while_its_fold_is_unfinished(tmp_path: Path) -> None:
    ship = tmp_path / "w" / "ship"
    ship.mkdir(parents=True)
    for name in ("resume1-s9-000.pt", "resume1-s9-001.pt"):
        (ship / name).write_bytes(b"r" * 10)
    assert fusion_kfold.ship_files(tmp_path / "w", tmp_path / "o1") == []  # no index yet: half written
    (ship / "resume1-s9.pt").write_bytes(b"i")
    got = fusion_kfold.ship_files(tmp_path / "w", tmp_path / "o2")
    assert got == ["resume1-s9-000.pt", "resume1-s9-001.pt", "resume1-s9.pt"]
    (ship / "resume2-s5.pt").write_bytes(b"i")
    (ship / "fold2-summary.json").write_text("{}")  # fold 2 finished: its set stays behind
    assert fusion_kfold.ship_files(tmp_path / "w", tmp_path / "o3") == ["fold2-summary.json"]


class _StopAt(pl.Callback):
    """Kills training before the first batch of ``epoch`` (as a call's time limit does)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"limit reached before epoch {self.epoch}")


def test_a_fold_paused_on_one_machine_ends_on_another_as_if_uninterrupted(
    table, tmp_path: Path, monkeypatch, caplog
) -> None:
    """Fold 1 stopped after its first epoch on "lease 1", paused (its resume set shipped), carried to "lease 2"
    and trained to the end there: the fold trains its second epoch only, its summary counts both epochs, and its
    weights are close to those of the fold trained in one go (they differ by the float16/bfloat16 rounding of the
    travel, carried through the second epoch's steps)."""
    import glc.training.trainer as trainer_mod

    inputs, _ = table
    cfg = _config(Path("tasks/fusion.toml"), SMALL)  # fold 1: 2 epochs
    real = trainer_mod.train_model
    whole = fusion_kfold.train_folds(inputs, cfg, [0], tmp_path / "whole", top=12)[0]

    def stopped(*a, **kw):
        return real(*a, **{**kw, "callbacks": [*kw["callbacks"], _StopAt(1)]})

    monkeypatch.setattr(trainer_mod, "train_model", stopped)
    lease1 = tmp_path / "lease1"
    with pytest.raises(RuntimeError, match="limit reached before epoch 1"):
        fusion_kfold.train_folds(inputs, cfg, [0], lease1, top=12)
    monkeypatch.setattr(trainer_mod, "train_model", real)
    sets = sum((["--set", s] for s in SMALL), [])
    assert fusion_kfold.main(["pause", "--work", str(lease1), "--experiment", "tasks/fusion.toml", *sets]) == 0
    here = tmp_path / "here"
    _bring(lease1, here)
    assert sorted(p.name for p in here.iterdir()) == sorted(p.name for p in (lease1 / "ship").glob("resume0-*"))
    with caplog.at_level("INFO"):
        s = fusion_kfold.train_folds(inputs, cfg, [0], tmp_path / "lease2", init=[here], top=12)[0]
    assert "fold 0: resumes from the carried set of step" in caplog.text
    assert s["epochs_trained"] == whole["epochs_trained"] == 2 and len(s["epoch_seconds_each"]) == 2
    assert not list((tmp_path / "lease2" / "ship").glob("resume0-*"))
    after = torch.load(tmp_path / "lease2" / "fold0" / "checkpoints" / "last.ckpt", weights_only=False)
    ref = torch.load(tmp_path / "whole" / "fold0" / "checkpoints" / "last.ckpt", weights_only=False)
    first = torch.load(lease1 / "fold0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert after["global_step"] == ref["global_step"] and after["epoch"] == ref["epoch"] == 1
    # squared L2 distances over the large weights: what epoch 2 changed, and how far the travelled fold ends from
    # the fold trained in one go (float16 weights, bfloat16 moments; measured ~5 % of the former: early AdamW steps
    # are nearly sign steps, so a rounding can flip a near-zero gradient's step)
    moved = travel = 0.0
    for k, v in ref["state_dict"].items():
        if v.is_floating_point() and v.numel() >= fusion_kfold.RESUME_EXACT_BELOW:
            moved += float(((v - first["state_dict"][k]) ** 2).sum())
            travel += float(((v - after["state_dict"][k]) ** 2).sum())
    assert moved > 0 and travel**0.5 < 0.15 * moved**0.5
    assert abs(s["best_monitor"] - whole["best_monitor"]) <= 0.02
    # the best epoch is the one-go fold's: the carried best score counts (here the first, trained before the pause)
    assert Path(s["best_checkpoint"]).name == Path(whole["best_checkpoint"]).name
    assert Path(s["best_checkpoint"]).parent == tmp_path / "lease2" / "fold0" / "checkpoints"
