"""CIE Lab colour maths: conversions, chroma merge at full resolution, colourfulness, CIEDE2000.

All conversions go through float32 sRGB in [0, 1] and CIE 1976 L*a*b* under D65 (L in [0, 100], a/b
roughly in [-128, 127]), so 8-bit and 16-bit images share one code path. The conversions are written
out (not OpenCV's) so that Lab -> sRGB inverts sRGB -> Lab exactly: the luminance of a scan survives
colorization to the last bit of a 16-bit sample.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.colormath import kernels

F32 = NDArray[np.float32]


def to_unit_float(img: NDArray[Any]) -> F32:
    """Scale an integer or float image to float32 in [0, 1] by its dtype's range."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def from_unit_float(img: F32, dtype: np.dtype[Any] | type) -> NDArray[Any]:
    """Quantise a float image in [0, 1] to ``dtype`` (uint8 or uint16), rounding to nearest."""
    dt = np.dtype(dtype)
    if dt not in (np.uint8, np.uint16):
        raise ValueError(f"unsupported output dtype {dt}")
    top = float(np.iinfo(dt).max)
    out: NDArray[Any] = np.clip(img * top + 0.5, 0, top).astype(dt)
    return out


# sRGB (IEC 61966-2-1) primaries -> CIE XYZ, D65. The white point is derived from the matrix itself,
# so a neutral grey has a* = b* = 0 exactly and Lab -> sRGB is the exact inverse of sRGB -> Lab.
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float64,
)
_WHITE = _RGB_TO_XYZ.sum(axis=1)
_XYZN = (_RGB_TO_XYZ / _WHITE[:, None]).astype(np.float32)  # rows: X/Xn, Y/Yn, Z/Zn
_XYZN_INV = np.linalg.inv(_RGB_TO_XYZ / _WHITE[:, None]).astype(np.float32)
RGB_TO_XYZN = _XYZN  # public: the same matrix for other back-ends (the torch conversion used in training)
_DELTA = 6.0 / 29.0  # CIE 1976 L*a*b* breakpoint


def _srgb_to_linear(c: F32) -> F32:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _linear_to_srgb(c: F32) -> F32:
    c = np.clip(c, 0.0, 1.0, dtype=np.float32)
    out: F32 = np.asarray(cv2.pow(c, 1.0 / 2.4), dtype=np.float32)  # several times faster than numpy's pow
    out *= np.float32(1.055)
    out -= np.float32(0.055)
    low = c <= 0.0031308
    out[low] = c[low] * np.float32(12.92)
    return out


def _f(t: F32) -> F32:
    return np.where(t > _DELTA**3, np.cbrt(t), t / (3 * _DELTA**2) + 4.0 / 29.0).astype(np.float32)


def _f_inv(t: F32) -> F32:
    out = t * t * t
    low = t <= _DELTA
    out[low] = (3 * _DELTA**2) * (t[low] - 4.0 / 29.0)
    return out.astype(np.float32, copy=False)


def gray_to_lightness(gray: F32) -> F32:
    """L* (0..100) of a single-channel image in [0, 1], treated as sRGB-encoded neutral grey."""
    return (116.0 * _f(_srgb_to_linear(gray.astype(np.float32))) - 16.0).astype(np.float32)


@lru_cache(maxsize=2)
def _lightness_lut(levels: int) -> F32:
    return gray_to_lightness(np.arange(levels, dtype=np.float32) / np.float32(levels - 1))


def grey_pixels_to_lightness(pixels: NDArray[Any]) -> F32:
    """L* of 8- or 16-bit grey samples by table look-up: the same values as ``gray_to_lightness``
    on ``to_unit_float(pixels)``, at a fraction of the cost."""
    if pixels.dtype == np.uint8:  # OpenCV's table look-up: ~5x numpy's indexing, the same values
        return np.asarray(cv2.LUT(pixels, _lightness_lut(256)), dtype=np.float32)
    if pixels.dtype == np.uint16:
        out: F32 = _lightness_lut(65536)[pixels]
        return out
    return gray_to_lightness(to_unit_float(pixels))


