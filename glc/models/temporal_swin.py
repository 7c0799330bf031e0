"""Temporal Swin (Tighnari, GLC24 3rd place): a two-stage Swin Transformer over a folded time-series cube.

A cube is read as a small multi-channel image whose two axes are time: the Landsat cube ``(6 bands, 4 quarters, 20
years)`` is a 6-channel ``4 x 20`` image (quarter x year), the monthly bioclimatic cube ``(4 variables, 18 years, 12
months)`` a 4-channel ``18 x 12`` image (year x month) — the cubes of the ``landsat_cube`` / ``bioclim_cube`` feature
sets (:mod:`glc.etl.cubes`: NaN-free, trimmed to 20 / 18 years). Tighnari's settings:

===========  ==============  ======  ============  ===========================================
cube         image           patch   patch grid    window (stage 1; stage 2 is clipped)
===========  ==============  ======  ============  ===========================================
Landsat      6 x (4, 20)     (2, 5)  (2, 4)        (2, 3): the 4 columns are padded to 6
bioclim      4 x (18, 12)    (3, 3)  (6, 4)        (3, 2): 4 windows; stage 2 on (3, 2) is one
===========  ==============  ======  ============  ===========================================

Two stages of depth 2 and 6 with 12 and 24 heads (``embed_dim`` 96 -> 192 after the patch merging), shifted windows
in every second block, then global average pooling and a ``Linear`` to ``latent``.

**What comes from timm and what is written here.** The patch embedding, the stages, the shifted-window blocks with
their padding and attention masks, and the patch merging are timm's (``timm.models.swin_transformer``; it accepts
non-square patches and windows). timm's window attention has only Swin's **2-D** relative position bias: a table of
``(2 Wh - 1)(2 Ww - 1)`` entries indexed by the (row, column) offset of two tokens. Tighnari's variant is **1-D**: the
window's tokens are one flattened sequence and the bias of a pair depends only on their offset ``i - j`` in it
(a table of ``2 N - 1`` entries, ``N = Wh * Ww``). timm offers no such table, so :class:`WindowAttention1D`
(:func:`window_attention_1d`, a subclass that changes only the table and its index) replaces the attention of every
block — the only code here that is not a library's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["CUBE_LAYOUTS", "TemporalSwin", "relative_index_1d", "window_attention_1d"]

#: Tighnari's patch and window sizes per cube feature set: ``(patch, window)``.
CUBE_LAYOUTS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "landsat_cube": ((2, 5), (2, 3)),
    "bioclim_cube": ((3, 3), (3, 2)),
}


def relative_index_1d(window: tuple[int, int]) -> Tensor:
    """``(N, N)`` int64 index into a ``2N - 1`` bias table: ``i - j + N - 1`` for tokens ``i, j`` of the row-major
    flattened window (``N = Wh * Ww``)."""
    n = int(window[0]) * int(window[1])
    pos = torch.arange(n)
    return pos[:, None] - pos[None, :] + n - 1


@functools.cache
def window_attention_1d() -> type[nn.Module]:
    """The ``WindowAttention1D`` class (a subclass of timm's ``WindowAttention``; built on first use so that importing
    this module does not import timm)."""
    from timm.models.swin_transformer import WindowAttention

    class WindowAttention1D(WindowAttention):  # type: ignore[misc, valid-type]
        """timm's window attention with Tighnari's 1-D relative position bias over the flattened window.

        The table has ``2N - 1`` rows (one per token offset in the flattened window) and ``num_heads`` columns;
        ``relative_position_index[i, j] = i - j + N - 1``. Everything else (qkv, the fused attention kernel, the
        shifted-window mask, the projection) is timm's, which reads the bias through ``_get_rel_pos_bias`` from
        exactly these two tensors.
        """

        def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: tuple[int, int],
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
            head_dim: int | None = None,
        ) -> None:
            super().__init__(
                dim,
                num_heads,
                head_dim=head_dim,
                window_size=window_size,
                qkv_bias=qkv_bias,
                attn_drop=attn_drop,
                proj_drop=proj_drop,
            )
            n = self.window_area
            self.relative_position_bias_table = nn.Parameter(torch.empty(2 * n - 1, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self._init_buffers()

        def _init_buffers(self) -> None:
            self.relative_position_index = relative_index_1d(self.window_size).to(self.relative_position_index.device)

        def set_window_size(self, window_size: tuple[int, int]) -> None:
            if tuple(window_size) != tuple(self.window_size):
                raise NotImplementedError("WindowAttention1D: the window of a temporal Swin is fixed at construction")

    return WindowAttention1D


def _to_1d_bias(swin: nn.Module) -> int:
    """Replace the attention of every block of ``swin`` by :class:`WindowAttention1D` with the same settings
    (at construction, before any training); returns the number of blocks changed."""
    from timm.models.swin_transformer import WindowAttention

    cls = window_attention_1d()
    n = 0
    for block in swin.modules():
        attn = getattr(block, "attn", None)
        if isinstance(attn, WindowAttention) and not isinstance(attn, cls):
            new = cls(
                attn.dim,
                attn.num_heads,
                tuple(attn.window_size),
                qkv_bias=attn.qkv.bias is not None,
                attn_drop=attn.attn_drop.p,
                proj_drop=attn.proj_drop.p,
                head_dim=attn.qkv.out_features // (3 * attn.num_heads),
            )
            block.attn = new
            n += 1
    return n


class TemporalSwin(nn.Module):
    """A folded cube ``[B, C, H, W]`` -> two-stage temporal Swin -> pooled features -> ``Linear`` -> ``[B, latent]``.

    Args:
        in_chans: cube channels (Landsat bands, bioclim variables).
        image: ``(H, W)`` of the folded cube (time x time).
        patch: patch size ``(ph, pw)``.
        window: attention window ``(wh, ww)`` (clipped to the grid where the grid is smaller; padded otherwise).
        embed_dim: width of stage 1 (doubled by the patch merging of each later stage).
        depths: blocks per stage (Tighnari: ``(2, 6)``).
        heads: attention heads per stage (Tighnari: ``(12, 24)``); ``embed_dim * 2**i`` must divide by ``heads[i]``.
        latent: output width.
        mlp_ratio: hidden width of the blocks' MLP relative to the stage width.
        drop_path: stochastic depth rate (linearly increasing over the blocks, as Swin).
        dropout: dropout before the final ``Linear``.
        position_bias: ``"1d"`` (Tighnari's flattened-window bias) or ``"2d"`` (timm's Swin bias).

    Raises:
        ValueError: naming the setting, when the patch does not tile the cube or the widths do not divide.
    """

    def __init__(
        self,
        in_chans: int,
        image: tuple[int, int],
        patch: Sequence[int],
        window: Sequence[int],
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 6),
        heads: Sequence[int] = (12, 24),
        latent: int = 256,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.1,
        dropout: float = 0.0,
        position_bias: str = "1d",
    ) -> None:
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        patch_t = (int(patch[0]), int(patch[1]))
        window_t = (int(window[0]), int(window[1]))
        if len(patch) != 2 or len(window) != 2 or min(patch_t) < 1 or min(window_t) < 1:
            raise ValueError(
                f"temporal Swin: patch {list(patch)} and window {list(window)} must be two positive ints each"
            )
        if image[0] % patch_t[0] or image[1] % patch_t[1]:
            raise ValueError(
                f"temporal Swin: patch {list(patch_t)} does not tile the {image[0]} x {image[1]} folded cube"
            )
        if len(depths) != len(heads) or not depths:
            raise ValueError(f"temporal Swin: depths {list(depths)} and heads {list(heads)} need one entry per stage")
        for i, h in enumerate(heads):
            width = int(embed_dim) * 2**i
            if h < 1 or width % int(h):
                raise ValueError(
                    f"temporal Swin: stage {i + 1} width {width} (embed_dim "
                    f"{embed_dim} x 2^{i}) is not divisible by heads {h}"
                )
        if position_bias not in ("1d", "2d"):
            raise ValueError(f"temporal Swin: position_bias = {position_bias!r}, expected '1d' or '2d'")
        self.image = (int(image[0]), int(image[1]))
        self.swin = SwinTransformer(
            img_size=self.image,
            patch_size=patch_t,
            in_chans=int(in_chans),
            num_classes=0,
            embed_dim=int(embed_dim),
            depths=tuple(int(d) for d in depths),
            num_heads=tuple(int(h) for h in heads),
            window_size=window_t,
            mlp_ratio=float(mlp_ratio),
            drop_path_rate=float(drop_path),
        )
        self.position_bias = position_bias
        self.n_blocks_1d = _to_1d_bias(self.swin) if position_bias == "1d" else 0
        self.proj = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(int(self.swin.num_features), int(latent)))
        self.out_dim = int(latent)

    def tokens(self, cube: Tensor) -> Tensor:
        """The last stage's normalised token grid flattened: ``[B, H' * W', num_features]``."""
        if cube.dim() != 4 or tuple(cube.shape[-2:]) != self.image:
            raise ValueError(
                f"TemporalSwin: cube of shape {tuple(cube.shape)}, expected [B, C, {self.image[0]}, {self.image[1]}]"
            )
        f = self.swin.forward_features(cube)  # NHWC
        return f.reshape(f.shape[0], -1, f.shape[-1])

    def forward(self, cube: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, latent]`` (mean of the last stage's tokens)."""
        return self.proj(self.tokens(cube).mean(dim=1))
