"""Mixup (Zhang et al., ICLR 2018, "mixup: Beyond Empirical Risk Minimization"), over every input and the labels.

One ``lambda ~ Beta(alpha, alpha)`` and one permutation ``pi`` of the batch per training step::

    x'_i = lambda x_i + (1 - lambda) x_pi(i)      for every input tensor x (image, cubes, tabular vector, GFV, ...)
    y'_i = lambda y_i + (1 - lambda) y_pi(i)      the multi-hot labels (soft targets for BCE / ASL)

Tighnari mixes all modalities together, so a mixed sample is a consistent blend of two surveys. Integer inputs
(region codes, years) cannot be mixed: a net whose batch holds them must turn them into float tensors first
(``prepare``, e.g. one-hot codes; :class:`glc.models.fusion.FusionNet`), and :func:`mixup` refuses them, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["mixup", "mixup_draw"]


def mixup_draw(alpha: float, batch_size: int, device: torch.device | str = "cpu") -> tuple[float, Tensor]:
    """``(lambda, permutation)`` for one step: ``lambda ~ Beta(alpha, alpha)`` and a random permutation of the batch,
    both from torch's generators (the permutation from ``device``'s), seeded per batch by
    :class:`glc.training.callbacks.EpochSeed`, so reproducible.

    Raises:
        ValueError: ``alpha <= 0`` or an empty batch.
    """
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha!r}")
    if batch_size < 1:
        raise ValueError("mixup needs a non-empty batch")
    lam = float(torch.distributions.Beta(float(alpha), float(alpha)).sample())
    return lam, torch.randperm(int(batch_size), device=device)  # drawn where it is used: no copy to the GPU a step


def mixup(inputs: Mapping[str, Tensor], target: Tensor, lam: float, perm: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Mix every input tensor and the target with the same ``lam`` and ``perm`` (see the module docstring).

    Args:
        inputs: name -> ``[B, ...]`` float tensor.
        target: ``[B, C]`` float labels.
        lam: the mixing weight in ``[0, 1]``.
        perm: ``[B]`` permutation of ``0..B-1``.

    Returns:
        ``(mixed inputs, mixed target)``.

    Raises:
        ValueError: a non-float input (naming it), mismatched batch sizes, or a bad ``lam`` / ``perm``.
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"mixup lambda must be in [0, 1], got {lam!r}")
    b = target.shape[0]
    if perm.shape != (b,) or not torch.equal(torch.sort(perm.cpu()).values, torch.arange(b)):
        raise ValueError(f"mixup: perm must be a permutation of 0..{b - 1}")
    out: dict[str, Tensor] = {}
    for name, x in inputs.items():
        if not torch.is_floating_point(x):
            raise ValueError(
                f"mixup cannot mix the integer input {name!r} ({x.dtype}); the net must turn it into a float tensor in "
                "prepare() (e.g. one-hot codes), or set [train] mixup_alpha = 0"
            )
        if x.shape[0] != b:
            raise ValueError(f"mixup: input {name!r} has {x.shape[0]} rows, the target {b}")
        out[name] = lam * x + (1.0 - lam) * x.index_select(0, perm)
    return out, lam * target + (1.0 - lam) * target.index_select(0, perm)
