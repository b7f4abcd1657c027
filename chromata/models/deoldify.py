"""DeOldify's published NoGAN generators (Jason Antic, 2018-2020, MIT), loaded without fastai or torchvision.

* Artistic (``ColorizeArtistic_gen.pth``): a ResNet-34 body and DeOldify's "deep" U-Net (``DynamicUnetDeep``,
  ``nf_factor`` 1.5: two convolutions per up block).
* Stable and Video (``ColorizeStable_gen.pth``, ``ColorizeVideo_gen.pth``): a ResNet-101 body and the "wide"
  U-Net (``DynamicUnetWide``, ``nf_factor`` 2: 1024 channels per up block, 512 in the last). The two files
  share one architecture (the same key names and shapes); only their weights differ, so both load as the
  ``stable`` variant.

Both: the body is torchvision's ResNet cut before its pooling (``layers.0``: conv1, bn1, relu, maxpool,
layer1..4 at indices 0..7), then a BatchNorm and ReLU (``layers.1``, ``.2``), two middle convolutions
(``layers.3``), four up blocks (``layers.4``..``.7``: a spectral-norm 1x1 convolution, BatchNorm, ReLU,
pixel shuffle and a 2x2 blur, concatenated with the BatchNorm-ed skip feature; self-attention in
``layers.5``), a weight-norm 1x1 convolution and pixel shuffle back to the input size (``layers.8``), the
normalised input image concatenated ("last cross", ``layers.9``), a residual block (``layers.10``), a 1x1
convolution to 3 channels (``layers.11``) and ``sigmoid_range`` to (-3, 3) (``layers.12``): RGB in
ImageNet-normalised units. Skip features whose size differs from the upsampled map (working sizes that are
not multiples of 32) are matched by nearest-neighbour interpolation, as in DeOldify.

The module and parameter names reproduce the published state-dict keys, so a file loads with every key
accounted for. The code is our own, checked against the official module tree run as an oracle
(``benchmarks/oracle_deoldify.py``, ``tests/test_deoldify.py``). Spectral and weight normalisation are
applied once at load time in their inference form — sigma = u . (W_orig v) with the stored u and v (no power
iteration, as PyTorch in eval mode), and g v / ||v|| — and the network holds plain convolution weights.
Files written before PyTorch 1.0 store a spectral-norm layer as weight_orig, weight_u and the normalised
``weight`` without weight_v; PyTorch rebuilds v so that u . (W_orig v) = mean(weight_orig / weight), and the
normalised weight is therefore weight_orig / mean(weight_orig / weight), which is what we compute (the mean
over the non-zero entries of ``weight``: PyTorch's is NaN when a weight is exactly 0).

Pre- and post-processing follow DeOldify's ``ColorizerFilter`` where chromata allows it:

* DeOldify stretches the RGB image to render_factor x 16 pixels square (PIL bilinear, 8-bit), makes it
  grey (PIL 'LA' then 'RGB'), divides by 255, ImageNet-normalises, runs the generator, de-normalises,
  clamps to [0, 1], truncates to 8 bits, stretches back (PIL bilinear) and merges in YUV: the U and V of
  the output with the Y of the original (OpenCV's 8-bit RGB <-> YUV).
* chromata gives the model L* at the working size (``input_size`` = render_factor x 16; chromata's own
  area reduction instead of PIL's bilinear stretch), makes the grey RGB from it in float
  (:func:`chromata.models.postprocess.grey_rgb`, no 8-bit rounding), normalises, runs the generator,
  de-normalises and clamps as DeOldify does, and merges as DeOldify does — the output's U and V with the grey
  input's Y (``postprocess.yuv_merged``) — at the working size. The a*/b* of that image is the prediction; chromata
  then merges it with the full-resolution L* of the scan (its own CIELab merge, which keeps 16-bit samples).
  The one difference left is the luminance kept: the scan's L* rather than its BT.601 Y. On the test image
  (``tests/test_deoldify.py``, render factor 4, colours of mean C* 30) chromata's output is within mean
  CIEDE2000 0.94 (p95 2.8) of DeOldify's own pipeline; without the YUV merge at the working size (the
  generator's raw a*/b*) it was 1.23.

DeOldify adds a watermark by default and, on a CUDA out-of-memory error, returns the grey image with a
warning; chromata does neither (an error is an error).
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from chromata.judgement.calibration_map import Calibration
from chromata.models.base import F32, ChromaPrediction, load_untrusted, pick_device
from chromata.models.postprocess import (
    estimated_uncertainty,
    grey_rgb,
    restrained,
    restraint_facts,
    rgb_to_ab,
    yuv_merged,
)

log = logging.getLogger(__name__)

VARIANTS = ("artistic", "stable")
RENDER_BASE = 16  # DeOldify's ColorizerFilter: working size = render_factor x 16
DEFAULT_RENDER_FACTOR = 35  # DeOldify's default for stills (21 for its video colorizer)
MIN_INPUT_SIZE = 16  # render factor 1: the official networks run from 16 px up (benchmarks/oracle_deoldify.py)
Y_RANGE = (-3.0, 3.0)  # sigmoid_range of the generators' output, ImageNet-normalised RGB
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # fastai's imagenet_stats, DeOldify's normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
RECIPE = "crc32-normal-v1"  # the deterministic test weights of ``recipe_weights``

# variant -> (ResNet depth, U-Net kind, nf_factor): deoldify/generators.py gen_inference_deep / _wide
ARCHITECTURE: dict[str, tuple[int, str, float]] = {"artistic": (34, "deep", 1.5), "stable": (101, "wide", 2.0)}


# ---------------------------------------------------------------- ResNet with torchvision's module names


class BasicBlock(nn.Module):
    """ResNet-18/34 block (torchvision names: conv1, bn1, conv2, bn2, downsample)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)  # type: ignore[no-any-return]


