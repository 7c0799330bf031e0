"""DS@GT's tile CNN (working note §5.2.1) on DCT coefficient planes from the parquet, as a registered model kind.

Input: the ``k x k`` DCT coefficient planes of the chosen bands, stacked as channels: any feature set whose column
is ``(C, k, k)`` (``patch_dct``: Sentinel-2 R, G, B, NIR; ``raster_<group>``: every band of an environmental raster
group, e.g. land cover; several sets with the same ``k`` are concatenated), optionally a subset of the stacked
channels (``bands``, 0-based; e.g. land cover bands 9-11 are ``[8, 9, 10]``).

Per sample, in this order:

1. **Augmentation** (training only, ``augment``): one of the 8 dihedral operations (flips, transpose, 90/180/270
   degree turns) drawn per sample and applied **in the DCT domain** (:func:`glc.features.dct.dihedral`, exactly the
   DCT of the same operation on the image);
2. **IDCT** (``idct = true``): the coefficients are turned back into an ``idct_size x idct_size`` multi-band image
   (the low-pass reconstruction ``D^T c D`` with the orthonormal DCT basis), standardised per channel with pixel
   statistics derived exactly from the coefficient statistics (pixel mean ``E[c00] / S``, mean square
   ``E[sum c^2] / S^2``); otherwise the coefficients are standardised per element with the train-split
   statistics of ``meta.json``;
3. **Body**: blocks of ``3x3 conv (padding 1) + BatchNorm + ReLU`` (each followed by a 2x2 max-pool on IDCT
   images), a ``1x1`` conv, ``Linear`` to a ``latent``-d vector (:class:`glc.models.parts.ConvBody`); or, with
   ``backbone``, a timm network with its first conv adapted to the channel count (random init, or ``weights`` from
   a local file);
   With ``init_encoder`` (an encoder of ``tasks/encoders/``, e.g. ``tile2vec``) the tile branch starts from that
   pretrained encoder's weights (full fine-tuning; its tiles and body settings must match);
4. **Head**: ``ReLU -> Dropout -> Linear`` to the species (:class:`glc.models.parts.FusionHead`). With a
   ``[model.location]`` encoder the latent is concatenated with the geolocation encoder's latent first
   (``tile-cnn-geo``: the plot's habitat from the patch plus its place).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glc.features.dct import N_DIHEDRAL, dct_matrix, dihedral
from glc.features.sets import FEATURE_SETS
from glc.models.geolocation import LOCATION_PARAMS, check_location, location_extras, location_features
from glc.models.parts import ConvBody, FusionNet, Standardize, TimmBackbone, check_columns, set_inputs, with_location
from glc.models.registry import ModelSpec, register
from glc.params import Param

__all__ = ["TILE_PARAMS", "TileBranch", "build_tile_cnn", "pixel_stats", "plane_sets"]


def plane_sets() -> tuple[str, ...]:
    """Feature sets with one float column of shape ``(C, k, k)`` (open C allowed)."""
    return tuple(
        n
        for n, fs in FEATURE_SETS.items()
        if len(fs.columns) == 1
        and fs.columns[0].dtype == "float32"
        and len(fs.columns[0].shape) == 3
        and fs.columns[0].shape[1] == fs.columns[0].shape[2]
    )


def pixel_stats(mean: np.ndarray, std: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``size x size`` IDCT images from per-coefficient statistics ``(C, k, k)``.

    For ``x = D^T c D`` (orthonormal rows of the ``size``-point DCT), the pixel mean is ``c[0, 0] / size`` and the
    mean of ``x^2`` over the pixels is ``sum(c^2) / size^2`` (Parseval), so over surveys and pixels
    ``E[x] = E[c00] / S`` and ``E[x^2] = sum_uv (std_uv^2 + mean_uv^2) / S^2``.

    Returns:
        ``(mean, std)``, each ``(C, 1, 1)`` float32 (std floored at 1e-6 of the mean's scale, never 0).
    """
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    m = mean[:, 0, 0] / size
    ex2 = ((std**2 + mean**2).sum(axis=(1, 2))) / size**2
    s = np.sqrt(np.maximum(ex2 - m**2, 0.0))
    s = np.where(s > 1e-6 * np.maximum(1.0, np.abs(m)), s, 1.0)
    return m.reshape(-1, 1, 1).astype(np.float32), s.reshape(-1, 1, 1).astype(np.float32)


