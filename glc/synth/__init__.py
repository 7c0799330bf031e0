"""A byte-faithful synthetic GLC24 world generated from one latent model (glc's default data and test bed).

Public API:

* :func:`generate_world` writes every GLC24 file (Kaggle or Seafile names) plus the hidden test truth in
  ``_truth/`` and a ``_SUCCESS`` summary;
* :data:`SCALES` holds the ``tiny`` / ``demo`` / ``full`` parameters (:class:`ScaleParams`);
* :func:`world_stats` summarizes a generated world (richness, prevalence tail, footprint at PA vs PO sites);
* :func:`glc.synth.oracle.oracle_sample_f1` scores the expected-F1-optimal decoding of the true probabilities.

Heavy modules (rasterio, torch) are imported only when a world is generated or read.

Modules: :mod:`~glc.synth.scales` (parameters), :mod:`~glc.synth.geography` (land mask, countries, regions, grid),
:mod:`~glc.synth.fields` (latent environment), :mod:`~glc.synth.sites` (PA plots/visits/split, PO occurrences, ids),
:mod:`~glc.synth.species` (niche model, calibration), :mod:`~glc.synth.modalities` (patches, cubes),
:mod:`~glc.synth.rasterwriter` (GeoTIFFs), :mod:`~glc.synth.world` (orchestration), :mod:`~glc.synth.oracle`,
:mod:`~glc.synth.stats`.

Calibration (seed 0, measured on a shared 2-core VM):

====== ======= ========== ============ ============ ========= =========== ========= ================
scale  seconds species/  species in   top species  PO / PA   oracle      frequency peak memory
               PA survey  < 10 surveys prevalence   HFP mean  sample-F1   baseline  (PSS, all procs)
====== ======= ========== ============ ============ ========= =========== ========= ================
tiny   ~3      16.3       20 %         0.50         17 / 9    0.67        0.38
demo   68      17.0       25 %         0.46         20 / 10   0.62        0.21      1.0 GB
full   1888    16.8       46 %         0.45         21 / 11   0.61        0.25      3.2 GB
====== ======= ========== ============ ============ ========= =========== ========= ================

The frequency baseline predicts the k most frequent PA-train species for every test survey (best k, chosen on the
test labels). ``full`` writes 88,987 + 4,716 PA surveys (1.49 M PA rows), 1.2 M PO records and ~3.5 GB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glc.synth.scales import SCALES, ScaleParams, get_scale

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

__all__ = ["SCALES", "ScaleParams", "generate_world", "get_scale", "world_stats"]


def generate_world(
    out_dir: str | Path,
    scale: str | ScaleParams = "tiny",
    seed: int = 0,
    flavour: str = "kaggle",
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    po_patch_sites: int = 0,
) -> dict[str, Any]:
    """Generate a synthetic GLC24 world (see :func:`glc.synth.world.generate_world`)."""
    from glc.synth.world import generate_world as _generate

    return _generate(
        out_dir,
        scale=scale,
        seed=seed,
        flavour=flavour,
        workers=workers,
        progress=progress,
        overwrite=overwrite,
        po_patch_sites=po_patch_sites,
    )


def world_stats(world_dir: str | Path) -> dict[str, Any]:
    """Statistics of a generated world (see :func:`glc.synth.stats.world_stats`)."""
    from glc.synth.stats import world_stats as _stats

    return _stats(world_dir)
