"""Losses against naive float64 implementations of the papers' formulas, plus stability and config checks."""

from __future__ import annotations

import math

import pytest
import torch

from glc.params import defaults_of
from glc.training.losses import LOSS_PARAMS, LOSSES, AsymmetricLoss, BCELoss, HillLoss, SigmoidF1Loss, build_loss

CASES = [(0, 4, 7), (1, 32, 50), (2, 1, 3), (3, 17, 200)]  # (seed, batch, classes)


def _inputs(seed: int, b: int, c: int, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    targets = (torch.rand(b, c, generator=g, dtype=torch.float64) < 0.3).to(torch.float64)
    targets[:, 0] = 1.0  # every sample has at least one positive
    return logits, targets


# ----------------------------------------------------------------------------- naive references (float64)
def naive_bce(x: torch.Tensor, y: torch.Tensor, w: float = 1.0) -> torch.Tensor:
    p = 1.0 / (1.0 + torch.exp(-x))
    return (-(w * y * torch.log(p) + (1 - y) * torch.log(1 - p))).sum(1).mean()


def naive_asl(x: torch.Tensor, y: torch.Tensor, gp: float, gn: float, m: float) -> torch.Tensor:
    p = 1.0 / (1.0 + torch.exp(-x))
    pm = torch.clamp(p - m, min=0.0)
    loss = -y * (1 - p) ** gp * torch.log(p) - (1 - y) * pm**gn * torch.log(1 - pm)
    return loss.sum(1).mean()


def naive_hill(x: torch.Tensor, y: torch.Tensor, lam: float, margin: float, gamma: float) -> torch.Tensor:
    pm = 1.0 / (1.0 + torch.exp(-(x - margin)))
    p = 1.0 / (1.0 + torch.exp(-x))
    loss = -y * (1 - pm) ** gamma * torch.log(pm) + (1 - y) * (lam - p) * p**2
    return loss.sum(1).mean()


def naive_sigmoid_f1(x: torch.Tensor, y: torch.Tensor, S: float, E: float) -> torch.Tensor:
    f1s = []
    for xi, yi in zip(x, y):
        s = 1.0 / (1.0 + torch.exp(S * (xi + E)))  # the reference code's form
        tp, fp, fn = (s * yi).sum(), (s * (1 - yi)).sum(), ((1 - s) * yi).sum()
        f1s.append(2 * tp / (2 * tp + fn + fp))
    return 1 - torch.stack(f1s).mean()


# ----------------------------------------------------------------------------- equality with the formulas
@pytest.mark.parametrize("seed,b,c", CASES)
@pytest.mark.parametrize("pw", [0.0, 1.0, 7.5])
def test_bce_matches_formula_and_torch(seed: int, b: int, c: int, pw: float) -> None:
    x, y = _inputs(seed, b, c)
    got = BCELoss(pos_weight=pw)(x, y)
    torch.testing.assert_close(got, naive_bce(x, y, pw if pw > 0 else 1.0), rtol=1e-10, atol=1e-10)
    ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw) if pw > 0 else None, reduction="sum")(x, y) / b
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed,b,c", CASES)
@pytest.mark.parametrize("gp,gn,m", [(1.0, 4.0, 0.05), (0.0, 2.0, 0.2), (2.0, 0.5, 0.0), (0.5, 0.0, 0.1)])
def test_asl_matches_formula(seed: int, b: int, c: int, gp: float, gn: float, m: float) -> None:
    x, y = _inputs(seed, b, c)
    got = AsymmetricLoss(gamma_pos=gp, gamma_neg=gn, clip=m)(x, y)
    torch.testing.assert_close(got, naive_asl(x, y, gp, gn, m), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed,b,c", CASES)
def test_asl_without_focusing_or_clip_is_bce(seed: int, b: int, c: int) -> None:
    x, y = _inputs(seed, b, c)
    torch.testing.assert_close(AsymmetricLoss(0.0, 0.0, 0.0)(x, y), BCELoss()(x, y), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed,b,c", CASES)
@pytest.mark.parametrize("lam,margin,gamma", [(1.5, 1.0, 2.0), (2.0, 0.5, 0.0), (1.5, 0.0, 1.0)])
def test_hill_matches_formula(seed: int, b: int, c: int, lam: float, margin: float, gamma: float) -> None:
    x, y = _inputs(seed, b, c)
    got = HillLoss(hill_lambda=lam, hill_margin=margin, hill_gamma=gamma)(x, y)
    torch.testing.assert_close(got, naive_hill(x, y, lam, margin, gamma), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed,b,c", CASES)
@pytest.mark.parametrize("S,E", [(-1.0, 0.0), (-3.0, 0.5)])
def test_sigmoid_f1_matches_formula(seed: int, b: int, c: int, S: float, E: float) -> None:
    x, y = _inputs(seed, b, c)
    got = SigmoidF1Loss(sf1_S=S, sf1_E=E)(x, y)
    torch.testing.assert_close(got, naive_sigmoid_f1(x, y, S, E), rtol=1e-7, atol=1e-7)


def test_sigmoid_f1_default_applies_sigmoid_once() -> None:
    """S = -1, E = 0 is sigmoid(logit): a 'double sigmoid' or a sign flip would change these numbers."""
    x, y = _inputs(5, 6, 9)
    s = torch.sigmoid(x)
    f1 = 2 * (s * y).sum(1) / (s.sum(1) + y.sum(1))
    torch.testing.assert_close(build_loss({"kind": "sigmoid_f1"})(x, y), 1 - f1.mean(), rtol=1e-7, atol=1e-7)


def test_sigmoid_f1_bounded_and_decreasing_as_predictions_improve() -> None:
    _, y = _inputs(11, 16, 40)
    loss = SigmoidF1Loss()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(y.shape, generator=g, dtype=torch.float64)
    values = []
    for t in [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]:  # logits move towards the truth as t grows
        v = loss(noise + t * (2 * y - 1), y).item()
        assert 0.0 <= v <= 1.0
        values.append(v)
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert loss(100 * (2 * y - 1), y).item() < 1e-6  # perfect predictions -> loss 0
    assert loss(-100 * (2 * y - 1), y).item() > 1 - 1e-6  # all wrong -> loss 1


def test_reduction_is_mean_over_batch_not_sum() -> None:
    """Duplicating the batch must not change any loss (pitfall: summed losses scale the LR with the batch)."""
    x, y = _inputs(3, 8, 20)
    for kind in LOSSES:
        loss = build_loss({"kind": kind})
        torch.testing.assert_close(loss(torch.cat([x, x]), torch.cat([y, y])), loss(x, y))


# ----------------------------------------------------------------------------- numerical stability
STABILITY_CFGS = [{"kind": k} for k in sorted(LOSSES)] + [
    {"kind": "asl", "clip": 0.0, "gamma_neg": 0.5},
    {"kind": "bce", "pos_weight": 3.0},
    {"kind": "hill", "hill_margin": 0.0, "hill_gamma": 0.0},
]


@pytest.mark.parametrize("cfg", STABILITY_CFGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("big", [100.0, 1e4])
def test_extreme_logits_give_finite_loss_and_gradients(cfg: dict, big: float) -> None:
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
    x = torch.tensor([[big, big, -big, -big, 0.0, 0.0]], dtype=torch.float32, requires_grad=True)
    value = build_loss(cfg)(x, y)
    (grad,) = torch.autograd.grad(value, x)
    assert torch.isfinite(value), value
    assert torch.isfinite(grad).all(), grad
    assert grad[0, 4:].abs().sum() > 0  # the undecided logits (0.0) still get a gradient


def test_asl_gradient_finite_with_fractional_gamma_at_clip() -> None:
    """p_m = max(p - m, 0) is exactly 0 for easy negatives; pow(0, 0.5)'s gradient must not turn into NaN."""
    x = torch.tensor([[-5.0, -3.0, 0.0, 3.0]], requires_grad=True)
    y = torch.zeros(1, 4)
    value = AsymmetricLoss(gamma_pos=1.0, gamma_neg=0.5, clip=0.05)(x, y)
    (grad,) = torch.autograd.grad(value, x)
    assert torch.isfinite(grad).all()
    assert grad[0, 0] == 0 and grad[0, 3] > 0  # hard-thresholded easy negative vs penalised confident negative


def test_float32_matches_float64_on_moderate_logits() -> None:
    x, y = _inputs(7, 10, 30)
    for kind in LOSSES:
        loss = build_loss({"kind": kind})
        torch.testing.assert_close(loss(x.float(), y.float()).double(), loss(x, y), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- build_loss / validation
def test_build_loss_registry_and_defaults() -> None:
    assert set(LOSSES) == {"bce", "asl", "hill", "sigmoid_f1", "softmax"}
    full = defaults_of(LOSS_PARAMS)
    for kind, cls in LOSSES.items():
        loss = build_loss({**full, "kind": kind})  # the full [train.loss] table as the config resolves it
        assert type(loss) is cls
    asl = build_loss({"kind": "asl"})
    assert (asl.gamma_pos, asl.gamma_neg, asl.clip) == (1.0, 4.0, 0.05)
    hill = build_loss({"kind": "hill", "hill_margin": 0.5})
    assert (hill.hill_lambda, hill.hill_margin, hill.hill_gamma) == (1.5, 0.5, 2.0)
    assert build_loss({"kind": "bce", "pos_weight": 4}).pos_weight == 4.0


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"kind": "focal"}, r"unknown kind 'focal'.*\['asl', 'bce', 'hill', 'sigmoid_f1', 'softmax'\]"),
        ({"kind": "asl", "gama_neg": 2}, r"unknown key\(s\) \['gama_neg'\].*valid keys"),
        ({"kind": "asl", "clip": 1.0}, r"'clip' must be finite and in \[0.0, 1.0\)"),
        ({"kind": "asl", "gamma_neg": -1}, r"'gamma_neg'"),
        ({"kind": "asl", "gamma_pos": float("nan")}, r"'gamma_pos'"),
        ({"kind": "bce", "pos_weight": -2.0}, r"'pos_weight'"),
        ({"kind": "bce", "pos_weight": True}, r"'pos_weight' must be a number"),
        ({"kind": "hill", "hill_lambda": 1.0}, r"'hill_lambda' must be finite and in \[1.5"),
        ({"kind": "sigmoid_f1", "sf1_S": 1.0}, r"'sf1_S' must be < 0"),
        ({"kind": "sigmoid_f1", "sf1_E": "0"}, r"'sf1_E' must be a number"),
        ({"kind": "asl", "pos_weight": 5.0}, r"'pos_weight' = 5.0 is used only by kind \['bce'\], but kind is 'asl'"),
        ({"kind": "bce", "hill_gamma": 0.0}, r"'hill_gamma'.*\['hill'\]"),
    ],
)
def test_bad_config_raises(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_loss(cfg)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"targets shape \(2, 3\) != logits shape \(2, 4\)"):
        build_loss({"kind": "bce"})(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"logits must be \[batch, classes\]"):
        build_loss({"kind": "hill"})(torch.zeros(4), torch.zeros(4))


def test_hill_negative_term_monotone_for_valid_lambda() -> None:
    """(lambda - p) p^2 must grow with p on [0, 1] (the reason lambda < 1.5 is rejected)."""
    x = torch.linspace(-10, 10, 201, dtype=torch.float64)[None]
    per = HillLoss(hill_lambda=1.5).elementwise(x, torch.zeros_like(x))[0]
    assert (per[1:] >= per[:-1]).all()
    assert math.isclose(per[-1].item(), 0.5, rel_tol=1e-3)  # (1.5 - 1) * 1^2 at p -> 1
