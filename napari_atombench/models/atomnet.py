"""AtomNet networks (Ziatdinov et al.): ``atomsegnet`` and ``resatomsegnet_s2``.

Written from ``SPEC-models.md`` §4C/§4D. The module and parameter names reproduce
the original state_dict keys, so the published checkpoints load with
``strict=True`` (unused ``conv_t`` and ResBlock ``bn1``/``bn2`` tensors included).

Public names (stable; the training code builds these):

- :class:`AtomSegNetZ` / :func:`build_atomsegnet` (``"atomsegnet"``, downsampling 8)
- :class:`ResAtomSegNetS2` / :func:`build_resatomsegnet_s2` (``"resatomsegnet_s2"``, downsampling 4)

Both return probabilities from ``forward`` (sigmoid for one class, log-softmax over
channels for several, as the originals) and pre-activation scores from
:meth:`logits` (for ``BCEWithLogitsLoss`` / ``CrossEntropyLoss`` in training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.01


class ConvBlock(nn.Module):
    """3×3 conv (pad 1) → [dropout] → LeakyReLU(0.01); the conv is ``block.0``."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float | None = None):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=1)]
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpsampleBlock(nn.Module):
    """×2 bilinear (align_corners=False) then a 1×1 conv; ``conv_t`` is kept but unused."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1)
        self.conv_t = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)  # unused (spec Q6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(x)


class DilationBlock(nn.Module):
    """Three dilated 3×3 convs (dilation 2, 4, 6); returns the sum of all 9 sub-layer outputs.

    In eval mode dropout is the identity, so the result is
    ``2·a1 + r1 + 2·a2 + r2 + 2·a3 + r3`` (spec quirk Q5).
    """

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        for i, dil in enumerate((2, 4, 6)):
            layers += [
                nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=dil, dilation=dil),
                nn.Dropout(dropout),
                nn.LeakyReLU(LEAKY_SLOPE),
            ]
        self.atrous_module = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for layer in self.atrous_module:
            x = layer(x)
            total = x if total is None else total + x
        return total


class ResBlock(nn.Module):
    """1×1 ``c0`` (also the skip) → 3×3 ``c1`` → LReLU → 3×3 ``c2`` → + skip → LReLU.

    ``bn1``/``bn2`` exist for strict loading and are not used (use_batchnorm=False).
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.c0 = nn.Conv2d(in_ch, out_ch, 1)
        self.c1 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.c2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_ch)  # unused (spec Q6)
        self.bn2 = nn.BatchNorm2d(out_ch)  # unused (spec Q6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.c0(x)
        h = F.leaky_relu(self.c1(skip), LEAKY_SLOPE)
        h = self.c2(h)
        return F.leaky_relu(h + skip, LEAKY_SLOPE)


class ResModule(nn.Module):
    """Two :class:`ResBlock` (keys ``res_module.0/1``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.res_module = nn.Sequential(ResBlock(in_ch, out_ch), ResBlock(out_ch, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_module(x)


class _AtomNetBase(nn.Module):
    #: ratio input size / coarsest feature size; inputs must be multiples of it
    downsampling: int = 1

    def __init__(self, nb_classes: int):
        super().__init__()
        self.nb_classes = int(nb_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x)
        if self.nb_classes == 1:
            return torch.sigmoid(z)
        return F.log_softmax(z, dim=1)


class AtomSegNetZ(_AtomNetBase):
    """AtomNet ``atomsegnet(nb_classes, nb_filters)`` (spec §4C); H, W multiples of 8."""

    downsampling = 8

    def __init__(self, nb_classes: int = 1, nb_filters: int = 32):
        super().__init__(nb_classes)
        f = int(nb_filters)
        self.c1 = ConvBlock(1, f)
        self.c2 = nn.Sequential(ConvBlock(f, 2 * f), ConvBlock(2 * f, 2 * f))
        self.c3 = nn.Sequential(ConvBlock(2 * f, 4 * f, 0.3), ConvBlock(4 * f, 4 * f, 0.3))
        self.bn = DilationBlock(4 * f, 8 * f)
        self.upsample_block1 = UpsampleBlock(8 * f, 4 * f)
        self.c4 = nn.Sequential(ConvBlock(8 * f, 4 * f, 0.3), ConvBlock(4 * f, 4 * f, 0.3))
        self.upsample_block2 = UpsampleBlock(4 * f, 2 * f)
        self.c5 = nn.Sequential(ConvBlock(4 * f, 2 * f), ConvBlock(2 * f, 2 * f))
        self.upsample_block3 = UpsampleBlock(2 * f, f)
        self.c6 = ConvBlock(2 * f, f)
        self.px = nn.Conv2d(f, self.nb_classes, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.c1(x)
        c2 = self.c2(F.max_pool2d(c1, 2))
        c3 = self.c3(F.max_pool2d(c2, 2))
        b = self.bn(F.max_pool2d(c3, 2))
        u3 = self.c4(torch.cat([c3, self.upsample_block1(b)], dim=1))
        u2 = self.c5(torch.cat([c2, self.upsample_block2(u3)], dim=1))
        u1 = self.c6(torch.cat([c1, self.upsample_block3(u2)], dim=1))
        return self.px(u1)


class ResAtomSegNetS2(_AtomNetBase):
    """AtomNet ``resatomsegnet_s2(nb_classes, nb_filters)`` (spec §4D); H, W multiples of 4."""

    downsampling = 4

    def __init__(self, nb_classes: int = 1, nb_filters: int = 32):
        super().__init__(nb_classes)
        f = int(nb_filters)
        self.c1 = ConvBlock(1, f)
        self.c2 = ResModule(f, 2 * f)
        self.bn = ResModule(2 * f, 4 * f)
        self.upsample_block1 = UpsampleBlock(4 * f, 2 * f)
        self.c3 = ResModule(4 * f, 2 * f)
        self.upsample_block2 = UpsampleBlock(2 * f, f)
        self.c4 = ConvBlock(2 * f, f)
        self.px = nn.Conv2d(f, self.nb_classes, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.c1(x)
        c2 = self.c2(F.max_pool2d(c1, 2))
        b = self.bn(F.max_pool2d(c2, 2))
        u2 = self.c3(torch.cat([c2, self.upsample_block1(b)], dim=1))
        u1 = self.c4(torch.cat([c1, self.upsample_block2(u2)], dim=1))
        return self.px(u1)


def build_atomsegnet(nb_classes: int = 1, nb_filters: int = 32) -> AtomSegNetZ:
    """AtomNet ``atomsegnet`` ("hexagonal" weights use the defaults)."""
    return AtomSegNetZ(nb_classes, nb_filters)


def build_resatomsegnet_s2(nb_classes: int = 1, nb_filters: int = 32) -> ResAtomSegNetS2:
    """AtomNet ``resatomsegnet_s2`` ("cubic" weights use the defaults)."""
    return ResAtomSegNetS2(nb_classes, nb_filters)