class TileBranch(nn.Module):
    """Stacked DCT planes -> (augment) -> (IDCT) -> standardise -> band subset -> conv body / timm -> ``[B, latent]``.

    Args:
        columns: batch keys of the plane columns, each ``[B, C_i, k, k]``.
        shapes: their per-row shapes ``(C_i, k, k)`` (one ``k`` for all).
        stats: their train ``(mean, std)`` arrays of those shapes (``meta.json``).
        bands: stacked channels to keep (0-based; empty = all).
        channels, reduce, latent, dropout: the conv body (:class:`~glc.models.parts.ConvBody`).
        augment: per-sample DCT-domain dihedral augmentation in training.
        idct: reconstruct ``idct_size`` images first (and max-pool after each conv block).
        idct_size: the image side.
        backbone: a timm model name instead of the conv body ("" = the conv body).
        weights: local weights file for the backbone.

    Raises:
        ValueError: naming the setting, for inconsistent shapes, a band outside the channels, missing statistics.
    """

    def __init__(
        self,
        columns: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        stats: Sequence[tuple[np.ndarray, np.ndarray]],
        bands: Sequence[int] = (),
        channels: Sequence[int] = (64, 128),
        reduce: int = 32,
        latent: int = 256,
        dropout: float = 0.0,
        augment: bool = True,
        idct: bool = False,
        idct_size: int = 128,
        backbone: str = "",
        weights: str = "",
    ) -> None:
        super().__init__()
        if not columns:
            raise ValueError("model.tiles: name at least one feature set of DCT planes")
        ks = {int(s[-1]) for s in shapes}
        if len(ks) != 1 or any(len(s) != 3 or s[1] != s[2] for s in shapes):
            raise ValueError(
                f"model.tiles {list(columns)}: planes must all be (C, k, k) "
                f"with one k, got {[tuple(s) for s in shapes]}"
            )
        self.columns = tuple(columns)
        self.k = ks.pop()
        n_in = sum(int(s[0]) for s in shapes)
        bad = [b for b in bands if not 0 <= int(b) < n_in]
        if bad:
            raise ValueError(
                f"model.bands {list(bands)}: {bad} outside the {n_in} stacked channels of {list(columns)} (0-based)"
            )
        self.register_buffer(
            "bands", torch.as_tensor(list(bands) or list(range(n_in)), dtype=torch.int64), persistent=False
        )
        mean = np.concatenate([np.asarray(m, np.float32).reshape(s) for (m, _), s in zip(stats, shapes)])
        std = np.concatenate([np.asarray(d, np.float32).reshape(s) for (_, d), s in zip(stats, shapes)])
        self.augment = bool(augment)
        self.idct = bool(idct)
        if self.idct:
            if idct_size < self.k:
                raise ValueError(f"model.idct_size = {idct_size} is smaller than the coefficient block k = {self.k}")
            self.register_buffer(
                "basis", torch.as_tensor(dct_matrix(int(idct_size), self.k, np.float32).copy()), persistent=False
            )
            self.norm = Standardize(*pixel_stats(mean, std, int(idct_size)))
            size = int(idct_size)
        else:
            self.norm = Standardize(mean, std)
            size = self.k
        n_sel = len(self.bands)
        if backbone:
            self.body: nn.Module = TimmBackbone(backbone, n_sel, latent, weights, dropout)
        else:
            if weights:
                raise ValueError("model.weights is for a timm backbone; set model.backbone or leave weights empty")
            self.body = ConvBody(n_sel, size, channels, reduce, latent, pool=self.idct, dropout=dropout)
        self.out_dim = int(latent)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The plane columns."""
        return self.columns

    def planes(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The stacked raw coefficient planes ``[B, C, k, k]`` (augmented in training mode)."""
        check_columns(batch, self.columns, "TileBranch")
        x = torch.cat([batch[c].float() for c in self.columns], dim=1)
        if x.dim() != 4 or x.shape[-1] != self.k or x.shape[-2] != self.k:
            raise ValueError(f"TileBranch: planes {tuple(x.shape)} are not [B, C, {self.k}, {self.k}]")
        if self.training and self.augment:
            ops = torch.randint(0, N_DIHEDRAL, (x.shape[0],), device=x.device)
            x = dihedral(x, ops)
        return x

    def images(self, planes: Tensor) -> Tensor:
        """``D^T c D``: ``[B, C, k, k]`` coefficients -> ``[B, C, S, S]`` images (S = ``idct_size``)."""
        return torch.einsum("uh,bcuv,vw->bchw", self.basis, planes, self.basis)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, latent]``."""
        x = self.planes(batch)
        if self.idct:
            x = self.images(x)
        x = self.norm(x).index_select(1, self.bands)
        return self.body(x)


#: The ``[model]`` table of ``kind = "tile_cnn"``.
TILE_PARAMS: dict[str, Any] = {
    "tiles": Param(
        ["patch_dct"],
        "feature sets of DCT coefficient planes (C, k, k), stacked as channels",
        type="list[str]",
        choices=plane_sets,
    ),
    "bands": Param([], "stacked channels to keep, 0-based ([] = all)", type="list[int]", min=0),
    "channels": Param([64, 128], "output channels of the 3x3 conv blocks", type="list[int]", min=1, unique=False),
    "reduce": Param(32, "output channels of the 1x1 conv", min=1),
    "latent": Param(256, "width of the tile latent", min=1),
    "dropout": Param(0.2, "dropout before the latent and before the species layer", min=0.0, max=0.95),
    "augment": Param(True, "DCT-domain flips / rotations per sample (training only)"),
    "idct": Param(False, "reconstruct idct_size x idct_size images from the coefficients first (and pool in the body)"),
    "idct_size": Param(128, "side of the IDCT images", min=4),
    "backbone": Param("", "timm model name (efficientnet_b0, resnet18, ...) instead of the conv body; random init"),
    "weights": Param("", "local weights file for the backbone (nothing is downloaded)"),
    "init_encoder": Param(
        "", "start the tile branch from this pretrained encoder of tasks/encoders/ (tile2vec; full fine-tuning)"
    ),
    "location": LOCATION_PARAMS,
}


def build_tile_cnn(model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> FusionNet:
    """The tile CNN (+ optional location branch) of a ``[model]`` table for a model-input table's ``meta.json``."""
    m = model_cfg
    tile = TileBranch(
        *set_inputs(meta, m["tiles"]),
        m["bands"],
        m["channels"],
        int(m["reduce"]),
        int(m["latent"]),
        float(m["dropout"]),
        bool(m["augment"]),
        bool(m["idct"]),
        int(m["idct_size"]),
        str(m["backbone"]),
        str(m["weights"]),
    )
    path = (meta.get("pretrained") or {}).get(m["init_encoder"]) if m["init_encoder"] else None
    if path:
        load_pretrained_branch(tile, path, m)
    return with_location("tile", tile, m, meta)