class Bottleneck(nn.Module):
    """ResNet-50/101/152 block, stride on the 3x3 convolution as torchvision ("ResNet v1.5")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)  # type: ignore[no-any-return]


RESNET_BLOCKS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    34: (BasicBlock, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """torchvision's ResNet layout (conv1, bn1, relu, maxpool, layer1..4, avgpool, fc), randomly initialised."""

    def __init__(self, depth: int, num_classes: int = 1000) -> None:
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"unsupported ResNet depth {depth}: use {', '.join(map(str, RESNET_BLOCKS))}")
        block, counts = RESNET_BLOCKS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, counts[0], 1)
        self.layer2 = self._stage(block, 128, counts[1], 2)
        self.layer3 = self._stage(block, 256, counts[2], 2)
        self.layer4 = self._stage(block, 512, counts[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block: type[BasicBlock] | type[Bottleneck], planes: int, count: int, stride: int) -> nn.Sequential:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
        blocks: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        blocks += [block(out, planes) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))  # type: ignore[no-any-return]


def resnet34() -> ResNet:
    return ResNet(34)


def resnet101() -> ResNet:
    return ResNet(101)


def resnet_body(depth: int) -> nn.Sequential:
    """The ResNet without its pooling and classifier, as fastai's ``create_body`` cuts it (children[:-2])."""
    return nn.Sequential(*list(ResNet(depth).children())[:-2])


# ---------------------------------------------------------------- U-Net pieces


class SpectralConv1d(nn.Conv1d):
    """A convolution published with spectral norm (weight_orig, weight_u, weight_v); holds the normalised weight."""


class SpectralConv2d(nn.Conv2d):
    """A convolution published with spectral norm (weight_orig, weight_u, weight_v); holds the normalised weight."""


class WeightNormConv2d(nn.Conv2d):
    """A convolution published with weight norm (weight_g, weight_v); holds g v / ||v||."""


