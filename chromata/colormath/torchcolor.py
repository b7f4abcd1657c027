"""The colour maths of :mod:`chromata.colormath.color`, in torch, for training batches on the GPU.

Same constants (sRGB primaries, D65 white derived from the matrix, CIE 1976 breakpoint), so a crop
converted here and a photo converted by ``chromata.colormath.color`` agree to float rounding (tested).
"""

from __future__ import annotations

from typing import Any

import torch

from chromata.colormath import color

_DELTA = 6.0 / 29.0


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0.0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.clamp(min=1e-12) ** (1 / 2.4) - 0.055)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA**3, t.clamp(min=1e-12) ** (1 / 3), t / (3 * _DELTA**2) + 4.0 / 29.0)


def _f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA, t**3, (3 * _DELTA**2) * (t - 4.0 / 29.0))


def bgr_u8_to_lab(bgr: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 BGR -> (N, 3, H, W) float32 L*a*b*."""
    rgb = bgr.flip(-1).float().div(255.0)
    lin = srgb_to_linear(rgb)
    m = torch.as_tensor(color.RGB_TO_XYZN, dtype=lin.dtype, device=lin.device)
    xyz = torch.einsum("nhwc,kc->nkhw", lin, m)  # X/Xn, Y/Yn, Z/Zn
    fx, fy, fz = _f(xyz).unbind(dim=1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lightness_to_grey(light: torch.Tensor) -> torch.Tensor:
    """L* (0..100) -> the sRGB value in [0, 1] of the neutral grey with that lightness."""
    return linear_to_srgb(_f_inv((light + 16.0) / 116.0))


def rgb_to_lightness(rgb: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """sRGB in [0, 1] with channels on ``dim`` (R, G, B order) -> L* with that dimension kept (size 1)."""
    y_row = torch.as_tensor(color.RGB_TO_XYZN[1], dtype=rgb.dtype, device=rgb.device)
    shape = [1] * rgb.dim()
    shape[dim] = 3
    y = (srgb_to_linear(rgb) * y_row.view(shape)).sum(dim=dim, keepdim=True)
    return 116.0 * _f(y) - 16.0


def merge_chroma_to(lightness: Any, ab_lowres: Any, dtype: Any, device: str) -> Any:
    """``chromata.colormath.color.merge_chroma_to`` on a torch device (issue #17: on a GPU node the per-pixel work goes
    where the model is, off the CPU cores that decode and encode). Full-resolution L* (H, W) and the model's
    chroma (h, w, 2) in, (H, W, 3) BGR of ``dtype`` (uint8 or uint16) out, as numpy arrays; the chroma is
    upsampled bilinearly with half-pixel centres (OpenCV's INTER_LINEAR), Lab → XYZ → linear sRGB by the
    same constants, and the sRGB curve applied exactly (the CPU path's 8-bit table is within one level of
    it). Equal to the CPU path within one level; tested on a CPU through this same code."""
    import numpy as np

    dt = np.dtype(dtype)
    if dt not in (np.uint8, np.uint16):
        raise ValueError(f"unsupported output dtype {dt}")
    top = float(np.iinfo(dt).max)
    h, w = lightness.shape
    with torch.inference_mode():
        light = torch.from_numpy(np.ascontiguousarray(lightness, np.float32)).to(device, non_blocking=True)
        ab = torch.from_numpy(np.ascontiguousarray(ab_lowres, np.float32)).to(device).permute(2, 0, 1)[None]
        if ab.shape[-2:] != (h, w):
            ab = torch.nn.functional.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
        fy = (light + 16.0) / 116.0
        xyz = torch.stack([_f_inv(fy + ab[0, 0] / 500.0), _f_inv(fy), _f_inv(fy - ab[0, 1] / 200.0)], dim=-1)
        m = torch.as_tensor(color.XYZN_TO_LINEAR_BGR, dtype=torch.float32, device=xyz.device)
        out = linear_to_srgb(xyz @ m.T).mul_(top).add_(0.5).floor_().clamp_(0.0, top)
        pixels = out.to(torch.int32 if dt == np.uint16 else torch.uint8).cpu().numpy()
    return pixels.astype(dt, copy=False)