def load_pretrained_branch(tile: TileBranch, path: str, m: Mapping[str, Any]) -> None:
    """Copy a tile2vec encoder file's tile-branch weights into ``tile`` (the same tiles and body are required).

    The statistics buffers (``norm``) are the model-input table's own; every other tensor must match by name and shape.

    Raises:
        ValueError: naming the encoder and the first mismatch (tiles, or a tensor's shape).
    """
    state = torch.load(path, map_location="cpu", weights_only=False)
    enc = state["cfg"]["encoder"]
    if state.get("kind") != "tile2vec":
        raise ValueError(
            f"model.init_encoder = {m['init_encoder']!r} is a {state.get('kind')!r} "
            "encoder; the tile branch starts from tile2vec only"
        )
    if list(enc["tiles"]) != list(m["tiles"]):
        raise ValueError(
            f"model.init_encoder = {m['init_encoder']!r} was pretrained on "
            f"tiles {enc['tiles']}, model.tiles is {m['tiles']}; they must match"
        )
    own = tile.state_dict()
    src = {
        k.removeprefix("branch."): v
        for k, v in state["state_dict"].items()
        if k.startswith("branch.") and not k.startswith("branch.norm.")
    }
    bad = [k for k, v in src.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise ValueError(
            f"model.init_encoder = {m['init_encoder']!r}: tensor {bad[0]!r} does not fit the tile branch "
            "(channels, reduce and latent must equal the encoder's)"
        )
    tile.load_state_dict(src, strict=False)


def _init_encoders(m: Mapping[str, Any]) -> tuple[str, ...]:
    return (str(m["init_encoder"]),) if m["init_encoder"] else ()


def check_tile_cnn(model_cfg: Mapping[str, Any]) -> None:
    """Cross-field checks at experiment load."""
    check_location(model_cfg["location"])
    if model_cfg["weights"] and not model_cfg["backbone"]:
        raise ValueError("model.weights is set but model.backbone is empty; the weights file is for a timm backbone")
    if model_cfg["init_encoder"] and model_cfg["backbone"]:
        raise ValueError("model.init_encoder starts the conv body from a tile2vec encoder; leave model.backbone empty")
    if not model_cfg["tiles"]:
        raise ValueError('model.tiles is empty; name at least one feature set of DCT planes, e.g. ["patch_dct"]')


register(
    ModelSpec(
        "tile_cnn",
        "DS@GT tile CNN on stacked DCT coefficient planes (patches or raster tiles), optional IDCT / timm "
        "backbone / location branch (Lightning)",
        runner="lightning",
        params=TILE_PARAMS,
        features=lambda m: (*m["tiles"], *location_features(m["location"])),
        po_features=lambda m: (*m["tiles"], *location_extras(m["location"])),
        build_net=build_tile_cnn,
        check=check_tile_cnn,
        encoders=_init_encoders,
    )
)
