"""A byte-faithful synthetic GLC24 world generated from one latent model (glc's default data and test bed).

Public API:

* :func:`generate_world` writes every GLC24 file (Kaggle or Seafile names) plus the hidden test truth in
  ``_truth/`` and a ``_SUCCESS`` summary;
* :data:`SCALES` holds the ``tiny`` / ``demo`` / ``full`` parameters (:class:`ScaleParams`);
* :func:`world_stats` summarizes a generated world (richness, prevalence tail, footprint at PA vs PO sites);
* :func:`glc.synth.oracle.oracle_sample_f1` scores the expected-F1-optimal decoding of the true probabilities.

Heavy modules (rasterio, torch) are imported only when a world is generated or read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glc.synth.scales import SCALES, ScaleParams, get_scale

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

__all__ = ["SCALES", "ScaleParams", "generate_world", "get_scale", "world_stats"]


def generate_world(out_dir: str | Path, scale: str | ScaleParams = "tiny", seed: int = 0, flavour: str = "kaggle",
                   workers: int | None = None, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Generate a synthetic GLC24 world (see :func:`glc.synth.world.generate_world`)."""
    from glc.synth.world import generate_world as _generate

    return _generate(out_dir, scale=scale, seed=seed, flavour=flavour, workers=workers, progress=progress,
                     overwrite=overwrite)


def world_stats(world_dir: str | Path) -> dict[str, Any]:
    """Statistics of a generated world (see :func:`glc.synth.stats.world_stats`)."""
    from glc.synth.stats import world_stats as _stats

    return _stats(world_dir)
