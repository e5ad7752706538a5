"""AtomSegNet networks (Lin, Ge & Xin): ``UNet`` ("gaussianMask+") and ``NestedUNet``.

Written from ``SPEC-models.md`` §4A/§4B. Module names reproduce the original
state_dict keys, so the published checkpoints load with ``strict=True`` once the
DataParallel ``module.`` prefixes are stripped (unused ``bn9_3`` kept).

Public names (stable; the training code builds these):

- :class:`UNet` / :func:`build_unet` (``"unet"``, eval-mode BN, sigmoid output, H, W multiples of 4)
- :class:`NestedUNet` / :func:`build_nestedunet` (``"nestedunet"``, tanh output; the
  original runs it with **train-mode BatchNorm**, spec quirk Q1)

``forward`` returns what the original returns; :meth:`logits` the pre-activation score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


class UNet(nn.Module):
    """AtomSegNet ``UNet`` (unet_sigmoid); see spec §4A. Run in eval mode."""

    downsampling = 4
    # attribute order = original state_dict key order
    def __init__(self):
        super().__init__()
        self.conv1_1, self.conv1_2 = _conv3(1, 64), _conv3(64, 64)
        self.bn1_1, self.bn1_2 = nn.BatchNorm2d(64), nn.BatchNorm2d(64)
        self.conv2_1, self.conv2_2 = _conv3(64, 128), _conv3(128, 128)
        self.bn2_1, self.bn2_2 = nn.BatchNorm2d(128), nn.BatchNorm2d(128)
        self.conv4_1, self.conv4_2 = _conv3(128, 256), _conv3(256, 256)
        self.upconv4 = nn.Conv2d(256, 128, 1)
        self.bn4 = nn.BatchNorm2d(128)
        self.bn4_1, self.bn4_2 = nn.BatchNorm2d(256), nn.BatchNorm2d(256)
        self.bn4_out = nn.BatchNorm2d(256)
        self.conv7_1, self.conv7_2 = _conv3(256, 128), _conv3(128, 128)
        self.upconv7 = nn.Conv2d(128, 64, 1)
        self.bn7 = nn.BatchNorm2d(64)
        self.bn7_1, self.bn7_2 = nn.BatchNorm2d(128), nn.BatchNorm2d(128)
        self.bn7_out = nn.BatchNorm2d(128)
        self.conv9_1, self.conv9_2 = _conv3(128, 64), _conv3(64, 64)
        self.bn9_1, self.bn9_2 = nn.BatchNorm2d(64), nn.BatchNorm2d(64)
        self.conv9_3 = nn.Conv2d(64, 1, 1)
        self.bn9_3 = nn.BatchNorm2d(1)  # unused (spec Q6)
        self.bn9 = nn.BatchNorm2d(1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        r = F.relu
        x1 = r(self.bn1_2(self.conv1_2(r(self.bn1_1(self.conv1_1(x))))))
        h = F.max_pool2d(x1, 2)
        x2 = r(self.bn2_2(self.conv2_2(r(self.bn2_1(self.conv2_1(h))))))
        h = F.max_pool2d(x2, 2)
        h = r(self.bn4_2(self.conv4_2(r(self.bn4_1(self.conv4_1(h))))))
        u = self.bn4(self.upconv4(self._up(h)))
        h = self.bn4_out(torch.cat([x2, u], dim=1))
        h = r(self.bn7_2(self.conv7_2(r(self.bn7_1(self.conv7_1(h))))))
        u = self.bn7(self.upconv7(self._up(h)))
        h = self.bn7_out(torch.cat([x1, u], dim=1))
        h = r(self.bn9_2(self.conv9_2(r(self.bn9_1(self.conv9_1(h))))))
        return self.bn9(r(self.conv9_3(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class VGGBlock(nn.Module):
    """conv1 → bn1 → ReLU → conv2 → bn2 → ReLU (3×3, pad 1)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = _conv3(in_ch, mid_ch)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.conv2 = _conv3(mid_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class NestedUNet(nn.Module):
    """AtomSegNet ``NestedUNet`` (UNet++, no deep supervision); see spec §4B.

    The original never calls ``eval()``: BatchNorm normalises with the statistics of
    the one (padded, square) input image. Pipelines keep it in ``train()`` mode.
    """

    downsampling = 16

    def __init__(self):
        super().__init__()
        f = (32, 64, 128, 256, 512)
        self.conv0_0 = VGGBlock(1, f[0], f[0])
        self.conv1_0 = VGGBlock(f[0], f[1], f[1])
        self.conv2_0 = VGGBlock(f[1], f[2], f[2])
        self.conv3_0 = VGGBlock(f[2], f[3], f[3])
        self.conv4_0 = VGGBlock(f[3], f[4], f[4])
        self.conv0_1 = VGGBlock(f[0] + f[1], f[0], f[0])
        self.conv1_1 = VGGBlock(f[1] + f[2], f[1], f[1])
        self.conv2_1 = VGGBlock(f[2] + f[3], f[2], f[2])
        self.conv3_1 = VGGBlock(f[3] + f[4], f[3], f[3])
        self.conv0_2 = VGGBlock(f[0] * 2 + f[1], f[0], f[0])
        self.conv1_2 = VGGBlock(f[1] * 2 + f[2], f[1], f[1])
        self.conv2_2 = VGGBlock(f[2] * 2 + f[3], f[2], f[2])
        self.conv0_3 = VGGBlock(f[0] * 3 + f[1], f[0], f[0])
        self.conv1_3 = VGGBlock(f[1] * 3 + f[2], f[1], f[1])
        self.conv0_4 = VGGBlock(f[0] * 4 + f[1], f[0], f[0])
        self.final = nn.Conv2d(f[0], 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        def up(t):
            return F.interpolate(t, scale_factor=2, mode="nearest")

        def pool(t):
            return F.max_pool2d(t, 2)

        cat = torch.cat
        x0_0 = self.conv0_0(x)
        x1_0 = self.conv1_0(pool(x0_0))
        x0_1 = self.conv0_1(cat([x0_0, up(x1_0)], 1))
        x2_0 = self.conv2_0(pool(x1_0))
        x1_1 = self.conv1_1(cat([x1_0, up(x2_0)], 1))
        x0_2 = self.conv0_2(cat([x0_0, x0_1, up(x1_1)], 1))
        x3_0 = self.conv3_0(pool(x2_0))
        x2_1 = self.conv2_1(cat([x2_0, up(x3_0)], 1))
        x1_2 = self.conv1_2(cat([x1_0, x1_1, up(x2_1)], 1))
        x0_3 = self.conv0_3(cat([x0_0, x0_1, x0_2, up(x1_2)], 1))
        x4_0 = self.conv4_0(pool(x3_0))
        x3_1 = self.conv3_1(cat([x3_0, up(x4_0)], 1))
        x2_2 = self.conv2_2(cat([x2_0, x2_1, up(x3_1)], 1))
        x1_3 = self.conv1_3(cat([x1_0, x1_1, x1_2, up(x2_2)], 1))
        x0_4 = self.conv0_4(cat([x0_0, x0_1, x0_2, x0_3, up(x1_3)], 1))
        return self.final(x0_4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(x))


def build_unet() -> UNet:
    """AtomSegNet ``UNet`` ("gaussianMask+" weights)."""
    return UNet()


def build_nestedunet() -> NestedUNet:
    """AtomSegNet ``NestedUNet`` ("superresolution" weights)."""
    return NestedUNet()
