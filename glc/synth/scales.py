"""Sizes and knobs of the synthetic world, in one place (:data:`SCALES`).

Three scales share one latent model and differ only in these parameters:

* ``tiny``: the test suite's world (<= 500 PA surveys, <= 200 species, every modality, a few seconds);
* ``demo``: the default data of ``make demo`` (~10,000 PA train surveys, ~1,500 species, ~30,000 PO records);
* ``full``: the real GLC24 sizes (88,987 PA train surveys, 4,716 test surveys, >= 1M PO records, species ids over
  0..11254), generated in streamed chunks.

The calibration knobs (``niche_strength``, ``richness``, ``prevalence_sigma``) were tuned so that the oracle
sample-F1 lands near 0.6 while a global top-k frequency baseline stays below half of it, with GLC24-like richness
(~17 species per PA survey) and a long prevalence tail; the measured values are listed in :mod:`glc.synth`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ScaleParams:
    """Parameters of one world scale.

    Attributes:
        name: scale name.
        n_pa_train: PA train surveys (exact).
        n_pa_test: PA test surveys (exact).
        n_species: size of the species pool (ids spread over 0..11254).
        n_po_records: PO records (approximately; the exact count is in the summary).
        raster_res_deg: GeoTIFF cell size in degrees.
        raster_tile: GeoTIFF tile size in pixels (multiple of 16).
        richness: target mean number of species per PA survey.
        prevalence_sigma: sd of log prevalence across species (long tail).
        max_prevalence: cap on a species' mean presence probability over PA sites.
        niche_strength: scale of the environmental/spatial part of the logits (higher = more predictable).
        survey_effect_sd: sd of the per-survey random effect (effort), invisible to models.
        area_slope: logit change per unit of log plot area (richness rises with area).
        block_deg: side of the spatial blocks of the train/test split, in degrees.
        mean_sites_per_cluster: mean number of plots per survey cluster.
        cluster_km: sd of plot positions around a cluster centre, in km.
        n_towns: random towns added to the built-in city list (human footprint, PO bias).
        n_pilot: PA-like sites used to calibrate species intercepts to their target prevalence.
        chunk_size: PA surveys per work chunk (fixed, so output never depends on the worker count).
        po_chunk_size: PO surveys per work chunk.
        po_records_per_survey: mean PO records per PO survey (>= 1).
    """

    name: str
    n_pa_train: int
    n_pa_test: int
    n_species: int
    n_po_records: int
    raster_res_deg: float
    raster_tile: int = 256
    richness: float = 18.0
    prevalence_sigma: float = 1.8
    max_prevalence: float = 0.45
    niche_strength: float = 3.0
    survey_effect_sd: float = 0.3
    area_slope: float = 0.15
    block_deg: float = 0.5
    mean_sites_per_cluster: float = 6.0
    cluster_km: float = 4.0
    n_towns: int = 600
    n_pilot: int = 3000
    chunk_size: int = 500
    po_chunk_size: int = 2000
    po_records_per_survey: float = 1.32

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (for the ``_SUCCESS`` summary)."""
        return asdict(self)


SCALES: dict[str, ScaleParams] = {
    "tiny": ScaleParams(
        name="tiny",
        n_pa_train=400,
        n_pa_test=80,
        n_species=150,
        n_po_records=2000,
        raster_res_deg=0.25,
        raster_tile=128,
        prevalence_sigma=1.3,
        block_deg=1.0,
        n_towns=150,
        n_pilot=1500,
        chunk_size=128,
        po_chunk_size=512,
    ),
    "demo": ScaleParams(
        name="demo",
        n_pa_train=10_000,
        n_pa_test=1_000,
        n_species=1_500,
        n_po_records=30_000,
        raster_res_deg=0.05,
    ),
    "full": ScaleParams(
        name="full",
        n_pa_train=88_987,
        n_pa_test=4_716,
        n_species=10_500,
        n_po_records=1_200_000,
        raster_res_deg=0.02,
        richness=18.0,
        prevalence_sigma=2.7,
        niche_strength=3.5,
        n_towns=1500,
        n_pilot=2500,
        chunk_size=1000,
        po_chunk_size=1000,
    ),
}


def get_scale(scale: str | ScaleParams, **overrides: Any) -> ScaleParams:
    """Resolve a scale name (or pass a :class:`ScaleParams` through), applying keyword overrides.

    Raises:
        ValueError: for an unknown scale name or override key (the message lists the valid ones).
    """
    if isinstance(scale, ScaleParams):
        params = scale
    else:
        if scale not in SCALES:
            raise ValueError(f"unknown synthetic world scale {scale!r}; expected one of {sorted(SCALES)}")
        params = SCALES[scale]
    if overrides:
        valid = set(ScaleParams.__dataclass_fields__)
        bad = sorted(set(overrides) - valid)
        if bad:
            raise ValueError(f"unknown ScaleParams override(s) {bad}; valid keys are {sorted(valid)}")
        params = replace(params, **overrides)
    return params


def scale_with_po_records(scale: str, po_records: int | None = None) -> ScaleParams:
    """Scale ``scale`` drawn with about ``po_records`` presence-only records (``None`` or 0: the scale's own count),
    as ``glc synth --po-records`` and a ``<world>-po<R>`` data root ask."""
    return get_scale(scale, **({"n_po_records": int(po_records)} if po_records else {}))
