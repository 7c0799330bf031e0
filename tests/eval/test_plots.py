"""Report figures: the block bootstrap and that every plot returns a decodable PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from glc.eval import plots


def _decodes(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return im.size


def test_block_bootstrap_resamples_whole_blocks() -> None:
    vals = np.r_[np.zeros(50), np.ones(50)]
    one_block_each = np.arange(100)
    two_blocks = np.r_[np.zeros(50), np.ones(50)]
    lo1, hi1 = plots.block_bootstrap(vals, one_block_each, n=500)
    lo2, hi2 = plots.block_bootstrap(vals, two_blocks, n=500)
    assert lo1 < 0.5 < hi1 and lo2 <= lo1 and hi2 >= hi1  # fewer, larger blocks: a wider interval
    assert (lo2, hi2) == (0.0, 1.0)


def test_every_plot_is_a_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    f1 = {"model": rng.uniform(0, 1, 60), "reference": rng.uniform(0, 0.5, 60)}
    assert _decodes(plots.f1_by_model(f1, rng.integers(0, 10, 60), highlight="model"))[0] > 200
    assert _decodes(plots.decoder_comparison({"topk": 0.3, "expected_f1": 0.35}, used="expected_f1"))[0] > 200
    p = rng.uniform(0, 1, (60, 20))
    assert _decodes(plots.reliability_diagram(p, rng.uniform(0, 1, p.shape) < p))[0] > 200
    assert _decodes(plots.species_count(rng.integers(1, 30, 60), rng.integers(1, 30, 60)))[0] > 200
    assert _decodes(plots.f1_map(rng.uniform(0, 20, 60), rng.uniform(40, 60, 60), f1["model"]))[0] > 200
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train/loss_epoch,val/loss,val/sample_f1\n0,9,1.0,,\n0,9,,0.9,0.20\n1,19,0.8,,\n1,19,,0.7,0.25\n"
    )
    assert _decodes(plots.training_curves(csv))[0] > 200
    img = rng.integers(0, 255, (128, 128, 3)).astype(np.uint8)
    assert _decodes(plots.dct_strip(img))[0] > 400
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        plots.dct_strip(np.zeros((128, 128)))
