"""Presence-only pretraining: sites and labels, the assume-negative loss, and the PA fit it initialises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from glc.config import ConfigError, resolve
from glc.geo import to_lonlat
from glc.models.geolocation import build_geolocation_net
from glc.training.po_pretrain import po_site_table, pretrain_on_po

VOCAB = np.array([100, 101, 102, 103, 104])


def _sites(root: Path, n: int = 400, seed: int = 0) -> Path:
    """A POSites artifact: species 100/101 recorded in the west, 102 in the east, 999 (no PA class) anywhere, and a
    few sites recording only 999."""
    rng = np.random.default_rng(seed)
    x, y = 4.0e6 + rng.uniform(0, 800e3, n), 3.0e6 + rng.uniform(0, 400e3, n)
    west = x < 4.4e6
    species = [
        ([999] if i % 50 == 0 else ([100, 101] if w else [102]) + ([999] if i % 7 == 0 else []))
        for i, w in enumerate(west)
    ]
    return _write_sites(root, x, y, species)


def _write_sites(root: Path, x: np.ndarray, y: np.ndarray, species: list[list[int]]) -> Path:
    """A POSites artifact of sites at EPSG:3035 ``x, y`` recording ``species``."""
    lon, lat = to_lonlat(x, y)
    table = pa.table(
        {
            "surveyId": np.arange(len(x), dtype=np.int64),
            "lon": lon,
            "lat": lat,
            "x": x,
            "y": y,
            "speciesIds": pa.array(species, pa.list_(pa.int64())),
            "n_records": np.array([len(s) for s in species], np.int64),
        }
    )
    (root / "data").mkdir(parents=True)
    pq.write_table(table, root / "data" / "part-0.parquet")
    (root / "_SUCCESS").write_text("")
    return root


def _cfg(**po) -> dict:
    return resolve(
        {
            "model": {"kind": "geolocation", "hidden": 32, "coord_noise_km": 0.0},
            "train": {"pretrain_po": {"enabled": True, "epochs": 25, "pos_weight": 4.0, "lr": 1e-2, **po}},
        }
    )


def test_po_site_table_drops_species_outside_the_pa_classes_and_counts_them(tmp_path: Path) -> None:
    from glc.training.po_pretrain import read_po_sites

    sites = read_po_sites(_sites(tmp_path / "s", n=100))
    used, cols, rep = po_site_table(sites, VOCAB)
    assert rep["sites_read"] == 100 and rep["sites_without_pa_species"] == 2 and rep["sites_used"] == 98
    assert rep["species_outside_pa_classes"] == 1 and rep["labels_dropped_outside_pa_classes"] == 2 + 14
    assert all(len(c) and c.max() < len(VOCAB) for c in cols)
    assert [VOCAB[c].tolist() for c in cols[:2]] == [
        list(s) for s in used["speciesIds"].iloc[:2].map(lambda a: [v for v in a if v != 999])
    ]
    small, _, rep2 = po_site_table(sites, VOCAB, max_sites=10, seed=3)
    assert len(small) == 10 and rep2["sites_used"] == 10
    with pytest.raises(ValueError, match="none of the 100 PO sites"):
        po_site_table(sites, np.array([5, 6]))


def test_pretraining_teaches_the_net_where_each_species_was_recorded(tmp_path: Path) -> None:
    sites = _sites(tmp_path / "s")
    meta = {"vocab": VOCAB.tolist(), "num_classes": len(VOCAB)}
    for loss in ("an_full", "an_site"):
        torch.manual_seed(0)
        cfg = _cfg(loss=loss)
        net = build_geolocation_net(cfg["model"], len(VOCAB), {})
        ck, info = pretrain_on_po(net, sites, cfg, meta, tmp_path / loss, progress=False)
        assert info["epoch_loss"][-1] < 0.5 * info["epoch_loss"][0] and info["sites_used"] == 392
        net.eval()
        pts = {"west": (4.1e6, 3.2e6), "east": (4.7e6, 3.2e6)}
        with torch.no_grad():
            p = {}
            for k, (x, y) in pts.items():
                lon, lat = to_lonlat(np.array([x]), np.array([y]))
                batch = {
                    "x": torch.tensor([x]),
                    "y": torch.tensor([y]),
                    "lon": torch.tensor(lon),
                    "lat": torch.tensor(lat),
                }
                p[k] = torch.sigmoid(net({c: v.float() for c, v in batch.items()}))[0].numpy()
        assert p["west"][0] > 0.5 > p["east"][0] and p["east"][2] > 0.5 > p["west"][2], p
        assert p["west"][4] < 0.1 and p["east"][4] < 0.1  # never recorded: absent everywhere
        state = torch.load(ck, weights_only=False)["state_dict"]
        assert set(state) == {f"net.{k}" for k in net.state_dict()}
    again = build_geolocation_net(cfg["model"], len(VOCAB), {})
    assert pretrain_on_po(again, sites, cfg, meta, tmp_path / "an_site", progress=False)[1]["reused"] is True


def _collate_until(n: int) -> Callable[..., dict[str, torch.Tensor]]:
    """``POBatches.__call__`` that raises after ``n`` batches, as a machine lost mid-pretraining."""
    from glc.training.po_pretrain import POBatches

    collate, calls = POBatches.__call__, [0]

    def lost_machine(self: POBatches, idx: list[int]) -> dict[str, torch.Tensor]:
        calls[0] += 1
        if calls[0] > n:
            raise RuntimeError("machine lost")
        return collate(self, idx)

    return lost_machine


def test_a_stopped_pretraining_resumes_and_ends_with_the_uninterrupted_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glc.training.po_pretrain import RESUME_DIR, POBatches

    sites = _sites(tmp_path / "s")  # 392 usable sites: 7 batches of 64 an epoch
    meta = {"vocab": VOCAB.tolist(), "num_classes": len(VOCAB)}
    for loss in ("an_full", "multinomial"):  # an_full also draws background locations from its own generator
        cfg = resolve(
            {
                "model": {"kind": "geolocation", "hidden": 32, "coord_noise_km": 5.0},  # noise: the global RNG
                "train": {"pretrain_po": {"enabled": True, "epochs": 4, "batch_size": 64, "lr": 1e-2, "loss": loss}},
            }
        )
        torch.manual_seed(0)
        ref = build_geolocation_net(cfg["model"], len(VOCAB), {})
        _, ref_info = pretrain_on_po(ref, sites, cfg, meta, tmp_path / f"ref-{loss}", progress=False)
        assert not (tmp_path / f"ref-{loss}" / RESUME_DIR).exists()  # removed once the weights are written

        work = tmp_path / f"w-{loss}"
        monkeypatch.setattr(POBatches, "__call__", _collate_until(2 * 7 + 3))  # lost in the third epoch
        torch.manual_seed(0)
        with pytest.raises(RuntimeError, match="machine lost"):
            pretrain_on_po(build_geolocation_net(cfg["model"], len(VOCAB), {}), sites, cfg, meta, work, progress=False)
        monkeypatch.undo()
        assert (work / RESUME_DIR / "last.ckpt").is_file() and not (work / "po.ckpt").exists()

        torch.manual_seed(123)  # a new process: another global state, another initialisation
        net = build_geolocation_net(cfg["model"], len(VOCAB), {})
        _, info = pretrain_on_po(net, sites, cfg, meta, work, progress=False)
        assert info["resumed_after_epochs"] == 2 and "resumed_after_epochs" not in ref_info
        assert info["epoch_loss"] == ref_info["epoch_loss"]
        got = net.state_dict()
        assert all(torch.equal(v, got[k]) for k, v in ref.state_dict().items()), loss
        assert not (work / RESUME_DIR).exists()


def test_a_net_reading_inputs_a_po_site_lacks_is_refused(tmp_path: Path) -> None:
    model = {"kind": "geolocation", "hidden": 8, "extras": ["env"]}
    # when the config is resolved, before any ETL: which set, and what a PO site has
    with pytest.raises(ConfigError, match=r"model.kind='geolocation' reads \['env'\], which glc does not"):
        resolve({"model": model, "train": {"pretrain_po": {"enabled": True}}})
    with pytest.raises(ConfigError, match=r"reads \['patch_raw'\].*model.image = \"dct16\""):
        resolve({"model": {"kind": "fusion", "fusion": "concat"}, "train": {"pretrain_po": {"enabled": True}}})
    with pytest.raises(ConfigError, match="has no branch a PO site can feed"):
        resolve(
            {
                "model": {"kind": "fusion", "fusion": "concat", "image": "none"},
                "train": {"pretrain_po": {"enabled": True}},
            }
        )
    with pytest.raises(ConfigError, match=r"model.kind='geolocation' reads \['year'\]"):  # a column, not a feature set
        resolve({"model": {"kind": "geolocation", "extras": ["year"]}, "train": {"pretrain_po": {"enabled": True}}})
    tile_year = {"kind": "tile_cnn", "location": {"encoder": "sinusoidal", "extras": ["region"]}}
    with pytest.raises(ConfigError, match=r"model.kind='tile_cnn' reads \['region'\]"):
        resolve({"model": tile_year, "train": {"pretrain_po": {"enabled": True}}})
    with pytest.raises(ConfigError, match="model.kind='gbm' is fitted in memory, not trained as a net"):
        resolve({"model": {"kind": "gbm"}, "train": {"pretrain_po": {"enabled": True}}})
    assert resolve(
        {"model": {"kind": "fusion", "fusion": "concat", "image": "dct16"}, "train": {"pretrain_po": {"enabled": True}}}
    )
    # and again by the net itself, for a config assembled without resolve()
    cfg = resolve({"model": model})
    cfg["train"]["pretrain_po"]["enabled"] = True
    net = build_geolocation_net(cfg["model"], len(VOCAB), {"env": 3})
    meta = {"vocab": VOCAB.tolist(), "num_classes": len(VOCAB)}
    with pytest.raises(ValueError, match=r"reads \['env'\], which none of the 400 PO sites has"):
        pretrain_on_po(net, _sites(tmp_path / "s"), cfg, meta, tmp_path / "w", progress=False)


def test_train_model_pretrains_on_po_then_fits_the_pa_surveys(tmp_path: Path) -> None:
    from glc.loaders.fake import make_fake_inputs
    from glc.loaders.tables import read_meta
    from glc.training.trainer import train_model

    make_fake_inputs(tmp_path / "in", (), sizes={"train": 60, "val": 30, "test": 10}, num_classes=5)
    meta = read_meta(tmp_path / "in")
    sites = read_po_sites_with_vocab(tmp_path / "s", meta["vocab"])
    cfg = resolve(
        {
            "model": {"kind": "geolocation", "hidden": 16},
            "train": {
                "max_epochs": 2,
                "batch_size": 32,
                "reader": "arrow",
                "pretrain_po": {"enabled": True, "epochs": 2, "batch_size": 64},
            },
        }
    )
    with pytest.raises(ValueError, match="pass the POSites artifact"):
        train_model(tmp_path / "in", tmp_path / "w0", cfg, "t", progress=False, wandb=False)
    with pytest.raises(ConfigError, match="pretraining runs before a fit from scratch"):
        resolve({**{s: dict(v) for s, v in cfg.items() if isinstance(v, dict)}, "train": {**cfg["train"], "kfold": 2}})
    with pytest.raises(ValueError, match="pretraining runs before a fit from scratch"):
        train_model(
            tmp_path / "in", tmp_path / "w0", cfg, "t", progress=False, wandb=False, po_sites=sites, init="x.ckpt"
        )
    out = train_model(tmp_path / "in", tmp_path / "w", cfg, "t", progress=False, wandb=False, po_sites=sites)
    po = out["pretrain_po"]
    assert po["sites_used"] == 392 and po["epochs"] == 2 and po["loss"] == "an_full" and po["pa_epochs"] >= 1
    assert (tmp_path / "w" / "po_pretrain" / "po.ckpt").exists()


def read_po_sites_with_vocab(root: Path, vocab: list[int]) -> Path:
    """The test sites with their species ids moved onto ``vocab`` (100 + k -> vocab[k]; 999 stays outside)."""
    folder = _sites(root)
    t = pq.read_table(folder / "data" / "part-0.parquet").to_pandas()
    t["speciesIds"] = t["speciesIds"].map(lambda a: [vocab[v - 100] if v < 999 else 10**9 for v in a])
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(t), preserve_index=False), folder / "data" / "part-0.parquet")
    return folder


def test_the_multinomial_loss_ranks_species_by_where_they_were_recorded_not_by_where_people_looked(
    tmp_path: Path,
) -> None:
    """Nine of ten sites are in the west (observer bias): the assume-negative losses learn "little is recorded in the
    east", the multinomial one which species a record there names."""
    from glc.training.po_pretrain import POBatches, POObjective, read_po_sites

    rng = np.random.default_rng(1)
    n = 600
    west = rng.random(n) < 0.9
    x = np.where(west, 4.0e6 + rng.uniform(0, 400e3, n), 4.4e6 + rng.uniform(0, 400e3, n))
    y = 3.0e6 + rng.uniform(0, 400e3, n)
    root = _write_sites(tmp_path / "s", x, y, [[100] if w else [102] for w in west])
    meta = {"vocab": VOCAB.tolist(), "num_classes": len(VOCAB)}
    torch.manual_seed(0)
    cfg = _cfg(loss="multinomial", epochs=30)
    net = build_geolocation_net(cfg["model"], len(VOCAB), {})
    _, info = pretrain_on_po(net, root, cfg, meta, tmp_path / "w", progress=False)
    assert info["loss"] == "multinomial" and info["epoch_loss"][-1] < 0.3 * info["epoch_loss"][0]
    net.eval()
    with torch.no_grad():
        east = {"x": torch.tensor([4.7e6]), "y": torch.tensor([3.2e6])}
        elon, elat = to_lonlat(np.array([4.7e6]), np.array([3.2e6]))
        logits = net({**east, "lon": torch.tensor(elon).float(), "lat": torch.tensor(elat).float()})[0]
    assert int(logits.argmax()) == 2  # species 102 ranks first in the east

    # the objective: an offset per species, the loss of a perfect ranking near 0 and of a wrong one large
    obj = POObjective("multinomial", len(VOCAB), 1.0)
    assert obj.offset is not None and obj.offset.shape == (len(VOCAB),)
    batches = POBatches(read_po_sites(root), [np.array([0 if w else 2]) for w in west], len(VOCAB), False, 0)
    b = batches.draw(3, 16)
    sure = lambda b: b["target"] * 40.0 - 20.0  # noqa: E731 (a "net" that knows the answer)
    wrong = lambda b: (1 - b["target"]) * 40.0 - 20.0  # noqa: E731
    assert float(obj(lambda c: sure(b), b).detach()) < 1e-6 < 30.0 < float(obj(lambda c: wrong(b), b).detach())
    # the joint term's batch of a step depends on (seed, step) only
    again = batches.draw(3, 16)
    assert all(torch.equal(b[k], again[k]) for k in b) and not torch.equal(b["x"], batches.draw(4, 16)["x"])


