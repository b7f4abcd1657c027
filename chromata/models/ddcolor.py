"""DDColor (Kang et al., "DDColor: Towards Photo-Realistic Image Colorization via Dual Decoders", ICCV 2023),
loadable from the authors' published checkpoints (github.com/piddnad/DDColor, Apache-2.0).

Our own pure-torch implementation of the network as the authors run it for inference (MultiScaleColorDecoder,
100 colour queries, 3 scales, 9 decoder layers, nf 512, spectral norm on the last layers, 2 output channels):

* a ConvNeXt encoder (tiny: depths 3, 3, 9, 3, dims 96..768; large: 3, 3, 27, 3, dims 192..1536) whose
  ``norm0..3`` features are *returned* (the official code takes them with forward hooks, state on the module);
  nothing is stored on a module during a forward pass, so one instance may run several at once;
* a pixel-shuffle U-Net decoder (1x1 spectral conv, BatchNorm, ReLU, PixelShuffle, replication pad and a 2x2
  average "blur"; skip BatchNorm; spectral 3x3 conv, ReLU, BatchNorm) to 1/16, 1/8, 1/4 and full resolution;
* the multi-scale colour decoder: 100 learned queries refined by 9 post-norm cross-attention, self-attention and
  FFN layers over the three scales (sine position encoding), then a 3-layer MLP; each query's colour embedding
  dotted with the full-resolution features gives a map;
* the refine net: a spectral 1x1 conv of the 100 maps and the normalised input to a/b.

Inference-only simplifications, exact up to float rounding: spectral norm is applied as in eval
(sigma = u . (W v) with the stored u and v, no power iteration) once at load, leaving plain conv weights; and
everything after the last upsampler's ReLU is linear (pixel shuffle, blur, the product with the queries'
embeddings, the refine conv), so the refine conv's query part is applied to the embeddings and the result
contracted with the upsampler's channels at 1/4 resolution, before its shuffle and blur: neither the 100 query
maps nor the 256 features at full resolution are ever made (2.7x faster than the official code at 512 px on
2 cores, and far less memory).

Module and parameter names give exactly the official state-dict keys, so a published checkpoint loads with
every tensor used and none missing. The code is ours; only facts (layout, settings) come from the official
repository. The published files cannot be downloaded here: the tests build weights by a deterministic recipe
(:func:`synthetic_state_dict`), run the official code on them outside this repository
(``benchmarks/oracle_ddcolor.py``) and compare.
"""

from __future__ import annotations

import itertools
import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chromata.judgement.calibration import Calibration
from chromata.models.base import F32, ChromaPrediction, load_untrusted, pick_device
from chromata.models.postprocess import estimated_uncertainty, grey_rgb, restrained, restraint_facts

log = logging.getLogger(__name__)

VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),  # ddcolor_paper_tiny (ConvNeXt-T)
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),  # ddcolor_paper, _modelscope, _artistic (ConvNeXt-L)
}
NUM_QUERIES, NUM_SCALES, DEC_LAYERS, NF, HIDDEN, HEADS, FFN_DIM = 100, 3, 9, 512, 256, 8, 2048
OUT_CHANNELS = 2
DEFAULT_INPUT_SIZE = 512  # trained at 256, run at 512 by every official script
SIZE_STEP = 32  # no interpolation inside: the sides must be multiples of the encoder's stride
PROJECT_CHUNK = 2048  # pixels of the last upsampler made at a time (its 4096 channels: 32 MiB a chunk)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LICENCE = "Apache-2.0"
_STEM_KEY = "encoder.arch.downsample_layers.0.0.weight"
_OPTIONAL = ("mean", "std")  # constant buffers: whether the published files hold them is unverified


