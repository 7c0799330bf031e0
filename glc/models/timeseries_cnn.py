"""DS@GT's time-series CNN: the 1D-DCT coefficients of each Landsat band (and optionally each monthly bioclimatic
variable) reshaped to ``8 x 8`` planes, through the tile CNN body.

Input: feature sets whose column is ``(C, n)`` with ``n`` a square (``landsat_dct``: 6 bands x 64 coefficients of
the quarterly 2000-2020 series; ``bioclim_dct``: 4 variables x 64 coefficients of the monthly 2000-2018 series, see
:mod:`glc.etl.cubes`). Each channel's ``n`` coefficients are standardised per element with the train statistics of
``meta.json`` and laid out row-major as a ``sqrt(n) x sqrt(n)`` plane (coefficient ``i`` at row ``i // 8``, column
``i % 8``), the channels of all sets are stacked, and the planes go through
:class:`glc.models.parts.ConvBody` (3x3 conv + BatchNorm + ReLU blocks, a 1x1 conv, a ``latent``-d vector), then
``ReLU -> Dropout -> Linear`` to the species. No flip/rotation augmentation: the planes are a reshaped 1-D
spectrum, not an image. A ``[model.location]`` encoder adds the geolocation latent as in the tile CNN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glc.features.sets import FEATURE_SETS
from glc.models.geolocation import LOCATION_PARAMS, check_location, location_features
from glc.models.parts import ConvBody, FusionNet, Standardize, check_columns, set_inputs, with_location
from glc.models.registry import ModelSpec, register
from glc.params import Param

__all__ = ["SERIES_PARAMS", "SeriesBranch", "build_timeseries_cnn"]


def _series_sets() -> tuple[str, ...]:
    """Feature sets with one float column ``(C, n)``, ``n`` a perfect square."""
    out = []
    for n, fs in FEATURE_SETS.items():
        c = fs.columns[0]
        if (
            len(fs.columns) == 1
            and c.dtype == "float32"
            and len(c.shape) == 2
            and c.shape[1] > 0
            and math.isqrt(c.shape[1]) ** 2 == c.shape[1]
        ):
            out.append(n)
    return tuple(out)


class SeriesBranch(nn.Module):
    """Standardised ``(C_i, n)`` coefficient series -> ``sqrt(n) x sqrt(n)`` planes, stacked -> conv body ->
    ``[B, latent]``.

    Args:
        columns: batch keys of the series columns, each ``[B, C_i, n]`` (one ``n`` for all, a perfect square).
        shapes: their per-row shapes ``(C_i, n)``.
        stats: their train ``(mean, std)`` arrays of those shapes.
        channels, reduce, latent, dropout: the conv body (:class:`~glc.models.parts.ConvBody`).

    Raises:
        ValueError: if the shapes differ in ``n`` or ``n`` is not a square.
    """

    def __init__(
        self,
        columns: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        stats: Sequence[tuple[np.ndarray, np.ndarray]],
        channels: Sequence[int] = (64, 128),
        reduce: int = 32,
        latent: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        ns = {int(s[-1]) for s in shapes}
        if (
            not columns
            or len(ns) != 1
            or any(len(s) != 2 for s in shapes)
            or math.isqrt(next(iter(ns))) ** 2 != next(iter(ns))
        ):
            raise ValueError(
                f"model.series {list(columns)}: series must all be (C, n) "
                f"with one square n, got {[tuple(s) for s in shapes]}"
            )
        self.columns = tuple(columns)
        self.n = ns.pop()
        self.side = math.isqrt(self.n)
        self.norms = nn.ModuleList(Standardize(m, s) for m, s in stats)
        self.body = ConvBody(
            sum(int(s[0]) for s in shapes), self.side, channels, reduce, latent, pool=False, dropout=dropout
        )
        self.out_dim = int(latent)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The series columns."""
        return self.columns

    def planes(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, sum C_i, side, side]``: each channel's standardised coefficients, row-major."""
        check_columns(batch, self.columns, "SeriesBranch")
        parts = []
        for c, norm in zip(self.columns, self.norms):
            x = norm(batch[c].float())
            parts.append(x.reshape(x.shape[0], x.shape[1], self.side, self.side))
        return torch.cat(parts, dim=1)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, latent]``."""
        return self.body(self.planes(batch))


#: The ``[model]`` table of ``kind = "timeseries_cnn"``.
SERIES_PARAMS: dict[str, Any] = {
    "series": Param(
        ["landsat_dct"],
        "feature sets of 1D-DCT series (C, n), n a square (landsat_dct, bioclim_dct)",
        type="list[str]",
        choices=_series_sets,
    ),
    "channels": Param([64, 128], "output channels of the 3x3 conv blocks", type="list[int]", min=1, unique=False),
    "reduce": Param(32, "output channels of the 1x1 conv", min=1),
    "latent": Param(256, "width of the series latent", min=1),
    "dropout": Param(0.2, "dropout before the latent and before the species layer", min=0.0, max=0.95),
    "location": LOCATION_PARAMS,
}


def build_timeseries_cnn(model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> FusionNet:
    """The time-series CNN (+ optional location branch) for a model-input table's ``meta.json``."""
    m = model_cfg
    series = SeriesBranch(
        *set_inputs(meta, m["series"]), m["channels"], int(m["reduce"]), int(m["latent"]), float(m["dropout"])
    )
    return with_location("series", series, m, meta)


def _check(model_cfg: Mapping[str, Any]) -> None:
    check_location(model_cfg["location"])
    if not model_cfg["series"]:
        raise ValueError('model.series is empty; name at least one series feature set, e.g. ["landsat_dct"]')


register(
    ModelSpec(
        "timeseries_cnn",
        "DS@GT time-series CNN: Landsat (and bioclim) 1D-DCT coefficients as 8x8 planes through the tile "
        "CNN body (Lightning)",
        runner="lightning",
        params=SERIES_PARAMS,
        features=lambda m: (*m["series"], *location_features(m["location"])),
        build_net=build_timeseries_cnn,
        check=_check,
    )
)