def test_the_joint_term_trains_the_pa_fit_on_po_sites_and_predicts_without_them(tmp_path: Path) -> None:
    from glc.loaders.fake import make_fake_inputs
    from glc.loaders.tables import read_meta
    from glc.training.po_pretrain import POJointModule
    from glc.training.trainer import build_module, predict_splits, train_model

    make_fake_inputs(tmp_path / "in", (), sizes={"train": 60, "val": 30, "test": 10}, num_classes=5)
    meta = read_meta(tmp_path / "in")
    sites = read_po_sites_with_vocab(tmp_path / "s", meta["vocab"])
    over = {
        "model": {"kind": "geolocation", "hidden": 16},
        "train": {
            "max_epochs": 3,
            "patience": 3,
            "batch_size": 32,
            "reader": "arrow",
            "pretrain_po": {"enabled": True, "epochs": 0, "aux_weight": 0.5, "loss": "multinomial", "batch_size": 64},
        },
    }
    cfg = resolve(over)
    module = build_module(cfg, meta)
    assert isinstance(module, POJointModule) and module.aux_weight == 0.5 and module.po_batch_size == 64
    with pytest.raises(RuntimeError, match="no PO sites attached"):
        module.training_step({}, 0)
    out = train_model(tmp_path / "in", tmp_path / "w", cfg, "t", progress=False, wandb=False, po_sites=sites)
    po = out["pretrain_po"]
    assert po["epochs"] == 0 and po["aux_weight"] == 0.5 and po["sites_used"] == 392 and po["loss"] == "multinomial"
    assert not (tmp_path / "w" / "po_pretrain").exists()  # no pretraining phase
    state = torch.load(out["best_checkpoint"], weights_only=False)["state_dict"]
    assert "po.offset" in state and float(state["po.offset"].abs().sum()) > 0  # the offsets were trained
    val, test, _ = predict_splits(tmp_path / "in", out["best_checkpoint"], cfg)
    assert len(val) == 30 and len(test) == 10
    # the PA fit without the joint term is a plain module, and a config using the sites in no way is refused
    assert type(build_module(resolve({**over, "train": {**over["train"], "pretrain_po": {}}}), meta)).__name__ == (
        "MultiLabelModule"
    )
    with pytest.raises(ConfigError, match="epochs = 0 and aux_weight = 0"):
        resolve({**over, "train": {**over["train"], "pretrain_po": {"enabled": True, "epochs": 0}}})