# --------------------------------------------------------------------------------------------- layers


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) tensor (eps 1e-6), as ConvNeXt's norms."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SpectralConv2d(nn.Module):
    """A conv whose checkpoint holds ``weight_orig``, ``weight_u`` and ``weight_v`` (torch's spectral norm);
    run with the eval-mode weight ``weight_orig / (u . (W v))``, computed once when loaded (``refresh``) and
    kept as a plain, non-persistent ``weight``."""

    weight: Tensor
    weight_u: Tensor
    weight_v: Tensor

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool) -> None:
        super().__init__()
        self.padding = (kernel - 1) // 2
        # registration order = the official state-dict order (bias, weight_orig, weight_u, weight_v)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.weight_orig = nn.Parameter(torch.randn(cout, cin, kernel, kernel) / math.sqrt(cin * kernel * kernel))
        self.register_buffer("weight_u", F.normalize(torch.randn(cout), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn(cin * kernel * kernel), dim=0))
        self.register_buffer("weight", torch.empty_like(self.weight_orig), persistent=False)
        self.refresh()

    def refresh(self) -> None:
        """Recompute ``weight`` from the spectral-norm tensors (after loading them)."""
        with torch.no_grad():
            orig = self.weight_orig.detach()
            mat = orig.reshape(orig.shape[0], -1)
            sigma = torch.dot(self.weight_u, torch.mv(mat, self.weight_v))
            self.weight = (orig / sigma).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt body returning the four normalised stage features (``norm0..3``: what DDColor's decoder reads).
    ``norm`` (the classifier's pooled norm) is held only so that checkpoints load strictly; it is unused."""

    def __init__(self, depths: Sequence[int], dims: Sequence[int]) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), ChannelsFirstLayerNorm(dims[0]))]
            + [
                nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
                for i in range(3)
            ]
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dims[i]) for _ in range(depths[i]))) for i in range(4)
        )
        self.norm0 = ChannelsFirstLayerNorm(dims[0])
        self.norm1 = ChannelsFirstLayerNorm(dims[1])
        self.norm2 = ChannelsFirstLayerNorm(dims[2])
        self.norm3 = ChannelsFirstLayerNorm(dims[3])
        self.norm = nn.LayerNorm(dims[3], eps=1e-6)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, norm in enumerate((self.norm0, self.norm1, self.norm2, self.norm3)):
            x = self.stages[i](self.downsample_layers[i](x))
            feats.append(norm(x))  # the next stage continues from the un-normalised x, as the official code
        return feats


class ImageEncoder(nn.Module):
    def __init__(self, depths: Sequence[int], dims: Sequence[int]) -> None:
        super().__init__()
        self.arch = ConvNeXt(depths, dims)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.arch(x)  # type: ignore[no-any-return]


class PixelShuffleUp(nn.Module):
    """1x1 spectral conv (+ BatchNorm), ReLU, PixelShuffle, then a 2x2 box blur on a top/left replication pad."""

    def __init__(self, cin: int, cout: int, scale: int, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [SpectralConv2d(cin, cout * scale * scale, 1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout * scale * scale))
        self.conv = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.blur(F.pixel_shuffle(F.relu(self.conv(x)), self.scale))

    @staticmethod
    def blur(x: Tensor) -> Tensor:
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)

    def projected(self, x: Tensor, coef: Tensor, chunk: int = PROJECT_CHUNK) -> Tensor:
        """``einsum("noc,nchw->nohw", coef, self(x))`` without the (N, C, H, W) output: shuffle and blur act on
        each channel alike, so the channels are contracted first, at the input's resolution (the 1x1 conv's
        output, s*s times the channels, is made ``chunk`` pixels at a time: it never exists whole)."""
        conv = self.conv[0]
        assert isinstance(conv, SpectralConv2d) and len(self.conv) == 1, "for the last upsampler (no BatchNorm)"
        n, cin, h, w = x.shape
        s2, c = self.scale * self.scale, coef.shape[-1]
        weight = conv.weight.view(-1, cin)
        bias = conv.bias.view(1, -1, 1) if conv.bias is not None else torch.zeros_like(weight[None, :, :1])
        flat = x.reshape(n, cin, h * w)
        out = torch.empty(n, coef.shape[1], s2, h * w, dtype=coef.dtype, device=x.device)
        for p in range(0, h * w, chunk):
            r = torch.baddbmm(bias, weight.expand(n, -1, -1), flat[:, :, p : p + chunk]).relu_()
            # channel c*s*s + k of r is sub-pixel k of output channel c
            out[:, :, :, p : p + chunk] = torch.bmm(coef, r.view(n, c, -1)).view(n, -1, s2, r.shape[-1])
        return self.blur(F.pixel_shuffle(out.view(n, -1, h, w), self.scale))


