"""The temporal Swin: Tighnari's patch/window layout on the folded Landsat and bioclim cubes, the 1-D position bias
over the flattened window (the one piece not taken from timm), and bad settings named."""

from __future__ import annotations

import pytest
import torch

from glc.models.temporal_swin import CUBE_LAYOUTS, TemporalSwin, relative_index_1d, window_attention_1d


def _blocks(net: TemporalSwin) -> list[torch.nn.Module]:
    return [m for m in net.modules() if type(m).__name__ == "SwinTransformerBlock"]


@pytest.mark.parametrize(
    "cube,chans,image,grids",
    [
        ("landsat_cube", 6, (4, 20), [(2, 4), (1, 2)]),
        ("bioclim_cube", 4, (18, 12), [(6, 4), (3, 2)]),
    ],
)
def test_tighnari_layout_two_stages_and_the_output_shape(
    cube: str, chans: int, image: tuple[int, int], grids: list
) -> None:
    patch, window = CUBE_LAYOUTS[cube]
    net = TemporalSwin(chans, image, patch, window, embed_dim=48, latent=32).eval()
    blocks = _blocks(net)
    assert len(blocks) == 2 + 6  # depths (2, 6)
    assert [b.input_resolution for b in blocks[:2]] == [grids[0]] * 2 and [b.input_resolution for b in blocks[2:]] == [
        grids[1]
    ] * 6
    assert {b.attn.num_heads for b in blocks[:2]} == {12} and {b.attn.num_heads for b in blocks[2:]} == {24}
    assert blocks[0].window_size == tuple(min(w, g) for w, g in zip(window, grids[0]))
    assert any(b.shift_size != (0, 0) for b in blocks[:2])  # shifted windows in stage 1
    out = net(torch.randn(5, chans, *image))
    assert out.shape == (5, 32) and torch.isfinite(out).all()
    assert net.tokens(torch.randn(2, chans, *image)).shape == (2, grids[1][0] * grids[1][1], 96)


def test_position_bias_is_one_dimensional_over_the_flattened_window() -> None:
    """Every block's attention is the 1-D variant: a (2N - 1)-row table, and the bias of a token pair depends only on
    their offset in the flattened window (a Toeplitz matrix per head), unlike Swin's 2-D table."""
    net = TemporalSwin(4, (18, 12), (3, 3), (3, 2), embed_dim=48, latent=16)
    cls = window_attention_1d()
    attns = [b.attn for b in _blocks(net)]
    assert net.n_blocks_1d == 8 and all(isinstance(a, cls) for a in attns)
    a = attns[0]
    n = 3 * 2
    assert tuple(a.relative_position_bias_table.shape) == (2 * n - 1, 12)
    idx = relative_index_1d((3, 2))
    assert idx.tolist()[0] == [5, 4, 3, 2, 1, 0] and int(idx.max()) == 2 * n - 2
    with torch.no_grad():
        a.relative_position_bias_table.copy_(torch.randn_like(a.relative_position_bias_table))
    bias = a._get_rel_pos_bias()[0]  # [heads, N, N], exactly what timm's attention adds to the logits
    for i in range(n):
        for j in range(n):
            torch.testing.assert_close(bias[:, i, j], a.relative_position_bias_table[i - j + n - 1])
    # (0, 1) and (2, 3) are one column apart in the same row; (1, 2) crosses a row: same 1-D offset, so the same bias
    torch.testing.assert_close(bias[:, 0, 1], bias[:, 1, 2])
    two_d = TemporalSwin(4, (18, 12), (3, 3), (3, 2), embed_dim=48, latent=16, position_bias="2d")
    assert two_d.n_blocks_1d == 0 and tuple(_blocks(two_d)[0].attn.relative_position_bias_table.shape) == (
        (2 * 3 - 1) * (2 * 2 - 1),
        12,
    )


def test_weights_round_trip_through_a_state_dict() -> None:
    torch.manual_seed(0)
    a = TemporalSwin(6, (4, 20), (2, 5), (2, 3), embed_dim=24, heads=(4, 8), latent=8).eval()
    b = TemporalSwin(6, (4, 20), (2, 5), (2, 3), embed_dim=24, heads=(4, 8), latent=8).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 6, 4, 20)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"patch": (3, 5)}, r"patch \[3, 5\] does not tile the 4 x 20 folded cube"),
        ({"heads": (5, 24)}, r"stage 1 width 48 .* not divisible by heads 5"),
        ({"depths": (2,)}, r"one entry per stage"),
        ({"position_bias": "3d"}, r"position_bias = '3d'"),
    ],
)
def test_bad_settings_are_named(kw: dict, match: str) -> None:
    args = {"in_chans": 6, "image": (4, 20), "patch": (2, 5), "window": (2, 3), "embed_dim": 48, **kw}
    with pytest.raises(ValueError, match=match):
        TemporalSwin(**args)
    with pytest.raises(ValueError, match=r"expected \[B, C, 4, 20\]"):
        TemporalSwin(6, (4, 20), (2, 5), (2, 3), embed_dim=24, heads=(4, 8))(torch.randn(2, 6, 20, 4))