def test_a_compiled_net_runs_the_po_batches_eagerly_and_compiles_nothing_more(tmp_path: Path) -> None:
    """With ``[train] compile`` the compiled graphs keep the PA batch's shape: PO pretraining and the joint term's PO
    batches (64 sites beside PA batches of 32) run the eager net, like the PA fit's short batches, so dynamo compiles
    exactly the graphs of the same fit without PO; compiling the PO batches too makes more."""
    from torch._dynamo.utils import counters

    from glc.loaders.fake import make_fake_inputs
    from glc.loaders.tables import read_meta
    from glc.training.trainer import train_model

    make_fake_inputs(tmp_path / "in", (), sizes={"train": 60, "val": 30, "test": 10}, num_classes=5)
    sites = read_po_sites_with_vocab(tmp_path / "s", read_meta(tmp_path / "in")["vocab"])
    graphs = []
    for po in ({}, {"enabled": True, "epochs": 1, "aux_weight": 0.5, "loss": "multinomial", "batch_size": 64}):
        cfg = resolve(
            {
                "model": {"kind": "geolocation", "hidden": 16},
                "train": {
                    "max_epochs": 2,
                    "patience": 2,
                    "batch_size": 32,
                    "reader": "arrow",
                    "compile": "default",
                    "compile_backend": "aot_eager",
                    "pretrain_po": po,
                },
            }
        )
        torch._dynamo.reset()
        counters.clear()
        out = train_model(
            tmp_path / "in", tmp_path / f"w{len(graphs)}", cfg, "t", progress=False, wandb=False, po_sites=sites
        )
        assert out["epochs_trained"] == 2
        graphs.append(counters["stats"]["unique_graphs"])
    torch._dynamo.reset()
    assert out["pretrain_po"]["epochs"] == 1
    assert graphs[0] >= 1 and graphs[1] == graphs[0], graphs