class UnetBlock(nn.Module):
    def __init__(self, up_in: int, skip_in: int, out: int) -> None:
        super().__init__()
        self.shuf = PixelShuffleUp(up_in, out, 2, batch_norm=True)
        self.bn = nn.BatchNorm2d(skip_in)
        self.conv = nn.Sequential(SpectralConv2d(out + skip_in, out, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(out))

    def forward(self, up: Tensor, skip: Tensor) -> Tensor:
        x = F.relu(torch.cat([self.shuf(up), self.bn(skip)], dim=1))
        return self.conv(x)  # type: ignore[no-any-return]


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout, on batch-first tensors."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.randn(3 * dim, dim) / math.sqrt(dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        w, b = self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)
        n, lq, d = query.shape
        split = (n, -1, self.heads, d // self.heads)
        q = F.linear(query, w[0], b[0]).view(split).transpose(1, 2)
        k = F.linear(key, w[1], b[1]).view(split).transpose(1, 2)
        v = F.linear(value, w[2], b[2]).view(split).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, lq, d)
        return self.out_proj(out)  # type: ignore[no-any-return]


class CrossAttentionLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.multihead_attn = Attention(HIDDEN, HEADS)
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, x: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        return self.norm(x + self.multihead_attn(x + query_pos, memory + pos, memory))  # type: ignore[no-any-return]


class SelfAttentionLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = Attention(HIDDEN, HEADS)
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, x: Tensor, query_pos: Tensor) -> Tensor:
        q = x + query_pos
        return self.norm(x + self.self_attn(q, q, x))  # type: ignore[no-any-return]


class FFNLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear1 = nn.Linear(HIDDEN, FFN_DIM)
        self.linear2 = nn.Linear(FFN_DIM, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))  # type: ignore[no-any-return]


class MLP(nn.Module):
    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def sine_position_encoding(height: int, width: int, device: torch.device, features: int = HIDDEN // 2) -> Tensor:
    """(H*W, 2*features) DETR-style sine encoding: positions normalised to (0, 2 pi], temperature 1e4,
    sin/cos interleaved, y features then x features (the same float32 operations as the official code)."""
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    dim_t = torch.arange(features, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * (dim_t // 2) / features)

    def encode(p: Tensor) -> Tensor:
        t = p[:, None] / dim_t
        return torch.stack((t[:, 0::2].sin(), t[:, 1::2].cos()), dim=2).flatten(1)

    ey, ex = encode(y), encode(x)
    return torch.cat([ey[:, None, :].expand(height, width, features), ex[None, :, :].expand(height, width, features)],
                     dim=2).reshape(height * width, 2 * features)  # fmt: skip


class MultiScaleColorDecoder(nn.Module):
    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        self.query_feat = nn.Embedding(NUM_QUERIES, HIDDEN)
        self.query_embed = nn.Embedding(NUM_QUERIES, HIDDEN)
        self.level_embed = nn.Embedding(NUM_SCALES, HIDDEN)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, HIDDEN, 1) for c in in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer() for _ in range(DEC_LAYERS))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer() for _ in range(DEC_LAYERS))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer() for _ in range(DEC_LAYERS))
        self.decoder_norm = nn.LayerNorm(HIDDEN)
        self.color_embed = MLP((HIDDEN, HIDDEN, HIDDEN, HIDDEN))

    def forward(self, scales: Sequence[Tensor]) -> Tensor:
        """Features at the three scales -> the queries' colour embeddings (N, 100, 256)."""
        src, pos = [], []
        for i, feat in enumerate(scales):
            h, w = feat.shape[-2:]
            pos.append(sine_position_encoding(h, w, feat.device).to(feat.dtype)[None])
            src.append(self.input_proj[i](feat).flatten(2).transpose(1, 2) + self.level_embed.weight[i])
        n = scales[0].shape[0]
        query_pos = self.query_embed.weight[None]
        out = self.query_feat.weight[None].expand(n, -1, -1)
        for i in range(DEC_LAYERS):
            level = i % NUM_SCALES
            out = self.transformer_cross_attention_layers[i](out, src[level], pos[level], query_pos)
            out = self.transformer_self_attention_layers[i](out, query_pos)
            out = self.transformer_ffn_layers[i](out)
        return self.color_embed(self.decoder_norm(out))  # type: ignore[no-any-return]


