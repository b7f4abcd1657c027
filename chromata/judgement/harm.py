"""Judgement: a learned estimate of whether a colorization's colours are *wrong*, per region and per image.

The estimator reads only what every model family gives — the grey input at the model's working resolution and
the predicted chroma (a*, b*) — so it works the same for the built-in model, the Zhang models and any ONNX graph,
with or without an uncertainty output. It is a small multi-layer perceptron over hand-made features of each
region of an 8 x 8 grid (lightness, texture, edge orientation — the cues of flat man-made surfaces, sky, foliage,
skin and text — and the predicted chroma's strength, hue, blotchiness and its agreement with luminance edges),
with the whole image's statistics as context. It was fitted (``python -m chromata.studies.harm fit``) on deliberately
wrong chroma made from all the training photos and on the built-in model's real outputs on photos it never
trained on; the figures and the fitting data are in its card (``harm-v1.card.json``, ``docs/confidence.md``).

Per region it predicts ``err``, the region's CIEDE2000 to the truth (log1p), and ``excess``, how much further
from the truth the colour is than the grey input (CIEDE2000 units: > 0 = the colour did harm); the per-image
score combines both into P(the colorization is good). Today these predictions are inputs of the shipped confidence
(:mod:`chromata.judgement.assess`), whose region stage also drives the restraint at decoding;
:meth:`HarmEstimator.restrain` (damping by ``excess``) remains for the study that measured it
(``python -m chromata.studies.harm``: it did not move the trade-off, docs/quality.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

HARM_FORMAT = "chromata-harm/1"
HARM_WEIGHTS = "harm-v1.json"
GRID = 8  # regions per side
AB_SIDE = 64  # the chroma is judged on a 64 x 64 grid (8 x 8 cells per region)
L_SIDE = 128  # the lightness on 128 x 128 (16 x 16 px per region)
FEATURE_NAMES = (
    "l_mean",
    "l_std",
    "grad",
    "fine_texture",
    "flat_fraction",
    "axis_edges",
    "coherence",
    "y",
    "x_centre",
    "chroma",
    "chroma_p90",
    "a_std",
    "b_std",
    "a_mean",
    "b_mean",
    "chroma_grad",
    "chroma_edges_without_l",
    "chroma_rel",
    "img_chroma",
    "img_chroma_p90",
    "img_l_mean",
    "img_l_std",
    "img_texture",
    "img_hue_spread",
    "img_flat",
)


def _blocks(x: NDArray[Any], n: int) -> F32:
    """(H, W) -> (n, n) block means (H, W divisible by n)."""
    h, w = x.shape
    return np.asarray(x.reshape(n, h // n, n, w // n).mean(axis=(1, 3)), np.float32)


def _block_std(x: NDArray[Any], n: int) -> F32:
    h, w = x.shape
    return np.asarray(x.reshape(n, h // n, n, w // n).std(axis=(1, 3)), np.float32)


def _block_quantile(x: NDArray[Any], n: int, q: float) -> F32:
    h, w = x.shape
    b = x.reshape(n, h // n, n, w // n).transpose(0, 2, 1, 3).reshape(n, n, -1)
    return np.asarray(np.quantile(b, q, axis=2), np.float32)


def region_features(lightness: F32, ab: F32) -> F32:
    """Features of each region of a colorization: (GRID * GRID, len(FEATURE_NAMES)) float32.

    ``lightness``: (S, S) L* at the model's working resolution; ``ab``: (h, w, 2) the predicted chroma."""
    n = GRID
    L = np.asarray(cv2.resize(lightness.astype(np.float32), (L_SIDE, L_SIDE), interpolation=cv2.INTER_AREA))
    interp = cv2.INTER_AREA if ab.shape[0] >= AB_SIDE else cv2.INTER_LINEAR
    abg = np.asarray(cv2.resize(ab.astype(np.float32), (AB_SIDE, AB_SIDE), interpolation=interp))
    a, b = abg[..., 0], abg[..., 1]
    chroma = np.hypot(a, b).astype(np.float32)
    gx = cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3)
    grad = np.hypot(gx, gy) / 8.0
    fine = np.abs(L - cv2.GaussianBlur(L, (0, 0), 1.0))
    flat = (grad < 1.0).astype(np.float32)
    # structure tensor: coherence (one dominant orientation) and axis alignment (man-made edges)
    jxx, jyy, jxy = (cv2.GaussianBlur(v, (0, 0), 2.0) for v in (gx * gx, gy * gy, gx * gy))
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-3)
    axis = (np.abs(gx) - np.abs(gy)) ** 2 / (gx * gx + gy * gy + 1e-3)  # 1 on horizontal/vertical edges, 0 diagonal
    wgt = grad + 1e-3
    axis_r = _blocks(axis * wgt, n) / _blocks(wgt, n)
    # chroma edges where the lightness has none: colour bleeding and blotches
    cgx = cv2.Sobel(abg, cv2.CV_32F, 1, 0, ksize=3)
    cgy = cv2.Sobel(abg, cv2.CV_32F, 0, 1, ksize=3)
    cgrad = np.sqrt((cgx**2 + cgy**2).sum(axis=2)) / 8.0
    l64 = cv2.resize(grad, (AB_SIDE, AB_SIDE), interpolation=cv2.INTER_AREA)
    c_wo_l = cgrad / (1.0 + l64)
    img_chroma = float(chroma.mean())
    hue_w = chroma + 1e-3
    resultant = float(np.hypot((a / hue_w * chroma).sum(), (b / hue_w * chroma).sum()) / hue_w.sum())
    ys, xs = (np.arange(n, dtype=np.float32) + 0.5) / n, (np.arange(n, dtype=np.float32) + 0.5) / n
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    ch_r = _blocks(chroma, n)
    local = [
        _blocks(L, n) / 100.0,
        _block_std(L, n) / 30.0,
        _blocks(grad, n) / 5.0,
        _blocks(fine, n) / 2.0,
        _blocks(flat, n),
        axis_r,
        _blocks(coherence, n),
        yy,
        np.abs(xx - 0.5) * 2,
        ch_r / 20.0,
        _block_quantile(chroma, n, 0.9) / 20.0,
        _block_std(a, n) / 10.0,
        _block_std(b, n) / 10.0,
        _blocks(a, n) / 20.0,
        _blocks(b, n) / 20.0,
        _blocks(cgrad, n),
        _blocks(c_wo_l, n),
        ch_r / (img_chroma + 2.0),
    ]
    glob = [
        img_chroma / 20.0,
        float(np.quantile(chroma, 0.9)) / 20.0,
        float(L.mean()) / 100.0,
        float(L.std()) / 30.0,
        float(fine.mean()) / 2.0,
        1.0 - resultant,
        float(flat.mean()),
    ]
    cols = [f.reshape(-1) for f in local] + [np.full(n * n, g, np.float32) for g in glob]
    return np.stack(cols, axis=1).astype(np.float32)