def _po_patches(root: Path, ids: np.ndarray, dct: np.ndarray) -> Path:
    """A POPatchTiles artifact: ``surveyId``, ``split`` = "po" and the flattened ``dct`` of each site."""
    table = pa.table(
        {
            "surveyId": np.asarray(ids, np.int64),
            "split": ["po"] * len(ids),
            "dct": pa.array(list(dct.reshape(len(ids), -1).astype(np.float32)), pa.list_(pa.float32())),
        }
    )
    (root / "data").mkdir(parents=True)
    pq.write_table(table, root / "data" / "part-0.parquet")
    (root / "_SUCCESS").write_text("{}")
    return root


def _patch_world(
    tmp_path: Path, n: int = 300, sets: tuple[str, ...] = ("patch_dct",)
) -> tuple[dict, Path, Path, np.ndarray, np.ndarray]:
    """PA inputs with ``patch_dct``, and PO sites whose species shows only in their patch: sites recording species
    A (vocab[0]) have a bright red DC coefficient, those recording B (vocab[2]) a dark one; the locations carry no
    signal; every tenth site has no patch. Returns ``(meta, sites, patches, is_a, has_patch)``."""
    from glc.loaders.fake import make_fake_inputs
    from glc.loaders.tables import read_meta

    frames = make_fake_inputs(
        tmp_path / "in", sets, sizes={"train": 60, "val": 30, "test": 10}, num_classes=5, widths={"env": 6}
    )
    meta = read_meta(tmp_path / "in")
    rng = np.random.default_rng(4)
    is_a = np.arange(n) % 2 == 0
    x, y = 4.0e6 + rng.uniform(0, 50e3, n), 3.0e6 + rng.uniform(0, 50e3, n)
    vocab = meta["vocab"]
    sites = _write_sites(tmp_path / "s", x, y, [[vocab[0]] if a else [vocab[2]] for a in is_a])
    pa_dct = np.stack(frames["train"]["patch_dct"].to_numpy()).astype(np.float64)
    mean, std = pa_dct.mean(0), pa_dct.std(0) + 1e-3
    dct = mean + 0.3 * std * rng.normal(size=(n, *mean.shape))
    dct[:, 0, 0, 0] += np.where(is_a, 3.0, -3.0) * std[0, 0, 0]
    has = np.arange(n) % 10 != 0
    ids = np.arange(n)
    order = rng.permutation(int(has.sum()))  # the artifact's rows in another order than the sites'
    patches = _po_patches(tmp_path / "p", ids[has][order], dct[has][order])
    return meta, sites, patches, dct.astype(np.float32), has