class DualDecoder(nn.Module):
    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            UnetBlock(dims[3], dims[2], NF), UnetBlock(NF, dims[1], NF), UnetBlock(NF, dims[0], NF // 2)
        )
        self.last_shuf = PixelShuffleUp(NF // 2, NF // 2, 4, batch_norm=False)
        self.color_decoder = MultiScaleColorDecoder((NF, NF, NF // 2))

    def forward(self, feats: Sequence[Tensor], head: Tensor) -> Tensor:
        """Encoder features and a linear head (O, 100) on the query maps -> ``head`` applied to the 100 maps (the
        queries' colour embeddings dotted with the full-resolution features), (N, O, H, W)."""
        out0 = self.layers[0](feats[3], feats[2])
        out1 = self.layers[1](out0, feats[1])
        out2 = self.layers[2](out1, feats[0])
        embed = self.color_decoder((out0, out1, out2))  # (N, 100, 256)
        return self.last_shuf.projected(out2, torch.matmul(head, embed))


class DDColorNet(nn.Module):
    """Grey image as RGB (N, 3, H, W) in [0, 1], H and W multiples of 32 -> raw CIELab a/b (N, 2, H, W)."""

    mean: Tensor
    std: Tensor

    def __init__(self, variant: str = "tiny") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown DDColor variant {variant!r}: use {' or '.join(VARIANTS)}")
        self.variant = variant
        depths, dims = VARIANTS[variant]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.encoder = ImageEncoder(depths, dims)
        self.decoder = DualDecoder(dims)
        self.refine_net = nn.Sequential(nn.Sequential(SpectralConv2d(NUM_QUERIES + 3, OUT_CHANNELS, 1, bias=True)))

    def forward(self, rgb: Tensor) -> Tensor:
        if rgb.shape[-1] % SIZE_STEP or rgb.shape[-2] % SIZE_STEP:
            raise ValueError(f"DDColor needs sides that are multiples of {SIZE_STEP}, not {tuple(rgb.shape[-2:])}")
        x = (rgb - self.mean) / self.std
        refine = cast(SpectralConv2d, self.refine_net.get_submodule("0.0"))
        w = refine.weight[:, :, 0, 0]  # (2, 100 + 3): on the query maps, then on the normalised input
        # refine(cat(query maps, x)), the 1x1 conv's query part applied before the maps are formed
        maps: Tensor = self.decoder(self.encoder(x), w[:, :NUM_QUERIES])
        return maps + F.conv2d(x, w[:, NUM_QUERIES:, None, None], refine.bias)


def build_net(variant: str, device: str | torch.device = "cpu") -> DDColorNet:
    """A DDColor network of a variant; ``device="meta"`` gives one without storage (names and shapes only)."""
    with torch.device(device):
        return DDColorNet(variant).eval()


def key_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """The official state dict's keys and shapes for a variant (from a network on the meta device)."""
    return {k: tuple(v.shape) for k, v in build_net(variant, "meta").state_dict().items()}


def _refresh_spectral(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, SpectralConv2d):
            m.refresh()


# --------------------------------------------------------------------------------------------- checkpoints


def detect_variant(state: Mapping[str, Tensor]) -> str:
    """Whether a state dict is DDColor's "tiny" or "large", from its stem's width and its stage 3's depth."""
    stem = state.get(_STEM_KEY)
    if not isinstance(stem, Tensor) or stem.ndim != 4:
        raise ValueError(f"no tensor {_STEM_KEY!r}: not a DDColor state dict")
    prefix = "encoder.arch.stages.2."
    depth = len({k[len(prefix) :].split(".", 1)[0] for k in state if k.startswith(prefix)})
    for name, (depths, dims) in VARIANTS.items():
        if stem.shape[0] == dims[0] and depth == depths[2]:
            return name
    raise ValueError(
        f"a ConvNeXt encoder with stem width {stem.shape[0]} and {depth} blocks in stage 3 is neither DDColor "
        f"variant (tiny: 96 and 9, large: 192 and 27)"
    )


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Tensor]:
    """The state dict of a DDColor checkpoint file: ``{"params": state_dict, ...}`` (BasicSR's layout, what the
    official loader reads; ``params_ema`` when a file has no ``params``) or a raw state dict, read as untrusted
    input (``chromata.models.base.load_untrusted``: weights only; ``mmap`` for a check). Any failure: a one-line
    ``ValueError``."""
    path = Path(path)
    blob = load_untrusted(path, mmap=mmap)
    if isinstance(blob, Mapping):
        for key in ("params", "params_ema"):
            if isinstance(blob.get(key), Mapping):
                blob = blob[key]
                break
    if not isinstance(blob, Mapping) or not blob:
        raise ValueError(f"{path} holds {type(blob).__name__}, not a state dict (raw or under 'params')")
    bad = next((k for k, v in blob.items() if not isinstance(k, str) or not isinstance(v, Tensor)), None)
    if bad is not None:
        raise ValueError(f"{path} is not a state dict: entry {bad!r} is a {type(blob[bad]).__name__}, not a tensor")
    return dict(blob)


def _first_mismatch(state: Mapping[str, Tensor], expected: Mapping[str, torch.Size]) -> tuple[str, int] | None:
    """The first problem (a missing key or a shape, in the network's order, then an unexpected key) and their
    number; None when the state dict fits."""
    problems = []
    for key, shape in expected.items():
        if key not in state:
            problems.append(f"missing key {key!r}")
        elif state[key].shape != shape:
            problems.append(f"{key!r} has shape {tuple(state[key].shape)} in the file, {tuple(shape)} in DDColor")
    problems += [f"unexpected key {k!r}" for k in state if k not in expected]
    return (problems[0], len(problems)) if problems else None


def checked_state(state: Mapping[str, Tensor], variant: str | None = None) -> tuple[str, dict[str, Tensor]]:
    """The variant and the complete state dict of a DDColor state dict in the official layout, checked strictly:
    every tensor used, none missing, shapes equal. The constant ``mean``/``std`` buffers may be absent (then
    ImageNet's); present, they must hold ImageNet's values. ``num_batches_tracked`` may be absent (unused in
    eval). A mismatch: a one-line ``ValueError`` naming the first one."""
    variant = variant or detect_variant(state)
    expected = {k: torch.Size(v) for k, v in key_shapes(variant).items()}
    reference = {k: torch.tensor(v).view(1, 3, 1, 1) for k, v in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD))}
    full = dict(state)
    for key in expected:
        if key not in full and (key in _OPTIONAL or key.endswith(".num_batches_tracked")):
            full[key] = reference[key] if key in reference else torch.zeros((), dtype=torch.long)
    mismatch = _first_mismatch(full, expected)
    if mismatch:
        first, count = mismatch
        more = f" ({count} mismatches in all)" if count > 1 else ""
        raise ValueError(f"not a DDColor-{variant} state dict in the official layout: {first}{more}")
    for key, value in reference.items():
        if not torch.allclose(full[key].float(), value, atol=1e-6):
            found, imagenet = ([round(v, 4) for v in t.flatten().tolist()] for t in (full[key], value))
            raise ValueError(f"buffer {key!r} is {found}, not ImageNet's {imagenet}")
    return variant, full


