"""SatCLIP (Klemmer et al., "SatCLIP: Global, General-Purpose Location Embeddings with Satellite Imagery", 2023;
location encoder of Rußwurm et al., "Geographic location encoding with spherical harmonics and sinusoidal
representation networks", ICLR 2024) as a registered encoder kind.

* **Location encoder** :class:`LocationEncoder`: real spherical harmonics of (lon, lat) of degrees ``0 .. L - 1``
  (``L²`` functions, computed in float64 by :func:`glc.models.location.real_spherical_harmonics`), then a SIREN
  (Sitzmann et al. 2020): ``n_layers`` sine layers ``sin(w0 (W z + b))`` (first layer ``W ~ U(-1/in, 1/in)``, later
  layers ``U(-sqrt(6/in)/w0, sqrt(6/in)/w0)``) and a linear layer to the ``dim``-d embedding.
* **Image encoder**: the tile CNN body (:class:`glc.models.tile_cnn.TileBranch`) on the patch DCT planes, or a timm
  backbone, to ``dim``; optionally the site's Landsat / bioclimatic DCT series (``cubes``), which carry the climate
  a patch does not show, flattened, standardised and concatenated to the image latent through a linear layer.
* **Loss** :func:`clip_loss`: both embeddings L2-normalised, logits ``exp(t) * img @ loc^T`` with a learnable
  temperature ``t`` (initialised at ``log(1 / 0.07)``, ``exp(t)`` clamped at 100 as in CLIP), symmetric
  cross-entropy over the batch.

Embedding feature sets: ``satclip_location`` (column ``location_embedding``: the location encoder at the survey's
lon/lat — callable at any point, :meth:`SatCLIPNet.locate`) and ``satclip_image`` (``image_embedding``).
Validation: the CLIP loss on held-out surveys in fixed batches (the monitor) and in-batch top-1 retrieval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glc.models.location import real_spherical_harmonics
from glc.models.registry import EncoderSpec, register_encoder
from glc.models.tile_cnn import plane_sets
from glc.params import Param

__all__ = ["SATCLIP_PARAMS", "LocationEncoder", "SatCLIPNet", "SirenLayer", "clip_loss", "clip_logits"]

#: CLIP's initial temperature 0.07 (``t = log(1 / 0.07)``) and its clamp of ``exp(t)``.
CLIP_INIT_T = math.log(1.0 / 0.07)
CLIP_MAX_SCALE = 100.0
CUBE_SETS = ("landsat_dct", "bioclim_dct")


class SirenLayer(nn.Module):
    """``sin(w0 (W z + b))`` with Sitzmann et al.'s init: first layer ``U(-1/in, 1/in)``, others
    ``U(-sqrt(6/in)/w0, sqrt(6/in)/w0)``."""

    def __init__(self, in_features: int, out_features: int, w0: float, first: bool) -> None:
        super().__init__()
        self.w0 = float(w0)
        self.linear = nn.Linear(in_features, out_features)
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / self.w0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, z: Tensor) -> Tensor:
        """``sin(w0 * linear(z))``."""
        return torch.sin(self.w0 * self.linear(z))


class LocationEncoder(nn.Module):
    """(lon, lat) degrees -> spherical harmonics (float64) -> SIREN -> ``[B, dim]``.

    Args:
        sh_degree: ``L`` (``L²`` harmonics).
        hidden: SIREN width.
        n_layers: sine layers (>= 1).
        dim: embedding width.
        w0: SIREN frequency of the first layer (later layers use 1, as Rußwurm et al.'s SH + SIREN).
        dropout: dropout after each sine layer (SatCLIP's SirenNet: 0.5).
    """

    def __init__(
        self,
        sh_degree: int = 40,
        hidden: int = 256,
        n_layers: int = 2,
        dim: int = 256,
        w0: float = 30.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if sh_degree < 1 or hidden < 1 or n_layers < 1 or dim < 1:
            raise ValueError(
                f"LocationEncoder: sh_degree={sh_degree}, hidden={hidden}, n_layers={n_layers}, dim={dim} must be >= 1"
            )
        self.sh_degree = int(sh_degree)
        layers: list[nn.Module] = [SirenLayer(self.sh_degree**2, hidden, w0, first=True), nn.Dropout(dropout)]
        for _ in range(n_layers - 1):
            layers += [SirenLayer(hidden, hidden, 1.0, first=False), nn.Dropout(dropout)]
        self.siren = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, dim)
        self.out_dim = int(dim)

    def forward(self, lon: Tensor, lat: Tensor) -> Tensor:
        """``[B]`` lon, ``[B]`` lat (degrees) -> ``[B, dim]``."""
        if not (torch.isfinite(lon).all() and torch.isfinite(lat).all()):
            raise ValueError("LocationEncoder: non-finite lon/lat; every point needs WGS84 degrees")
        basis = real_spherical_harmonics(lon, lat, self.sh_degree).to(self.out.weight.dtype)
        return self.out(self.siren(basis))


def clip_logits(img: Tensor, loc: Tensor, t: Tensor) -> Tensor:
    """``min(exp(t), 100) * normalize(img) @ normalize(loc)^T`` (``[B, B]``)."""
    scale = t.exp().clamp(max=CLIP_MAX_SCALE)
    return scale * F.normalize(img, dim=-1) @ F.normalize(loc, dim=-1).T


def clip_loss(img: Tensor, loc: Tensor, t: Tensor) -> Tensor:
    """Symmetric InfoNCE of CLIP: ``(CE(logits, i) + CE(logits^T, i)) / 2`` with the matching pair on the diagonal."""
    logits = clip_logits(img, loc, t)
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class SatCLIPNet(nn.Module):
    """Image encoder + location encoder + learnable temperature ``t``.

    Args:
        shape, mean, std: the tile planes' ``(C, k, k)`` and their train statistics.
        loc: the location encoder.
        channels, reduce, augment, backbone: the image encoder (:class:`~glc.models.tile_cnn.TileBranch`).
        cubes: ``{column: (shape, mean, std)}`` of the optional cube series joined to the image encoder.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        mean: np.ndarray,
        std: np.ndarray,
        loc: LocationEncoder,
        channels: Sequence[int] = (64, 128),
        reduce: int = 32,
        augment: bool = True,
        backbone: str = "",
        cubes: Mapping[str, tuple[tuple[int, ...], np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        super().__init__()
        from glc.models.parts import Standardize
        from glc.models.tile_cnn import TileBranch

        dim = loc.out_dim
        self.image_branch = TileBranch(
            ["tile"], [tuple(shape)], [(mean, std)], (), channels, reduce, dim, 0.0, augment, False, 64, backbone
        )
        self.cube_columns = tuple(sorted(cubes or {}))
        self.cube_norms = nn.ModuleDict({c: Standardize(m, s) for c, (_, m, s) in (cubes or {}).items()})
        width = sum(int(np.prod(shp)) for shp, _, _ in (cubes or {}).values())
        self.cube_proj = nn.Linear(width, dim) if width else None
        self.location = loc
        self.t = nn.Parameter(torch.tensor(CLIP_INIT_T))
        self.out_dim = dim

    def image(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Image (+ cube) embedding ``[B, dim]`` (not normalised)."""
        z = self.image_branch({"tile": batch["tile"]})
        if self.cube_proj is not None:
            parts = [self.cube_norms[c](batch[c].float()).flatten(1) for c in self.cube_columns]
            z = z + self.cube_proj(torch.cat(parts, dim=1))
        return z

    def locate(self, lon: Tensor, lat: Tensor) -> Tensor:
        """Location embedding ``[B, dim]`` of any lon/lat (degrees)."""
        return self.location(lon, lat)

    def loss(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The CLIP loss of a batch of ``(tile, lon, lat)`` pairs."""
        return clip_loss(self.image(batch), self.locate(batch["lon"], batch["lat"]), self.t)


#: The ``[encoder]`` table of ``kind = "satclip"``.
SATCLIP_PARAMS: dict[str, Any] = {
    "tiles": Param(
        ["patch_dct"],
        "image encoder: feature sets of DCT planes (C, k, k) stacked as channels (one k)",
        type="list[str]",
        choices=plane_sets,
    ),
    "cubes": Param(
        [],
        "cube series joined to the image encoder: any of landsat_dct, bioclim_dct",
        type="list[str]",
        choices=CUBE_SETS,
    ),
    "channels": Param(
        [64, 128], "image encoder: output channels of the 3x3 conv blocks", type="list[int]", min=1, unique=False
    ),
    "reduce": Param(32, "image encoder: output channels of the 1x1 conv", min=1),
    "augment": Param(True, "image encoder: DCT-domain flips / rotations (training only)"),
    "backbone": Param("", "image encoder: timm model name instead of the conv body (random init)"),
    "sh_degree": Param(
        40, "location encoder: Legendre degree L (L^2 harmonics; SatCLIP uses 10 or 40)", min=1, max=100
    ),
    "hidden": Param(256, "location encoder: SIREN width (SatCLIP: 256)", min=1),
    "n_layers": Param(2, "location encoder: SIREN sine layers", min=1),
    "w0": Param(30.0, "location encoder: SIREN frequency of the first layer", min=0.0, min_exclusive=True),
    "dropout": Param(0.5, "location encoder: dropout after each sine layer (SatCLIP: 0.5)", min=0.0, max=0.95),
    "dim": Param(256, "embedding width of both encoders", min=1),
    "grid_points": Param(
        100_000, "retrieval: location embeddings on a lon/lat grid over the data extent (at least this many)", min=100
    ),
    "heatmap_lonlat": Param(
        [2.35, 48.85], "similarity heatmap: reference lon, lat (degrees)", type="list[float]", unique=False
    ),
}


def build_satclip(enc: Mapping[str, Any], data: Mapping[str, Any]) -> SatCLIPNet:
    """The SatCLIP net of an ``[encoder]`` table for the tile (and cube) shapes/statistics in ``data``."""
    loc = LocationEncoder(
        int(enc["sh_degree"]),
        int(enc["hidden"]),
        int(enc["n_layers"]),
        int(enc["dim"]),
        float(enc["w0"]),
        float(enc["dropout"]),
    )
    cubes = {
        c: (
            tuple(data[f"{c}_shape"]),
            np.asarray(data[f"{c}_mean"], np.float32),
            np.asarray(data[f"{c}_std"], np.float32),
        )
        for c in enc["cubes"]
    }
    return SatCLIPNet(
        tuple(data["tile_shape"]),
        np.asarray(data["tile_mean"], np.float32),
        np.asarray(data["tile_std"], np.float32),
        loc,
        tuple(enc["channels"]),
        int(enc["reduce"]),
        bool(enc["augment"]),
        str(enc["backbone"]),
        cubes,
    )


def check_satclip(enc: Mapping[str, Any]) -> None:
    """The heatmap reference is one (lon, lat) pair in range."""
    ref = enc["heatmap_lonlat"]
    if len(ref) != 2 or not (-180 <= ref[0] <= 180 and -90 <= ref[1] <= 90):
        raise ValueError(f"encoder.heatmap_lonlat = {ref}: expected [lon, lat] in degrees")


register_encoder(
    EncoderSpec(
        "satclip",
        "SatCLIP: spherical harmonics + SIREN location encoder aligned with a patch encoder by a CLIP loss",
        objective="clip",
        params=SATCLIP_PARAMS,
        build=build_satclip,
        embeddings={
            "location_embedding": lambda net, batch: net.locate(batch["lon"], batch["lat"]),
            "image_embedding": lambda net, batch: net.image(batch),
        },
        monitor="val/clip_loss",
        monitor_mode="min",
        check=check_satclip,
    )
)