def _fit_with_po_patches(tmp_path: Path, cfg: dict, sites: Path, patches: Path) -> dict:
    """``train_model`` on ``tmp_path/in`` into ``tmp_path/w`` with the PO sites and their ``patch_dct`` tiles."""
    from glc.training.trainer import train_model

    return train_model(
        tmp_path / "in",
        tmp_path / "w",
        cfg,
        "t",
        progress=False,
        wandb=False,
        po_sites=sites,
        po_inputs={"patch_dct": patches},
    )


def test_a_tile_net_reads_the_patches_of_the_po_sites_and_learns_from_them(tmp_path: Path) -> None:
    from glc.training.po_pretrain import POBatches, read_po_inputs, read_po_sites
    from glc.training.trainer import build_module

    meta, sites, patches, dct, has = _patch_world(tmp_path)
    ids, cols = read_po_inputs({"patch_dct": patches}, meta)
    assert ids.tolist() == np.flatnonzero(has).tolist() and set(cols) == {"patch_dct"}
    assert cols["patch_dct"].shape == (int(has.sum()), 4, 8, 8) and cols["patch_dct"].dtype == np.float32
    np.testing.assert_array_equal(cols["patch_dct"], dct[has])  # aligned by site id, in the PA rows' shape

    cfg = resolve(
        {
            "model": {"kind": "tile_cnn", "channels": [8], "reduce": 8, "latent": 16, "augment": False},
            "train": {
                "pretrain_po": {"enabled": True, "epochs": 12, "loss": "multinomial", "lr": 1e-2, "batch_size": 32}
            },
        }
    )
    torch.manual_seed(0)
    net = build_module(cfg, meta).net
    with pytest.raises(ValueError, match=r"reads \['patch_dct'\], which none of the 300 PO sites has"):
        pretrain_on_po(net, sites, cfg, meta, tmp_path / "w0", progress=False)
    _, info = pretrain_on_po(net, sites, cfg, meta, tmp_path / "w", progress=False, inputs={"patch_dct": patches})
    assert info["sites_used"] == 270 and info["sites_without_inputs"] == 30 and info["input_sets"] == ["patch_dct"]
    assert info["inputs"] == ["patch_dct"] and info["epoch_loss"][-1] < 0.3 * info["epoch_loss"][0]
    net.eval()
    with torch.no_grad():
        bright = torch.from_numpy(dct[has][:2])  # sites 1 (A) and 2 (B) of the kept ones (site 0 has no patch)
        top = net({"patch_dct": bright}).argmax(1).tolist()
    assert top == [2, 0]  # species B, then A: read from the patch alone

    # a background term needs inputs at random locations, which have no patch
    with pytest.raises(ValueError, match="an_full draws random background locations"):
        POBatches(read_po_sites(sites), [np.array([0])] * 300, 5, True, 0, (ids, cols))