@dataclass(frozen=True)
class Judgement:
    """The estimator's view of one colorization."""

    err: F32  # (GRID, GRID) predicted CIEDE2000 to the truth per region
    excess: F32  # (GRID, GRID) predicted CIEDE2000 beyond the grey input's per region (> 0: harm)
    p_good: float  # P(the image is good: not in the worse half and not harmful)

    @property
    def harm(self) -> F32:
        """Per-region likelihood of harm in [0, 1]. Not what the confidence heatmap beside each output shows: that
        is the colorizer's per-pixel uncertainty (``confidence.heatmap_png``; for a model without one, the
        ``uncertainty_proxy``'s estimate of it). No output or heatmap file carries this map."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.excess / 1.5)), np.float32)

    def harm_map(self, height: int, width: int) -> F32:
        return np.asarray(cv2.resize(self.harm, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)


class HarmEstimator:
    """The fitted MLP (numpy forward pass) and its image-level head."""

    def __init__(self, params: dict[str, Any]) -> None:
        if params.get("format") != HARM_FORMAT:
            raise ValueError("not a chromata harm-estimator file")
        self.params = params
        self.mean = np.asarray(params["feature_mean"], np.float32)
        self.std = np.asarray(params["feature_std"], np.float32)
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in params["layers"]]
        self.head_w = np.asarray(params["image_head"]["w"], np.float32)
        self.head_b = float(params["image_head"]["b"])
        self.restraint = dict(params.get("restraint", {}))

    @classmethod
    def load(cls, path: Path | None = None) -> HarmEstimator:
        p = path or harm_weights_path()
        return cls(json.loads(p.read_text(encoding="utf-8")))

    def regions(self, features: F32) -> tuple[F32, F32]:
        x = (features - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        err = np.expm1(np.maximum(x[:, 0], 0.0))
        return err.astype(np.float32), x[:, 1].astype(np.float32)

    def image_features(self, err: F32, excess: F32, features: F32) -> F32:
        return image_features(err, excess, features)

    def judge(self, lightness: F32, ab: F32) -> Judgement:
        feats = region_features(lightness, ab)
        err, excess = self.regions(feats)
        z = float(self.image_features(err, excess, feats) @ self.head_w + self.head_b)
        p_good = float(1.0 / (1.0 + np.exp(z)))
        return Judgement(err.reshape(GRID, GRID), excess.reshape(GRID, GRID), p_good)

    def uncertainty(self, lightness: F32, ab: F32) -> F32:
        """For a model without an uncertainty output: the built-in model's normalised entropy as the proxy
        estimates it from the grey input and the colours, per region, at ``ab``'s resolution."""
        proxy = self.params.get("uncertainty_proxy")
        if proxy is None:
            return np.full(ab.shape[:2], 0.5, np.float32)
        x = (region_features(lightness, ab) - np.asarray(proxy["feature_mean"], np.float32)) / np.asarray(
            proxy["feature_std"], np.float32
        )
        layers = proxy["layers"]
        for i, (w, b) in enumerate(layers):
            x = x @ np.asarray(w, np.float32) + np.asarray(b, np.float32)
            if i < len(layers) - 1:
                x = np.maximum(x, 0.0)
        grid = np.clip(x[:, 0], 0.0, 1.0).reshape(GRID, GRID).astype(np.float32)
        h, w_ = ab.shape[:2]
        return np.asarray(cv2.resize(grid, (w_, h), interpolation=cv2.INTER_LINEAR), np.float32)

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()

    def restrain(self, lightness: F32, ab: F32, strength: float | None = None, gain: float | None = None) -> F32:
        """``ab`` with its chroma kept or boosted where the colour helps and damped where it likely harms."""
        s = float(self.restraint.get("strength", 1.0) if strength is None else strength)
        g = float(self.restraint.get("gain", 1.0) if gain is None else gain)
        if s <= 0 and g == 1.0:
            return ab
        j = self.judge(lightness, ab)
        return apply_restraint(ab, j.excess, s, g, float(self.restraint.get("scale", 3.0)))


