"""GLC2020 runs 2/3: Inception-v3 on patch + environmental tiles (``model.kind = "inception"``), timm, Lightning.

GLC2020 (LIRMM/Inria) fed a 6-channel stack — RGB, near-infrared, elevation and land cover around the site — to an
Inception-v3 whose first two convolutions were replaced by 3x3 stride-1 convolutions for its small input, without the
auxiliary head, dropout 0.5, softmax cross-entropy over species, SGD lr 0.1 with step decay. Here:

* **channels**: the ``tiles`` feature sets (DCT coefficient planes, :mod:`glc.features.sets`; default the Sentinel-2
  patch's 16x16 block ``patch_dct16`` = R, G, B, NIR, then ``raster_elevation`` and ``raster_landcover``), each
  inverted (IDCT) to an ``image_size`` image and standardised with its train statistics, stacked, and the ``bands``
  kept (default ``[0..5]``: R, G, B, NIR, elevation, land-cover band 1 = the MODIS IGBP class map). **Ground extents
  differ**: the patch covers 1.28 km (128 px at 10 m) while a raster tile covers 128 raster pixels (elevation ~3.8
  km at 30 m, land cover ~64 km at 500 m); all are resampled to the same ``image_size`` grid, as GLC2020 stacked
  rasters of different native resolutions. The IDCT of the land-cover class band is a smooth field, not a class map.
* **network**: ``timm.create_model("inception_v3", in_chans=len(bands), aux_logits=False, drop_rate=dropout)``,
  random init (``weights``: a local file), with ``Conv2d_1a_3x3`` (stride 2, valid) and ``Conv2d_2a_3x3`` (valid)
  replaced by 3x3 stride-1 padded convolutions so a 64-pixel input keeps 14x14 maps in the Mixed-5 blocks (minimum
  ``image_size`` 64).
* **training** (the experiment's ``[train]``): ``loss.kind = "softmax"`` (the survey's species as a normalised
  target distribution, :class:`glc.training.losses.SoftmaxCELoss`), ``optimizer = "sgd"``, ``step_epochs``.
  Predictions are the sigmoid of the logits (same ranking as softmax); decode with ``expected_f1_platt``.
* **augmentation**: random dihedral flips/rotations of the stacked images in training (``augment``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from glc.features.dct import N_DIHEDRAL, dct_matrix, image_dihedral
from glc.models.parts import Standardize, check_columns, set_inputs
from glc.models.registry import ModelSpec, register
from glc.models.tile_cnn import pixel_stats, plane_sets
from glc.params import Param

__all__ = ["INCEPTION_PARAMS", "InceptionNet", "build_inception"]

MIN_IMAGE = 64


def stride1_stem(net: nn.Module, in_chans: int) -> nn.Module:
    """Replace timm inception_v3's ``Conv2d_1a_3x3`` and ``Conv2d_2a_3x3`` convolutions by 3x3 stride-1, padding-1
    ones (GLC2020); their BatchNorm + ReLU stay."""
    for name, c_in in (("Conv2d_1a_3x3", in_chans), ("Conv2d_2a_3x3", None)):
        block = getattr(net, name)
        old = block.conv
        block.conv = nn.Conv2d(c_in or old.in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
    return net


class InceptionNet(nn.Module):
    """Stacked DCT plane sets -> IDCT images -> standardise -> bands -> (augment) -> Inception-v3 -> logits.

    Args:
        columns: batch keys of the plane columns ``[B, C_i, k_i, k_i]``.
        shapes: their per-row shapes.
        stats: their train ``(mean, std)``.
        bands: stacked channels to keep (0-based; empty = all).
        num_classes: species columns.
        image_size: side of the IDCT images (>= 64).
        dropout: before the classifier (GLC2020: 0.5).
        augment: dihedral augmentation in training.
        weights: local state-dict file for the timm network (nothing is downloaded).
    """

    def __init__(
        self,
        columns: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        stats: Sequence[tuple[np.ndarray, np.ndarray]],
        bands: Sequence[int],
        num_classes: int,
        image_size: int = 64,
        dropout: float = 0.5,
        augment: bool = True,
        weights: str = "",
    ) -> None:
        super().__init__()
        import timm

        if int(image_size) < MIN_IMAGE:
            raise ValueError(
                f"model.image_size = {image_size}: Inception-v3 with the stride-1 stem needs >= {MIN_IMAGE} pixels"
            )
        self.columns = tuple(columns)
        self.image_size = int(image_size)
        n_in = sum(int(s[0]) for s in shapes)
        bad = [b for b in bands if not 0 <= int(b) < n_in]
        if bad:
            raise ValueError(
                f"model.bands {list(bands)}: {bad} outside the {n_in} stacked channels of {list(columns)} (0-based)"
            )
        self.register_buffer(
            "bands", torch.as_tensor(list(bands) or list(range(n_in)), dtype=torch.int64), persistent=False
        )
        self.norms = nn.ModuleList()
        for i, (shape, (m, s)) in enumerate(zip(shapes, stats)):
            if len(shape) != 3 or shape[1] != shape[2]:
                raise ValueError(f"model.tiles: {columns[i]!r} is not a (C, k, k) plane set (shape {tuple(shape)})")
            k = int(shape[1])
            self.register_buffer(
                f"basis{i}", torch.as_tensor(dct_matrix(self.image_size, k, np.float32).copy()), persistent=False
            )
            self.norms.append(
                Standardize(*pixel_stats(np.asarray(m).reshape(shape), np.asarray(s).reshape(shape), self.image_size))
            )
        self.augment = bool(augment)
        net = timm.create_model(
            "inception_v3",
            pretrained=False,
            num_classes=int(num_classes),
            in_chans=len(self.bands),
            aux_logits=False,
            drop_rate=float(dropout),
        )
        self.net = stride1_stem(net, len(self.bands))
        if weights:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            missing, unexpected = self.net.load_state_dict(state, strict=False)
            if unexpected:
                raise ValueError(f"model.weights {weights!r}: unexpected tensors {unexpected[:3]} for inception_v3")

    def images(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``[B, len(bands), S, S]`` standardised images."""
        check_columns(batch, self.columns, "InceptionNet")
        imgs = []
        for i, c in enumerate(self.columns):
            B = getattr(self, f"basis{i}")
            imgs.append(self.norms[i](torch.einsum("uh,bcuv,vw->bchw", B, batch[c].float(), B)))
        x = torch.cat(imgs, dim=1).index_select(1, self.bands)
        if self.training and self.augment:
            x = image_dihedral(x, torch.randint(0, N_DIHEDRAL, (x.shape[0],), device=x.device))
        return x

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The batch keys the net reads (its plane columns)."""
        return self.columns

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Species logits ``[B, num_classes]``."""
        return self.net(self.images(batch))


