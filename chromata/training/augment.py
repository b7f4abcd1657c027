"""Archive-reality augmentations of the training input (L* only; the colour target stays clean).

Scans of old prints are not clean camera photos: they have film grain, soft focus, dust and
scratches, faded or harsh tone curves, and toned (sepia, cyanotype) emulsions whose lightness differs
from a neutral print of the same scene. Training on clean L* alone teaches the model a world it will
not see. Each augmentation is drawn per sample with probability ``p`` and all run on the batch's
device, so they cost nothing next to the network on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chromata.colormath.torchcolor import lightness_to_grey, rgb_to_lightness

# Print tones as RGB multipliers of a neutral grey (sepia: warm brown; cyanotype: Prussian blue).
TONES = {"sepia": (1.0, 0.80, 0.58), "cyanotype": (0.45, 0.66, 1.0), "selenium": (0.92, 0.86, 0.90)}


@dataclass(frozen=True)
class AugmentConfig:
    p_tone: float = 0.25
    p_curve: float = 0.5
    p_blur: float = 0.3
    p_grain: float = 0.4
    p_dust: float = 0.3
    max_blur_sigma: float = 1.8
    max_grain: float = 6.0  # L* units, standard deviation
    max_specks: int = 40


def _uniform(n: int, lo: float, hi: float, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(n, 1, 1, 1, device=like.device, dtype=like.dtype).uniform_(lo, hi)


def _chosen(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, device=like.device) < p).to(like.dtype)


def tone(light: torch.Tensor, tint: tuple[float, float, float], strength: torch.Tensor) -> torch.Tensor:
    """L* of a neutral print re-rendered as a toned print (the tint mixed in by ``strength`` 0..1)."""
    grey = lightness_to_grey(light)  # (N, 1, H, W)
    t = torch.as_tensor(tint, dtype=light.dtype, device=light.device).view(1, 3, 1, 1)
    mult = 1.0 + strength * (t - 1.0)
    return rgb_to_lightness((grey * mult).clamp(0.0, 1.0), dim=1)


def tone_curve(light: torch.Tensor) -> torch.Tensor:
    """Gamma, contrast and faded blacks/whites — what over/under-development and age do to a print."""
    n = light.shape[0]
    x = (light / 100.0).clamp(0.0, 1.0) ** _uniform(n, 0.7, 1.45, light)
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * _uniform(n, 0.65, 1.25, light)
    lo, hi = _uniform(n, 0.0, 0.15, light), _uniform(n, 0.85, 1.0, light)
    return (100.0 * (lo + x.clamp(0.0, 1.0) * (hi - lo))).clamp(0.0, 100.0)


def gaussian_blur(light: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur (separable, reflect padding); ``sigma`` is (N, 1, 1, 1)."""
    n, _, h, w = light.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    xs = torch.arange(-radius, radius + 1, device=light.device, dtype=light.dtype)
    k = torch.exp(-(xs.view(1, -1) ** 2) / (2 * sigma.view(n, 1) ** 2))
    k = k / k.sum(dim=1, keepdim=True)  # (N, K)
    x = light.reshape(1, n, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(n, 1, 1, -1), groups=n)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(n, 1, -1, 1), groups=n)
    return x.reshape(n, 1, h, w)


def grain(light: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Film grain: noise of 1–2 px clumps, stronger in the mid-tones (as silver grain is)."""
    n, _, h, w = light.shape
    noise = torch.randn(n, 1, (h + 1) // 2, (w + 1) // 2, device=light.device, dtype=light.dtype)
    coarse = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    fine = torch.randn_like(light)
    mix = _uniform(n, 0.0, 1.0, light)
    g = mix * coarse + (1 - mix) * fine
    midtone = 1.0 - ((light - 50.0) / 50.0) ** 2 * 0.6
    return (light + amount * midtone * g).clamp(0.0, 100.0)


def dust(light: torch.Tensor, max_specks: int) -> torch.Tensor:
    """Scan dust (bright or dark specks of about 3 px) and the odd light vertical scratch."""
    n, _, h, w = light.shape
    count = int(torch.randint(1, max(2, max_specks), (1,)).item())
    idx = torch.randint(0, h * w, (n, 1, count), device=light.device)
    bright = torch.rand(n, 1, count, device=light.device) < 0.7
    maps = []
    for sel in (bright, ~bright):
        m = torch.zeros(n, 1, h * w, device=light.device, dtype=light.dtype)
        m.scatter_(2, idx, sel.to(light.dtype))
        maps.append(F.max_pool2d(m.view(n, 1, h, w), 3, stride=1, padding=1))
    out = torch.where(maps[0] > 0, 97.0, torch.where(maps[1] > 0, 4.0, light))
    scratched = torch.rand(n, 1, 1, 1, device=light.device) < 0.3
    cols = torch.randint(0, w, (n,), device=light.device)
    line = (torch.arange(w, device=light.device).view(1, 1, 1, w) == cols.view(n, 1, 1, 1)) & scratched
    return torch.where(line, (out + 25.0).clamp(max=100.0), out)


def augment_lightness(light: torch.Tensor, cfg: AugmentConfig | None = None) -> torch.Tensor:
    """Apply the archive augmentations to a batch of L* (N, 1, H, W); returns a new tensor."""
    cfg = cfg or AugmentConfig()
    n = light.shape[0]
    x = light
    if cfg.p_tone > 0:
        for tint in TONES.values():
            pick = _chosen(n, cfg.p_tone / len(TONES), x)
            if pick.any():
                toned = tone(x, tint, _uniform(n, 0.4, 1.0, x))
                x = pick * toned + (1 - pick) * x
    for p, fn in (
        (cfg.p_curve, tone_curve),
        (cfg.p_blur, lambda t: gaussian_blur(t, _uniform(n, 0.4, cfg.max_blur_sigma, t))),
        (cfg.p_grain, lambda t: grain(t, _uniform(n, 0.5, cfg.max_grain, t))),
        (cfg.p_dust, lambda t: dust(t, cfg.max_specks)),
    ):
        pick = _chosen(n, p, x)
        if p > 0 and pick.any():
            x = pick * fn(x) + (1 - pick) * x
    return x
