"""HCAM: the attention weights are distributions over the keys, level 2 reads the graph tokens, the image tokens are a
set (their order does not matter), and widths are checked."""

from __future__ import annotations

import pytest
import torch

from glc.models.hcam import HCAM

B, N, CI, S, T, M, CG, C = 6, 9, 20, 12, 10, 4, 8, 15


def _inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, N, CI, generator=g),
        torch.randn(B, S, generator=g),
        torch.randn(B, T, generator=g),
        torch.randn(B, M, CG, generator=g),
    )


def test_attention_weights_sum_to_one_over_the_keys() -> None:
    torch.manual_seed(0)
    hcam = HCAM(CI, S, T, CG, C, dim=16, heads=4).eval()
    w = hcam.attention_weights(*_inputs())
    assert set(w) == {"series", "tabular", "graph"}
    assert w["series"].shape == (B, 4, 1, N) and w["tabular"].shape == (B, 4, 1, N) and w["graph"].shape == (B, 4, 1, M)
    for name, weights in w.items():
        assert bool((weights >= 0).all()), name
        torch.testing.assert_close(weights.sum(dim=-1), torch.ones(B, 4, 1), msg=name)
    assert not torch.allclose(w["series"][:, 0], w["series"][:, 1])  # heads attend differently


def test_output_shape_and_the_graph_level() -> None:
    torch.manual_seed(0)
    image, series, tab, graph = _inputs()
    hcam = HCAM(CI, S, T, CG, C, dim=16, heads=4).eval()
    out = hcam(image, series, tab, graph)
    assert out.shape == (B, C) and torch.isfinite(out).all()
    assert not torch.allclose(out, hcam(image, series, tab, graph * 3.0))  # level 2 reads the compressed GFV
    no_graph = HCAM(CI, S, T, 0, C, dim=16, heads=4).eval()
    assert no_graph(image, series, tab).shape == (B, C) and set(no_graph.attention_weights(image, series, tab)) == {
        "series",
        "tabular",
    }
    with pytest.raises(ValueError, match="built without a graph level"):
        no_graph(image, series, tab, graph)
    with pytest.raises(ValueError, match=r"graph tokens must be \[B, M, 8\]"):
        hcam(image, series, tab, None)


def test_image_tokens_are_a_set() -> None:
    """Cross-attention and the residual's mean pooling do not depend on the order of the image tokens."""
    torch.manual_seed(1)
    image, series, tab, graph = _inputs(3)
    hcam = HCAM(CI, S, T, CG, C, dim=16, heads=4).eval()
    perm = torch.randperm(N)
    torch.testing.assert_close(
        hcam(image, series, tab, graph), hcam(image[:, perm], series, tab, graph), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "kw,match", [({"dim": 18, "heads": 4}, "must divide model.dim"), ({"dim": 0}, "widths must be positive")]
)
def test_bad_widths_are_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HCAM(CI, S, T, CG, C, **{"dim": 16, "heads": 4, **kw})
