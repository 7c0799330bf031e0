"""The ``[train]`` speed switches, on CPU: each one is honoured and the model still trains with it (the loss on a
fixed batch falls); all off is the deterministic default path.

* ``channels_last``: the net's conv weights, and the 4-D inputs the net sees, are channels-last;
* ``compile`` (backend ``aot_eager`` here: no C compiler needed): the net (and ``forward_prepared``) is compiled in
  place, its state-dict keys unchanged;
* ``fused_optimizer``: the optimiser runs with ``fused=True``;
* ``precision = "bf16-mixed"``: the net computes in bfloat16 under autocast;
* ``lr_scaling``: lr x (batch_size x devices / lr_base_batch) (linear) or its square root;
* ``pin_memory``: the data module's loaders are built with it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from glc.config import ConfigError, config_hash, resolve
from glc.training.module import MultiLabelModule, compile_net
from glc.training.trainer import scaled_lr

C = 6


class ToyConvNet(nn.Module):
    """A conv net over ``batch["img"]`` ``[B, 3, 16, 16]`` that records what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, C)
        self.seen: list[dict[str, Any]] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch["img"]
        if not torch.compiler.is_compiling():
            self.seen.append({"channels_last": x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1})
        h = torch.relu(self.conv(x))
        if not torch.compiler.is_compiling():
            self.seen[-1]["dtype"] = h.dtype
        return self.head(h.mean(dim=(2, 3)))


def _batches(n: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, C, generator=g)
    out = []
    for _ in range(n):
        img = torch.randn(16, 3, 16, 16, generator=g)
        target = (img.mean(dim=(2, 3)) @ w > 0).float()
        out.append({"img": img, "target": target, "surveyId": torch.arange(16)})
    return out


def _loss(module: MultiLabelModule, batch: dict[str, torch.Tensor]) -> float:
    module.eval()
    with torch.no_grad():
        return float(module.loss(module.net(batch), batch["target"]))


def _fit(
    module: pl.LightningModule,
    train: list[dict[str, torch.Tensor]],
    val: list[dict[str, torch.Tensor]] | None = None,
    **trainer_kw: Any,
) -> pl.Trainer:
    """Fit ``module`` on CPU over ready-made batches with a quiet Trainer (no logger, checkpoints, bar or summary
    unless ``trainer_kw`` says otherwise); returns the Trainer."""
    kw: dict[str, Any] = {
        "max_epochs": 4,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **trainer_kw,
    }
    trainer = pl.Trainer(**kw)
    loaders = {"train_dataloaders": torch.utils.data.DataLoader(train, batch_size=None)}
    if val is not None:
        loaders["val_dataloaders"] = torch.utils.data.DataLoader(val, batch_size=None)
    trainer.fit(module, **loaders)
    return trainer


def _train(
    precision: str = "32-true", **switches: Any
) -> tuple[MultiLabelModule, float, float, pl.Trainer, list[dict[str, Any]]]:
    torch.manual_seed(0)
    module = MultiLabelModule(ToyConvNet(), nn.BCEWithLogitsLoss(), lr=1e-2, num_classes=C, val_k=2, **switches)
    data = _batches()
    before = _loss(module, data[0])
    module.net.seen.clear()
    trainer = _fit(module, data, precision=precision)
    seen = list(module.net.seen)  # what the net saw in training steps
    return module, before, _loss(module, data[0]), trainer, seen


@pytest.mark.parametrize(
    "switch",
    ["none", "channels_last", "compile", "fused_optimizer", "bf16"],
)
def test_each_switch_is_honoured_and_the_model_still_trains(switch: str) -> None:
    kw: dict[str, Any] = {
        "none": {},
        "channels_last": {"channels_last": True},
        "compile": {"compile_mode": "default", "compile_backend": "aot_eager"},
        "fused_optimizer": {"fused_optimizer": True},
        "bf16": {},
    }[switch]
    module, before, after, trainer, seen = _train(precision="bf16-mixed" if switch == "bf16" else "32-true", **kw)
    assert after < before * 0.95, (switch, before, after)
    opt = trainer.optimizers[0]
    if switch == "channels_last":
        assert module.net.conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert seen and all(s["channels_last"] for s in seen)
    else:
        assert not module.net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    if switch == "compile":
        assert module.net._compiled_call_impl is not None
        assert sorted(module.net.state_dict()) == ["conv.bias", "conv.weight", "head.bias", "head.weight"]
    if switch == "fused_optimizer":
        assert opt.defaults["fused"] is True
    else:
        assert not opt.defaults.get("fused")
    if switch == "bf16":
        assert any(s.get("dtype") == torch.bfloat16 for s in seen)
    elif switch != "compile":
        assert all(s.get("dtype") == torch.float32 for s in seen)


