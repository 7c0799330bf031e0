"""Multi-label losses on logits: BCE, ASL, Hill and sigmoidF1, plus :func:`build_loss` for the ``[train.loss]`` table.

Every loss is an ``nn.Module`` with ``forward(logits [B, C] float, targets [B, C] float in {0, 1}) -> scalar``.
Notation: ``x`` is a logit, ``p = sigmoid(x)``, ``y`` the 0/1 target. BCE, ASL and Hill are **summed over classes and
averaged over the batch** (so the loss scale, and thus the effective learning rate, does not change with the batch
size; it does grow with the number of classes, as in the papers' ``reduction='sum'``). sigmoidF1 is
``1 - mean over samples of the soft per-sample F1``, matching the competition's sample-averaged F1.

All formulas are evaluated through ``logsigmoid`` / ``softplus`` (never ``log(sigmoid(x))``), so logits of +-100
(or +-1e4) give finite losses and finite gradients in float32.

Formulas (``L`` is the per-element loss before the reduction):

* **BCE** (``kind="bce"``): ``L = -[w y log p + (1 - y) log(1 - p)]`` with ``w = pos_weight`` (``0`` = none, i.e.
  ``w = 1``); identical to ``torch.nn.BCEWithLogitsLoss(pos_weight=w, reduction="none")``.
* **ASL** (``kind="asl"``), Ben-Baruch, Ridnik et al., "Asymmetric Loss for Multi-Label Classification", ICCV 2021
  (arXiv:2009.14119), asymmetric focusing + asymmetric probability shifting::

      L = -y (1 - p)^gamma_pos log(p) - (1 - y) p_m^gamma_neg log(1 - p_m),   p_m = max(p - clip, 0)

  (probability shifting of the negatives by the margin ``clip``; ``clip = 0`` is plain asymmetric focusing and
  ``gamma_pos = gamma_neg = clip = 0`` is exactly BCE). The focusing weights are differentiated through, as in the
  paper's gradient analysis (the authors' code can optionally detach them).
* **Hill** (``kind="hill"``), Zhang et al., "Simple and Robust Loss Design for Multi-Label Learning with Missing
  Labels", arXiv:2112.07368 (2021): the focal margin loss on positives and the Hill loss on negatives, the
  combination the paper evaluates as "Hill" (and the authors' code ``src/loss_functions/losses.py::Hill`` computes)::

      L = -y (1 - p_m)^gamma log(p_m) + (1 - y) (lambda - p) p^2,   p_m = sigmoid(x - margin)

  defaults ``lambda = 1.5``, ``margin = 1``, ``gamma = 2``. ``lambda >= 1.5`` is required: for smaller values
  ``(lambda - p) p^2`` decreases for ``p > 2 lambda / 3`` and would reward confident false positives.
* **sigmoidF1** (``kind="sigmoid_f1"``), Bénédict et al., "sigmoidF1: A Smooth F1 Score Surrogate Loss for Multilabel
  Classification", arXiv:2108.10566 (2021). The paper smooths predictions with
  ``S(u) = 1 / (1 + exp(-beta (u + eta)))`` and its reference code writes this as
  ``1 / (1 + exp(S * (u + E)))`` with defaults ``S = -1``, ``E = 0``. **Our reading: ``S = -beta`` and ``E = eta``**,
  so the default ``S = -1, E = 0`` is ``beta = 1, eta = 0``, i.e. ``S(u) = sigmoid(u)`` applied *once* to the logits
  (never to probabilities: that would be a double sigmoid). ``S >= 0`` is rejected: it would invert the meaning of
  the logits (high logit = absent) while prediction still applies ``sigmoid``. Per sample ``i``::

      tp_i = sum_c s y,  fp_i = sum_c s (1 - y),  fn_i = sum_c (1 - s) y,   s = S(x)
      F1_i = 2 tp_i / (2 tp_i + fn_i + fp_i + eps),      loss = 1 - mean_i F1_i

  The paper's reference code sums over the batch per class (a macro F1, as DS@GT used it); here the sums run over
  the classes of each sample, matching our per-sample F1 metric. A sample with no positive label has ``F1_i = 0`` (the
  same ``zero_division = 0`` convention as :mod:`glc.metrics`) and contributes no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glc.params import Param, defaults_of

__all__ = [
    "LOSSES",
    "LOSS_PARAMS",
    "AsymmetricLoss",
    "BCELoss",
    "HillLoss",
    "MultiLabelLoss",
    "SigmoidF1Loss",
    "build_loss",
]


def _check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as float after checking it is a finite real number in the given range.

    Raises:
        ValueError: naming the parameter, the expected range and the value found.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"loss parameter {name!r} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    lo_ok = low is None or (v > low if low_open else v >= low)
    hi_ok = high is None or (v < high if high_open else v <= high)
    if not math.isfinite(v) or not lo_ok or not hi_ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"loss parameter {name!r} must be finite and in {rng}, got {value!r}")
    return v


class MultiLabelLoss(nn.Module):
    """Base class: input checks and the shared reduction (sum over classes, mean over the batch)."""

    def _check(self, logits: Tensor, targets: Tensor) -> None:
        """Raise ``ValueError`` unless ``logits`` and ``targets`` are float tensors of one shape ``[B, C]``."""
        name = type(self).__name__
        if logits.dim() != 2:
            raise ValueError(f"{name}: logits must be [batch, classes], got shape {tuple(logits.shape)}")
        if targets.shape != logits.shape:
            raise ValueError(
                f"{name}: targets shape {tuple(targets.shape)} != logits shape {tuple(logits.shape)}; "
                "targets must be the multi-hot [batch, classes] matrix"
            )
        if not logits.is_floating_point() or not targets.is_floating_point():
            raise ValueError(
                f"{name}: logits and targets must be floating point, got {logits.dtype} and {targets.dtype}"
            )

    @staticmethod
    def _reduce(per_element: Tensor) -> Tensor:
        return per_element.sum(dim=1).mean()

    def elementwise(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-element loss ``[B, C]`` before the reduction."""
        raise NotImplementedError

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Scalar loss: the per-element loss summed over classes and averaged over the batch."""
        self._check(logits, targets)
        return self._reduce(self.elementwise(logits, targets))


class BCELoss(MultiLabelLoss):
    """Binary cross-entropy on logits, optionally up-weighting positives.

    Args:
        pos_weight: weight ``w`` of the positive term (``0`` = none, the same as ``1``).
    """

    def __init__(self, pos_weight: float = 0.0) -> None:
        super().__init__()
        self.pos_weight = _check_number("pos_weight", pos_weight, low=0.0)

    def elementwise(self, logits: Tensor, targets: Tensor) -> Tensor:
        pw = None
        if self.pos_weight > 0:
            pw = torch.tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pw, reduction="none")

    def extra_repr(self) -> str:
        return f"pos_weight={self.pos_weight}"


class AsymmetricLoss(MultiLabelLoss):
    """ASL (Ridnik et al. 2021): asymmetric focusing plus probability shifting of the negatives.

    Args:
        gamma_pos: focusing exponent of the positives (paper: 0 or 1; ours 1).
        gamma_neg: focusing exponent of the negatives (paper: 4).
        clip: probability margin ``m`` of the negatives, ``p_m = max(p - m, 0)`` (paper: 0.05), in ``[0, 1)``.
    """

    def __init__(self, gamma_pos: float = 1.0, gamma_neg: float = 4.0, clip: float = 0.05) -> None:
        super().__init__()
        self.gamma_pos = _check_number("gamma_pos", gamma_pos, low=0.0)
        self.gamma_neg = _check_number("gamma_neg", gamma_neg, low=0.0)
        self.clip = _check_number("clip", clip, low=0.0, high=1.0, high_open=True)

    def elementwise(self, logits: Tensor, targets: Tensor) -> Tensor:
        # positives: -(1 - p)^g+ log p, with (1 - p)^g+ = exp(g+ logsigmoid(-x)) and -log p = softplus(-x)
        pos = torch.exp(self.gamma_pos * F.logsigmoid(-logits)) * F.softplus(-logits)
        if self.clip == 0:
            # negatives: -p^g- log(1 - p), with p^g- = exp(g- logsigmoid(x)) and -log(1 - p) = softplus(x)
            neg = torch.exp(self.gamma_neg * F.logsigmoid(logits)) * F.softplus(logits)
        else:
            p_m = (torch.sigmoid(logits) - self.clip).clamp(min=0.0)
            # 1 - p_m = min(1 - p + m, 1) >= m > 0: the log is finite for any logit
            neg_log = -torch.log((torch.sigmoid(-logits) + self.clip).clamp(max=1.0))
            if self.gamma_neg == 0:
                neg = neg_log
            else:
                # where(p_m > 0, ...) twice keeps pow's gradient finite at p_m = 0 for any gamma_neg > 0
                active = p_m > 0
                safe = torch.where(active, p_m, torch.ones_like(p_m))
                neg = torch.where(active, safe.pow(self.gamma_neg), torch.zeros_like(p_m)) * neg_log
        return targets * pos + (1.0 - targets) * neg

    def extra_repr(self) -> str:
        return f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}"


class HillLoss(MultiLabelLoss):
    """Hill loss (Zhang et al. 2021): focal-margin BCE on positives, ``(lambda - p) p^2`` on negatives.

    Args:
        hill_lambda: ``lambda`` of the negative term (paper: 1.5); must be ``>= 1.5`` (see module docstring).
        hill_margin: logit margin ``m`` of the positives, ``p_m = sigmoid(x - m)`` (paper: 1; 0.5-1 recommended).
        hill_gamma: focal exponent of the positives (paper: 2).
    """

    def __init__(self, hill_lambda: float = 1.5, hill_margin: float = 1.0, hill_gamma: float = 2.0) -> None:
        super().__init__()
        self.hill_lambda = _check_number("hill_lambda", hill_lambda, low=1.5)
        self.hill_margin = _check_number("hill_margin", hill_margin, low=0.0)
        self.hill_gamma = _check_number("hill_gamma", hill_gamma, low=0.0)

    def elementwise(self, logits: Tensor, targets: Tensor) -> Tensor:
        z = logits - self.hill_margin
        pos = torch.exp(self.hill_gamma * F.logsigmoid(-z)) * F.softplus(-z)  # -(1 - p_m)^g log p_m
        p = torch.sigmoid(logits)
        neg = (self.hill_lambda - p) * p.square()
        return targets * pos + (1.0 - targets) * neg

    def extra_repr(self) -> str:
        return f"hill_lambda={self.hill_lambda}, hill_margin={self.hill_margin}, hill_gamma={self.hill_gamma}"


class SigmoidF1Loss(MultiLabelLoss):
    """sigmoidF1 (Bénédict et al. 2021), reduced per sample: ``1 - mean_i softF1_i``.

    Args:
        sf1_S: the reference code's ``S``, i.e. ``-beta`` of the paper (default -1, i.e. ``beta = 1``); must be < 0.
        sf1_E: the reference code's ``E``, i.e. the paper's offset ``eta`` (default 0).
        eps: added to each sample's F1 denominator (only matters for samples without positives).
    """

    def __init__(self, sf1_S: float = -1.0, sf1_E: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__()
        S = _check_number("sf1_S", sf1_S)
        if S >= 0:
            raise ValueError(
                "loss parameter 'sf1_S' must be < 0 (S = -beta of the paper; S = -1 is sigmoid(logit)), got "
                f"{sf1_S!r}; S >= 0 would make high logits mean 'absent' while predictions still apply sigmoid"
            )
        self.sf1_S = S
        self.sf1_E = _check_number("sf1_E", sf1_E)
        self.eps = _check_number("eps", eps, low=0.0, low_open=True)

    def soft_predictions(self, logits: Tensor) -> Tensor:
        """``S(u) = 1 / (1 + exp(S (u + E))) = sigmoid(-S (u + E))`` applied to the logits."""
        return torch.sigmoid(-self.sf1_S * (logits + self.sf1_E))

    def per_sample_f1(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Soft F1 of each sample, ``[B]``, in ``[0, 1]``."""
        s = self.soft_predictions(logits)
        tp = (s * targets).sum(dim=1)
        fp = (s * (1.0 - targets)).sum(dim=1)
        fn = ((1.0 - s) * targets).sum(dim=1)
        return 2.0 * tp / (2.0 * tp + fn + fp + self.eps)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """``1 - mean over samples of the soft per-sample F1``."""
        self._check(logits, targets)
        return 1.0 - self.per_sample_f1(logits, targets).mean()

    def extra_repr(self) -> str:
        return f"sf1_S={self.sf1_S}, sf1_E={self.sf1_E}"


