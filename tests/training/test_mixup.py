"""Mixup: every input and the labels are mixed with the same lambda and the same permutation, in the training step of
the Lightning module too (on a net's prepared float inputs), and integer inputs are refused by name."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
from torch import Tensor, nn

from glc.training.mixup import mixup, mixup_draw
from glc.training.module import MultiLabelModule


def test_inputs_and_labels_share_lambda_and_permutation() -> None:
    torch.manual_seed(0)
    x = {"image": torch.randn(6, 3, 4, 4), "tabular": torch.randn(6, 5, dtype=torch.float64)}
    y = (torch.rand(6, 7) < 0.3).float()
    lam, perm = mixup_draw(0.4, 6)
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(6)) and perm.tolist() != list(range(6))
    mx, my = mixup(x, y, lam, perm)
    for i in range(6):
        j = int(perm[i])
        for k in x:
            torch.testing.assert_close(mx[k][i], lam * x[k][i] + (1 - lam) * x[k][j])
        torch.testing.assert_close(my[i], lam * y[i] + (1 - lam) * y[j])
    assert mx["tabular"].dtype == torch.float64  # dtypes kept
    same, _ = mixup(x, y, 1.0, perm)
    torch.testing.assert_close(same["image"], x["image"])  # lambda 1 is the identity


def test_bad_inputs_are_named() -> None:
    y = torch.zeros(4, 3)
    perm = torch.arange(4)
    with pytest.raises(ValueError, match="cannot mix the integer input 'region'"):
        mixup({"region": torch.zeros(4, dtype=torch.int64)}, y, 0.5, perm)
    with pytest.raises(ValueError, match="permutation"):
        mixup({}, y, 0.5, torch.tensor([0, 0, 1, 2]))
    with pytest.raises(ValueError, match="lambda must be in"):
        mixup({}, y, 1.5, perm)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        mixup_draw(0.0, 4)


class _Prepared(nn.Module):
    """A net with prepare / forward_prepared that records what it is fed."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.seen: list[Tensor] = []

    def prepare(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"v": batch["code"].float().unsqueeze(-1).repeat(1, 3)}  # an integer code made float here

    def forward_prepared(self, x: Mapping[str, Tensor]) -> Tensor:
        self.seen.append(x["v"].detach().clone())
        return self.lin(x["v"])

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.forward_prepared(self.prepare(batch))


def test_training_step_mixes_the_prepared_inputs_and_the_target_alike() -> None:
    targets: list[Tensor] = []

    def loss(logits: Tensor, target: Tensor) -> Tensor:
        targets.append(target.detach().clone())
        return logits.sum() * 0.0 + (target - 0.5).abs().sum()

    net = _Prepared()
    module = MultiLabelModule(net, loss, num_classes=4, mixup_alpha=0.3)
    code = torch.arange(8)
    y = torch.eye(8, 4)
    torch.manual_seed(5)
    module.training_step({"code": code, "target": y, "surveyId": code}, 0)
    torch.manual_seed(5)
    lam, perm = mixup_draw(0.3, 8)
    want_v = lam * code.float() + (1 - lam) * code[perm].float()
    torch.testing.assert_close(net.seen[-1][:, 0], want_v)
    torch.testing.assert_close(targets[-1], lam * y + (1 - lam) * y[perm])
    plain = MultiLabelModule(_Prepared(), loss, num_classes=4)  # alpha 0: nothing mixed
    plain.training_step({"code": code, "target": y, "surveyId": code}, 0)
    torch.testing.assert_close(targets[-1], y)


def test_a_net_without_prepare_gets_its_float_columns_mixed_and_integers_refused() -> None:
    class Plain(nn.Module):
        input_columns = ("x",)

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
            return self.lin(batch["x"])

    bce = nn.BCEWithLogitsLoss()
    module = MultiLabelModule(Plain(), bce, num_classes=3, mixup_alpha=1.0)
    out = module.training_step({"x": torch.randn(4, 2), "target": torch.zeros(4, 3), "surveyId": torch.arange(4)}, 0)
    assert torch.isfinite(out)
    Plain.input_columns = ("x", "year")
    with pytest.raises(ValueError, match="integer input 'year'"):
        module.training_step(
            {"x": torch.randn(4, 2), "year": torch.arange(4), "target": torch.zeros(4, 3), "surveyId": torch.arange(4)},
            0,
        )
    with pytest.raises(ValueError, match="mixup_alpha"):
        MultiLabelModule(Plain(), bce, num_classes=3, mixup_alpha=-1.0)