def test_compile_covers_forward_prepared_and_refuses_an_unknown_mode() -> None:
    class Prepared(ToyConvNet):
        def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"img": batch["img"]}

        def forward_prepared(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            return self(inputs)

    net = compile_net(Prepared(), "default", "aot_eager")
    compiled = net.compiled_forward_prepared
    assert hasattr(compiled, "_torchdynamo_orig_callable") or "compile" in repr(compiled)
    assert not hasattr(net.forward_prepared, "_torchdynamo_orig_callable")  # the eager path stays eager
    assert compiled(_batches(1)[0]).shape == (16, C)
    with pytest.raises(ValueError, match="compile = 'fast'"):
        compile_net(ToyConvNet(), "fast")


def test_lr_scaling_and_the_config_switches_reach_the_module_and_the_loaders(tmp_path: Path) -> None:
    base = {"model": {"kind": "geolocation"}, "train": {"lr": 1e-3, "batch_size": 512, "lr_base_batch": 256}}
    assert scaled_lr(resolve(base)) == pytest.approx(1e-3)
    assert scaled_lr(resolve({**base, "train": {**base["train"], "lr_scaling": "linear"}})) == pytest.approx(2e-3)
    two = {**base["train"], "lr_scaling": "sqrt", "devices": 2}
    assert scaled_lr(resolve({**base, "train": two})) == pytest.approx(2e-3)
    with pytest.raises(ConfigError, match="compile"):
        resolve({**base, "train": {**base["train"], "compile": "fast"}})

    from glc.loaders.fake import make_fake_inputs
    from glc.loaders.tables import read_meta
    from glc.training.trainer import build_module, datamodule

    make_fake_inputs(tmp_path, ("env",), sizes={"train": 40, "val": 20, "test": 10}, num_classes=C, widths={"env": 3})
    cfg = resolve(
        {
            "model": {"kind": "geolocation", "hidden": 16, "extras": ["env"]},
            "train": {
                "channels_last": True,
                "fused_optimizer": True,
                "lr_scaling": "linear",
                "batch_size": 512,
                "lr": 1e-3,
                "lr_base_batch": 256,
                "compile": "default",
                "compile_backend": "aot_eager",
                "pin_memory": True,
                "reader": "arrow",
            },
        }
    )
    module = build_module(cfg, read_meta(tmp_path))
    assert module.hparams.lr == pytest.approx(2e-3)
    assert module.hparams.channels_last and module.hparams.fused_optimizer
    assert module.net._compiled_call_impl is not None
    assert module.hparams.compile_short_batches == "eager"  # the default
    assert module.hparams.batch_size == 512  # the compiled graphs' batch size
    off = resolve({**cfg, "train": {**cfg["train"], "compile_short_batches": "dynamic"}})
    assert build_module(off, read_meta(tmp_path)).hparams.compile_short_batches == "dynamic"
    assert config_hash(cfg) == config_hash(
        {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "compile_short_batches"}}
    )
    with pytest.raises(ConfigError, match="compile_short_batches"):
        resolve({**cfg, "train": {**cfg["train"], "compile_short_batches": "pad"}})
    dm = datamodule(tmp_path, cfg)
    dm.setup("fit")
    assert dm.pin_memory is True
    assert dm.train_dataloader().pin_memory is True


