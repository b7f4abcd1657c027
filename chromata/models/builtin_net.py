"""The built-in colorization network: EfficientNet-Lite0 encoder + U-Net decoder over ab bins.

Encoder: EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: ReLU6, no squeeze-excitation, fixed
stem/head), initialised from ImageNet weights at training time; classifier head dropped. Decoder: a
small U-Net that fuses encoder features at strides 32→16→8→4 and predicts logits over the
Zhang et al. (2016) ab grid at 1/4 of the input resolution.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from chromata.models.ab_bins import NUM_BINS

# (repeats, kernel, stride, expand, in, out) — EfficientNet-Lite0 block specification.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Indices of the blocks whose outputs feed the decoder (strides 4, 8, 16, 32).
SKIP_BLOCKS = (2, 4, 10, 15)
BN_EPS = 1e-3
# Decoder widths at strides 32, 16, 8, 4: kept narrow at high resolution, where convolutions cost most.
DECODER_CHANNELS = (192, 128, 64, 48)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (no SE, ReLU6); parameter names match lukemelas' EfficientNet port."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y  # type: ignore[no-any-return]


class Lite0Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        for repeats, k, s, e, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in SKIP_BLOCKS:
                feats.append(x)
        return feats  # strides 4, 8, 16, 32


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin + cskip, cout), _conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], dim=1))  # type: ignore[no-any-return]


class ChromaNet(nn.Module):
    """L (N, 1, H, W) in [0, 100] -> ab-bin logits (N, Q, H/4, W/4). H and W must be multiples of 32."""

    # Grey replicated to RGB and normalised with ImageNet statistics, as the encoder was trained.
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, decoder: tuple[int, int, int, int] = DECODER_CHANNELS) -> None:
        super().__init__()
        self.encoder = Lite0Encoder()
        self.decoder_channels = decoder
        c32, c16, c8, c4 = decoder
        self.bridge = _conv_bn(320, c32)
        self.up16 = UpBlock(c32, 112, c16)
        self.up8 = UpBlock(c16, 40, c8)
        self.up4 = UpBlock(c8, 24, c4)
        self.head = nn.Conv2d(c4, NUM_BINS, 1)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        x = (lightness / 100.0).expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        s4, s8, s16, s32 = self.encoder(x)
        y = self.bridge(s32)
        y = self.up16(y, s16)
        y = self.up8(y, s8)
        y = self.up4(y, s4)
        return self.head(y)  # type: ignore[no-any-return]

    def load_encoder_state(self, state: dict[str, torch.Tensor]) -> int:
        """Copy matching EfficientNet-Lite0 ImageNet weights into the encoder; returns tensors loaded."""
        own = self.encoder.state_dict()
        matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        self.encoder.load_state_dict(matched, strict=False)
        return len(matched)

    def parameter_groups(self) -> Iterable[tuple[str, list[nn.Parameter]]]:
        enc = list(self.encoder.parameters())
        enc_ids = {id(p) for p in enc}
        yield "encoder", enc
        yield "decoder", [p for p in self.parameters() if id(p) not in enc_ids]
