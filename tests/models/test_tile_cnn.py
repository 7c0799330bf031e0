"""The tile CNN: per-sample DCT-domain augmentation equals the pixel-space operation on the IDCT image, channels are
never interleaved across samples, IDCT images and their statistics are exact, the timm backbone takes local weights
with an adapted first conv, bad settings are named, and the generic trainer fits it from a model-input table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glc.config import resolve
from glc.features.dct import dct2, idct2
from glc.loaders.fake import distinct_values, make_fake_inputs
from glc.loaders.tables import read_meta
from glc.models.registry import get_model
from glc.models.tile_cnn import TileBranch, build_tile_cnn, pixel_stats

C, K = 4, 8


def _pixel_op(img: np.ndarray, op: int) -> np.ndarray:
    """The dihedral operation ``op`` in pixel space: bit 0 np.fliplr, bit 1 np.flipud, bit 2 transpose."""
    if op & 1:
        img = img[..., ::-1]
    if op & 2:
        img = img[..., ::-1, :]
    if op & 4:
        img = img.swapaxes(-1, -2)
    return np.ascontiguousarray(img)


def _branch(**kw) -> TileBranch:
    stats = (np.zeros((C, K, K), np.float32), np.ones((C, K, K), np.float32))
    return TileBranch(["patch_dct"], [(C, K, K)], [stats], **{"channels": (8,), "reduce": 4, "latent": 16, **kw})


def test_per_sample_augmentation_equals_the_pixel_operation_on_the_idct_image() -> None:
    """In training each sample gets its own dihedral op; applied to the DCT planes it is exactly the DCT of that op
    applied to the reconstructed image (checked on the IDCT of every sample)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (32, C, 32, 32)).astype(np.float32)
    coeffs = dct2(images, K).astype(np.float32)  # top-left 8x8 of each channel
    branch = _branch(idct=True, idct_size=32).train()
    torch.manual_seed(3)
    aug = branch.planes({"patch_dct": torch.from_numpy(coeffs)}).numpy()
    torch.manual_seed(3)
    ops = torch.randint(0, 8, (32,)).numpy()
    assert len(set(ops.tolist())) > 4  # several different ops in one batch: per sample, not per batch
    for i in range(32):
        low_pass = idct2(coeffs[i].astype(np.float64), (32, 32))  # the image the coefficients stand for
        want = dct2(_pixel_op(low_pass, int(ops[i])), K)
        np.testing.assert_allclose(aug[i], want, rtol=1e-4, atol=1e-2)
    branch.eval()  # no augmentation in eval mode
    np.testing.assert_array_equal(branch.planes({"patch_dct": torch.from_numpy(coeffs)}).numpy(), coeffs)


def test_channels_are_never_interleaved_across_samples() -> None:
    """Per-sample distinct bands (value = f(surveyId, channel, element)) reach the body unchanged, channel by channel,
    and ``bands`` selects exactly the stacked channels it names (DS@GT's ``view`` bug)."""
    ids = np.arange(100, 106)
    planes = torch.from_numpy(distinct_values(ids, (C, K, K)))
    branch = _branch(bands=[3, 1], augment=False).eval()
    seen = {}
    branch.body.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].clone()))
    branch({"patch_dct": planes})
    x = seen["x"]
    assert tuple(x.shape) == (6, 2, K, K)
    np.testing.assert_array_equal(x[:, 0].numpy(), planes[:, 3].numpy())  # stats are 0 / 1: standardisation is identity
    np.testing.assert_array_equal(x[:, 1].numpy(), planes[:, 1].numpy())
    np.testing.assert_array_equal(x[:, 0, 0, 0].numpy(), (ids % 1024) * 4.0 + 3)


def test_idct_images_and_their_statistics_are_exact() -> None:
    rng = np.random.default_rng(1)
    coeffs = rng.normal(0, 50, (40, 3, K, K)).astype(np.float32)
    coeffs[:, :, 0, 0] += 3000.0
    branch = TileBranch(
        ["patch_dct"],
        [(3, K, K)],
        [(coeffs.mean(0), coeffs.std(0))],
        channels=(4,),
        reduce=2,
        latent=8,
        idct=True,
        idct_size=16,
        augment=False,
    ).eval()
    imgs = branch.images(torch.from_numpy(coeffs)).numpy()
    np.testing.assert_allclose(imgs, idct2(coeffs.astype(np.float64), (16, 16)), rtol=1e-4, atol=1e-3)
    mean, std = pixel_stats(coeffs.mean(0), coeffs.std(0), 16)
    np.testing.assert_allclose(mean[:, 0, 0], imgs.mean(axis=(0, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(std[:, 0, 0], imgs.std(axis=(0, 2, 3)), rtol=1e-3)


def test_standardisation_uses_the_train_statistics() -> None:
    mean = np.full((C, K, K), 5.0, np.float32)
    std = np.full((C, K, K), 2.0, np.float32)
    branch = TileBranch(
        ["patch_dct"], [(C, K, K)], [(mean, std)], channels=(4,), reduce=2, latent=8, augment=False
    ).eval()
    seen = {}
    branch.body.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].clone()))
    branch({"patch_dct": torch.full((2, C, K, K), 9.0)})
    torch.testing.assert_close(seen["x"], torch.full((2, C, K, K), 2.0))


