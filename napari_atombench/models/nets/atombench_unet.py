"""``atombench_unet``: our compact U-Net (built lazily: importing this module does not import torch)."""

from __future__ import annotations

import functools


def build_atombench_unet(base_channels: int = 16, depth: int = 3, in_channels: int = 1):
    """Our compact U-Net (see :class:`AtomBenchUNet`)."""
    return _net_classes()(base_channels=base_channels, depth=depth, in_channels=in_channels)


@functools.lru_cache(maxsize=1)
def _net_classes():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Sequential):
        def __init__(self, cin: int, cout: int):
            super().__init__(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

    class SkipConv(nn.Module):
        """A decoder block's first convolution split by input channels, so that
        ``conv(cat([skip, up]))`` becomes ``conv_skip(skip) + conv_up(up)``: the
        same sum without writing the concatenated full-resolution tensor (memory
        traffic that cost as much as a convolution at 1024² on a 2-core CPU)."""

        def __init__(self, conv: nn.Conv2d, skip_channels: int):
            super().__init__()
            weight = conv.weight.detach()
            out_ch, k = weight.shape[0], conv.kernel_size
            self.skip = nn.Conv2d(skip_channels, out_ch, k, padding=conv.padding, bias=True)
            self.up = nn.Conv2d(weight.shape[1] - skip_channels, out_ch, k, padding=conv.padding, bias=False)
            with torch.no_grad():
                self.skip.weight.copy_(weight[:, :skip_channels])
                self.up.weight.copy_(weight[:, skip_channels:])
                self.skip.bias.copy_(conv.bias if conv.bias is not None else torch.zeros(out_ch))

        def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
            return self.skip(skip).add_(self.up(up))

    class AtomBenchUNet(nn.Module):
        """Compact U-Net: ``depth`` poolings, channels ``base * 2**level``, BN + ReLU,
        bilinear upsampling and skip concatenation; one output channel of logits
        (``forward`` returns them; apply a sigmoid for the heatmap).

        Input side lengths must be multiples of ``2**depth``. ``in_channels`` 2 (v3): the
        image and a constant plane saying which columns count (1: light columns among
        heavy ones too, as iDPC/ABF show them; 0: the heavy-column convention of HAADF).
        """

        def __init__(self, base_channels: int = 16, depth: int = 3, in_channels: int = 1):
            super().__init__()
            if int(in_channels) not in (1, 2):
                raise ValueError(f"in_channels must be 1 (image) or 2 (image, light-columns plane), not {in_channels!r}")
            self.in_channels = int(in_channels)
            self.depth = int(depth)
            self.downsampling = 2**self.depth
            chans = [base_channels * 2**k for k in range(self.depth + 1)]
            self.enc = nn.ModuleList([Block(self.in_channels, chans[0])] + [Block(chans[k - 1], chans[k]) for k in range(1, self.depth + 1)])
            self.dec = nn.ModuleList([Block(chans[k + 1] + chans[k], chans[k]) for k in range(self.depth)])
            self.head = nn.Conv2d(chans[0], 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for k, block in enumerate(self.enc):
                x = block(x if k == 0 else F.max_pool2d(x, 2))
                skips.append(x)
            x = skips.pop()
            for k in reversed(range(self.depth)):
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                block = self.dec[k]
                if isinstance(block[0], SkipConv):
                    x = block[0](skips[k], x)
                    for layer in list(block)[1:]:
                        x = layer(x)
                else:
                    x = block(torch.cat([skips[k], x], dim=1))
            return self.head(x)

        def split_skip_convs(self) -> "AtomBenchUNet":
            """Replace each decoder's first convolution by a :class:`SkipConv` (in place;
            for inference: the state_dict keys change)."""
            for k, block in enumerate(self.dec):
                if not isinstance(block[0], SkipConv):
                    block[0] = SkipConv(block[0], self.enc[k][0].out_channels)
            return self

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward(x)

    return AtomBenchUNet


def __getattr__(name: str):  # lazy: importing this module must not import torch
    if name == "AtomBenchUNet":
        return _net_classes()
    raise AttributeError(name)
