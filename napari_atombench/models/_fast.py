"""Inference speed-ups for our networks that keep fp32 results (BatchNorm folding,
channels_last) and the run-time decision whether bf16 autocast pays on this machine.

bf16 3×3 convolutions ran 1.5–2.5× faster than fp32 on one 2-core VM and 0.5–0.7× on
another of the same kind (issue 17), so bf16 is never assumed: ``bf16="auto"`` times
a small convolution stack both ways once per process and device.
"""

from __future__ import annotations

import copy
import functools
import time


def fold_batchnorm(net):
    """A copy of ``net`` (in eval mode) with every Conv2d -> BatchNorm2d pair of an
    ``nn.Sequential`` fused into the convolution (the BatchNorm becomes Identity)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net).eval()
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return net


@functools.lru_cache(maxsize=8)
def bf16_is_faster(device_type: str, channels: int = 32, side: int = 256, repeats: int = 2) -> bool:
    """Whether bf16 autocast runs a 3×3 convolution stack faster than fp32 on this
    device (best of ``repeats`` each, after a warm-up); decided once per process."""
    import torch

    if device_type == "mps":
        return False  # no bf16 autocast there
    dev = torch.device(device_type)
    if dev.type == "cpu" and not getattr(torch.backends, "mkldnn", None):
        return False
    layers = torch.nn.Sequential(*[torch.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2)]).to(dev).eval()
    layers = layers.to(memory_format=torch.channels_last)
    x = torch.randn(1, channels, side, side, device=dev).contiguous(memory_format=torch.channels_last)

    def best(bf16: bool) -> float:
        times = []
        with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            for k in range(repeats + 1):
                t0 = time.perf_counter()
                layers(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if k:  # the first is the warm-up
                    times.append(time.perf_counter() - t0)
        return min(times)

    try:
        return best(True) < 0.9 * best(False)
    except RuntimeError:  # no bf16 kernels for this device
        return False


def resolve_bf16(bf16, device) -> bool:
    """``True``/``False`` as given; ``"auto"``: :func:`bf16_is_faster` on ``device``."""
    if isinstance(bf16, str):
        if bf16.lower() != "auto":
            raise ValueError(f"bf16 must be True, False or 'auto', not {bf16!r}")
        return bf16_is_faster(device.type)
    if not isinstance(bf16, bool):
        raise ValueError(f"bf16 must be True, False or 'auto', not {bf16!r}")
    return bf16
