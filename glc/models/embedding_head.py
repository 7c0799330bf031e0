"""A head on a frozen embedding: the transfer model of the self-supervised encoders (tile2vec, SatCLIP).

Input: one embedding feature set (``tile2vec``, ``tile2vec_untrained``, ``satclip_location``, ``satclip_image``:
the ``Embeddings`` artifact of a pretrained encoder, standardised with train-split statistics by the model-input
writer). The encoder is frozen by construction: its embeddings are inputs, not weights.

Body: ``hidden == 0``: a linear model; otherwise ``Linear(D, hidden) -> ReLU -> Dropout -> Linear(hidden, C)`` — the
geolocation MLP's shape, so ``geolocation-satclip`` is "the geolocation MLP on the SatCLIP location embedding
instead of raw coordinates" and ``tile2vec`` is DS@GT's MLP head on the triplet-pretrained tile latent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from glc.models.registry import ModelSpec, register
from glc.params import Param

__all__ = ["EMBEDDING_HEAD_PARAMS", "EmbeddingHead", "embedding_sets"]


def embedding_sets() -> tuple[str, ...]:
    """Feature sets made by the ``Embeddings`` artifact."""
    from glc.features.sets import FEATURE_SETS

    return tuple(n for n, fs in FEATURE_SETS.items() if fs.artifact == "Embeddings")


class EmbeddingHead(nn.Module):
    """``batch[column] [B, D] -> [B, C]`` logits through a linear model or a 2-layer MLP.

    Args:
        column: the embedding column (the feature set's column name).
        dim: ``D``.
        num_classes: ``C``.
        hidden: hidden units (0 = linear).
        dropout: dropout after the hidden layer.
    """

    def __init__(self, column: str, dim: int, num_classes: int, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        if dim < 1 or num_classes < 1 or hidden < 0:
            raise ValueError(f"EmbeddingHead: dim={dim}, num_classes={num_classes}, hidden={hidden} out of range")
        self.column = column
        self.dim = int(dim)
        self.body: nn.Module = (
            nn.Linear(dim, num_classes)
            if hidden == 0
            else nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        )

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The embedding column."""
        return (self.column,)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, C]``."""
        if self.column not in batch:
            raise KeyError(
                f"EmbeddingHead needs batch key {self.column!r}, batch has "
                f"{sorted(batch)}; build ModelInputs with that feature set"
            )
        z = batch[self.column].float()
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"batch[{self.column!r}] has shape {tuple(z.shape)}, expected [B, {self.dim}]")
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"batch[{self.column!r}] has non-finite values; rebuild the Embeddings artifact")
        return self.body(z)


#: The ``[model]`` table of ``kind = "embedding_head"``.
EMBEDDING_HEAD_PARAMS: dict[str, Any] = {
    "embedding": Param(
        "tile2vec", "embedding feature set (an Embeddings artifact of tasks/encoders/)", choices=embedding_sets
    ),
    "hidden": Param(256, "hidden units of the 2-layer MLP; 0 = linear head", min=0),
    "dropout": Param(0.0, "dropout after the hidden layer", min=0.0, max=0.95),
}


def build_embedding_head(m: Mapping[str, Any], meta: Mapping[str, Any]) -> EmbeddingHead:
    """The head of a ``[model]`` table for a model-input table's ``meta.json``."""
    from glc.features.sets import feature_set
    from glc.loaders.tables import column_shape

    col = feature_set(m["embedding"]).columns[0].name
    return EmbeddingHead(
        col, int(column_shape(meta, col)[0]), int(meta["num_classes"]), int(m["hidden"]), float(m["dropout"])
    )


def check_embedding_head(m: Mapping[str, Any]) -> None:
    """Dropout needs a hidden layer."""
    if m["dropout"] > 0 and m["hidden"] == 0:
        raise ValueError(f"model.dropout = {m['dropout']} has no effect on the linear head (hidden = 0)")


register(
    ModelSpec(
        "embedding_head",
        "linear / MLP head on a frozen embedding feature set (tile2vec, SatCLIP transfer) (Lightning)",
        runner="lightning",
        params=EMBEDDING_HEAD_PARAMS,
        features=lambda m: (m["embedding"],),
        build_net=build_embedding_head,
        check=check_embedding_head,
    )
)
