"""Multimodal fusion (Tighnari, GLC24 3rd place, 0.362 private): image, time-series, tabular and graph branches fused
by hierarchical cross-attention (``model.kind = "fusion"``), trained by the generic Lightning trainer.

Branches (each optional where the fusion allows it):

* **image** (``image``): the Sentinel-2 patch (R, G, B, NIR) from the ``PatchTiles`` artifact — ``"raw"`` the
  uint8 pixels (``patch_raw``, scaled to [-1, 1]), or ``"dct8"`` / ``"dct16"`` / ``"dct128"`` the 8x8 / 16x16 / full
  128x128 DCT block (``patch_dct`` / ``patch_dct16`` / ``patch_dct128``; the full block is lossless) inverted to an
  image (``D^T c D``, standardised with pixel statistics derived exactly from the coefficient statistics; which of
  raw pixels and the full DCT feeds faster: ``bench/fusion_feed.py``); resized to ``image_size`` (Tighnari: 128 -> 224),
  dihedral flips / rotations per sample in training, then a timm ``backbone`` (``swin_tiny_patch4_window7_224``,
  ``efficientnet_b0``, ``resnet18``; 4-channel first conv; random init, or ``weights`` from a local file). The fusion
  reads its last feature map as **tokens**.
* **time series** (``cubes``): each cube set (``landsat_cube`` (6, 4, 20), ``bioclim_cube`` (4, 18, 12)),
  standardised per element with the train statistics, through a temporal Swin (:mod:`glc.models.temporal_swin`,
  ``cube_encoder = "swin"``) or the organizers' ResNet18 cube branch (:mod:`glc.models.cube_resnet`,
  ``cube_encoder = "resnet18"``: the ablation baseline) to a ``latent`` vector; the cubes' vectors are concatenated.
* **tabular** (``[model.tabular]``): the cleaned env vector (``env``, standardised), the metadata (one-hot region
  and country, the year, the plot's area and location uncertainty from the ``plot`` feature set) and optionally a
  multi-scale sinusoidal encoding of the location, through an MLP (``hidden`` -> ``latent``).
* **graph** (``[model.graph]``): the graph feature vector (``gfv``, out of fold with the model's own folds) compressed
  by one ``Linear`` into ``tokens`` tokens of ``width``.

Fusion (``fusion``): ``"hcam"`` — :class:`glc.models.hcam.HCAM` (time series and tabular attend to two projections of
the image tokens; the three-modal vector attends to the graph tokens; concat -> linear); ``"concat"`` — the
baseline: every branch's vector (the image's pooled tokens projected to ``latent``) concatenated, then ``ReLU ->
Dropout -> Linear``.

Mixup (``[train] mixup_alpha``) mixes *every* input: :meth:`FusionNet.prepare` turns a loader batch into float
tensors (decoded, standardised, augmented, one-hot encoded), :class:`glc.training.module.MultiLabelModule` mixes them
and the labels with one ``(lambda, permutation)``, and :meth:`FusionNet.forward_prepared` runs the branches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glc.features.dct import N_DIHEDRAL, dct_matrix, dihedral, image_dihedral
from glc.models.cube_resnet import CubeResNet
from glc.models.hcam import HCAM
from glc.models.location import CoordinateNoise, SinusoidalEncoder, XYEncoder
from glc.models.parts import FusionHead, Standardize, TimmBackbone, check_columns
from glc.models.registry import ModelSpec, register
from glc.models.temporal_swin import CUBE_LAYOUTS, TemporalSwin
from glc.params import Param

__all__ = ["FUSION_PARAMS", "IMAGE_SETS", "FusionNet", "build_fusion", "fusion_features"]

#: ``image`` setting -> the feature set holding the patch.
IMAGE_SETS: dict[str, str] = {"raw": "patch_raw", "dct8": "patch_dct", "dct16": "patch_dct16", "dct128": "patch_dct128"}
#: Year encoding: ``(year - YEAR_CENTRE) / YEAR_SCALE`` (0 and a 0 flag for an unknown year).
YEAR_CENTRE, YEAR_SCALE = 2019.0, 2.0
#: Swin-like timm backbones are built for one input size (``img_size``); other backbones take any size.
_FIXED_SIZE_PREFIXES = ("swin", "vit", "deit")


# ------------------------------------------------------------------------------------------------ branches
class ImageBranch(nn.Module):
    """Patch -> float image (``prepare``) -> timm backbone tokens ``[B, N, C]`` / pooled vector.

    Args:
        column: the batch key of the patch (``patch_raw`` uint8 ``[B, 4, 128, 128]`` or ``patch_dct*`` coefficients).
        source: ``"raw"``, ``"dct8"`` or ``"dct16"``.
        shape: the column's per-row shape.
        stats: train ``(mean, std)`` of the coefficients (DCT sources; None for raw pixels).
        backbone, weights: the timm network and an optional local weights file.
        image_size: side of the image the backbone sees.
        augment: dihedral flips / rotations per sample in training.
        latent: width of the pooled vector's projection (0 = tokens only, for HCAM).
        dropout: before that projection.
    """

    def __init__(
        self,
        column: str,
        source: str,
        shape: Sequence[int],
        stats: tuple[np.ndarray, np.ndarray] | None,
        backbone: str,
        weights: str,
        image_size: int,
        augment: bool,
        latent: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"model.image = {source!r}: column {column!r} has shape {list(shape)}, expected (C, k, k)")
        self.column, self.source = column, source
        self.channels, self.k = int(shape[0]), int(shape[1])
        self.image_size = int(image_size)
        self.augment = bool(augment)
        if source == "raw":
            self.norm: nn.Module = nn.Identity()
        else:
            if stats is None:
                raise ValueError(
                    f"model.image = {source!r}: the model-input table has "
                    f"no statistics for {column!r}; rebuild ModelInputs"
                )
            from glc.models.tile_cnn import pixel_stats

            self.register_buffer(
                "basis", torch.as_tensor(dct_matrix(self.image_size, self.k, np.float32).copy()), persistent=False
            )
            m, s = (np.asarray(a, np.float32).reshape(shape) for a in stats)
            self.norm = Standardize(*pixel_stats(m, s, self.image_size))
        fixed = backbone.startswith(_FIXED_SIZE_PREFIXES)
        self.backbone = TimmBackbone(
            backbone, self.channels, int(latent), weights, dropout, img_size=self.image_size if fixed else None
        )
        self.num_features = self.backbone.num_features

    def prepare(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The standardised (and, in training, augmented) image ``[B, C, S, S]``."""
        check_columns(batch, (self.column,), "ImageBranch")
        x = batch[self.column]
        ops = torch.randint(0, N_DIHEDRAL, (x.shape[0],), device=x.device) if self.training and self.augment else None
        if self.source == "raw":
            img = x.float() / 127.5 - 1.0
            if img.shape[-1] != self.image_size:
                img = F.interpolate(
                    img,
                    size=(self.image_size, self.image_size),
                    mode="bilinear",
                    align_corners=False,
                    antialias=img.shape[-1] > self.image_size,
                )
            return img if ops is None else image_dihedral(img, ops)
        c = x.float()
        if ops is not None:
            c = dihedral(c, ops)  # exact in the DCT domain, before the inverse
        return self.norm(torch.einsum("uh,bcuv,vw->bchw", self.basis, c, self.basis))

    def tokens(self, image: Tensor) -> Tensor:
        """``[B, N, num_features]``."""
        return self.backbone.tokens(image)