def test_throughput_leaves_the_first_epoch_out_of_the_steady_rate(tmp_path: Path) -> None:
    """The steady samples/s (what the A/B table compares) excludes epoch 0 (warm-up, compilation); the last record
    of an epoch wins (a resumed run rewrites it)."""
    import json

    from glc.training.callbacks import throughput

    timing = tmp_path / "timing.jsonl"
    rows = [(0, 10.0, 100), (1, 2.0, 100), (1, 1.0, 100), (2, 1.0, 100)]
    timing.write_text(
        "".join(json.dumps({"epoch": e, "seconds": s, "samples": n, "gpu_peak_mb": None}) + "\n" for e, s, n in rows)
    )
    t = throughput(timing)
    assert t["epoch_seconds_each"] == [10.0, 1.0, 1.0]
    assert t["train_samples_per_s_steady"] == 100.0 and t["train_samples_per_s"] == 25.0
    timing.write_text(json.dumps({"epoch": 0, "seconds": 3.0, "samples": 30, "gpu_peak_mb": None}) + "\n")
    assert throughput(timing)["train_samples_per_s_steady"] is None


def test_deterministic_false_reaches_the_trainer_and_leaves_the_default_hash_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``[train] deterministic``: the default is the exact path (True on CPU, ``"warn"`` on a GPU) and does not move
    an experiment's hash; false hands ``Trainer(deterministic=False)`` the choice of the fastest kernels, and the
    model still trains without it."""
    from glc.config import config_hash
    from glc.training import trainer as trainer_mod

    base = {"model": {"kind": "geolocation"}, "train": {"accelerator": "cpu"}}
    assert trainer_mod._accelerator(resolve(base)) == ("cpu", True)
    off = resolve({**base, "train": {**base["train"], "deterministic": False}})
    assert trainer_mod._accelerator(off) == ("cpu", False)
    slim = resolve(base)
    slim["train"].pop("deterministic")
    assert config_hash(resolve(base)) == config_hash(slim)  # hashes made before the switch existed still hold
    assert config_hash(off) != config_hash(resolve(base))
    gpu = resolve({**base, "train": {"accelerator": "auto"}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trainer_mod._accelerator(gpu) == ("auto", "warn")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="deterministic"):
        resolve({**base, "train": {"deterministic": "sometimes"}})
    torch.manual_seed(0)
    module = MultiLabelModule(ToyConvNet(), nn.BCEWithLogitsLoss(), lr=1e-2, num_classes=C, val_k=2)
    data = _batches()
    before = _loss(module, data[0])
    _fit(module, data, deterministic=trainer_mod._accelerator(off)[1])
    assert _loss(module, data[0]) < before * 0.95


def _compiled(make_net: Callable[[], nn.Module], **switches: Any) -> MultiLabelModule:
    """A module compiling a seeded ``make_net()`` (aot_eager) for full batches of 16, from a clean dynamo state and
    counters."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    return MultiLabelModule(
        make_net(),
        nn.BCEWithLogitsLoss(),
        lr=1e-2,
        num_classes=C,
        val_k=2,
        compile_mode="default",
        compile_backend="aot_eager",
        batch_size=16,
        **switches,
    )