def image_features(err: F32, excess: F32, features: F32) -> F32:
    """What the image-level head reads: summaries of the region predictions and of the image."""
    e = err.reshape(-1)
    x = excess.reshape(-1)
    g = features[0, len(FEATURE_NAMES) - 7 :]
    return np.concatenate(
        [
            [np.log1p(e.mean()), np.log1p(np.quantile(e, 0.9)), x.mean(), np.quantile(x, 0.9), (x > 0).mean()],
            g,
        ]
    ).astype(np.float32)


def restraint_map(excess: F32, strength: float, gain: float, scale: float) -> F32:
    """Per-region chroma factor: ``gain`` where the colour is predicted to help, falling towards 0 as the
    predicted harm grows (a logistic in ``excess``/``scale``, shifted by ``strength``)."""
    keep = 1.0 / (1.0 + np.exp(strength * (excess / scale)))  # 0.5 at excess 0 when strength > 0
    keep = keep * 2.0 if strength > 0 else np.ones_like(keep)
    return np.asarray(np.clip(keep, 0.0, 1.0) * gain, np.float32)


def apply_restraint(ab: F32, excess: F32, strength: float, gain: float, scale: float) -> F32:
    factor = restraint_map(excess, strength, gain, scale)
    h, w = ab.shape[:2]
    up = cv2.resize(factor, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(ab * up[..., None], np.float32)


def harm_weights_path() -> Path:
    return Path(str(resources.files("chromata.models") / "weights" / HARM_WEIGHTS))


@lru_cache(maxsize=1)
def shipped() -> HarmEstimator | None:
    """The packaged estimator (None when the package has none, e.g. while it is being fitted)."""
    path = harm_weights_path()
    return HarmEstimator.load(path) if path.is_file() else None
