"""The organizers' baseline cube branch (malpolon's GLC24 MultimodalEnsemble): a ResNet18
over a time-series cube read as an image, for the fusion ablation's concat baseline.

``LayerNorm`` over the whole cube ``[C, H, W]`` (learned affine), then timm's ``resnet18`` (random init) whose first
convolution is a 3x3 stride-1 convolution (``C -> 64``) and whose max-pool is removed, so the small cubes (Landsat
``4 x 20``, bioclim ``18 x 12``) keep their resolution in the first stage; global average pooling (512), then
``Linear`` to ``latent`` and ``LayerNorm`` (malpolon's 1000-d fc output goes through ``LayerNorm(1000)``; ours is the
branch latent).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["CubeResNet"]


class CubeResNet(nn.Module):
    """``[B, C, H, W]`` cube -> LayerNorm -> ResNet18 (3x3 stride-1 stem, no max-pool) -> ``[B, latent]``.

    Args:
        in_chans: cube channels.
        image: ``(H, W)``.
        latent: output width.
        backbone: timm ResNet name (``resnet18``; any timm ResNet with ``conv1``/``maxpool``).
        dropout: dropout before the final ``Linear``.
    """

    def __init__(
        self, in_chans: int, image: Sequence[int], latent: int = 256, backbone: str = "resnet18", dropout: float = 0.0
    ) -> None:
        super().__init__()
        import timm

        self.image = (int(image[0]), int(image[1]))
        self.norm = nn.LayerNorm([int(in_chans), *self.image])
        net = timm.create_model(backbone, pretrained=False, in_chans=int(in_chans), num_classes=0)
        if not hasattr(net, "conv1") or not hasattr(net, "maxpool"):
            raise ValueError(f"cube backbone {backbone!r} is not a timm ResNet (no conv1 / maxpool)")
        net.conv1 = nn.Conv2d(int(in_chans), net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net
        self.proj = nn.Sequential(
            nn.Dropout(float(dropout)), nn.Linear(int(net.num_features), int(latent)), nn.LayerNorm(int(latent))
        )
        self.out_dim = int(latent)

    def forward(self, cube: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> ``[B, latent]``."""
        if cube.dim() != 4 or tuple(cube.shape[-2:]) != self.image:
            raise ValueError(
                f"CubeResNet: cube of shape {tuple(cube.shape)}, expected [B, C, {self.image[0]}, {self.image[1]}]"
            )
        return self.proj(self.net(self.norm(cube)))
