"""MultiLabelModule: validation metrics against glc.metrics, optimiser wiring, predict_step, argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from glc.metrics import micro_prf, per_survey_f1, sample_f1
from glc.training.module import MultiLabelModule, topk_sample_f1
from tests.training.conftest import DictData


class XNet(nn.Module):
    """Linear model on the 'x' feature of a batch dict."""

    def __init__(self, d: int, c: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, c)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.lin(batch["x"])


def _bce() -> nn.Module:
    return nn.BCEWithLogitsLoss()


def _random_problem(n: int, d: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    target = (torch.rand(n, c, generator=g) < 0.3).float()
    target[::7] = 0.0  # some surveys with an empty truth
    ids = torch.arange(1000, 1000 + n, dtype=torch.int64)
    return ids, x, target


def _sets_true(target: torch.Tensor) -> list[list[int]]:
    return [np.flatnonzero(row.numpy() > 0.5).tolist() for row in target]


def _sets_topk(scores: torch.Tensor, k: int) -> list[list[int]]:
    order = np.argsort(-scores.numpy(), axis=1, kind="stable")
    return [row[:k].tolist() for row in order]


@pytest.mark.parametrize("k", [1, 4, 50])
def test_topk_sample_f1_equals_glc_metrics_per_survey(k: int) -> None:
    _, _, target = _random_problem(83, 2, 17, seed=k)
    scores = torch.randn(83, 17, generator=torch.Generator().manual_seed(100 + k))
    got = topk_sample_f1(scores, target, k).numpy()
    want = per_survey_f1(_sets_true(target), _sets_topk(scores, min(k, 17)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got[::7].max() == 0.0  # empty truth, non-empty top-k prediction: F1 0 as in glc.metrics


def test_topk_sample_f1_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"must both be \[batch, num_classes\]"):
        topk_sample_f1(torch.zeros(3, 4), torch.zeros(3, 5), 2)
    with pytest.raises(ValueError, match="k=0 must be >= 1"):
        topk_sample_f1(torch.zeros(3, 4), torch.zeros(3, 4), 0)


def test_validation_metrics_are_sample_averages_over_the_epoch() -> None:
    n, d, c, k = 45, 3, 11, 3
    ids, x, target = _random_problem(n, d, c, seed=1)
    torch.manual_seed(0)
    net = XNet(d, c)
    module = MultiLabelModule(net, _bce(), val_k=k, num_classes=c)
    # batches of 16, 16, 13 rows: the mean of batch means differs from the mean over surveys
    loader = DataLoader(DictData(ids, x, target), batch_size=16, shuffle=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    res = trainer.validate(module, dataloaders=loader, verbose=False)[0]

    with torch.no_grad():
        logits = net({"x": x})
    truth, pred = _sets_true(target), _sets_topk(logits, k)
    want = sample_f1(truth, pred)
    assert res["val/sample_f1"] == pytest.approx(want, abs=1e-6)
    per = per_survey_f1(truth, pred)
    batch_means = np.mean([per[a : a + 16].mean() for a in range(0, n, 16)])
    assert abs(batch_means - want) > 1e-4  # the check above can tell the two averages apart

    probs = torch.sigmoid(logits).numpy()
    thresholded = [np.flatnonzero(row > 0.5).tolist() for row in probs]
    assert res["val/f1_torchmetrics"] == pytest.approx(micro_prf(truth, thresholded).f1, abs=1e-6)
    assert res["val/loss"] == pytest.approx(
        float(nn.functional.binary_cross_entropy_with_logits(logits, target)), abs=1e-5
    )


def test_predict_step_returns_ids_and_float32_probabilities() -> None:
    ids, x, target = _random_problem(5, 2, 4, seed=2)
    module = MultiLabelModule(XNet(2, 4), _bce(), num_classes=4)
    out = module.predict_step({"surveyId": ids, "x": x}, 0)
    assert torch.equal(out["surveyId"], ids)
    assert out["probs"].dtype == torch.float32
    torch.testing.assert_close(out["probs"], torch.sigmoid(module.net.lin(x)))


def test_configure_optimizers_adamw_and_cosine_schedule() -> None:
    module = MultiLabelModule(XNet(2, 4), _bce(), lr=0.02, weight_decay=0.3, num_classes=4)
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == 0.02 and opt.param_groups[0]["weight_decay"] == 0.3

    module = MultiLabelModule(XNet(2, 4), _bce(), lr=0.02, num_classes=4, cosine=True, min_lr_ratio=0.1)
    module.trainer = pl.Trainer(accelerator="cpu", max_epochs=5, logger=False, enable_progress_bar=False)
    conf = module.configure_optimizers()
    assert conf["lr_scheduler"]["interval"] == "epoch"
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lo = 0.002
    want = [lo + (0.02 - lo) * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(5)]
    np.testing.assert_allclose(lrs, want, rtol=1e-6)


def test_sgd_with_step_decay() -> None:
    module = MultiLabelModule(
        XNet(2, 4), _bce(), lr=0.1, weight_decay=1e-4, num_classes=4, optimizer="sgd", step_epochs=2, step_gamma=0.1
    )
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert (
        isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]
    )
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)
    with pytest.raises(ValueError, match="optimizer='adam'"):
        MultiLabelModule(XNet(2, 4), _bce(), num_classes=4, optimizer="adam")
    with pytest.raises(ValueError, match="cannot be combined with cosine"):
        MultiLabelModule(XNet(2, 4), _bce(), num_classes=4, cosine=True, step_epochs=3)


def test_cosine_needs_max_epochs() -> None:
    module = MultiLabelModule(XNet(2, 4), _bce(), num_classes=4, cosine=True)
    module.trainer = pl.Trainer(accelerator="cpu", max_epochs=-1, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="cosine=True needs a Trainer with max_epochs >= 1"):
        module.configure_optimizers()


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"num_classes": None}, ValueError, "num_classes=None must be a positive int"),
        ({"num_classes": 4, "val_k": 0}, ValueError, r"val_k=0 must be >= 1"),
        ({"num_classes": 4, "lr": 0.0}, ValueError, r"lr=0.0 must be a finite number > 0"),
        ({"num_classes": 4, "weight_decay": -1.0}, ValueError, r"weight_decay=-1.0 must be a finite number >= 0"),
        ({"num_classes": 4, "min_lr_ratio": 2.0}, ValueError, r"min_lr_ratio=2.0 must be in \[0, 1\]"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        MultiLabelModule(XNet(2, 4), _bce(), **kwargs)


def test_bad_net_or_loss_raise() -> None:
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        MultiLabelModule(lambda b: b, _bce(), num_classes=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loss must be callable"):
        MultiLabelModule(XNet(2, 4), 3.0, num_classes=4)  # type: ignore[arg-type]


def test_shape_and_nan_errors_name_the_problem() -> None:
    ids, x, target = _random_problem(6, 2, 4, seed=3)
    module = MultiLabelModule(XNet(2, 4), _bce(), num_classes=5)
    with pytest.raises(ValueError, match=r"logits of shape \(6, 4\); expected \[batch, 5\]"):
        module.training_step({"x": x, "target": target}, 0)

    module = MultiLabelModule(XNet(2, 4), _bce(), num_classes=4)
    with pytest.raises(KeyError, match="batch has no 'target'"):
        module.training_step({"x": x}, 0)
    with pytest.raises(ValueError, match=r"batch 'target' has shape \(6, 3\)"):
        module.training_step({"x": x, "target": target[:, :3]}, 0)
    bad = x.clone()
    bad[2, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="train/loss is nan at epoch 0, batch 7"):
        module.training_step({"x": bad, "target": target}, 7)
    with pytest.raises(KeyError, match="batch has no 'surveyId'"):
        module.predict_step({"x": x}, 0)