@pytest.mark.parametrize("short", ["eager", "dynamic"])
def test_compile_short_batches_keep_one_graph(short: str) -> None:
    """A loader's short batches (each worker's last one, a validation split's tail) are new shapes. ``"eager"``: they
    run the eager net and the compiled graph keeps the full batch's static shape (one graph, never a recompile);
    ``"dynamic"``: one symbolic-shape graph serves every size. Both give the eager net's outputs, on the plain and
    on the mixup (``forward_prepared``) path; a full batch goes through the compiled graph either way. (A linear
    net: on CPU a conv's fake kernel guards ``batch >= 16`` whatever is marked.)"""
    from torch._dynamo.utils import counters

    class ToyLinearNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(3, C)

        def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"img": batch["img"]}

        def forward_prepared(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.head(inputs["img"].mean(dim=(2, 3)))

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.forward_prepared(self.prepare(batch))

    module = _compiled(ToyLinearNet, compile_short_batches=short)
    eager = ToyLinearNet()
    eager.load_state_dict(module.net.state_dict())
    for n in (16, 11, 5, 16, 7):
        batch = {"img": torch.randn(n, 3, 16, 16)}
        for prepared in (False, True):
            out = module._run_net(batch, prepared=prepared)
            assert out.shape == (n, C)
            torch.testing.assert_close(out, eager(batch), rtol=1e-4, atol=1e-5)
    # two compiled callables (__call__ and compiled_forward_prepared), each with one graph whatever the sizes
    assert counters["stats"]["unique_graphs"] == 2, counters["stats"]
    torch._dynamo.reset()
    with pytest.raises(ValueError, match="compile_short_batches"):
        MultiLabelModule(ToyLinearNet(), nn.BCEWithLogitsLoss(), num_classes=C, compile_short_batches="pad")


def test_compile_short_batches_eager_trains_and_validates_on_a_ragged_loader() -> None:
    """``compile_short_batches = "eager"`` through Lightning: batches of 16 and a short one of 5 per epoch, a compiled
    net (aot_eager), one graph per grad mode (training, validation), and the loss falls."""
    from torch._dynamo.utils import counters

    module = _compiled(ToyConvNet)
    data = _batches(4) + [{k: v[:5] for k, v in _batches(1)[0].items()}]
    before = _loss(module, data[0])
    _fit(module, data, data, num_sanity_val_steps=0)
    assert _loss(module, data[0]) < before * 0.95
    assert counters["stats"]["unique_graphs"] <= 2, counters["stats"]
    torch._dynamo.reset()


class _NaNAt(nn.Module):
    """BCE with logits, NaN at the given training step (counted over calls in grad mode)."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.bad_step, self.calls = bad_step, 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls - 1 == self.bad_step:
                return loss * float("nan")
        return loss


@pytest.mark.parametrize(("every", "raised_at"), [(1, 2), (4, 3), (16, 7)])
def test_finite_check_every_defers_the_sync_and_still_names_the_batch(every: int, raised_at: int) -> None:
    """``finite_check_every``: 1 raises at the bad step itself; 4 at the next multiple of 4 (batch index 3); 16 (more
    than the epoch's 8 batches) at the epoch's end. Each time the error names the bad batch (2), not the check's."""
    torch.manual_seed(0)
    loss = _NaNAt(bad_step=2)
    module = MultiLabelModule(ToyConvNet(), loss, lr=1e-2, num_classes=C, val_k=2, finite_check_every=every)
    with pytest.raises(FloatingPointError, match=r"train/loss is nan at epoch 0, batch 2;"):
        _fit(module, _batches(), max_epochs=2)
    assert loss.calls - 1 == raised_at, (every, loss.calls)
    with pytest.raises(ValueError, match="finite_check_every"):
        MultiLabelModule(ToyConvNet(), loss, num_classes=C, finite_check_every=0)


def test_finite_check_every_trains_like_every_step_and_guards_checkpoints(tmp_path: Path) -> None:
    """A finite run with ``finite_check_every = 5`` ends with the same weights as with 1 (the check changes no
    numbers); a checkpoint written after a non-finite step is refused before it is written."""
    from glc.config import config_hash

    weights = []
    for every in (1, 5):
        torch.manual_seed(0)
        module = MultiLabelModule(
            ToyConvNet(), nn.BCEWithLogitsLoss(), lr=1e-2, num_classes=C, val_k=2, finite_check_every=every
        )
        _fit(module, _batches(), max_epochs=2, deterministic=True)
        weights.append(module.net.head.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)
    torch.manual_seed(0)
    module = MultiLabelModule(ToyConvNet(), _NaNAt(1), lr=1e-2, num_classes=C, finite_check_every=100)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_top_k=-1)
    with pytest.raises(FloatingPointError, match="batch 1;"):
        _fit(module, _batches(), max_epochs=1, callbacks=[ckpt], enable_checkpointing=True)
    assert not list(tmp_path.glob("*.ckpt"))
    base = resolve({"model": {"kind": "geolocation"}})
    assert config_hash(base) == config_hash(resolve({**base, "train": {**base["train"], "finite_check_every": 50}}))
    with pytest.raises(ConfigError, match="finite_check_every"):
        resolve({**base, "train": {**base["train"], "finite_check_every": 0}})


def test_a_deferred_nan_is_named_as_its_training_step_not_as_the_validation_after_it() -> None:
    """``finite_check_every`` larger than the epoch and a validation loop: the NaN weights of training step 2 would
    first show as a validation loss; the check before validation names the training step."""
    torch.manual_seed(0)
    module = MultiLabelModule(ToyConvNet(), _NaNAt(bad_step=2), lr=1e-2, num_classes=C, val_k=2, finite_check_every=100)
    with pytest.raises(FloatingPointError, match=r"train/loss is nan at epoch 0, batch 2;"):
        _fit(module, _batches(), _batches(2, seed=1), max_epochs=1, num_sanity_val_steps=0)