INCEPTION_PARAMS: dict[str, Param] = {
    "tiles": Param(
        ["patch_dct16", "raster_elevation", "raster_landcover"],
        "feature sets of DCT planes, stacked as channels",
        type="list[str]",
        choices=plane_sets,
    ),
    "bands": Param(
        [0, 1, 2, 3, 4, 5],
        "stacked channels kept (default: R, G, B, NIR, elevation, land-cover class band)",
        type="list[int]",
        min=0,
    ),
    "image_size": Param(64, f"side of the IDCT images (>= {MIN_IMAGE})", min=MIN_IMAGE),
    "dropout": Param(0.5, "dropout before the classifier (GLC2020: 0.5)", min=0.0, max=0.95),
    "augment": Param(True, "dihedral flips / rotations in training"),
    "weights": Param("", "local weights file (state dict of the timm network); nothing is downloaded"),
}


def build_inception(model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> InceptionNet:
    """The network of a ``[model]`` table for a model-input table's ``meta.json``."""
    m = model_cfg
    return InceptionNet(
        *set_inputs(meta, m["tiles"]),
        m["bands"],
        int(meta["num_classes"]),
        int(m["image_size"]),
        float(m["dropout"]),
        bool(m["augment"]),
        str(m["weights"]),
    )


register(
    ModelSpec(
        "inception",
        "GLC2020 Inception-v3 (timm, stride-1 stem, no aux head) on "
        "IDCT images of patch + elevation + land cover (Lightning)",
        runner="lightning",
        params=INCEPTION_PARAMS,
        features=lambda m: tuple(m["tiles"]),
        build_net=build_inception,
    )
)