def load_net(state: Mapping[str, Tensor], variant: str | None = None) -> DDColorNet:
    """A DDColor network (eval mode, CPU, float32) from a state dict in the official layout, checked strictly
    (:func:`checked_state`); built on the meta device and given the state's own tensors (no second copy)."""
    variant, full = checked_state(state, variant)
    net = build_net(variant, "meta")
    full = {k: v.float() if v.is_floating_point() else v for k, v in full.items()}
    net.load_state_dict(full, strict=True, assign=True)
    _refresh_spectral(net)
    return net.eval().requires_grad_(False)


def check_file(path: str | Path) -> str:
    """What a run checks before it starts its engines: the file is a DDColor checkpoint in the official layout
    (every key, every shape; the tensors mapped, not read, and no network built). Its variant; ``ValueError``
    (one line naming the file) otherwise."""
    try:
        return checked_state(read_checkpoint(path, mmap=True))[0]
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from exc


def save_official_format(state: Mapping[str, Tensor], path: str | Path, raw: bool = False) -> Path:
    """Write a state dict as the authors publish theirs: ``{"params": state_dict}`` (BasicSR), or the raw state
    dict (``raw=True``) — for tests and benchmarks."""
    path = Path(path)
    torch.save(dict(state) if raw else {"params": dict(state)}, path)
    return path


