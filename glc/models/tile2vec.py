"""tile2vec (Jean et al., "Tile2Vec: Unsupervised representation learning for spatially distributed data", AAAI
2019; DS@GT working note §5.2.2) as a registered encoder kind.

The encoder is the tile CNN body with no classifier head (:class:`glc.models.tile_cnn.TileBranch`: DCT planes ->
optional DCT-domain dihedral augmentation -> optional IDCT -> standardise -> conv body or timm backbone -> a
``latent``-d vector, 256 by default). It is trained on triplets ``(anchor, neighbour, distant)`` sampled by
:mod:`glc.features.triplets` (a neighbour within the ``Neighbours`` radius, a distant site beyond ``distant_km``)
with the triplet margin loss

    ``L = mean [ ||f(a) - f(n)||_2 - ||f(a) - f(d)||_2 + m ]_+``

and validated on held-out triplets by the **triplet accuracy** (the share with ``||f(a) - f(n)|| < ||f(a) - f(d)||``,
the reported metric) and the triplet loss, the early-stopping monitor: the accuracy saturates at 1.0 within an epoch
on land-cover / climate tiles (measured on the demo world) and would stop training there, while the loss keeps ranking
the embeddings by their margin. The embedding feature set ``tile2vec`` (column ``embedding``) is ``f(tile)`` in eval
mode (no augmentation) for every survey with a tile.

``max_epochs = 0`` in the encoder file publishes the seeded, untrained network (the ``tile2vec-untrained`` control).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glc.models.registry import EncoderSpec, register_encoder
from glc.models.tile_cnn import plane_sets
from glc.params import Param

__all__ = ["TILE2VEC_PARAMS", "Tile2VecNet", "triplet_accuracy", "triplet_margin_loss"]


def triplet_margin_loss(a: Tensor, n: Tensor, d: Tensor, margin: float) -> Tensor:
    """``mean(relu(||a - n||_2 - ||a - d||_2 + margin))`` over the batch (Euclidean distances of the latents)."""
    return torch.relu(torch.linalg.vector_norm(a - n, dim=-1) - torch.linalg.vector_norm(a - d, dim=-1) + margin).mean()


def triplet_accuracy(a: Tensor, n: Tensor, d: Tensor) -> Tensor:
    """Share of triplets whose anchor is strictly closer to its neighbour than to its distant site."""
    return (torch.linalg.vector_norm(a - n, dim=-1) < torch.linalg.vector_norm(a - d, dim=-1)).float().mean()


class Tile2VecNet(nn.Module):
    """The tile encoder: ``[B, C, k, k]`` DCT planes -> ``[B, latent]`` (the tile CNN body, no head).

    Args:
        shape: per-tile ``(C, k, k)``.
        mean, std: train-split per-element statistics of the tiles, shape ``(C, k, k)``.
        channels, reduce, latent, augment, idct, idct_size, backbone: as :class:`~glc.models.tile_cnn.TileBranch`.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        mean: np.ndarray,
        std: np.ndarray,
        channels: tuple[int, ...] = (64, 128),
        reduce: int = 32,
        latent: int = 256,
        augment: bool = True,
        idct: bool = False,
        idct_size: int = 128,
        backbone: str = "",
    ) -> None:
        super().__init__()
        from glc.models.tile_cnn import TileBranch

        self.branch = TileBranch(
            ["tile"],
            [tuple(shape)],
            [(mean, std)],
            (),
            channels,
            reduce,
            latent,
            0.0,
            augment,
            idct,
            idct_size,
            backbone,
        )
        self.out_dim = int(latent)

    def forward(self, planes: Tensor) -> Tensor:
        """``[B, latent]`` embeddings of the planes."""
        return self.branch({"tile": planes})


#: The ``[encoder]`` table of ``kind = "tile2vec"``.
TILE2VEC_PARAMS: dict[str, Any] = {
    "tiles": Param(
        ["patch_dct"],
        "feature sets of DCT planes (C, k, k) stacked as channels (PatchTiles / RasterTiles artifacts; one k)",
        type="list[str]",
        choices=plane_sets,
    ),
    "channels": Param([64, 128], "output channels of the 3x3 conv blocks", type="list[int]", min=1, unique=False),
    "reduce": Param(32, "output channels of the 1x1 conv", min=1),
    "latent": Param(256, "embedding width", min=1),
    "augment": Param(True, "DCT-domain flips / rotations per tile (training only)"),
    "idct": Param(False, "reconstruct idct_size x idct_size images from the coefficients first"),
    "idct_size": Param(64, "side of the IDCT images", min=4),
    "backbone": Param("", "timm model name instead of the conv body (random init)"),
    "margin": Param(1.0, "triplet margin m", min=0.0, min_exclusive=True),
    "neighbour_km": Param(
        100.0,
        "neighbours are sampled from the sites within this radius (the Neighbours table)",
        min=0.0,
        min_exclusive=True,
    ),
    "neighbour_k": Param(50, "nearest sites kept per anchor in the Neighbours table", min=1),
    "neighbour_sources": Param(
        ["pa_train", "pa_test"],
        "site kinds neighbours come from (pa_train, pa_test, po); sites without a tile are counted and resampled",
        type="list[str]",
        choices=("pa_train", "pa_test", "po"),
    ),
    "distant_km": Param(300.0, "the distant site is a random site farther than this (km)", min=0.0, min_exclusive=True),
    "val_triplets": Param(4096, "held-out triplets (anchors: validation and test surveys, fixed by the seed)", min=64),
}


def build_tile2vec(enc: Mapping[str, Any], data: Mapping[str, Any]) -> Tile2VecNet:
    """The encoder of an ``[encoder]`` table for the tile shape/statistics in ``data``."""
    return Tile2VecNet(
        tuple(data["tile_shape"]),
        np.asarray(data["tile_mean"], np.float32),
        np.asarray(data["tile_std"], np.float32),
        tuple(enc["channels"]),
        int(enc["reduce"]),
        int(enc["latent"]),
        bool(enc["augment"]),
        bool(enc["idct"]),
        int(enc["idct_size"]),
        str(enc["backbone"]),
    )


def check_tile2vec(enc: Mapping[str, Any]) -> None:
    """The distant cutoff must lie beyond the neighbour radius (otherwise a neighbour could also be 'distant')."""
    if enc["distant_km"] <= enc["neighbour_km"]:
        raise ValueError(
            f"encoder.distant_km = {enc['distant_km']} must be larger than encoder.neighbour_km = {enc['neighbour_km']}"
        )


register_encoder(
    EncoderSpec(
        "tile2vec",
        "tile2vec: tile CNN body trained with a triplet margin loss over spatial neighbours (DS@GT §5.2.2)",
        objective="triplet",
        params=TILE2VEC_PARAMS,
        build=build_tile2vec,
        embeddings={"embedding": lambda net, batch: net(batch["tile"])},
        monitor="val/triplet_loss",
        monitor_mode="min",
        uses_neighbours=True,
        check=check_tile2vec,
    )
)