def test_the_joint_term_of_a_tile_net_draws_po_sites_with_their_patches(tmp_path: Path) -> None:
    from glc.training.trainer import train_model

    meta, sites, patches, _, _ = _patch_world(tmp_path)
    cfg = resolve(
        {
            "model": {"kind": "tile_cnn", "channels": [8], "reduce": 8, "latent": 16},
            "train": {
                "max_epochs": 1,
                "batch_size": 32,
                "reader": "arrow",
                "pretrain_po": {
                    "enabled": True,
                    "epochs": 0,
                    "aux_weight": 1.0,
                    "loss": "multinomial",
                    "batch_size": 16,
                },
            },
        }
    )
    with pytest.raises(ValueError, match=r"reads \['patch_dct'\]"):
        train_model(tmp_path / "in", tmp_path / "w0", cfg, "t", progress=False, wandb=False, po_sites=sites)
    out = _fit_with_po_patches(tmp_path, cfg, sites, patches)
    po = out["pretrain_po"]
    assert po["sites_used"] == 270 and po["sites_without_inputs"] == 30 and po["input_sets"] == ["patch_dct"]
    state = torch.load(out["best_checkpoint"], weights_only=False)["state_dict"]
    assert float(state["po.offset"].abs().sum()) > 0  # the PO term trained