def _conv(
    ni: int, nf: int, ks: int = 3, *, bias: bool, relu: bool = True, bn: bool = False, attention: bool = False
) -> nn.Sequential:
    """Spectral-norm convolution [, ReLU] [, BatchNorm] [, self-attention] at Sequential indices 0, 1, 2, 3
    (DeOldify's ``custom_conv_layer``; fastai's ``conv_layer`` without the BatchNorm)."""
    layers: list[nn.Module] = [SpectralConv2d(ni, nf, ks, padding=(ks - 1) // 2, bias=bias)]
    if relu:
        layers.append(nn.ReLU())
    if bn:
        layers.append(nn.BatchNorm2d(nf))
    if attention:
        layers.append(SelfAttention(nf))
    return nn.Sequential(*layers)


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions (Zhang et al. 2018), as fastai v1's ``SelfAttention``:
    1x1 spectral-norm projections to C/8 (query, key) and C (value), attention weights normalised over the
    attended positions, gamma * attended + x."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = SpectralConv1d(channels, channels // 8, 1, bias=False)
        self.key = SpectralConv1d(channels, channels // 8, 1, bias=False)
        self.value = SpectralConv1d(channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        f, g, v = self.query(flat), self.key(flat), self.value(flat)
        beta = torch.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)  # (n, hw attended, hw out)
        return (self.gamma * torch.bmm(v, beta) + flat).reshape(n, c, h, w)


class BlurUpsample(nn.Module):
    """x2 upsampling of an up block: spectral 1x1 conv (no bias), BatchNorm, ReLU, pixel shuffle, then a 2x2
    average over a replicate-padded map (Aitken et al. 2017's checkerboard-free blur; DeOldify applies it in
    every up block)."""

    def __init__(self, ni: int, nf: int) -> None:
        super().__init__()
        self.conv = _conv(ni, nf * 4, 1, bias=False, relu=False, bn=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(F.relu(self.conv(x)), 2)
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


def _merge_skip(up: torch.Tensor, skip: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    if up.shape[-2:] != skip.shape[-2:]:
        up = F.interpolate(up, size=skip.shape[-2:], mode="nearest")
    return F.relu(torch.cat([up, bn(skip)], dim=1))


class DeepUpBlock(nn.Module):
    """DeOldify's ``UnetBlockDeep``: upsample to half the channels, merge the skip, two convolutions widened by
    nf_factor (the last block halves first)."""

    def __init__(self, up_in: int, skip_in: int, final_div: bool, attention: bool, nf_factor: float) -> None:
        super().__init__()
        self.shuf = BlurUpsample(up_in, up_in // 2)
        self.bn = nn.BatchNorm2d(skip_in)
        ni = up_in // 2 + skip_in
        self.out_channels = int((ni if final_div else ni // 2) * nf_factor)
        self.conv1 = _conv(ni, self.out_channels, bias=False, bn=True)
        self.conv2 = _conv(self.out_channels, self.out_channels, bias=False, bn=True, attention=attention)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(_merge_skip(self.shuf(x), skip, self.bn)))  # type: ignore[no-any-return]


class WideUpBlock(nn.Module):
    """DeOldify's ``UnetBlockWide``: upsample to n_out / 2 channels, merge the skip, one convolution to n_out / 2."""

    def __init__(self, up_in: int, skip_in: int, n_out: int, attention: bool) -> None:
        super().__init__()
        self.out_channels = n_out // 2
        self.shuf = BlurUpsample(up_in, self.out_channels)
        self.bn = nn.BatchNorm2d(skip_in)
        self.conv = _conv(self.out_channels + skip_in, self.out_channels, bias=False, bn=True, attention=attention)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(_merge_skip(self.shuf(x), skip, self.bn))  # type: ignore[no-any-return]


class FinalUpsample(nn.Module):
    """fastai's ``PixelShuffle_ICNR`` at the end of the U-Net: weight-norm 1x1 conv with bias, ReLU, pixel
    shuffle (no blur) back to the input size."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(WeightNormConv2d(channels, channels * 4, 1, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.relu(self.conv(x)), 2)


class ResBlock(nn.Module):
    """fastai's ``res_block`` (``layers.0``, ``layers.1``: spectral conv with bias, ReLU): x + f(x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_conv(channels, channels, bias=True), _conv(channels, channels, bias=True)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers[1](self.layers[0](x))  # type: ignore[no-any-return]


class DeOldifyNet(nn.Module):
    """ImageNet-normalised RGB (N, 3, H, W), H and W multiples of 16 -> RGB in the same units, in (-3, 3).

    Skip features are returned by the body's stages, not stored by hooks: one instance can run concurrent
    forwards."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        if variant not in ARCHITECTURE:
            raise ValueError(f"unknown DeOldify variant {variant!r}: use {', '.join(VARIANTS)}")
        depth, kind, nf_factor = ARCHITECTURE[variant]
        self.variant = variant
        expansion = RESNET_BLOCKS[depth][0].expansion
        skips = [64, 64 * expansion, 128 * expansion, 256 * expansion]  # relu (1/2), layer1..3 (1/4 .. 1/16)
        top = 512 * expansion
        middle = nn.Sequential(_conv(top, top * 2, bias=False, bn=True), _conv(top * 2, top, bias=False, bn=True))
        blocks: list[nn.Module] = []
        channels = top
        for i, skip in enumerate(reversed(skips)):
            final = i == len(skips) - 1
            attention = i == len(skips) - 3  # self-attention in the second up block (layers.5)
            block: DeepUpBlock | WideUpBlock
            if kind == "deep":
                block = DeepUpBlock(channels, skip, not final, attention, nf_factor)
            else:
                nf = int(512 * nf_factor)
                block = WideUpBlock(channels, skip, nf // 2 if final else nf, attention)
            blocks.append(block)
            channels = block.out_channels
        self.layers = nn.ModuleList(
            [
                resnet_body(depth),  # 0
                nn.BatchNorm2d(top),  # 1
                nn.ReLU(),  # 2
                middle,  # 3
                *blocks,  # 4..7
                FinalUpsample(channels),  # 8
                nn.Identity(),  # 9: concatenation with the input ("last cross")
                ResBlock(channels + 3),  # 10
                nn.Sequential(SpectralConv2d(channels + 3, 3, 1, bias=True)),  # 11
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = cast(nn.Sequential, self.layers[0])
        stem = body[2](body[1](body[0](x)))  # conv1, bn1, relu: 1/2
        f1 = body[4](body[3](stem))  # maxpool, layer1: 1/4
        f2 = body[5](f1)
        f3 = body[6](f2)
        h = self.layers[3](F.relu(self.layers[1](body[7](f3))))
        for block, skip in zip(self.layers[4:8], (f3, f2, f1, stem), strict=True):
            h = block(h, skip)
        h = torch.cat([self.layers[8](h), x], dim=1)
        h = self.layers[11](self.layers[10](h))
        low, high = Y_RANGE
        return torch.sigmoid(h) * (high - low) + low


def _skeleton(variant: str) -> DeOldifyNet:
    """The network without storage (meta tensors): its shapes, or a body for ``load_state_dict(assign=True)``."""
    with torch.device("meta"):
        return DeOldifyNet(variant)


def build_net(variant: str) -> DeOldifyNet:
    """The network of a variant with PyTorch's default initialisation (plain convolution weights)."""
    return DeOldifyNet(variant)


# ---------------------------------------------------------------- the published state-dict layout


def _own_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from ((k, p) for k, p in module.named_parameters(recurse=False) if p is not None)
    yield from ((k, b) for k, b in module.named_buffers(recurse=False) if b is not None)


def official_shapes(net_or_variant: nn.Module | str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published state dict of a variant (or of a built network), in PyTorch's order:
    spectral-norm layers as (bias,) weight_orig, weight_u, weight_v; weight-norm layers as bias, weight_g,
    weight_v."""
    net = _skeleton(net_or_variant) if isinstance(net_or_variant, str) else net_or_variant
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, module in net.named_modules():
        p = f"{prefix}." if prefix else ""
        own = dict(_own_tensors(module))
        if isinstance(module, SpectralConv1d | SpectralConv2d | WeightNormConv2d):
            w = tuple(own.pop("weight").shape)
            if "bias" in own:
                shapes[p + "bias"] = tuple(own.pop("bias").shape)
            if isinstance(module, WeightNormConv2d):
                shapes[p + "weight_g"] = (w[0],) + (1,) * (len(w) - 1)
                shapes[p + "weight_v"] = w
            else:
                shapes.update({p + "weight_orig": w, p + "weight_u": (w[0],), p + "weight_v": (math.prod(w[1:]),)})
        shapes.update({p + k: tuple(t.shape) for k, t in own.items()})
    return shapes


def detect_variant(state: Mapping[str, Any]) -> str:
    """``artistic`` (ResNet-34 body) or ``stable`` (ResNet-101 body; DeOldify's Video generator has the same
    architecture) from a state dict's keys; ValueError (one line) when it is no DeOldify generator."""
    stem = state.get("layers.0.0.weight")
    if not isinstance(stem, torch.Tensor) or tuple(stem.shape) != (64, 3, 7, 7):
        found = "absent" if stem is None else f"shape {tuple(getattr(stem, 'shape', ()))}"
        raise ValueError(
            f"not a DeOldify generator: no ResNet stem 'layers.0.0.weight' of shape (64, 3, 7, 7) ({found})"
        )
    bottleneck = "layers.0.4.0.conv3.weight" in state
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"layers\.0\.6\.(\d+)\.", k))}
    depth = {(False, 6): 34, (True, 23): 101}.get((bottleneck, len(blocks)))
    if depth is None:
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(
            f"not a DeOldify generator: a ResNet body with {len(blocks)} {kind} blocks in layer3 "
            "(34: 6 basic, 101: 23 bottleneck)"
        )
    return "artistic" if depth == 34 else "stable"


# What fastai v1 pickles beside the weights in a Learner's file (its ``opt`` entry: the optimiser's factory,
# ``partial(Adam, betas=…)``, and learning rates as numpy scalars) — the published generators carry them, and
# ``weights_only`` refuses them (reported for ColorizeVideo_gen.pth: "Unsupported global: functools.partial").
# They are read as inert placeholders and dropped; only ``model`` is used.
FASTAI_EXTRAS = (
    "functools.partial",
    "torch.optim.adam.Adam",
    "torch.optim.adamw.AdamW",
    "torch.optim.sgd.SGD",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
)


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """A published generator's state dict: fastai's ``{'model': state_dict, 'opt': ...}`` or a raw state dict,
    read with ``weights_only=True`` (the file is untrusted). ValueError, one line naming the file, otherwise."""
    path = Path(path)
    obj = load_untrusted(path, inert=FASTAI_EXTRAS, mmap=mmap)
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict or fastai's {{'model': state_dict}}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: the state dict's entry {key!r} is a {type(value).__name__}, not a tensor")
    return dict(state)


def check_file(path: str | Path) -> str:
    """What a run checks before it starts its engines: the file is a DeOldify generator in the published layout
    (every key, every shape), read without building the network. Its variant; ValueError (one line) otherwise."""
    state = read_checkpoint(path, mmap=True)
    try:
        variant = detect_variant(state)
    except ValueError as exc:
        raise ValueError(f"{path} is {exc}") from exc
    problem = _first_mismatch(state, _expected_layout(official_shapes(variant), state))
    if problem is not None:
        raise ValueError(f"{path} is not a DeOldify {variant} generator in the published layout: {problem}")
    return variant


def _first_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> str | None:
    for key, shape in expected.items():
        if key not in state:
            if key.endswith(".num_batches_tracked"):
                continue  # unused in inference; PyTorch fills it in for files without version metadata too
            return f"missing key {key!r}"
        if tuple(state[key].shape) != shape:
            return f"{key!r} has shape {tuple(state[key].shape)}, expected {shape}"
    for key in state:
        if key not in expected:
            return f"unexpected key {key!r}"
    return None


def _expected_layout(
    shapes: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor]
) -> dict[str, tuple[int, ...]]:
    """The published keys, with a spectral-norm layer stored in the pre-1.0 layout (the normalised ``weight``
    instead of ``weight_v``) expected as such where the file has it."""
    out: dict[str, tuple[int, ...]] = {}
    for key, shape in shapes.items():
        p = key[: -len("weight_v")]
        if key.endswith(".weight_v") and len(shape) == 1 and key not in state and p + "weight" in state:
            out[p + "weight"] = shapes[p + "weight_orig"]
        else:
            out[key] = shape
    return out


def _normalised_weights(state: Mapping[str, torch.Tensor], net: DeOldifyNet) -> dict[str, torch.Tensor]:
    """The published (spectral/weight-norm) state dict -> the plain state dict of ``net`` (float32)."""
    out: dict[str, torch.Tensor] = {}
    for prefix, module in net.named_modules():
        p = f"{prefix}." if prefix else ""
        for name, t in _own_tensors(module):
            key = p + name
            # in float32, as PyTorch's own spectral_norm / weight_norm hooks compute them in eval mode
            if name == "weight" and isinstance(module, SpectralConv1d | SpectralConv2d):
                w = state[p + "weight_orig"].float()
                if p + "weight_v" in state:
                    u, v = state[p + "weight_u"].float(), state[p + "weight_v"].float()
                    sigma = torch.dot(u, torch.mv(w.reshape(w.shape[0], -1), v))
                else:  # pre-1.0 file: PyTorch solves v so that u . (W v) = mean(weight_orig / weight) ...
                    normalised = state[p + "weight"].float()
                    nonzero = normalised != 0  # ... which is NaN where an entry is 0 / 0: the other entries
                    sigma = torch.where(nonzero, w / normalised, 0.0).sum() / nonzero.sum()
                if not bool(torch.isfinite(sigma)) or float(sigma) == 0.0:
                    raise ValueError(f"the spectral norm of {p}weight_orig is {float(sigma)}: not a usable layer")
                out[key] = w / sigma
            elif name == "weight" and isinstance(module, WeightNormConv2d):
                g, v = state[p + "weight_g"].float(), state[p + "weight_v"].float()
                out[key] = v * (g / v.reshape(v.shape[0], -1).norm(dim=1).reshape(g.shape))
            elif key in state:
                out[key] = state[key].to(t.dtype)
            else:  # num_batches_tracked of a file without it
                out[key] = torch.zeros(t.shape, dtype=t.dtype)
    return out


def load_net(
    state: Mapping[str, torch.Tensor], variant: str | None = None, source: str = "the state dict"
) -> DeOldifyNet:
    """A published state dict (spectral norm with or without weight_v) -> the inference network, every key
    checked: ValueError naming ``source`` and the first mismatch."""
    try:
        variant = variant or detect_variant(state)
    except ValueError as exc:
        raise ValueError(f"{source} is {exc}") from exc
    net = _skeleton(variant)
    problem = _first_mismatch(state, _expected_layout(official_shapes(net), state))
    if problem is not None:
        raise ValueError(f"{source} is not a DeOldify {variant} generator in the published layout: {problem}")
    try:
        net.load_state_dict(_normalised_weights(state, net), strict=True, assign=True)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"{source}: {first}") from exc
    return net.eval()


def save_fastai_format(state: Mapping[str, torch.Tensor], path: str | Path, opt: dict[str, Any] | None = None) -> None:
    """Write a state dict as fastai v1's ``Learner.save`` does, ``{'model': state_dict, 'opt': optimiser state}``
    (for tests and benchmarks; a raw state dict is just ``torch.save(state, path)``)."""
    torch.save({"model": dict(state), "opt": opt if opt is not None else {}}, Path(path))


# ---------------------------------------------------------------- deterministic test weights


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


_BLOCK_NORM = re.compile(r"^(layers\.0\.[4-7]\.\d+\.)bn([23])\.weight$")


def _closes_a_residual_branch(key: str, shapes: Mapping[str, tuple[int, ...]]) -> bool:
    """The weight of a ResNet block's last BatchNorm: bn2 of a basic block, bn3 of a bottleneck."""
    m = _BLOCK_NORM.match(key)
    return m is not None and (m.group(2) == "3" or m.group(1) + "conv3.weight" not in shapes)


def recipe_weights(shapes: Mapping[str, tuple[int, ...]] | str) -> dict[str, torch.Tensor]:
    """Deterministic, non-degenerate weights in the published layout, one numpy generator per key seeded with
    crc32(key) (recipe ``crc32-normal-v1``), for tests and benchmarks without the published files:

    * convolution weights (weight_orig, plain, weight-norm v): normal / sqrt(fan_in); the last BatchNorm of
      each ResNet block (bn2 of a basic block, bn3 of a bottleneck) with weight 0.2 x uniform(0.5, 1.5), so
      ResNet-101's 33 residual additions keep activations in range;
    * BatchNorm: weight uniform(0.5, 1.5), bias and running_mean 0.1 x normal, running_var uniform(0.5, 1.5),
      num_batches_tracked 0; other biases 0.1 x normal; weight_g uniform(0.5, 1.5); self-attention gamma
      uniform(0.2, 0.6) (0 would switch it off);
    * spectral norm: v = normal (seeded from the weight_v key), normalised; two power iterations on
      weight_orig (float64); u = W v / |W v|: so sigma = u . (W v) > 0, as after training.
    """
    shapes = official_shapes(shapes) if isinstance(shapes, str) else shapes
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        rng, leaf = _rng(key), key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        if leaf in ("weight_u",) or (leaf == "weight_v" and len(shape) == 1):
            continue  # below, from weight_orig
        a: NDArray[Any]
        if leaf == "running_var" or leaf == "weight_g" or (leaf == "weight" and len(shape) == 1):
            a = rng.uniform(0.5, 1.5, size=shape) * (0.2 if _closes_a_residual_branch(key, shapes) else 1.0)
        elif leaf == "gamma":
            a = rng.uniform(0.2, 0.6, size=shape)
        elif len(shape) >= 2:
            a = rng.standard_normal(size=shape, dtype=np.float32) / np.float32(math.sqrt(math.prod(shape[1:])))
        else:  # biases, running means
            a = 0.1 * rng.standard_normal(size=shape)
        out[key] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    for key in [k for k in shapes if k.endswith(".weight_orig")]:
        p = key[: -len("weight_orig")]
        w = out[key].double().reshape(shapes[key][0], -1)
        v = torch.from_numpy(_rng(p + "weight_v").standard_normal(w.shape[1]))
        v = v / v.norm()
        for _ in range(2):
            v = w.t() @ (w @ v)
            v = v / v.norm()
        wv = w @ v
        out[p + "weight_u"] = (wv / wv.norm()).float()
        out[p + "weight_v"] = v.float()
    return {k: out[k] for k in shapes}


# ---------------------------------------------------------------- the colorizer


PRECISIONS = ("auto", "fp32", "fp16")


def _checked_options(input_size: int | None, precision: str, device: str) -> int:
    """The working size (default render factor 35 x 16 = 560); ValueError for a size that is no positive
    multiple of 16, an unknown precision, or fp16 off CUDA."""
    size = RENDER_BASE * DEFAULT_RENDER_FACTOR if input_size is None else input_size
    if isinstance(size, bool) or not isinstance(size, int) or size % RENDER_BASE or size < MIN_INPUT_SIZE:
        raise ValueError(
            f"DeOldify's working size must be a positive multiple of {RENDER_BASE} (render_factor x 16), "
            f"not {input_size!r}"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError(f"precision fp16 needs a CUDA device, not {device!r}: use fp32 (or auto)")
    return size


class DeOldifyColorizer:
    """A published DeOldify generator as a chromata ``Colorizer``: L* -> grey RGB -> generator -> CIE a*/b*.

    By default the output is DeOldify's own colours (``restrain = False``); the uncertainty is estimated by
    the chromata.judgement.harm proxy, since the generator has none."""

    family = "deoldify"

    def __init__(
        self,
        variant: str,
        net: nn.Module,
        weights_sha256: str,
        device: str = "cpu",
        input_size: int | None = None,
        precision: str = "auto",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown DeOldify variant {variant!r}: use {', '.join(VARIANTS)}")
        size = _checked_options(input_size, precision, device)
        self.variant = variant
        self.name = f"deoldify-{variant}"
        self.weights_sha256 = weights_sha256
        self.input_size = size
        self.device = device
        self.precision = "fp16" if precision == "fp16" else "fp32"
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.calibration: Calibration | None = None
        self.restrain = False  # DeOldify's own colours by default
        self.net = net.to(device=device, dtype=self.dtype).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).reshape(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).reshape(1, 3, 1, 1)

    @property
    def render_factor(self) -> int:
        return self.input_size // RENDER_BASE

    @classmethod
    def load(
        cls, path: str | Path, device: str = "auto", input_size: int | None = None, precision: str = "auto"
    ) -> DeOldifyColorizer:
        """A published generator file (fastai's layout or a raw state dict); FileNotFoundError when it is
        missing, ValueError (one line) for anything else wrong with it."""
        from chromata.archive.storage import sha256_file

        path, device = Path(path), pick_device(device)
        _checked_options(input_size, precision, device)  # before reading hundreds of megabytes
        if not path.is_file():
            raise FileNotFoundError(f"DeOldify weights not found: {path}")
        net = load_net(read_checkpoint(path), source=str(path))
        model = cls(net.variant, net, sha256_file(path), device, input_size, precision)
        log.info(
            "loaded %s (%s…) on %s at %d px", model.name, model.weights_sha256[:12], model.device, model.input_size
        )
        return model

    def rgb(self, lightness: F32, grey_image: F32 | None = None) -> F32:
        """(N, S, S) L* -> the generator's de-normalised, clamped RGB (N, S, S, 3) in [0, 1]; ``grey_image``:
        ``grey_rgb(lightness)`` when the caller has it already."""
        light = np.asarray(lightness, np.float32)
        if light.ndim != 3 or light.shape[1] % RENDER_BASE or light.shape[2] % RENDER_BASE:
            raise ValueError(f"expected (N, S, S) L* with sides multiples of {RENDER_BASE}, got shape {light.shape}")
        image = grey_rgb(light) if grey_image is None else grey_image
        grey = torch.from_numpy(np.ascontiguousarray(image)).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            x = ((grey - self._mean) / self._std).to(self.dtype)
            out = self.net(x).float() * self._std + self._mean
            rgb = out.clamp_(0.0, 1.0).permute(0, 2, 3, 1).cpu().numpy()
        return np.ascontiguousarray(rgb, dtype=np.float32)

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        light = np.asarray(lightness, np.float32)
        grey = grey_rgb(light)
        rgb = yuv_merged(grey, self.rgb(light, grey))
        ab = rgb_to_ab(rgb)
        return ChromaPrediction(ab=restrained(self, light, ab), uncertainty=estimated_uncertainty(light, ab))

    def describe(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "model_family": self.family,
            "model_variant": self.variant,
            "model_architecture": "ResNet-34 body, deep U-Net (nf_factor 1.5)"
            if self.variant == "artistic"
            else "ResNet-101 body, wide U-Net (nf_factor 2); DeOldify's Stable and Video generators share it",
            "model_licence": "MIT",
            "model_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "render_factor": self.render_factor,
            "precision": self.precision,
            "device": self.device,
            "restraint": restraint_facts(self),
            "uncertainty": "estimated by the chromata.judgement.harm proxy from the grey input and the colours "
            "(DeOldify has no uncertainty output)",
        }