def test_timm_backbone_loads_local_weights_with_an_adapted_first_conv(tmp_path: Path) -> None:
    import timm
    from timm.models import adapt_input_conv

    rgb = timm.create_model("resnet18", pretrained=False, in_chans=3, num_classes=0)
    path = tmp_path / "resnet18-rgb.pt"
    torch.save(rgb.state_dict(), path)
    branch = _branch(backbone="resnet18", weights=str(path), idct=True, idct_size=32)
    want = adapt_input_conv(4, rgb.state_dict()["conv1.weight"])
    torch.testing.assert_close(branch.body.net.conv1.weight, want)
    torch.testing.assert_close(branch.body.net.layer1[0].conv1.weight, rgb.state_dict()["layer1.0.conv1.weight"])
    assert branch({"patch_dct": torch.randn(2, C, K, K)}).shape == (2, 16)
    with pytest.raises(FileNotFoundError, match="no such file .*never downloaded"):
        _branch(backbone="resnet18", weights=str(tmp_path / "missing.pt"))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"bands": [0, 4]}, r"model\.bands \[0, 4\]: \[4\] outside the 4 stacked channels"),
        ({"idct": True, "idct_size": 4}, r"model\.idct_size = 4 is smaller than the coefficient block k = 8"),
        ({"backbone": "no_such_net"}, r"model\.backbone = 'no_such_net': timm cannot build it"),
        ({"weights": "x.pt"}, r"model\.weights is for a timm backbone"),
    ],
)
def test_bad_settings_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _branch(**kw)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tile_inputs")
    make_fake_inputs(
        root,
        ("patch_dct",),
        sizes={"train": 96, "val": 32, "test": 16},
        num_classes=20,
        label_width=5,
        rows_per_file=40,
        row_group_size=16,
    )
    return root


def test_built_from_a_model_input_table(inputs: Path) -> None:
    meta = read_meta(inputs)
    cfg = resolve({"model": {"kind": "tile_cnn", "location": {"encoder": "sinusoidal", "latent": 32}}})
    net = build_tile_cnn(cfg["model"], meta)
    assert set(net.branches) == {"tile", "location"} and net.latent_dim == 256 + 32
    assert net.input_columns == ("patch_dct", "x", "y")
    torch.testing.assert_close(
        net.branches["tile"].norm.mean, torch.tensor(meta["columns"]["patch_dct"]["stats"]["mean"], dtype=torch.float32)
    )
    assert get_model("tile_cnn").features(cfg["model"]) == ("patch_dct",)


@pytest.mark.parametrize("over", [{}, {"idct": True, "idct_size": 16, "channels": [8, 8]}])
def test_the_generic_trainer_fits_and_scores_it(inputs: Path, tmp_path: Path, over: dict) -> None:
    from glc.training.trainer import predict_splits, train_model

    cfg = resolve(
        {
            "model": {"kind": "tile_cnn", "channels": [8], "reduce": 4, "latent": 16, **over},
            "train": {"max_epochs": 2, "patience": 2, "batch_size": 32, "reader": "arrow", "accelerator": "cpu"},
        }
    )
    summary = train_model(inputs, tmp_path / "work", cfg, "test", progress=False, wandb=False)
    assert summary["monitor"] == "val/sample_f1" and 0.0 <= summary["best_monitor"] <= 1.0
    assert summary["feature_sets"] == ["location", "meta", "patch_dct"]
    val, test, info = predict_splits(inputs, summary["best_checkpoint"], cfg)
    assert len(val) == 32 and len(test) == 16 and np.isfinite(test.prob).all()


def test_init_encoder_starts_the_tile_branch_from_tile2vec(inputs: Path, tmp_path: Path) -> None:
    """Full fine-tuning: the tile branch gets the encoder file's weights (not its statistics); mismatches are named;
    without the file (a trained model reloaded) the net builds from its own init."""
    from glc.config import resolve_encoder
    from glc.models.tile2vec import Tile2VecNet
    from glc.training.pretrain import save_encoder

    meta = read_meta(inputs)
    torch.manual_seed(5)
    enc_cfg = resolve_encoder(
        {"encoder": {"kind": "tile2vec", "tiles": ["patch_dct"], "channels": [8], "reduce": 4, "latent": 16}}
    )
    shape = (C, K, K)
    enc = Tile2VecNet(shape, np.full(shape, 3.0, np.float32), np.full(shape, 2.0, np.float32), (8,), 4, 16)
    path = save_encoder(tmp_path / "encoder.pt", enc, enc_cfg, {"tile_shape": list(shape)})
    m = resolve({"model": {"kind": "tile_cnn", "channels": [8], "reduce": 4, "latent": 16, "init_encoder": "t2v"}})[
        "model"
    ]
    assert get_model("tile_cnn").encoders(m) == ("t2v",)
    net = build_tile_cnn(m, {**meta, "pretrained": {"t2v": str(path)}})
    tile = net.branches["tile"]
    for k, v in enc.branch.state_dict().items():
        if k.startswith("norm."):
            assert not torch.equal(tile.state_dict()[k], v), k  # the table's own statistics
        else:
            assert torch.equal(tile.state_dict()[k], v), k
    fresh = build_tile_cnn(m, meta).branches["tile"]
    assert not torch.equal(fresh.body.proj[-1].weight, enc.branch.body.proj[-1].weight)
    with pytest.raises(ValueError, match="does not fit the tile branch"):
        build_tile_cnn({**m, "latent": 32}, {**meta, "pretrained": {"t2v": str(path)}})
    other = save_encoder(
        tmp_path / "other.pt",
        enc,
        {**enc_cfg, "encoder": {**enc_cfg["encoder"], "tiles": ["raster_landcover"]}},
        {"tile_shape": list(shape)},
    )
    with pytest.raises(ValueError, match=r"pretrained on tiles \['raster_landcover'\]"):
        build_tile_cnn(m, {**meta, "pretrained": {"t2v": str(other)}})