#: A small fusion that reads the patch (``patch_dct``) and the env / plot vectors, which a PO site does not have.
_FUSION = {
    "kind": "fusion",
    "fusion": "concat",
    "image": "dct8",
    "backbone": "resnet18",
    "image_size": 16,
    "latent": 16,
    "augment": False,
    "cubes": [],
    "tabular": {"hidden": 16},
    "graph": {"enabled": False},
}


def test_the_fusion_learns_from_the_po_patches_through_its_image_branch_only(tmp_path: Path) -> None:
    """The fusion reads env / plot vectors no PO site has: the PO sites train its image branch through the
    objective's own PO head, and never its fusion head (which sees PA surveys only)."""
    from glc.training.trainer import build_module

    meta, sites, patches, dct, has = _patch_world(tmp_path, sets=("patch_dct", "env", "plot"))
    cfg = resolve(
        {
            "model": _FUSION,
            "train": {
                "pretrain_po": {"enabled": True, "epochs": 12, "loss": "multinomial", "lr": 1e-2, "batch_size": 32}
            },
        }
    )
    torch.manual_seed(0)
    net = build_module(cfg, meta).net
    assert net.po_input_columns == ("patch_dct",) and set(net.input_columns) > {"patch_dct", "env"}
    with pytest.raises(ValueError, match=r"reads \['patch_dct'\], which none of the 300 PO sites has"):
        pretrain_on_po(net, sites, cfg, meta, tmp_path / "w0", progress=False)
    head0 = {k: v.clone() for k, v in net.head.state_dict().items()}
    image0 = {k: v.clone() for k, v in net.image.named_parameters()}
    ck, info = pretrain_on_po(net, sites, cfg, meta, tmp_path / "w", progress=False, inputs={"patch_dct": patches})
    assert info["sites_used"] == 270 and info["inputs"] == ["patch_dct"] and info["input_sets"] == ["patch_dct"]
    state = torch.load(ck, weights_only=False)["state_dict"]  # the PO head is kept for a joint term to go on with
    assert state["po.head.weight"].shape == (5, 16) and "po.offset" in state and "net.head.net.2.weight" in state
    assert info["epoch_loss"][-1] < 0.5 * info["epoch_loss"][0], info["epoch_loss"]
    assert all(torch.equal(v, head0[k]) for k, v in net.head.state_dict().items())  # the fusion head: untouched
    assert any(not torch.equal(v, image0[k]) for k, v in net.image.named_parameters())  # the image branch learned

    # resolve() refuses both (see above); the net refuses them too, for a config assembled without it
    no_po = {**cfg["train"], "pretrain_po": {**cfg["train"]["pretrain_po"], "enabled": False}}
    raw = resolve({"model": {**_FUSION, "image": "raw"}, "train": no_po})
    raw["train"]["pretrain_po"]["enabled"] = True
    raw_col = {"shape": [4, 128, 128], "dtype": "uint8", "feature_set": "patch_raw"}
    raw_meta = {**meta, "columns": {**meta["columns"], "patch_raw": raw_col}}
    with pytest.raises(ValueError, match=r"reads \['patch_raw'\].*DCT tiles only.*model.image = \"dct16\""):
        pretrain_on_po(build_module(raw, raw_meta).net, sites, raw, meta, tmp_path / "w1", progress=False)
    off = resolve({"model": {**_FUSION, "image": "none"}, "train": no_po})
    off["train"]["pretrain_po"]["enabled"] = True
    with pytest.raises(ValueError, match="no branch a PO site can feed"):
        pretrain_on_po(build_module(off, meta).net, sites, off, meta, tmp_path / "w2", progress=False)


