"""HCAM: Tighnari's hierarchical cross-attention fusion of image, time-series, tabular and graph features.

Inputs per survey: the image backbone's **token grid** ``I`` (``[N, C_img]``, e.g. ResNet18's 7 x 7 map of 512-d
features at 224 pixels), the time-series vector ``S`` (the temporal-Swin latents of the cubes, concatenated), the
tabular vector ``T`` (env + metadata MLP) and the **compressed GFV** ``G`` (``[M, C_g]`` tokens: the graph feature
vector through one ``Linear``, reshaped into ``M`` tokens).

Level 1, three modalities (``d`` = ``dim``)::

    A_s = MHA(query = W_qs S,  key = value = W_s I)        the time series asks the image (projection 1)
    A_t = MHA(query = W_qt T,  key = value = W_t I)        the tabular vector asks the image (projection 2)
    F   = [A_s, A_t] + W_r [mean(I), S, T]                  concatenated (2d), plus a residual linear of the inputs

Level 2, the graph::

    A_g = MHA(query = F,  key = value = G)                  the three-modal vector asks the neighbour labels
    logits = W_o [F, A_g]                                   (the loss / prediction apply the sigmoid)

``activation = "gelu"`` puts a GELU (and dropout) between ``[F, A_g]`` and ``W_o`` — not in the paper's description
("concat -> linear -> sigmoid"), which leaves the path from the branch vectors to the logits without a nonlinearity
of its own (only the attention's softmax and the LayerNorm); the ablation measures both.

``MHA`` is ``torch.nn.MultiheadAttention`` (``heads`` heads, scaled dot-product, softmax over the keys), so the
attention weights of every query over its keys sum to 1 (:meth:`HCAM.attention_weights` returns them). Without a
graph input (``graph_dim = 0``) level 2 is skipped and ``logits = W_o F``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["HCAM"]


class HCAM(nn.Module):
    """Hierarchical cross-attention fusion (see the module docstring).

    Args:
        image_dim: width ``C_img`` of the image tokens.
        series_dim: width of the time-series vector.
        tabular_dim: width of the tabular vector.
        graph_dim: width ``C_g`` of each compressed-GFV token (0 = no graph level).
        num_classes: species columns.
        dim: ``d``, the width of the level-1 attention (the three-modal vector is ``2d``).
        heads: attention heads (must divide ``d``).
        dropout: dropout of the attention weights and before the output layer.
        activation: ``"none"`` (the paper: concat -> linear) or ``"gelu"`` before the output layer.

    Raises:
        ValueError: naming the setting, when a width is not positive or ``heads`` does not divide ``dim``.
    """

    def __init__(
        self,
        image_dim: int,
        series_dim: int,
        tabular_dim: int,
        graph_dim: int,
        num_classes: int,
        dim: int = 256,
        heads: int = 8,
        dropout: float = 0.1,
        activation: str = "none",
    ) -> None:
        super().__init__()
        if min(image_dim, series_dim, tabular_dim, num_classes, dim) < 1 or graph_dim < 0:
            raise ValueError(
                f"HCAM: widths must be positive (image {image_dim}, series {series_dim}, tabular {tabular_dim}, "
                f"graph {graph_dim} >= 0, classes {num_classes}, dim {dim})"
            )
        if heads < 1 or dim % heads:
            raise ValueError(f"model.heads = {heads} must divide model.dim = {dim}")
        if activation not in ("none", "gelu"):
            raise ValueError(f"model.hcam_activation = {activation!r}, expected 'none' or 'gelu'")
        d = int(dim)
        self.q_series, self.q_tabular = nn.Linear(series_dim, d), nn.Linear(tabular_dim, d)
        self.kv_series, self.kv_tabular = nn.Linear(image_dim, d), nn.Linear(image_dim, d)  # two projections of I
        self.attn_series = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.attn_tabular = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.residual = nn.Linear(image_dim + series_dim + tabular_dim, 2 * d)
        self.norm = nn.LayerNorm(2 * d)
        self.graph_dim = int(graph_dim)
        if self.graph_dim:
            self.attn_graph = nn.MultiheadAttention(
                2 * d, heads, dropout=dropout, batch_first=True, kdim=graph_dim, vdim=graph_dim
            )
        act: list[nn.Module] = [nn.GELU()] if activation == "gelu" else []
        self.out = nn.Sequential(
            *act, nn.Dropout(dropout), nn.Linear(2 * d * (2 if self.graph_dim else 1), int(num_classes))
        )

    def _level1(self, image: Tensor, series: Tensor, tabular: Tensor, need: bool) -> tuple[Tensor, dict[str, Tensor]]:
        if image.dim() != 3:
            raise ValueError(f"HCAM: image tokens must be [B, N, C], got {tuple(image.shape)}")
        qs, qt = self.q_series(series).unsqueeze(1), self.q_tabular(tabular).unsqueeze(1)
        ks, kt = self.kv_series(image), self.kv_tabular(image)
        a_s, w_s = self.attn_series(qs, ks, ks, need_weights=need, average_attn_weights=False)
        a_t, w_t = self.attn_tabular(qt, kt, kt, need_weights=need, average_attn_weights=False)
        res = self.residual(torch.cat([image.mean(dim=1), series, tabular], dim=-1))
        fused = self.norm(torch.cat([a_s.squeeze(1), a_t.squeeze(1)], dim=-1) + res)
        return fused, ({"series": w_s, "tabular": w_t} if need else {})

    def _level2(self, fused: Tensor, graph: Tensor | None, need: bool) -> tuple[Tensor, dict[str, Tensor]]:
        if not self.graph_dim:
            if graph is not None:
                raise ValueError("HCAM was built without a graph level (graph_dim = 0) but got graph tokens")
            return fused, {}
        if graph is None or graph.dim() != 3 or graph.shape[-1] != self.graph_dim:
            raise ValueError(
                f"HCAM: graph tokens must be [B, M, {self.graph_dim}], "
                f"got {None if graph is None else tuple(graph.shape)}"
            )
        a_g, w_g = self.attn_graph(fused.unsqueeze(1), graph, graph, need_weights=need, average_attn_weights=False)
        return torch.cat([fused, a_g.squeeze(1)], dim=-1), ({"graph": w_g} if need else {})

    def forward(self, image: Tensor, series: Tensor, tabular: Tensor, graph: Tensor | None = None) -> Tensor:
        """Logits ``[B, num_classes]`` from image tokens ``[B, N, C_img]``, ``series [B, S]``, ``tabular [B, T]`` and
        graph tokens ``[B, M, C_g]`` (or None without a graph level)."""
        fused, _ = self._level1(image, series, tabular, need=False)
        z, _ = self._level2(fused, graph, need=False)
        return self.out(z)

    def attention_weights(
        self, image: Tensor, series: Tensor, tabular: Tensor, graph: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The attention weights
        ``{"series": [B, heads, 1, N], "tabular": [B, heads, 1, N], "graph": [B, heads, 1, M]}`` (each query's weights
        over its keys; they sum to 1)."""
        fused, w1 = self._level1(image, series, tabular, need=True)
        _, w2 = self._level2(fused, graph, need=True)
        return {**w1, **w2}
