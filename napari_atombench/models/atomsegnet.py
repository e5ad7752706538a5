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

import functools

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.metrics import filter_border
from ._pipeline import (
    LocatorBase,
    positions_to_frame,
    resize_float,
    resize_uint8_original,
    reuse_freed_memory,
    tiled_forward,
    to_uint8_original,
)
from .base import Cancelled


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

    #: (row0, col0, H, W): where the input sits in a larger image (full-resolution px),
    #: set by the tiled pipeline so tiles reproduce the whole-image upsampling
    frame: tuple[int, int, int, int] | None = None

    #: apply upconv4/upconv7 (1×1) before the ×2 upsampling, at a quarter of the pixels
    #: (default pipeline): interpolation weights sum to 1, so both orders agree up to rounding
    conv_first = False

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.frame is None:
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return _upsample_align_corners_in_frame(x, self.frame, self._input_hw)

    def _up_conv(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """×2 upsampling and a 1×1 conv, in the order ``conv_first`` says."""
        return self._up(conv(x)) if self.conv_first else conv(self._up(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self._input_hw = tuple(x.shape[-2:])
        r = functools.partial(F.relu, inplace=True)  # same values, one allocation fewer per layer
        x1 = r(self.bn1_2(self.conv1_2(r(self.bn1_1(self.conv1_1(x))))))
        h = F.max_pool2d(x1, 2)
        x2 = r(self.bn2_2(self.conv2_2(r(self.bn2_1(self.conv2_1(h))))))
        h = F.max_pool2d(x2, 2)
        h = r(self.bn4_2(self.conv4_2(r(self.bn4_1(self.conv4_1(h))))))
        u = self.bn4(self._up_conv(self.upconv4, h))
        h = self.bn4_out(torch.cat([x2, u], dim=1))
        h = r(self.bn7_2(self.conv7_2(r(self.bn7_1(self.conv7_1(h))))))
        u = self.bn7(self._up_conv(self.upconv7, h))
        h = self.bn7_out(torch.cat([x1, u], dim=1))
        h = r(self.bn9_2(self.conv9_2(r(self.bn9_1(self.conv9_1(h))))))
        return self.bn9(r(self.conv9_3(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def _interp_axis(x: torch.Tensor, dim: int, src: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at (local, clamped) positions ``src``."""
    n = x.shape[dim]
    src = src.clamp(0, n - 1)
    i0 = src.floor().long().clamp(max=n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    shape = [1] * x.ndim
    shape[dim] = -1
    w1 = (src - i0).to(x.dtype).view(shape)
    return x.index_select(dim, i0) * (1 - w1) + x.index_select(dim, i1) * w1


def _upsample_align_corners_in_frame(x: torch.Tensor, frame, input_hw) -> torch.Tensor:
    """×2 bilinear with align_corners=True as the **whole image** would have it.

    ``x`` is a tile of a feature map; ``frame`` = (row0, col0, H, W) places the
    network input tile (``input_hw``) in the full image. align_corners=True samples
    output index J at J·(N−1)/(2N−1) of the full level size N, which depends on the
    image size: a tile must use the full-image N and its own offset, not its size.
    """
    r0, c0, full_h, full_w = frame
    out = x
    for dim, off, full, tile in ((2, r0, full_h, input_hw[0]), (3, c0, full_w, input_hw[1])):
        n = x.shape[dim]
        level = tile // n  # input px per feature px at this level
        big_n, o = full // level, off // level
        j = torch.arange(2 * n, dtype=torch.float64) + 2 * o
        src = (j * ((big_n - 1) / (2 * big_n - 1)) - o).to(torch.float32).to(x.device)
        out = _interp_axis(out, dim, src)
    return out


class VGGBlock(nn.Module):
    """conv1 → bn1 → ReLU → conv2 → bn2 → ReLU (3×3, pad 1)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = _conv3(in_ch, mid_ch)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.conv2 = _conv3(mid_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(x)), inplace=True)


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


#: (conv, BatchNorm right after it) pairs of the UNet that can be folded in eval mode
UNET_CONV_BN = (
    ("conv1_1", "bn1_1"), ("conv1_2", "bn1_2"), ("conv2_1", "bn2_1"), ("conv2_2", "bn2_2"),
    ("conv4_1", "bn4_1"), ("conv4_2", "bn4_2"), ("upconv4", "bn4"), ("conv7_1", "bn7_1"),
    ("conv7_2", "bn7_2"), ("upconv7", "bn7"), ("conv9_1", "bn9_1"), ("conv9_2", "bn9_2"),
)


@torch.no_grad()
def fold_batchnorm(net: UNet) -> UNet:
    """Fold each eval-mode BatchNorm that directly follows a conv into that conv (in place).

    y = (conv(x) − μ)/√(σ²+ε)·γ + β  becomes a conv with weight·s and (bias − μ)·s + β,
    s = γ/√(σ²+ε). The BN modules become identities. Only for inference in eval mode;
    the result differs from the unfolded net by float rounding only (checked ≤ 1e-5 on
    the fixtures). ``bn4_out``/``bn7_out`` (after a concatenation) and ``bn9`` (after a
    ReLU) stay.
    """
    for conv_name, bn_name in UNET_CONV_BN:
        conv, bn = getattr(net, conv_name), getattr(net, bn_name)
        if isinstance(bn, nn.Identity):
            continue
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        setattr(net, bn_name, nn.Identity())
    return net


def build_unet() -> UNet:
    """AtomSegNet ``UNet`` ("gaussianMask+" weights)."""
    return UNet()


def build_nestedunet() -> NestedUNet:
    """AtomSegNet ``NestedUNet`` ("superresolution" weights)."""
    return NestedUNet()


# =============================================================================== pipeline


def pad_lin(x: np.ndarray, architecture: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Zero padding of the normalised image (spec L4); returns (padded, (top, bottom, left, right)).

    UNet: symmetric to multiples of 4. NestedUNet: centred in a P×P square, P the
    smallest power of 2 >= max(H, W) and at least 128.
    """
    h, w = x.shape
    if architecture == "nestedunet":
        side = max(h, w)
        p = 128 if side <= 128 else 1 << (side - 1).bit_length()
        th, tw = p - h, p - w
    else:
        th, tw = (4 - h % 4) % 4, (4 - w % 4) % 4
    top, left = th // 2, tw // 2
    pads = (top, th - top, left, tw - left)
    if th == 0 and tw == 0:
        return x, pads
    return np.pad(x, ((pads[0], pads[1]), (pads[2], pads[3]))), pads


#: watershed markers of ``lin_segment`` on the uint8 map: background below, columns above
MARKER_BACKGROUND_BELOW_U8 = 30
MARKER_COLUMN_ABOVE_U8 = 100


def lin_segment(rawmap: np.ndarray) -> dict:
    """AtomSegNet's ``CircleDetect`` segmentation (spec L7–L12).

    Returns a dict with ``r`` (float64, negatives clipped), ``model_output_u8``,
    ``elevation``, ``markers``, ``watershed``, ``filled``, ``labels`` and ``n``.
    """
    from scipy import ndimage
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    r = np.maximum(rawmap.astype(np.float64), -100)
    r[r < 0] = 0
    lo, hi = r.min(), r.max()
    if hi == lo:
        shape = r.shape
        z = np.zeros(shape, dtype=np.int32)
        return {"r": r, "m": np.zeros(shape), "model_output_u8": np.zeros(shape, np.uint8), "labels": z, "n": 0}
    m = (r - lo) / (hi - lo)
    u8 = (m * 255 / m.max()).astype(np.uint8)
    elevation = sobel(u8)
    markers = np.zeros(u8.shape, dtype=np.uint8)
    markers[u8 < MARKER_BACKGROUND_BELOW_U8] = 1
    markers[u8 > MARKER_COLUMN_ABOVE_U8] = 2
    seg = watershed(elevation, markers)
    filled = ndimage.binary_fill_holes(seg - 1)
    labels, n = ndimage.label(filled)
    return {
        "r": r,
        "m": m,
        "model_output_u8": u8,
        "elevation": elevation,
        "markers": markers,
        "watershed": seg,
        "filled": filled,
        "labels": labels,
        "n": n,
    }


def lin_centroids_original(seg: dict) -> np.ndarray:
    """Unweighted region centroids (row, col), label order (spec L13)."""
    from skimage.measure import regionprops

    if seg["n"] == 0:
        return np.zeros((0, 2))
    return np.array([p.centroid for p in regionprops(seg["labels"])], dtype=np.float64).reshape(-1, 2)


def lin_centroids_weighted(seg: dict) -> np.ndarray:
    """Region centroids weighted by the normalised map (default pipeline)."""
    from scipy import ndimage

    if seg["n"] == 0:
        return np.zeros((0, 2))
    idx = np.arange(1, seg["n"] + 1)
    weights = seg["m"]
    com = np.asarray(ndimage.center_of_mass(weights, seg["labels"], idx), dtype=np.float64).reshape(-1, 2)
    # a region whose map is 0 everywhere has no weighted centre: use its plain centre
    bad = ~np.isfinite(com).all(axis=1)
    if bad.any():
        plain = np.asarray(ndimage.center_of_mass(seg["labels"] > 0, seg["labels"], idx[bad])).reshape(-1, 2)
        com[bad] = plain
    return com


class AtomSegNetLocator(LocatorBase):
    """AtomSegNet pipeline (``unet`` / ``nestedunet`` networks).

    ``fidelity="original"`` reproduces the benchmark wrapper (spec §5 L1–L13): 8-bit
    conversion, optional PIL rescale (coordinates stay in the rescaled frame, as in
    the original), x = img8/255, UNet symmetric padding / NestedUNet centring in a
    power-of-2 square, UNet in eval mode, NestedUNet with **train-mode BatchNorm**
    (per-image statistics), crop, then Sobel + watershed segmentation and unweighted
    region centroids.

    ``fidelity="default"``: same network input/output (the UNet's conv+BN pairs are
    folded for speed, ``fold_bn=False`` to keep them; the NestedUNet keeps its
    train-mode BN: its weights were only ever used that way); large images go in
    overlapping tiles (for NestedUNet each tile then gets its own BN statistics);
    centroids weighted by the map; positions and map in the input image frame;
    optional ``edge_px`` filter (default 0: none, as the original).
    """

    family_options = ("edge_px", "fold_bn")
    default_tile = {"unet": 1024, "nestedunet": 1024}
    default_margin = {"unet": 64, "nestedunet": 64}

    def __init__(self, spec, net, provenance, **kw):
        super().__init__(spec, net, provenance, **kw)
        self.train_bn = spec.architecture == "nestedunet"
        self.net.train(self.train_bn)
        self.fold_bn = bool(self.options.get("fold_bn", True)) and self.fidelity == "default" and not self.train_bn
        if self.fold_bn:
            fold_batchnorm(self.net)
        if isinstance(self.net, UNet):
            self.net.conv_first = self.fidelity == "default"
        self.edge_px = float(self.options.get("edge_px", 0))
        self.stride = int(self.net.downsampling)
        tile = int(self.options.get("tile_size") or self.default_tile.get(spec.architecture, 1024))
        if self.train_bn:  # NestedUNet tiles are powers of 2, like its padded squares
            tile = 1 << max(7, tile.bit_length() - 1)
        self.tile_size = max(self.stride, tile // self.stride * self.stride)
        margin = self.options.get("overlap_px")
        margin = self.default_margin.get(spec.architecture, 64) if margin is None else int(margin)
        self.overlap_px = -(-margin // self.stride) * self.stride

    def _net_input(self, image):
        img8 = resize_uint8_original(to_uint8_original(image), self.rescale)
        return img8, img8.astype(np.float32) / np.float32(255)

    @reuse_freed_memory()
    def _forward_map(self, x, progress, cancelled) -> tuple[np.ndarray, tuple]:
        """Network output cropped back to x's frame, channel 0, float32."""
        h, w = x.shape
        square = self.train_bn and (self.fidelity == "original" or max(h, w) <= self.tile_size)
        if self.fidelity == "original" or square or max(h, w) <= self.tile_size:
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled")
            xp, pads = pad_lin(x, self.spec.architecture)
            y = self._run_net(xp)
            if progress is not None:
                progress(1, 1)
        else:
            # large image: pad symmetrically to the stride, then overlapping tiles
            th, tw = (-h) % self.stride, (-w) % self.stride
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
            xp = np.pad(x, ((pads[0], pads[1]), (pads[2], pads[3])))
            y = tiled_forward(self._run_net, xp, self.tile_size, self.overlap_px, self.stride, progress=progress, cancelled=cancelled)
        top, _, left, _ = pads
        return y[0, top : top + h, left : left + w].astype(np.float32), pads

    def _predict(self, image, progress, cancelled):
        img8, x = self._net_input(image)
        raw, _ = self._forward_map(x, progress, cancelled)
        if self.fidelity == "default" and raw.shape != image.shape:
            raw = resize_float(raw, image.shape)
        return raw, img8

    def _locate(self, image, progress, cancelled):
        t0 = time.perf_counter()
        meta = self._metadata(train_mode_bn=self.train_bn)
        img8, x = self._net_input(image)
        t0 = self._timed(meta, "preprocess", t0)
        raw, pads = self._forward_map(x, progress, cancelled)
        meta["padding_tblr"] = list(pads)
        t0 = self._timed(meta, "network", t0)
        seg = lin_segment(raw)
        if self.fidelity == "original":
            positions_rc = lin_centroids_original(seg)
            meta["frame"] = "image" + (f" rescaled x{self.rescale}" if self.rescale != 1 else "")
        else:
            positions_rc = lin_centroids_weighted(seg)
            if self.edge_px > 0:
                positions_rc = positions_rc[filter_border(positions_rc, raw.shape, self.edge_px)]
            if raw.shape != image.shape:
                positions_rc = positions_to_frame(positions_rc, raw.shape, image.shape)
                raw = resize_float(raw, image.shape)
            meta["frame"] = "image"
            meta["tile_size"], meta["overlap_px"] = self.tile_size, self.overlap_px
        self._timed(meta, "postprocess", t0)
        return raw, positions_rc, meta
