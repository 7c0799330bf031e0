"""Model parts shared by the fused networks: branches that turn one input into a latent vector, and the head.

A **branch** is an ``nn.Module`` with ``out_dim`` (its latent width), ``input_columns`` (the batch keys it reads)
and ``forward(batch) -> [B, out_dim]``. A :class:`FusionNet` concatenates the latents of its branches and maps them to
species logits with :class:`FusionHead` (``ReLU -> Dropout -> Linear``), so a model kind is composed from feature
sets and parts — the tile CNN alone, the tile CNN + the geolocation encoder, the time-series CNN — with no trainer
code of its own (the generic trainer :mod:`glc.training.trainer` trains them all).

Parts:

* :class:`Standardize`: ``(x - mean) / std`` with the train-split statistics the model-input writer recorded in
  ``meta.json`` (fixed buffers, saved with the weights).
* :class:`ConvBody`: DS@GT's tile CNN body (working note §5.2.1): blocks of ``3x3 conv (padding 1) -> BatchNorm ->
  ReLU`` (optionally each followed by a 2x2 max-pool), a ``1x1`` conv, then ``Linear`` to the latent.
* :class:`TimmBackbone`: a timm image backbone with its first convolution adapted to the channel count (random
  init, or weights from a local file — nothing is downloaded), global pooling, then ``Linear`` to the latent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = ["ConvBody", "FusionHead", "FusionNet", "Standardize", "TimmBackbone", "set_inputs", "with_location"]


class Standardize(nn.Module):
    """``(x - mean) / std`` per element with fixed statistics (buffers, moved and saved with the module).

    Args:
        mean: array broadcastable to one sample (e.g. ``(C, k, k)`` or ``(C, 1, 1)``).
        std: same shape, > 0.
    """

    def __init__(self, mean: np.ndarray | Tensor, std: np.ndarray | Tensor) -> None:
        super().__init__()
        m = torch.as_tensor(np.asarray(mean, np.float32))
        s = torch.as_tensor(np.asarray(std, np.float32))
        if m.shape != s.shape or not bool((s > 0).all()) or not bool(torch.isfinite(m).all()):
            raise ValueError(f"Standardize: mean {tuple(m.shape)} and std {tuple(s.shape)} must match, std > 0, finite")
        self.register_buffer("mean", m)
        self.register_buffer("std", s)

    def forward(self, x: Tensor) -> Tensor:
        """Standardised ``x`` (batch axis first)."""
        return (x - self.mean) / self.std


class ConvBody(nn.Module):
    """3x3 conv + BatchNorm + ReLU blocks, a 1x1 conv, flatten, ``Linear`` to ``latent`` (DS@GT's tile CNN body).

    Args:
        in_channels: input planes.
        size: input height = width.
        channels: output channels of each 3x3 block (padding 1, so the size is kept unless ``pool``).
        reduce: output channels of the 1x1 conv.
        latent: output width.
        pool: a 2x2 max-pool after each block (for large inputs such as IDCT images; the size must stay >= 1).
        dropout: dropout before the final ``Linear``.
    """

    def __init__(
        self,
        in_channels: int,
        size: int,
        channels: Sequence[int] = (64, 128),
        reduce: int = 32,
        latent: int = 256,
        pool: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or size < 1 or not channels or reduce < 1 or latent < 1:
            raise ValueError(
                f"ConvBody: bad sizes in_channels={in_channels} size={size} "
                f"channels={channels} reduce={reduce} latent={latent}"
            )
        layers: list[nn.Module] = []
        c, s = in_channels, size
        for out in channels:
            layers += [
                nn.Conv2d(c, int(out), 3, padding=1, bias=False),
                nn.BatchNorm2d(int(out)),
                nn.ReLU(inplace=True),
            ]
            if pool:
                if s < 2:
                    raise ValueError(
                        f"ConvBody: {len(channels)} pooled blocks shrink a {size}x{size} input below 1 pixel"
                    )
                layers.append(nn.MaxPool2d(2))
                s //= 2
            c = int(out)
        layers += [nn.Conv2d(c, reduce, 1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.out_size = s
        self.proj = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(reduce * s * s, latent))
        self.out_dim = int(latent)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_channels, size, size]`` -> ``[B, latent]``."""
        return self.proj(self.features(x))


class TimmBackbone(nn.Module):
    """A timm backbone (``num_classes=0``: pooled features) + ``Linear`` to ``latent``.

    Args:
        name: a timm model name (``"resnet18"``, ``"efficientnet_b0"``, ``"swin_tiny_patch4_window7_224"``, ...).
        in_channels: input planes; timm adapts the first convolution to it.
        latent: output width; ``0`` = no projection (the pooled features, ``num_features`` wide).
        weights: optional local file (a state dict, or a checkpoint with ``state_dict``) loaded before use; a first
            convolution trained on another channel count is adapted with timm's ``adapt_input_conv``; the classifier
            is skipped. Nothing is downloaded.
        dropout: dropout before the final ``Linear``.
        img_size: input side for networks built for one input size (timm's Swin / ViT take ``img_size``); None for
            convolutional networks, which take any size.
    """

    def __init__(
        self,
        name: str,
        in_channels: int,
        latent: int = 256,
        weights: str = "",
        dropout: float = 0.0,
        img_size: int | None = None,
    ) -> None:
        super().__init__()
        import timm

        kw = {} if img_size is None else {"img_size": int(img_size)}
        try:
            self.net = timm.create_model(name, pretrained=False, in_chans=in_channels, num_classes=0, **kw)
        except Exception as e:
            raise ValueError(f"model.backbone = {name!r}: timm cannot build it ({e}); see timm.list_models()") from e
        if weights:
            self._load(Path(weights), in_channels)
        self.num_features = int(self.net.num_features)
        self.proj = (
            nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, latent)) if latent else nn.Identity()
        )
        self.out_dim = int(latent) or self.num_features

    def _load(self, path: Path, in_channels: int) -> None:
        from timm.models import adapt_input_conv

        if not path.is_file():
            raise FileNotFoundError(
                f"model.weights = {str(path)!r}: no such file (weights are never downloaded; give a local path)"
            )
        state = torch.load(path, map_location="cpu", weights_only=False)
        state = state.get("state_dict", state) if isinstance(state, Mapping) else state
        own = self.net.state_dict()
        first = self.net.default_cfg.get("first_conv", "conv1") + ".weight"
        out: dict[str, Tensor] = {}
        for k, v in state.items():
            if k not in own:
                continue
            if k == first and v.shape[1] != in_channels:
                v = adapt_input_conv(in_channels, v)
            if v.shape == own[k].shape:
                out[k] = v
        missing = [k for k in own if k not in out]
        self.net.load_state_dict(out, strict=False)
        log.info(
            "%s: loaded %d tensors from %s (%d left at their init)",
            type(self.net).__name__,
            len(out),
            path,
            len(missing),
        )
        if not out:
            raise ValueError(
                f"{path}: no tensor of the file matches the backbone; is it a state dict of the same architecture?"
            )

    def tokens(self, x: Tensor) -> Tensor:
        """The last feature map as tokens ``[B, N, num_features]`` (``N`` = its height x width; a transformer's
        token sequence as it is)."""
        f = self.net.forward_features(x)
        if f.dim() == 3:
            return f
        if getattr(self.net, "output_fmt", "NCHW") == "NHWC":
            return f.reshape(f.shape[0], -1, f.shape[-1])
        return f.flatten(2).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_channels, H, W]`` -> ``[B, latent]``."""
        return self.proj(self.net(x))


class FusionHead(nn.Module):
    """Concatenated latents -> ``ReLU -> Dropout -> Linear`` -> logits."""

    def __init__(self, in_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(in_dim, num_classes))

    def forward(self, z: Tensor) -> Tensor:
        """``[B, in_dim]`` -> ``[B, num_classes]``."""
        return self.net(z)


class FusionNet(nn.Module):
    """Branches (each ``batch -> [B, out_dim]``) concatenated, then a :class:`FusionHead` to species logits.

    Args:
        branches: name -> branch module (with ``out_dim`` and ``input_columns``).
        num_classes: C.
        dropout: dropout of the head.
    """

    def __init__(self, branches: Mapping[str, nn.Module], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not branches:
            raise ValueError("FusionNet needs at least one branch")
        self.branches = nn.ModuleDict(dict(branches))
        self.latent_dim = sum(int(b.out_dim) for b in self.branches.values())
        self.head = FusionHead(self.latent_dim, num_classes, dropout)
        self.num_classes = int(num_classes)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Batch keys the branches read."""
        return tuple(dict.fromkeys(c for b in self.branches.values() for c in b.input_columns))

    def latent(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The concatenated branch latents ``[B, latent_dim]`` (before the head's ReLU)."""
        return torch.cat([b(batch) for b in self.branches.values()], dim=-1)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, num_classes]``."""
        return self.head(self.latent(batch))


def set_inputs(
    meta: Mapping[str, Any], set_names: Sequence[str]
) -> tuple[list[str], list[tuple[int, ...]], list[tuple[np.ndarray, np.ndarray]]]:
    """Columns, per-row shapes and train ``(mean, std)`` of single-column feature sets, from a table's ``meta.json``.

    Raises:
        ValueError: if the table recorded no statistics for a column (rebuild ModelInputs).
    """
    from glc.features.sets import feature_set
    from glc.loaders.tables import column_shape, column_stats

    columns = [feature_set(n).columns[0].name for n in set_names]
    stats = []
    for c in columns:
        st = column_stats(meta, c)
        if st is None:
            raise ValueError(
                f"the model-input table has no statistics for {c!r} (meta.json columns.{c}.stats); rebuild ModelInputs"
            )
        stats.append(st)
    return columns, [column_shape(meta, c) for c in columns], stats


def with_location(name: str, branch: nn.Module, model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> FusionNet:
    """``branch`` (+ the ``[model.location]`` geolocation branch unless its encoder is ``"none"``) fused into species
    logits, with the ``[model]`` table's ``dropout`` in the head."""
    from glc.models.geolocation import location_branch

    branches: dict[str, nn.Module] = {name: branch}
    loc = location_branch(model_cfg["location"], meta)
    if loc is not None:
        branches["location"] = loc
    return FusionNet(branches, int(meta["num_classes"]), float(model_cfg["dropout"]))


def check_columns(batch: Mapping[str, Any], columns: Sequence[str], who: str) -> None:
    """Raise naming ``who`` and the missing key when ``batch`` lacks one of ``columns``."""
    missing = [c for c in columns if c not in batch]
    if missing:
        raise KeyError(
            f"{who} needs batch key(s) {missing}, batch has {sorted(batch)}; "
            "build the model inputs with the feature sets that provide them"
        )