# --------------------------------------------------------------------------------------------- test weights

SYNTHETIC_RECIPE = "chromata-ddcolor-synthetic/1"
ICNR_NOISE = 0.1  # part of SYNTHETIC_RECIPE: changing either changes the recipe
BN_VAR_SCALE = 0.03
_EMBEDDINGS = ("query_feat.weight", "query_embed.weight", "level_embed.weight")


def _normal(rng: np.random.Generator, shape: Sequence[int], std: float, mean: float = 0.0) -> Tensor:
    values = rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(std) + np.float32(mean)
    return torch.from_numpy(values)


def synthetic_state_dict(shapes: Mapping[str, Sequence[int]]) -> dict[str, Tensor]:
    """Deterministic stand-in weights for a DDColor state dict's keys and shapes (``SYNTHETIC_RECIPE``): each key
    drawn from a numpy Generator seeded by the CRC-32 of recipe and key. Conv/linear weights normal / sqrt(fan in),
    biases small, norm scales near 1, BatchNorm running variances positive, layer scales 0.3, embeddings unit
    normal; spectral ``u``/``v`` by five power iterations on ``weight_orig`` (so sigma is its largest singular
    value, as in a trained file); the BatchNorms after spectral convs with running variances x ``BN_VAR_SCALE``
    (spectral norm shrinks activations: a trained file's statistics restore them); the pixel-shuffle convs'
    sub-pixel channels nearly equal (``_icnr``). The a/b it gives are non-degenerate: tens of units, smooth,
    varying with the image (std ~25 on the oracle's inputs)."""
    out: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        rng = np.random.default_rng(zlib.crc32(f"{SYNTHETIC_RECIPE}:{key}".encode()))
        leaf = key.rsplit(".", 1)[-1]
        if key in ("mean", "std"):
            out[key] = torch.tensor(IMAGENET_MEAN if key == "mean" else IMAGENET_STD).view(*shape)
        elif leaf == "num_batches_tracked":
            out[key] = torch.tensor(1000, dtype=torch.long)
        elif leaf in ("weight_u", "weight_v"):
            continue  # with weight_orig
        elif leaf == "weight_orig":
            w = _normal(rng, shape, 1.0 / math.sqrt(math.prod(shape[1:])))
            w = _icnr(key, w)
            mat = w.reshape(shape[0], -1).double()
            u = F.normalize(torch.from_numpy(rng.standard_normal(shape[0])), dim=0)
            for _ in range(5):
                v = F.normalize(mat.t() @ u, dim=0)
                u = F.normalize(mat @ v, dim=0)
            out[key] = w
            out[key[: -len("orig")] + "u"], out[key[: -len("orig")] + "v"] = u.float(), v.float()
        elif leaf == "running_mean":
            out[key] = _normal(rng, shape, 0.1)
        elif leaf == "running_var":
            var = rng.uniform(0.5, 1.5, tuple(shape)).astype(np.float32)
            if key.endswith((".shuf.conv.1.running_var", ".conv.2.running_var")):  # after a spectral conv
                var *= np.float32(BN_VAR_SCALE)
            out[key] = torch.from_numpy(var)
        elif leaf == "gamma":
            out[key] = _normal(rng, shape, 0.05, 0.3)
        elif leaf in ("bias", "in_proj_bias"):
            out[key] = _normal(rng, shape, 0.05)
        elif key.endswith(_EMBEDDINGS):
            out[key] = _normal(rng, shape, 1.0)
        elif len(shape) == 1:  # LayerNorm / BatchNorm scale
            out[key] = _normal(rng, shape, 0.1, 1.0)
        else:
            out[key] = _normal(rng, shape, 1.0 / math.sqrt(math.prod(shape[1:])))
    return {k: _icnr(k, out[k]) if not k.endswith(("weight_orig", "weight_u", "weight_v")) else out[k] for k in shapes}