def test_every_fold_of_a_k_fold_fusion_keeps_the_po_term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    from glc.training import po_pretrain
    from glc.training.trainer import load_module

    # each fold loads the PO sites' table (GBs at full scale): the fold before must have let its own go by then,
    # without waiting for the garbage collector (the full world's 3-fold run once died of it, out of memory)
    tables: list[weakref.ref[po_pretrain.POBatches]] = []
    alive_at_load: list[int] = []
    init = po_pretrain.POBatches.__init__

    def counting_init(self: po_pretrain.POBatches, *a: Any, **k: Any) -> None:
        alive_at_load.append(sum(r() is not None for r in tables))
        init(self, *a, **k)
        tables.append(weakref.ref(self))

    monkeypatch.setattr(po_pretrain.POBatches, "__init__", counting_init)
    meta, sites, patches, _, _ = _patch_world(tmp_path, sets=("patch_dct", "env", "plot"))
    po = {"enabled": True, "epochs": 0, "aux_weight": 1.0, "loss": "multinomial", "batch_size": 16}
    train = {"max_epochs": 1, "kfold": 2, "kfold_epochs": 1, "batch_size": 32, "reader": "arrow", "pretrain_po": po}
    cfg = resolve({"model": _FUSION, "train": train})
    out = _fit_with_po_patches(tmp_path, cfg, sites, patches)
    assert alive_at_load == [0, 0]
    assert out["kfold"] == 2 and out["pretrain_po"]["input_sets"] == ["patch_dct"]
    by_fold = [f["epochs_to_best"] for f in out["folds"]]
    assert out["pretrain_po"]["pa_epochs_by_fold"] == by_fold and out["pretrain_po"]["pa_epochs"] == sum(by_fold) == 2
    assert out["pretrain_po"]["sites_used"] == 270 and out["pretrain_po"]["aux_weight"] == 1.0
    for fold in out["folds"]:  # each fold's PO head trained (fold 2 starting from fold 1's)
        state = torch.load(fold["best_checkpoint"], weights_only=False)["state_dict"]
        assert state["po.head.weight"].shape == (5, 16) and float(state["po.offset"].abs().sum()) > 0
    f1, f2 = (torch.load(f["best_checkpoint"], weights_only=False)["state_dict"] for f in out["folds"])
    assert not torch.equal(f1["po.head.weight"], f2["po.head.weight"])
    assert out["folds"][1]["init"] == out["folds"][0]["best_checkpoint"]
    # a fold after the first starts its PO objective (offsets, PO head) from fold 1's, as its net
    from glc.training.trainer import build_module, load_weights

    one = {**train, "kfold": 1}
    module = build_module(resolve({"model": _FUSION, "train": one}), meta)
    assert not torch.equal(module.po.head.weight, f1["po.head.weight"])
    load_weights(module, out["folds"][0]["best_checkpoint"], net=False)
    assert torch.equal(module.po.head.weight, f1["po.head.weight"]) and torch.equal(module.po.offset, f1["po.offset"])
    other = build_module(resolve({"model": _FUSION, "train": {**one, "pretrain_po": {**po, "loss": "an_site"}}}), meta)
    with pytest.raises(ValueError, match=r"another \[train.pretrain_po\] loss"):
        load_weights(other, out["folds"][0]["best_checkpoint"], net=False)
    from glc.training.trainer import predict_splits

    _, test, _ = predict_splits(tmp_path / "in", out["best_checkpoint"], cfg)  # no PO sites needed to predict
    assert len(np.unique(test.survey_ids)) == 10 and np.isfinite(test.prob).all()
    assert load_module(out["best_checkpoint"], cfg, meta).net.po_feature_dim == 16

    with pytest.raises(ConfigError, match="epochs = 2 with \\[train\\] kfold = 2: pretraining runs before"):
        resolve({"model": _FUSION, "train": {**train, "pretrain_po": {**po, "epochs": 2}}})
