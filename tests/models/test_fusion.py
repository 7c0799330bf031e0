"""The fusion model: each branch's output shape, what prepare() hands to mixup (float tensors only), the image paths
(raw pixels and IDCT of the DCT block), the tabular encoding, the feature sets it declares, bad settings named at
load, and the generic trainer fitting and scoring it from a model-input table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glc.config import ConfigError, resolve
from glc.features.dct import idct2, image_dihedral
from glc.loaders.fake import make_fake_inputs
from glc.loaders.tables import read_meta
from glc.models.fusion import FusionNet, build_fusion, fusion_features
from glc.models.registry import get_model

SETS = ("patch_raw", "patch_dct16", "landsat_cube", "bioclim_cube", "env", "plot", "gfv")
SMALL = {
    "backbone": "resnet18",
    "image_size": 32,
    "latent": 16,
    "dim": 16,
    "heads": 4,
    "swin": {"embed_dim": 24, "depths": [1, 1], "heads": [4, 8]},
    "tabular": {"hidden": 32},
    "graph": {"tokens": 3, "width": 8},
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fusion_inputs")
    make_fake_inputs(
        root,
        SETS,
        sizes={"train": 96, "val": 32, "test": 16},
        num_classes=20,
        label_width=5,
        widths={"env": 7},
        rows_per_file=40,
        row_group_size=16,
    )
    return root


def _model(**over) -> dict:
    return resolve({"model": {"kind": "fusion", **SMALL, **over}})["model"]


def _batch(root: Path, n: int = 8) -> dict[str, torch.Tensor]:
    from glc.loaders.datamodule import SurveyDataModule

    meta = read_meta(root)
    cols = [c for c in meta["columns"] if c != "labels"]
    dm = SurveyDataModule(root, columns=cols, batch_size=n, reader="memory")
    return next(iter(dm.loader("train")))


def test_each_branch_has_its_output_shape(inputs: Path) -> None:
    meta = read_meta(inputs)
    net = build_fusion(_model(image="dct16"), meta).eval()
    b = _batch(inputs)
    x = net.prepare(b)
    assert x["image"].shape == (8, 4, 32, 32)
    assert x["landsat_cube"].shape == (8, 6, 4, 20) and x["bioclim_cube"].shape == (8, 4, 18, 12)
    n_tab = 7 + 4 + meta["n_regions"] + meta["n_countries"] + 2 + 4 * 8  # env, plot, one-hots, year + flag, sinusoids
    assert x["tabular"].shape == (8, n_tab) and x["gfv"].shape == (8, 20)
    assert all(torch.is_floating_point(v) for v in x.values())  # what mixup mixes
    tokens = net.image.tokens(x["image"])
    assert tokens.shape == (8, 1, 512)  # ResNet18 at 32 px: one 1 x 1 map of 512 features
    assert net.cubes["landsat_cube"](x["landsat_cube"]).shape == (8, 16) and net.cubes["bioclim_cube"](
        x["bioclim_cube"]
    ).shape == (8, 16)
    assert net.tabular(x["tabular"]).shape == (8, 16)
    assert net.graph(x["gfv"]).shape == (8, 3, 8)
    logits = net(b)
    assert logits.shape == (8, 20) and torch.isfinite(logits).all()
    torch.testing.assert_close(net.forward_prepared(net.prepare(b)), logits)


@pytest.mark.parametrize(
    "over",
    [
        {"fusion": "concat"},
        {"fusion": "concat", "cube_encoder": "resnet18", "image": "none"},
        {"image": "raw", "image_size": 64},
        {"graph": {"enabled": False}},
    ],
)
def test_variants_build_and_give_logits(inputs: Path, over: dict) -> None:
    net = build_fusion(_model(**over), read_meta(inputs)).eval()
    assert net(_batch(inputs)).shape == (8, 20)
    assert set(fusion_features(_model(**over))) <= set(SETS)


def test_the_image_paths(inputs: Path) -> None:
    """dct16: the 16x16 block inverted to the image side (the low-pass image), standardised with pixel statistics
    from the coefficient statistics; raw: uint8 pixels to [-1, 1], resized; flips per sample in training."""
    meta = read_meta(inputs)
    b = _batch(inputs)
    net = build_fusion(_model(image="dct16", image_size=32, augment=False), meta).eval()
    img = net.image.prepare(b)
    want = idct2(b["patch_dct16"].double().numpy(), (32, 32))
    m, s = net.image.norm.mean.numpy(), net.image.norm.std.numpy()
    np.testing.assert_allclose(img.numpy(), (want - m) / s, rtol=1e-4, atol=1e-3)
    raw = build_fusion(_model(image="raw", image_size=128), meta).eval()
    pix = raw.image.prepare(b)
    np.testing.assert_allclose(pix.numpy(), b["patch_raw"].float().numpy() / 127.5 - 1.0, atol=1e-6)
    aug = build_fusion(_model(image="dct16", image_size=16), meta).train()
    torch.manual_seed(0)
    flipped = aug.image.prepare(b)
    torch.manual_seed(0)
    ops = torch.randint(0, 8, (8,))
    plain = build_fusion(_model(image="dct16", image_size=16, augment=False), meta).eval().image.prepare(b)
    assert len(set(ops.tolist())) > 3  # per sample: the DCT-domain op before the inverse = the pixel op after it
    np.testing.assert_allclose(flipped.numpy(), image_dihedral(plain.numpy(), ops.numpy()), rtol=1e-4, atol=1e-4)


def test_tabular_encoding(inputs: Path) -> None:
    meta = read_meta(inputs)
    net = build_fusion(_model(tabular={"location": "none", "hidden": 8}), meta).eval()
    b = _batch(inputs)
    b["year"] = torch.tensor([2019, 2021, 0, 2017, 2019, 2019, 2019, 2019], dtype=torch.int64)
    v = net.tabular.prepare(b)
    e, p, R, C = 7, 4, meta["n_regions"], meta["n_countries"]
    torch.testing.assert_close(v[:, :e], b["env"].float())
    torch.testing.assert_close(v[:, e + p : e + p + R].argmax(1), b["region"].long())
    torch.testing.assert_close(v[:, e + p + R : e + p + R + C].argmax(1), b["country"].long())
    torch.testing.assert_close(v[:3, -2], torch.tensor([0.0, 1.0, 0.0]))  # (year - 2019) / 2; unknown year -> 0 ...
    torch.testing.assert_close(v[:3, -1], torch.tensor([1.0, 1.0, 0.0]))  # ... with its flag 0
    b["env"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite values in the tabular inputs"):
        net.tabular.prepare(b)


@pytest.mark.parametrize(
    "over,match",
    [
        ({"image": "none"}, r"fusion = 'hcam' .* enable \['image'\]"),
        ({"cubes": []}, r"enable \['cubes'\]"),
        ({"dim": 18}, r"model.heads = 4 must divide model.dim = 18"),
        ({"swin": {"embed_dim": 24, "heads": [5, 8], "depths": [1, 1]}}, r"model.swin.heads\[0\] = 5 does not divide"),
        (
            {"swin": {"embed_dim": 24, "landsat_patch": [2], "heads": [4, 8], "depths": [1, 1]}},
            r"landsat_patch = \[2\] must be",
        ),
        (
            {"tabular": {"env": False, "plot": False, "meta": False, "location": "none"}},
            "tabular is enabled with no input",
        ),
        ({"image": "jpeg"}, r"model.image"),
    ],
)
def test_bad_settings_are_named_at_load(over: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve({"model": {"kind": "fusion", **SMALL, **over}}, "tasks/x.toml")


def test_paper_image_branch_swin_t_on_the_raw_patch_at_224(inputs: Path) -> None:
    """Tighnari's image branch: timm Swin-T with a 4-channel patch embedding on the raw patch resized 128 -> 224; its
    7 x 7 token grid of 768 features feeds HCAM."""
    net = build_fusion(
        _model(image="raw", image_size=224, backbone="swin_tiny_patch4_window7_224"), read_meta(inputs)
    ).eval()
    b = {k: v[:2] for k, v in _batch(inputs).items()}
    with torch.no_grad():
        img = net.image.prepare(b)
        assert img.shape == (2, 4, 224, 224)
        assert net.image.tokens(img).shape == (2, 49, 768)
        assert net(b).shape == (2, 20)
    assert net.image.backbone.net.patch_embed.proj.in_channels == 4


@pytest.mark.parametrize("name", ["fusion", "fusion-concat", "fusion-efficientnet", "fusion-paper"])
def test_the_experiment_files_build_their_nets(inputs: Path, name: str) -> None:
    from glc.config import load_experiment

    m = load_experiment(name)["model"]
    meta = read_meta(inputs)
    assert m["image"] in ("dct16", "raw")  # sets the fake table holds
    net = build_fusion(m, meta)
    assert net.fusion == m["fusion"] and set(net.cubes) == {"landsat_cube", "bioclim_cube"} and net.graph is not None
    assert type(net.cubes["landsat_cube"].encoder).__name__ == "TemporalSwin"


def test_declared_feature_sets() -> None:
    spec = get_model("fusion")
    assert spec.features(_model(image="raw")) == ("patch_raw", "landsat_cube", "bioclim_cube", "env", "plot", "gfv")
    assert spec.features(_model(image="dct16", graph={"enabled": False}, tabular={"plot": False})) == (
        "patch_dct16",
        "landsat_cube",
        "bioclim_cube",
        "env",
    )


def test_the_generic_trainer_fits_and_scores_it(inputs: Path, tmp_path: Path) -> None:
    from glc.training.trainer import predict_splits, train_model

    cfg = resolve(
        {
            "model": {"kind": "fusion", **SMALL, "image": "dct16"},
            "train": {
                "max_epochs": 2,
                "patience": 2,
                "batch_size": 32,
                "reader": "arrow",
                "accelerator": "cpu",
                "mixup_alpha": 0.4,
                "loss": {"kind": "bce"},
            },
        }
    )
    summary = train_model(inputs, tmp_path / "work", cfg, "test", progress=False, wandb=False)
    assert 0.0 <= summary["best_monitor"] <= 1.0
    val, test, _ = predict_splits(inputs, summary["best_checkpoint"], cfg)
    assert len(val) == 32 and len(test) == 16 and np.isfinite(test.prob).all()
    assert isinstance(build_fusion(cfg["model"], read_meta(inputs)), FusionNet)


def test_the_fusion_trains_with_every_speed_switch_on(inputs: Path, tmp_path: Path) -> None:
    """channels_last + torch.compile (aot_eager: no C compiler here) + fused AdamW + bf16 autocast + lr scaling, with
    mixup (the compiled forward_prepared): the training loss falls, and the checkpoint loads into an eager net."""
    import pandas as pd

    from glc.training.trainer import predict_splits, train_model

    train = {
        "max_epochs": 3,
        "patience": 3,
        "batch_size": 32,
        "reader": "arrow",
        "accelerator": "cpu",
        "mixup_alpha": 0.4,
        "loss": {"kind": "bce"},
        "lr": 3e-3,
    }
    fast = {
        **train,
        "channels_last": True,
        "compile": "default",
        "compile_backend": "aot_eager",
        "fused_optimizer": True,
        "precision": "bf16-mixed",
        "lr_scaling": "linear",
        "lr_base_batch": 32,
    }
    cfg = resolve({"model": {"kind": "fusion", **SMALL, "image": "dct16"}, "train": fast})
    summary = train_model(inputs, tmp_path / "work", cfg, "fast", progress=False, wandb=False)
    metrics = pd.read_csv(next((tmp_path / "work" / "csv").glob("version_*/metrics.csv")))
    losses = metrics.dropna(subset=["train/loss_epoch"])["train/loss_epoch"].tolist()
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    eager = resolve({"model": {"kind": "fusion", **SMALL, "image": "dct16"}, "train": train})
    val, test, _ = predict_splits(inputs, summary["best_checkpoint"], eager)
    assert len(test) == 16 and np.isfinite(test.prob).all()