class CubeBranch(nn.Module):
    """A cube column -> per-element standardisation -> temporal Swin or ResNet18 cube encoder -> ``[B, latent]``."""

    def __init__(
        self,
        column: str,
        shape: Sequence[int],
        stats: tuple[np.ndarray, np.ndarray],
        encoder: str,
        latent: int,
        swin: Mapping[str, Any],
        dropout: float,
    ) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"model.cubes: {column!r} has shape {list(shape)}, expected (C, H, W)")
        self.column = column
        self.norm = Standardize(*(np.asarray(a, np.float32).reshape(shape) for a in stats))
        c, h, w = (int(v) for v in shape)
        if encoder == "swin":
            key = column.split("_")[0]
            self.encoder: nn.Module = TemporalSwin(
                c,
                (h, w),
                swin[f"{key}_patch"],
                swin[f"{key}_window"],
                int(swin["embed_dim"]),
                swin["depths"],
                swin["heads"],
                int(latent),
                float(swin["mlp_ratio"]),
                float(swin["drop_path"]),
                dropout,
                str(swin["position_bias"]),
            )
        else:
            self.encoder = CubeResNet(c, (h, w), int(latent), "resnet18", dropout)
        self.out_dim = int(latent)

    def prepare(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The standardised cube ``[B, C, H, W]``."""
        check_columns(batch, (self.column,), "CubeBranch")
        return self.norm(batch[self.column].float())

    def forward(self, cube: Tensor) -> Tensor:
        """``[B, latent]``."""
        return self.encoder(cube)


class TabularBranch(nn.Module):
    """env + one-hot region/country + year + plot (+ location encoding) -> MLP -> ``[B, latent]``.

    Args:
        cfg: the ``[model.tabular]`` table.
        meta: the model-input table's ``meta.json`` (env width, region/country counts, plot statistics).
        latent: output width.
        dropout: between the MLP's layers.
    """

    def __init__(self, cfg: Mapping[str, Any], meta: Mapping[str, Any], latent: int, dropout: float) -> None:
        super().__init__()
        from glc.loaders.tables import column_stats

        cols = meta["columns"]
        self.use_env, self.use_plot, self.use_meta = bool(cfg["env"]), bool(cfg["plot"]), bool(cfg["meta"])
        self.n_regions, self.n_countries = int(meta["n_regions"]), int(meta["n_countries"])
        width = 0
        if self.use_env:
            width += int(cols["env"]["shape"][0])
        if self.use_plot:
            st = column_stats(meta, "plot")
            if st is None:
                raise ValueError("the model-input table has no statistics for 'plot'; rebuild ModelInputs")
            self.plot_norm = Standardize(*st)
            width += int(cols["plot"]["shape"][0])
        if self.use_meta:
            width += self.n_regions + self.n_countries + 2
        self.location = str(cfg["location"])
        if self.location != "none":
            self.noise = CoordinateNoise(float(cfg["coord_noise_km"]))
            self.encoder: nn.Module = (
                XYEncoder()
                if self.location == "xy"
                else SinusoidalEncoder(int(cfg["n_scales"]), float(cfg["min_scale_km"]), float(cfg["max_scale_km"]))
            )
            width += int(self.encoder.out_dim)
        if width == 0:
            raise ValueError("model.tabular: no input selected (env, plot, meta and location are all off)")
        self.in_dim = width
        hidden = int(cfg["hidden"])
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, int(latent))
        )
        self.out_dim = int(latent)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Batch keys read."""
        keys = (("env",) if self.use_env else ()) + (("plot",) if self.use_plot else ())
        keys += ("region", "country", "year") if self.use_meta else ()
        return keys + (("x", "y") if self.location != "none" else ())

    def prepare(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The float input vector ``[B, in_dim]`` (coordinate noise applied in training)."""
        check_columns(batch, self.input_columns, "TabularBranch")
        parts: list[Tensor] = []
        if self.use_env:
            parts.append(batch["env"].float())
        if self.use_plot:
            parts.append(self.plot_norm(batch["plot"].float()))
        if self.use_meta:
            region, country = batch["region"].long(), batch["country"].long()
            for name, codes, n in (("region", region, self.n_regions), ("country", country, self.n_countries)):
                if bool(((codes < 0) | (codes >= n)).any()):
                    raise ValueError(f"batch[{name!r}] has codes outside 0..{n - 1}; the table and meta.json disagree")
            year = batch["year"].double()
            known = year > 0
            parts += [
                F.one_hot(region, self.n_regions).float(),
                F.one_hot(country, self.n_countries).float(),
                torch.where(known, (year - YEAR_CENTRE) / YEAR_SCALE, torch.zeros_like(year)).float().unsqueeze(-1),
                known.float().unsqueeze(-1),
            ]
        if self.location != "none":
            x, y, _, _ = self.noise(batch["x"], batch["y"])
            parts.append(self.encoder(x, y).float())
        v = torch.cat(parts, dim=-1)
        if not bool(torch.isfinite(v).all()):
            raise ValueError(
                "TabularBranch: non-finite values in the tabular inputs "
                "(env / plot / location); fix the model-input table"
            )
        return v

    def forward(self, v: Tensor) -> Tensor:
        """``[B, latent]``."""
        return self.mlp(v)


class GraphBranch(nn.Module):
    """The dense GFV ``[B, C]`` compressed by one ``Linear`` into ``tokens`` tokens of ``width``:
    ``[B, tokens, width]``."""

    def __init__(self, in_dim: int, tokens: int, width: int) -> None:
        super().__init__()
        self.tokens, self.width = int(tokens), int(width)
        self.proj = nn.Linear(int(in_dim), self.tokens * self.width)
        self.in_dim = int(in_dim)

    def prepare(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The GFV ``[B, C]`` (float)."""
        check_columns(batch, ("gfv",), "GraphBranch")
        g = batch["gfv"].float()
        if g.dim() != 2 or g.shape[1] != self.in_dim:
            raise ValueError(f"batch['gfv'] has shape {tuple(g.shape)}, expected [B, {self.in_dim}] (meta.json)")
        return g

    def forward(self, g: Tensor) -> Tensor:
        """``[B, tokens, width]``."""
        return self.proj(g).view(g.shape[0], self.tokens, self.width)


# ------------------------------------------------------------------------------------------------ the net
class FusionNet(nn.Module):
    """The multimodal net (see the module docstring): ``forward(batch) = forward_prepared(prepare(batch))``.

    Args:
        model_cfg: the resolved ``[model]`` table of ``kind = "fusion"``.
        meta: the model-input table's ``meta.json``.
    """

    def __init__(self, model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        super().__init__()
        from glc.loaders.tables import column_shape, column_stats

        m = model_cfg
        latent, dropout = int(m["latent"]), float(m["dropout"])
        self.fusion = str(m["fusion"])
        self.num_classes = int(meta["num_classes"])
        self.image: ImageBranch | None = None
        if m["image"] != "none":
            col = IMAGE_SETS[m["image"]]
            self.image = ImageBranch(
                col,
                m["image"],
                column_shape(meta, col),
                column_stats(meta, col),
                str(m["backbone"]),
                str(m["weights"]),
                int(m["image_size"]),
                bool(m["augment"]),
                latent if self.fusion == "concat" else 0,
                dropout,
            )
        self.cubes = nn.ModuleDict(
            {
                c: CubeBranch(
                    c, column_shape(meta, c), _stats(meta, c), str(m["cube_encoder"]), latent, m["swin"], dropout
                )
                for c in m["cubes"]
            }
        )
        self.tabular = TabularBranch(m["tabular"], meta, latent, dropout) if m["tabular"]["enabled"] else None
        g = m["graph"]
        self.graph = (
            GraphBranch(int(meta["columns"]["gfv"]["shape"][0]), int(g["tokens"]), int(g["width"]))
            if g["enabled"]
            else None
        )
        series_dim = sum(b.out_dim for b in self.cubes.values())
        if self.fusion == "hcam":
            if self.image is None or not self.cubes or self.tabular is None:
                raise ValueError("model.fusion = 'hcam' needs the image, at least one cube and the tabular branch")
            self.head: nn.Module = HCAM(
                self.image.num_features,
                series_dim,
                self.tabular.out_dim,
                self.graph.width if self.graph else 0,
                self.num_classes,
                int(m["dim"]),
                int(m["heads"]),
                dropout,
                str(m["hcam_activation"]),
            )
        else:
            width = (latent if self.image else 0) + series_dim + (self.tabular.out_dim if self.tabular else 0)
            width += self.graph.tokens * self.graph.width if self.graph else 0
            if width == 0:
                raise ValueError("model: every branch is off (image none, no cubes, tabular and graph disabled)")
            self.head = FusionHead(width, self.num_classes, dropout)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Batch keys the branches read."""
        keys: list[str] = [self.image.column] if self.image else []
        keys += list(self.cubes)
        keys += list(self.tabular.input_columns) if self.tabular else []
        keys += ["gfv"] if self.graph else []
        return tuple(dict.fromkeys(keys))

    @property
    def po_input_columns(self) -> tuple[str, ...]:
        """The batch keys a presence-only site can feed: the image branch's patch (a PO site has no time series, env
        vector or graph features; :mod:`glc.training.po_pretrain`)."""
        return (self.image.column,) if self.image is not None else ()

    @property
    def po_feature_dim(self) -> int | None:
        """Width of :meth:`po_features` (None without an image branch)."""
        return self.image.backbone.out_dim if self.image is not None else None

    def po_features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The image branch's pooled vector ``[B, po_feature_dim]`` of a batch of PO sites (their patches): the
        objective's PO head reads it, so the PO sites train the image backbone (and, with ``fusion = "concat"``, its
        projection) and never the fusion's head."""
        if self.image is None:
            raise ValueError("FusionNet.po_features: model.image = 'none'; the PO sites need the image branch")
        return self.image.backbone.proj(self.image.tokens(self.image.prepare(batch)).mean(dim=1))

    def prepare(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every input as a float tensor (decoded, standardised, augmented, one-hot): the tensors mixup mixes."""
        out: dict[str, Tensor] = {}
        if self.image is not None:
            out["image"] = self.image.prepare(batch)
        for name, branch in self.cubes.items():
            out[name] = branch.prepare(batch)
        if self.tabular is not None:
            out["tabular"] = self.tabular.prepare(batch)
        if self.graph is not None:
            out["gfv"] = self.graph.prepare(batch)
        return out

    def forward_prepared(self, x: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, num_classes]`` from :meth:`prepare`'s tensors."""
        series = [branch(x[name]) for name, branch in self.cubes.items()]
        tab = self.tabular(x["tabular"]) if self.tabular is not None else None
        graph = self.graph(x["gfv"]) if self.graph is not None else None
        if self.fusion == "hcam":
            assert self.image is not None and tab is not None
            return self.head(self.image.tokens(x["image"]), torch.cat(series, dim=-1), tab, graph)
        parts = []
        if self.image is not None:
            parts.append(self.image.backbone.proj(self.image.tokens(x["image"]).mean(dim=1)))
        parts += series
        parts += [tab] if tab is not None else []
        parts += [graph.flatten(1)] if graph is not None else []
        return self.head(torch.cat(parts, dim=-1))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, num_classes]`` of a loader batch."""
        return self.forward_prepared(self.prepare(batch))


def _stats(meta: Mapping[str, Any], column: str) -> tuple[np.ndarray, np.ndarray]:
    from glc.loaders.tables import column_stats

    st = column_stats(meta, column)
    if st is None:
        raise ValueError(
            f"the model-input table has no statistics for {column!r} "
            f"(meta.json columns.{column}.stats); rebuild ModelInputs"
        )
    return st


# ------------------------------------------------------------------------------------------------ registry
SWIN_PARAMS: dict[str, Param] = {
    "embed_dim": Param(96, "width of stage 1 (doubled by each patch merging)", min=1),
    "depths": Param([2, 6], "blocks per stage (Tighnari: 2 and 6)", type="list[int]", min=1, unique=False),
    "heads": Param([12, 24], "attention heads per stage (Tighnari: 12 and 24)", type="list[int]", min=1, unique=False),
    "mlp_ratio": Param(4.0, "MLP width of the blocks relative to the stage width", min=0.0, min_exclusive=True),
    "drop_path": Param(0.1, "stochastic depth rate", min=0.0, max=0.9),
    "position_bias": Param("1d", "1d (Tighnari: over the flattened window) | 2d (Swin's)", choices=("1d", "2d")),
    "landsat_patch": Param(
        list(CUBE_LAYOUTS["landsat_cube"][0]), "Landsat (4 x 20) patch size", type="list[int]", min=1, unique=False
    ),
    "landsat_window": Param(
        list(CUBE_LAYOUTS["landsat_cube"][1]), "Landsat window", type="list[int]", min=1, unique=False
    ),
    "bioclim_patch": Param(
        list(CUBE_LAYOUTS["bioclim_cube"][0]), "bioclim (18 x 12) patch size", type="list[int]", min=1, unique=False
    ),
    "bioclim_window": Param(
        list(CUBE_LAYOUTS["bioclim_cube"][1]), "bioclim window", type="list[int]", min=1, unique=False
    ),
}
TABULAR_PARAMS: dict[str, Param] = {
    "enabled": Param(True, "the tabular branch"),
    "env": Param(True, "the cleaned environmental vector (EnvFeatures)"),
    "plot": Param(True, "plot area and location uncertainty (the plot feature set)"),
    "meta": Param(True, "one-hot region and country, the year"),
    "location": Param(
        "sinusoidal",
        "none | xy | sinusoidal: an encoding of the EPSG:3035 location",
        choices=("none", "xy", "sinusoidal"),
    ),
    "n_scales": Param(8, "sinusoidal: number of wavelengths", min=1),
    "min_scale_km": Param(50.0, "sinusoidal: smallest wavelength", min=0.0, min_exclusive=True),
    "max_scale_km": Param(2000.0, "sinusoidal: largest wavelength", min=0.0, min_exclusive=True),
    "coord_noise_km": Param(5.0, "mean coordinate noise in training (0 = off)", min=0.0),
    "hidden": Param(512, "hidden width of the MLP", min=1),
}
GRAPH_PARAMS: dict[str, Param] = {
    "enabled": Param(True, "the graph branch (the gfv feature set)"),
    "tokens": Param(4, "tokens the compressed GFV is reshaped into (HCAM keys/values; 1 for concat)", min=1),
    "width": Param(128, "width of each token", min=1),
}
#: The ``[model]`` table of ``kind = "fusion"``.
FUSION_PARAMS: dict[str, Any] = {
    "fusion": Param("hcam", "hcam (hierarchical cross-attention) | concat (baseline)", choices=("hcam", "concat")),
    "latent": Param(256, "width of each branch vector (cubes, tabular; the image's in concat)", min=1),
    "dim": Param(256, "HCAM attention width d (the three-modal vector is 2d)", min=1),
    "heads": Param(8, "HCAM attention heads (divides dim)", min=1),
    "hcam_activation": Param(
        "none", "none (the paper: concat -> linear) | gelu before HCAM's output layer", choices=("none", "gelu")
    ),
    "dropout": Param(0.1, "dropout in the branches' heads, the MLP and the fusion", min=0.0, max=0.95),
    "image": Param(
        "raw",
        "none | raw (patch_raw pixels) | dct8 / dct16 / dct128 (patch_dct / patch_dct16 / patch_dct128 inverted)",
        choices=("none", *IMAGE_SETS),
    ),
    "backbone": Param(
        "swin_tiny_patch4_window7_224", "timm image backbone (swin_tiny_patch4_window7_224, efficientnet_b0, resnet18)"
    ),
    "image_size": Param(224, "side of the image the backbone sees (Tighnari: 128 -> 224)", min=8),
    "weights": Param("", "local weights file for the image backbone (nothing is downloaded)"),
    "augment": Param(True, "dihedral flips / rotations of the image in training"),
    "cubes": Param(
        ["landsat_cube", "bioclim_cube"], "time-series cubes", type="list[str]", choices=tuple(CUBE_LAYOUTS)
    ),
    "cube_encoder": Param(
        "swin", "swin (temporal Swin) | resnet18 (the organizers' baseline branch)", choices=("swin", "resnet18")
    ),
    "swin": SWIN_PARAMS,
    "tabular": TABULAR_PARAMS,
    "graph": GRAPH_PARAMS,
}


def fusion_features(model_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Feature sets the configured net reads besides location/meta."""
    m = model_cfg
    out = [IMAGE_SETS[m["image"]]] if m["image"] != "none" else []
    out += list(m["cubes"])
    t = m["tabular"]
    if t["enabled"]:
        out += (["env"] if t["env"] else []) + (["plot"] if t["plot"] else [])
    out += ["gfv"] if m["graph"]["enabled"] else []
    return tuple(out)


def check_fusion(model_cfg: Mapping[str, Any]) -> None:
    """Cross-field checks at experiment load."""
    m = model_cfg
    if m["fusion"] == "hcam":
        missing = [
            n
            for n, ok in (
                ("image", m["image"] != "none"),
                ("cubes", bool(m["cubes"])),
                ("tabular", m["tabular"]["enabled"]),
            )
            if not ok
        ]
        if missing:
            raise ValueError(
                "model.fusion = 'hcam' attends from the time series "
                f"and the tabular vector to the image: enable {missing}"
            )
        if m["dim"] % m["heads"]:
            raise ValueError(f"model.heads = {m['heads']} must divide model.dim = {m['dim']}")
        if m["graph"]["enabled"] and (2 * m["dim"]) % m["heads"]:
            raise ValueError(f"model.heads = {m['heads']} must divide 2 * model.dim = {2 * m['dim']}")
    s = m["swin"]
    if len(s["depths"]) != len(s["heads"]):
        raise ValueError(f"model.swin.depths {s['depths']} and model.swin.heads {s['heads']} need one entry per stage")
    for i, h in enumerate(s["heads"]):
        if (s["embed_dim"] * 2**i) % h:
            raise ValueError(f"model.swin.heads[{i}] = {h} does not divide the stage width {s['embed_dim'] * 2**i}")
    for key in ("landsat_patch", "landsat_window", "bioclim_patch", "bioclim_window"):
        if len(s[key]) != 2:
            raise ValueError(f"model.swin.{key} = {s[key]} must be [height, width]")
    t = m["tabular"]
    if t["enabled"] and not (t["env"] or t["plot"] or t["meta"] or t["location"] != "none"):
        raise ValueError("model.tabular is enabled with no input (env, plot, meta, location); disable it or pick one")
    if t["min_scale_km"] > t["max_scale_km"]:
        raise ValueError(f"model.tabular.min_scale_km = {t['min_scale_km']} > max_scale_km = {t['max_scale_km']}")
    if m["weights"] and m["image"] == "none":
        raise ValueError("model.weights is for the image backbone, but model.image = 'none'")
    if m["image"] == "none" and not m["cubes"] and not t["enabled"] and not m["graph"]["enabled"]:
        raise ValueError("model: every branch is off")


def build_fusion(model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> FusionNet:
    """The fusion net of a ``[model]`` table for a model-input table's ``meta.json``."""
    return FusionNet(model_cfg, meta)


register(
    ModelSpec(
        "fusion",
        "Tighnari multimodal fusion: temporal Swin on cubes, timm image backbone, tabular and graph branches, "
        "HCAM or concat fusion (Lightning)",
        runner="lightning",
        params=FUSION_PARAMS,
        features=fusion_features,
        build_net=build_fusion,
        check=check_fusion,
        po_features=lambda m: None if m["image"] == "none" else (IMAGE_SETS[m["image"]],),
    )
)