class SoftmaxCELoss(MultiLabelLoss):
    """Softmax cross-entropy against the survey's species as a normalised target distribution (GLC2020's CNNs were
    trained on single occurrences with softmax; a survey with ``n`` species puts ``1/n`` on each):
    ``-sum_c (y_c / sum y) log softmax(z)_c``, averaged over the batch. A survey without species contributes 0."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Scalar loss."""
        self._check(logits, targets)
        t = targets.to(logits.dtype)
        t = t / t.sum(dim=1, keepdim=True).clamp_min(1.0)
        return -(t * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


#: ``kind`` -> loss class; each class's constructor takes exactly the ``[train.loss]`` keys listed in :data:`LOSS_KEYS`.
LOSSES: dict[str, Callable[..., MultiLabelLoss]] = {
    "bce": BCELoss,
    "asl": AsymmetricLoss,
    "hill": HillLoss,
    "sigmoid_f1": SigmoidF1Loss,
    "softmax": SoftmaxCELoss,
}

#: ``[train.loss]`` keys each kind uses (every other key must keep its default, else it would silently not apply).
LOSS_KEYS: dict[str, tuple[str, ...]] = {
    "bce": ("pos_weight",),
    "asl": ("gamma_pos", "gamma_neg", "clip"),
    "hill": ("hill_lambda", "hill_margin", "hill_gamma"),
    "sigmoid_f1": ("sf1_S", "sf1_E"),
    "softmax": (),
}

#: The ``[train.loss]`` table of an experiment (:mod:`glc.config`): kind and every kind's parameters.
LOSS_PARAMS: dict[str, Param] = {
    "kind": Param("asl", "loss kind", choices=tuple(LOSSES)),
    "pos_weight": Param(0.0, "bce: positive-class weight (0 = none)", min=0.0),
    "gamma_pos": Param(1.0, "asl: focusing of positives", min=0.0),
    "gamma_neg": Param(4.0, "asl: focusing of negatives", min=0.0),
    "clip": Param(0.05, "asl: probability margin on negatives", min=0.0, max=1.0),
    "hill_lambda": Param(1.5, "hill: lambda", min=0.0),
    "hill_margin": Param(1.0, "hill: focal margin of positives", min=0.0),
    "hill_gamma": Param(2.0, "hill: focusing", min=0.0),
    "sf1_S": Param(-1.0, "sigmoid_f1: slope S"),
    "sf1_E": Param(0.0, "sigmoid_f1: offset E"),
}


def build_loss(loss_cfg: Mapping[str, Any]) -> MultiLabelLoss:
    """Build the loss of an experiment's ``[train.loss]`` table.

    Missing keys take their defaults from :data:`LOSS_PARAMS`. A key that the chosen kind
    does not use must keep its default: ``pos_weight = 5`` with ``kind = "asl"`` raises instead of being ignored.

    Args:
        loss_cfg: ``{"kind": "bce"|"asl"|"hill"|"sigmoid_f1", <parameters>}``.

    Returns:
        The loss module.

    Raises:
        ValueError: unknown ``kind`` or key, a parameter out of range, or a parameter that the kind does not use.
    """
    defaults: dict[str, Any] = defaults_of(LOSS_PARAMS)
    unknown = sorted(set(loss_cfg) - set(defaults))
    if unknown:
        raise ValueError(f"train.loss: unknown key(s) {unknown}; valid keys are {sorted(defaults)}")
    cfg = {**defaults, **dict(loss_cfg)}
    kind = cfg["kind"]
    if kind not in LOSSES:
        raise ValueError(f"train.loss: unknown kind {kind!r}; valid kinds are {sorted(LOSSES)}")
    used = LOSS_KEYS[kind]
    for key, value in cfg.items():
        if key == "kind" or key in used:
            continue
        if value != defaults[key]:
            owner = [k for k, keys in LOSS_KEYS.items() if key in keys]
            raise ValueError(
                f"train.loss: key {key!r} = {value!r} is used only by kind {owner}, but kind is {kind!r}; "
                f"remove it (or set it back to {defaults[key]!r}) so no parameter is silently ignored"
            )
    return LOSSES[kind](**{key: cfg[key] for key in used})