def _icnr(key: str, t: Tensor) -> Tensor:
    """The channels a pixel shuffle spreads over the sub-pixels of one output channel, made nearly equal (as ICNR
    initialisation and training leave them): a random checkerboard would dominate the output otherwise."""
    if "shuf.conv." not in key or key.endswith("num_batches_tracked"):
        return t
    r2 = 4 if key.startswith("decoder.layers.") else 16
    base = t[::r2].repeat_interleave(r2, dim=0)
    return base + ICNR_NOISE * (t - base)


# --------------------------------------------------------------------------------------------- colorizer


class DDColorColorizer:
    """DDColor as a chromata ``Colorizer``: L* -> the grey image as sRGB -> the network at ``input_size`` -> raw
    CIELab a/b. No uncertainty output: the harm estimator's proxy. Reproduces the official colours by default
    (``restrain = False``)."""

    family = "ddcolor"

    def __init__(
        self,
        net: DDColorNet,
        weights_sha256: str,
        device: str = "auto",
        input_size: int | None = None,
        precision: str = "auto",
    ) -> None:
        size = DEFAULT_INPUT_SIZE if input_size is None else int(input_size)
        if size < SIZE_STEP or size % SIZE_STEP:
            raise ValueError(f"DDColor input size {size}: use a multiple of {SIZE_STEP}")
        if precision not in ("auto", "fp32", "fp16"):
            raise ValueError(f"unknown precision {precision!r}: use auto, fp32 or fp16")
        self.device = pick_device(device)
        if precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError(f"precision fp16 needs a CUDA device, not {self.device!r}")
        self.precision = "fp32" if precision == "auto" else precision
        self.variant = net.variant
        self.name = f"ddcolor-{net.variant}"
        self.weights_sha256 = weights_sha256
        self.input_size = size
        self.calibration: Calibration | None = None
        self.restrain = False
        # the official inference stretches the sRGB image (cv2 bilinear) before taking L*: chromata's pipeline
        # does the same for this family (chromata.models.base.model_input)
        self.resample = "srgb-bilinear"
        self.net = net.to(self.device).eval()

    @classmethod
    def load(
        cls, path: str | Path, device: str = "auto", input_size: int | None = None, precision: str = "auto"
    ) -> DDColorColorizer:
        from chromata.archive.storage import sha256_file

        path = Path(path)
        state = read_checkpoint(path)
        try:
            net = load_net(state)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        del state
        model = cls(net, sha256_file(path), device=device, input_size=input_size, precision=precision)
        log.info("loaded %s (%s…) on %s", model.name, model.weights_sha256[:12], model.device)
        return model

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        light = np.ascontiguousarray(lightness, dtype=np.float32)
        if light.ndim != 3:
            raise ValueError(f"lightness must be (N, H, W), not {light.shape}")
        rgb = grey_rgb(light)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))).to(self.device)
            fp16 = self.precision == "fp16"
            with torch.autocast(self.device.split(":")[0], dtype=torch.float16, enabled=fp16):
                ab = self.net(x)
            out = ab.float().permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        out = restrained(self, light, out)
        return ChromaPrediction(ab=out, uncertainty=estimated_uncertainty(light, out))

    def describe(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "model_family": self.family,
            "model_variant": self.variant,
            "model_licence": LICENCE,
            "model_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "precision": self.precision,
            "device": self.device,
            "restraint": restraint_facts(self),
            "uncertainty": "not provided by the model: estimated from the grey input and the colours "
            "(chromata.judgement.harm proxy)",
        }