def bgr_to_lab(bgr: F32) -> F32:
    """BGR float32 in [0, 1] -> Lab float32 (H, W, 3), D65."""
    lin = _srgb_to_linear(bgr[..., ::-1].astype(np.float32))
    xyz = lin @ _XYZN.T
    fx, fy, fz = (_f(xyz[..., i]) for i in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(np.float32)


def lab_to_bgr(lab: F32) -> F32:
    """Lab float32 -> BGR float32; colours outside sRGB are clipped to [0, 1]."""
    fy = (lab[..., 0] + np.float32(16.0)) / np.float32(116.0)
    fx = fy + lab[..., 1] / np.float32(500.0)
    fz = fy - lab[..., 2] / np.float32(200.0)
    xyz = cv2.merge([_f_inv(fx), _f_inv(fy), _f_inv(fz)])
    # BGR directly: the inverse matrix with its rows reversed (cv2.transform is a fast per-pixel matmul)
    bgr = np.asarray(cv2.transform(xyz, _XYZN_INV[::-1].copy()), dtype=np.float32)
    return _linear_to_srgb(bgr)


REDUCED_SIDE = 1024  # the reduction of L* kept for the model and the input checks (px, long side)


def reduction_factor(width: int, height: int) -> int:
    return max(1, math.ceil(max(width, height) / REDUCED_SIDE))


class BlockReducer:
    """Reduce an image by an integer factor as bands of rows stream past: rows by exact block means
    (carrying partial blocks over to the next band), columns by INTER_AREA. Fed one band or many, the
    result is the same, so a scan processed in bands gets exactly the model input of one held whole."""

    def __init__(self, width: int, factor: int) -> None:
        self.factor, self.out_w = factor, max(1, round(width / factor))
        self.rows: list[F32] = []
        self.carry: F32 | None = None

    def _emit(self, block_rows: F32) -> None:
        self.rows.append(
            np.asarray(cv2.resize(block_rows, (self.out_w, block_rows.shape[0]), interpolation=cv2.INTER_AREA))
        )

    def add(self, band: F32) -> None:
        band = band.astype(np.float32, copy=False)
        if self.carry is not None:
            band = np.concatenate([self.carry, band])
        n = band.shape[0] // self.factor * self.factor
        if n:  # whole blocks of rows: INTER_AREA at an integer row factor is the exact block mean, and each
            # output row depends on its own block only, so any split into bands gives the same rows
            # (one OpenCV pass: ~8x the numpy reshape-and-mean it replaces, equal to float rounding)
            self.rows.append(
                np.asarray(
                    cv2.resize(band[:n], (self.out_w, n // self.factor), interpolation=cv2.INTER_AREA),
                    dtype=np.float32,
                )
            )
        self.carry = band[n:].copy() if n < band.shape[0] else None

    def result(self) -> F32:
        if self.carry is not None:
            self._emit(self.carry.mean(axis=0, keepdims=True))
            self.carry = None
        return np.concatenate(self.rows).astype(np.float32)


def reduce_lightness(lightness: F32) -> F32:
    """L* reduced to at most ``REDUCED_SIDE`` px on its long side (unchanged when already that small)."""
    h, w = lightness.shape
    factor = reduction_factor(w, h)
    if factor == 1:
        return lightness
    reducer = BlockReducer(w, factor)
    reducer.add(lightness)
    return reducer.result()


RESAMPLINGS = ("area", "srgb-bilinear")


def lightness_to_gray(lightness: F32) -> F32:
    """The sRGB-encoded neutral grey in [0, 1] of an L* image: the inverse of :func:`gray_to_lightness`."""
    fy = (np.asarray(lightness, np.float32) + np.float32(16.0)) / np.float32(116.0)
    return _linear_to_srgb(_f_inv(fy))


def working_lightness(lightness: F32, size: int, resample: str = "area") -> F32:
    """L* -> a model's square working resolution: block-reduced (``reduce_lightness``), then area-averaged.
    The same for a scan held whole and one streamed in bands (``chromata.pipeline.tiled``).

    ``resample="srgb-bilinear"``: stretched as the sRGB grey image by OpenCV's bilinear resize, then L* — what
    DDColor's official inference feeds its network (it resizes the image, then takes L*); its colours depend on
    it (tests/test_ddcolor.py)."""
    small = reduce_lightness(lightness)
    if resample == "srgb-bilinear":
        grey = cv2.resize(lightness_to_gray(small), (size, size), interpolation=cv2.INTER_LINEAR)
        return gray_to_lightness(np.asarray(grey, np.float32))
    if resample != "area":
        raise ValueError(f"unknown resampling {resample!r}: use {', '.join(RESAMPLINGS)}")
    return np.asarray(cv2.resize(small, (size, size), interpolation=cv2.INTER_AREA), dtype=np.float32)


def resize_ab(ab: F32, width: int, height: int) -> F32:
    """Bilinearly resize an (h, w, 2) chroma map to (height, width, 2)."""
    if ab.shape[0] == height and ab.shape[1] == width:
        return ab.astype(np.float32)
    return np.asarray(
        cv2.resize(ab.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32
    )


def merge_chroma(lightness: F32, ab_lowres: F32) -> F32:
    """Combine full-resolution L (H, W) with low-resolution ab (h, w, 2) into BGR in [0, 1].

    The predicted chroma is upsampled to the original size; the original L is used untouched, so all
    luminance detail of the scan is kept (only chroma is low-pass, as in JPEG's chroma subsampling).
    """
    return _linear_to_srgb(_merge_linear(lightness, ab_lowres))


def _merge_linear(lightness: F32, ab_lowres: F32) -> F32:
    """Full-resolution L* and upsampled ab -> linear-light BGR (float32, not yet clipped).

    Written for speed at full resolution (it is most of a colorization's per-pixel work): a and b are
    scaled at low resolution and upsampled one channel each, the Lab -> XYZ function is applied in place,
    and every full-size pass is an OpenCV (SIMD) operation."""
    h, w = lightness.shape
    return _linear_from(lightness, *_chroma_planes(ab_lowres, w, h))


def _chroma_planes(ab_lowres: F32, width: int, height: int) -> tuple[F32, F32]:
    """a/500 and −b/200 (what Lab → XYZ adds to f(Y)) as two full-size planes: scaled at the chroma's own
    resolution, then each upsampled bilinearly (the same as scaling after, to float rounding)."""
    ab = ab_lowres.astype(np.float32, copy=False)
    fa: F32 = np.ascontiguousarray(ab[..., 0]) * np.float32(1.0 / 500.0)
    fb: F32 = np.ascontiguousarray(ab[..., 1]) * np.float32(-1.0 / 200.0)
    if ab.shape[:2] != (height, width):
        fa = np.asarray(cv2.resize(fa, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        fb = np.asarray(cv2.resize(fb, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    return fa, fb


def _linear_from(lightness: F32, fa: F32, fb: F32) -> F32:
    """L* and the chroma planes of ``_chroma_planes`` (same size; overwritten) -> linear-light BGR."""
    light = lightness.astype(np.float32, copy=False)
    fy: F32 = np.asarray(cv2.addWeighted(light, 1.0 / 116.0, light, 0.0, 16.0 / 116.0), dtype=np.float32)
    fx: F32 = np.asarray(cv2.add(fy, fa, dst=fa), dtype=np.float32)  # fy + a / 500
    fz: F32 = np.asarray(cv2.add(fy, fb, dst=fb), dtype=np.float32)  # fy - b / 200
    xyz = cv2.merge([_f_inv_inplace(fx), _f_inv_inplace(fy), _f_inv_inplace(fz)])
    return np.asarray(cv2.transform(xyz, _XYZN_INV_BGR), dtype=np.float32)


_LINE_SLOPE = 3 * _DELTA**2  # the linear part of f⁻¹ (t ≤ δ) is the tangent of t³ at δ


def _f_inv_inplace(t: F32) -> F32:
    """``_f_inv`` overwriting ``t``, without branches: t³ = line(t) + (t − δ)²(t + 2δ) and the line is t³'s
    tangent at δ, so f⁻¹(t) = line(t) + u²(u + 3δ) with u = max(t − δ, 0) — four SIMD passes instead of a
    mask, a gather and a scatter (a third faster, equal to float rounding)."""
    u = cv2.max(cv2.addWeighted(t, 1.0, t, 0.0, -_DELTA), 0.0)  # t − δ, floored at 0
    cube = cv2.multiply(cv2.multiply(u, u), cv2.add(u, 3 * _DELTA))
    line = cv2.addWeighted(t, _LINE_SLOPE, t, 0.0, -_LINE_SLOPE * 4.0 / 29.0, dst=t)
    out: F32 = np.asarray(cv2.add(line, cube, dst=t), dtype=np.float32)
    return out


_XYZN_INV_BGR = np.ascontiguousarray(_XYZN_INV[::-1])
XYZN_TO_LINEAR_BGR = _XYZN_INV_BGR  # public: X/Xn, Y/Yn, Z/Zn -> linear B, G, R (the torch merge uses it)


LINEAR_STEPS = 65535  # linear-light resolution of the 8-bit companding table


@lru_cache(maxsize=1)
def _srgb8_lut() -> NDArray[np.uint8]:
    """Linear light quantised to 1/65535 -> 8-bit sRGB. At that resolution a table entry moves the 8-bit
    output by at most 0.05 of a level (the steepest part of the sRGB curve, near black), so the result
    equals companding every pixel exactly to within one level (rounding at a level's boundary)."""
    lin = np.arange(LINEAR_STEPS + 1, dtype=np.float32) / np.float32(LINEAR_STEPS)
    out: NDArray[np.uint8] = from_unit_float(_linear_to_srgb(lin), np.uint8)
    return out


def chroma_rows(ab_wide: NDArray[np.float32], height: int, y0: int, rows: int) -> NDArray[np.float32]:
    """Rows ``y0 … y0+rows`` of the chroma map resized to ``height`` rows, by the same bilinear mapping
    as ``cv2.resize(INTER_LINEAR)``; ``ab_wide`` is already resized to the full width."""
    h = ab_wide.shape[0]
    fy = (np.arange(y0, y0 + rows, dtype=np.float64) + 0.5) * (h / height) - 0.5
    sy = np.floor(fy)
    w = (fy - sy).astype(np.float32)
    low = sy < 0
    w[low], sy[low] = 0.0, 0
    high = sy >= h - 1
    w[high], sy[high] = 0.0, h - 1
    i0 = sy.astype(np.intp)
    i1 = np.minimum(i0 + 1, h - 1)
    w3 = w[:, None, None]
    return np.asarray(ab_wide[i0] * (1.0 - w3) + ab_wide[i1] * w3, dtype=np.float32)


MERGE_ROWS = 64  # rows merged at a time: the float intermediates of a band stay in the CPU's caches


def merge_chroma_to(lightness: F32, ab_lowres: F32, dtype: np.dtype[Any] | type) -> NDArray[Any]:
    """``merge_chroma`` quantised to ``dtype``. 8-bit: one fused pass (``chromata.colormath.kernels.merge8``) where
    numba is there; otherwise, and for 16-bit, OpenCV passes in bands of ``MERGE_ROWS`` rows once the chroma is
    upsampled (20-30 % faster than whole-image passes on a 2.5 MP scan: a band's float intermediates stay
    in the CPU's caches)."""
    h, w = lightness.shape
    fa, fb = _chroma_planes(ab_lowres, w, h)
    if np.dtype(dtype) == np.uint8 and kernels.available():  # one fused pass (chromata.colormath.kernels)
        light = np.ascontiguousarray(lightness, dtype=np.float32)
        return kernels.merge8(light, fa, fb, _XYZN_INV_BGR, _srgb8_lut())
    out = np.empty((h, w, 3), np.dtype(dtype))
    for y in range(0, h, MERGE_ROWS):
        rows = slice(y, y + MERGE_ROWS)
        out[rows] = _merge_band(lightness[rows], fa[rows], fb[rows], dtype)
    return out


def _merge_band(lightness: F32, fa: F32, fb: F32, dtype: np.dtype[Any] | type) -> NDArray[Any]:
    """Full-resolution L* and chroma planes (``_chroma_planes``) of the same size -> ``dtype``. For 8-bit
    outputs the sRGB companding (a power per sample) is a table look-up on linear light; 16-bit outputs take
    the exact path, so the scan's L* survives to the last bit of its samples."""
    lin = _linear_from(lightness, fa, fb)
    if np.dtype(dtype) != np.uint8:
        return from_unit_float(_linear_to_srgb(lin), dtype)
    h, w, c = lin.shape
    # scaled, rounded and saturated to 0..65535 in one pass, then the table
    index = cv2.multiply(lin.reshape(h, w * c), float(LINEAR_STEPS), dtype=cv2.CV_16U)
    return lookup16(_srgb8_lut(), np.asarray(index, np.uint16)).reshape(h, w, c)


_REMAP_MAX = 32767  # SHRT_MAX


def lookup16(table: NDArray[np.uint8], index: NDArray[np.uint16]) -> NDArray[np.uint8]:
    """``table[index]`` for a 65 536-entry 8-bit table and 16-bit indices (2-D), by OpenCV: the table as a
    256 × 256 image, each index's low and high bytes its (x, y) — on a little-endian machine, the bytes of
    a uint16 are already those pairs — fetched by ``cv2.remap`` with nearest-neighbour sampling. The same
    values as numpy's indexing at ~2x its speed on a merge band (the steps of the 8-bit merge's last pass)."""
    native = index.dtype == np.dtype(np.uint16) and index.dtype.isnative and sys.byteorder == "little"
    if not native or index.ndim != 2 or not index.flags.c_contiguous or index.shape[0] >= _REMAP_MAX:
        out: NDArray[np.uint8] = table[index]
        return out
    h, w = index.shape
    if w >= _REMAP_MAX:  # cv2.remap's limit on a side: in column slices
        return np.concatenate([lookup16(table, np.ascontiguousarray(index[:, x : x + _REMAP_MAX // 2]))
                               for x in range(0, w, _REMAP_MAX // 2)], axis=1)  # fmt: skip
    xy = index.view(np.uint8).reshape(h, w, 2).astype(np.int16)
    return np.asarray(cv2.remap(table.reshape(256, 256), xy, None, cv2.INTER_NEAREST), dtype=np.uint8)


def lightness_of(pixels: NDArray[Any]) -> F32:
    """Full-resolution L* of a scan (or a band of one): grey by look-up table; grey stored as RGB or a
    toned print, its own L*."""
    if pixels.ndim == 3:
        return np.ascontiguousarray(bgr_to_lab(to_unit_float(pixels))[..., 0])
    return grey_pixels_to_lightness(pixels)


def colourfulness(bgr: F32) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M on an image in [0, 1] (reported on the 0..255 scale)."""
    b, g, r = (bgr[..., i].astype(np.float64) * 255.0 for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = np.hypot(rg.std(), yb.std())
    mean = np.hypot(rg.mean(), yb.mean())
    return float(std + 0.3 * mean)


def ciede2000(lab1: F32, lab2: F32) -> NDArray[np.float64]:
    """Per-pixel CIEDE2000 colour difference (Sharma, Wu & Dalal 2005 formulation, kL=kC=kH=1)."""
    l1, a1, b1 = (lab1[..., i].astype(np.float64) for i in range(3))
    l2, a2, b2 = (lab2[..., i].astype(np.float64) for i in range(3))
    c1 = np.hypot(a1, b1)
    c2 = np.hypot(a2, b2)
    c_bar7 = ((c1 + c2) / 2.0) ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    dlp = l2 - l1
    dcp = c2p - c1p
    dhp = h2p - h1p
    dhp = np.where(dhp > 180.0, dhp - 360.0, dhp)
    dhp = np.where(dhp < -180.0, dhp + 360.0, dhp)
    dhp = np.where(c1p * c2p == 0.0, 0.0, dhp)
    dhp_big = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dhp) / 2.0)
    lbp = (l1 + l2) / 2.0
    cbp = (c1p + c2p) / 2.0
    hsum = h1p + h2p
    hbp = np.where(
        np.abs(h1p - h2p) > 180.0,
        np.where(hsum < 360.0, (hsum + 360.0) / 2.0, (hsum - 360.0) / 2.0),
        hsum / 2.0,
    )
    hbp = np.where(c1p * c2p == 0.0, hsum, hbp)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(hbp - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * hbp))
        + 0.32 * np.cos(np.radians(3.0 * hbp + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * hbp - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((hbp - 275.0) / 25.0) ** 2))
    cbp7 = cbp**7
    r_c = 2.0 * np.sqrt(cbp7 / (cbp7 + 25.0**7))
    s_l = 1.0 + (0.015 * (lbp - 50.0) ** 2) / np.sqrt(20.0 + (lbp - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cbp
    s_h = 1.0 + 0.015 * cbp * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    return np.asarray(
        np.sqrt((dlp / s_l) ** 2 + (dcp / s_c) ** 2 + (dhp_big / s_h) ** 2 + r_t * (dcp / s_c) * (dhp_big / s_h)),
        dtype=np.float64,
    )
