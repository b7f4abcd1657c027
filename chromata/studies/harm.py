"""Fitting and measuring the harm estimator (:mod:`chromata.judgement.harm`): ``python -m chromata.studies.harm``.

Two kinds of training colorizations, all from colour photos with their colour removed:

* **deliberately wrong chroma** made from *every* photo's own colours (no colorizer involved): the truth
  scaled, hue-rotated, neutral surfaces tinted, low-frequency blotches, another photo's chroma, a washed-out
  regression-like mean; some applied to one random part of the image only, so regions differ in an image;
* the **colorizer's real outputs** on the photos it did not train on (the model card's validation photos, each
  whole and as random crops), at several decodings and chroma scales.

``measure`` cross-validates by photo (``--folds`` groups of the validation photos; a fold's photos — their crops
and their synthetic corruptions — are never in its training set): each fold fits an estimator, restrains the
held-out outputs with it and scores them, and the figures (AUROC for the worse half and for the harmful outputs,
CIEDE2000 × grey and colourfulness for each decoding) are pooled over folds. ``fit`` fits the shipped estimator
on everything and writes it with its card beside the colorizer's weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.colormath import color
from chromata.judgement import harm

F32 = NDArray[Any]  # float32 arrays (NDArray[Any]: numpy's stubs lose the dtype through OpenCV and arithmetic)
CROPS = 4
DE_SIDE = 128


@dataclass
class View:
    photo: str
    lab: F32  # full-resolution Lab of the truth
    work: F32  # L* at the model's working resolution (256)
    truth_ab: F32  # (64, 64, 2) the truth's chroma on the judging grid
    l_de: F32  # (128, 128) L* for the region targets
    ab_de: F32  # (128, 128, 2) truth chroma for the region targets
    grey_err: F32  # (GRID, GRID) CIEDE2000 of the grey input per region
    reference: tuple[float, float] | None = None  # full-resolution CIEDE2000 of grey, colourfulness of the truth


def photo_views(name: str, bgr: NDArray[np.uint8], crops: int, rng: np.random.Generator, size: int = 256) -> list[View]:
    from chromata.studies.calibration import views_of

    out = []
    for f in views_of(bgr, crops, rng):
        lab = color.bgr_to_lab(color.to_unit_float(np.ascontiguousarray(f)))
        L = np.ascontiguousarray(lab[..., 0])
        work = color.working_lightness(L, size)
        truth_ab = np.asarray(cv2.resize(lab[..., 1:], (harm.AB_SIDE, harm.AB_SIDE), interpolation=cv2.INTER_AREA))
        l_de = np.asarray(cv2.resize(L, (DE_SIDE, DE_SIDE), interpolation=cv2.INTER_AREA))
        ab_de = np.asarray(cv2.resize(lab[..., 1:], (DE_SIDE, DE_SIDE), interpolation=cv2.INTER_AREA))
        v = View(name, lab, work, truth_ab, l_de, ab_de, np.zeros((harm.GRID, harm.GRID), np.float32))
        v.grey_err = region_err(v, np.zeros_like(truth_ab))
        out.append(v)
    return out


def region_err(v: View, ab: F32) -> F32:
    up = np.asarray(cv2.resize(ab.astype(np.float32), (DE_SIDE, DE_SIDE), interpolation=cv2.INTER_LINEAR))
    de = color.ciede2000(np.dstack([v.l_de, v.ab_de]), np.dstack([v.l_de, up])).astype(np.float32)
    return harm._blocks(de, harm.GRID)


def full_metrics(v: View, ab: F32) -> tuple[float, float, float, float]:
    """The quality protocol on one view: (CIEDE2000, grey's CIEDE2000, colourfulness, truth's colourfulness)."""
    L = np.ascontiguousarray(v.lab[..., 0])
    out = color.merge_chroma(L, ab)
    de = float(color.ciede2000(v.lab, color.bgr_to_lab(out)).mean())
    if v.reference is None:  # the grey input's error and the truth's colourfulness, once per view
        grey = color.lab_to_bgr(np.dstack([L, np.zeros((*L.shape, 2), np.float32)]))
        v.reference = (
            float(color.ciede2000(v.lab, color.bgr_to_lab(grey)).mean()),
            color.colourfulness(color.lab_to_bgr(v.lab)),
        )
    return de, v.reference[0], color.colourfulness(out), v.reference[1]


# ---- deliberately wrong chroma ------------------------------------------------------------------------------


def _smooth_field(rng: np.random.Generator, cells: int) -> F32:
    f = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(cv2.resize(f, (harm.AB_SIDE, harm.AB_SIDE), interpolation=cv2.INTER_CUBIC))


def _rotate(ab: F32, deg: float) -> F32:
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    return np.stack([ab[..., 0] * c - ab[..., 1] * s, ab[..., 0] * s + ab[..., 1] * c], axis=-1).astype(np.float32)


def corruptions(v: View, other: F32, rng: np.random.Generator) -> list[F32]:
    """Wrong (and a few right) chromas for one view."""
    t = v.truth_ab
    blur = np.asarray(cv2.GaussianBlur(t, (0, 0), 2.0))
    hue = rng.uniform(0, 2 * np.pi)
    tint = np.array([np.cos(hue), np.sin(hue)], np.float32) * rng.uniform(8, 30)
    neutral = (np.hypot(t[..., 0], t[..., 1]) < 8).astype(np.float32)[..., None]
    hard = (_smooth_field(rng, 3) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    mask = np.asarray(cv2.GaussianBlur(hard, (0, 0), 3.0))[..., None]
    blotch = np.stack([_smooth_field(rng, 5), _smooth_field(rng, 5)], axis=-1) * rng.uniform(6, 20)
    cands = [
        blur * rng.uniform(0.8, 1.1),  # nearly right
        blur * rng.uniform(0.2, 0.6),  # muted
        blur * rng.uniform(1.2, 1.7),  # over-saturated
        _rotate(blur, rng.uniform(40, 180) * rng.choice([-1, 1])),  # wrong hue everywhere
        blur * (1 - mask) + _rotate(blur, rng.uniform(60, 180)) * mask,  # wrong hue in a part
        blur + neutral * tint,  # neutral surfaces tinted
        blur * (1 - mask) + (blur + tint) * mask,  # a tinted part
        blur + blotch,  # blotches
        other * rng.uniform(0.6, 1.2),  # another photo's chroma
        blur * (1 - mask) + other * mask,
        np.broadcast_to(blur.mean(axis=(0, 1)) + tint * 0.3, blur.shape).astype(np.float32),  # one brownish cast
    ]
    return [np.asarray(c, np.float32) for c in cands]


# ---- samples -------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    photo: str
    real: bool  # a colorizer's output (else synthetic)
    feats: F32  # (GRID*GRID, F)
    err: F32  # (GRID*GRID,) region CIEDE2000
    excess: F32  # (GRID*GRID,) region CIEDE2000 beyond grey
    img_err: float  # image CIEDE2000 (full protocol for real outputs, 128² for synthetic)
    img_grey: float


def make_sample(v: View, ab: F32, real: bool, full: bool = False) -> Sample:
    err = region_err(v, ab)
    if full:
        de, dg, _, _ = full_metrics(v, ab)
    else:
        de, dg = float(err.mean()), float(v.grey_err.mean())
    return Sample(
        v.photo, real, harm.region_features(v.work, ab), err.reshape(-1), (err - v.grey_err).reshape(-1), de, dg
    )


def synthetic_samples(images: Sequence[tuple[str, NDArray[np.uint8]]], seed: int = 1) -> list[Sample]:
    rng = np.random.default_rng(seed)
    views = [v for name, bgr in images for v in photo_views(name, bgr, 1, rng)]
    out = []
    for i, v in enumerate(views):
        other = views[(i + 1 + int(rng.integers(0, len(views) - 1))) % len(views)].truth_ab
        for ab in corruptions(v, other, rng):
            out.append(make_sample(v, ab, real=False))
    return out


DECODINGS_FOR_TRAINING = (0.0, 0.5)  # chroma_gamma of the built-in model
SCALES_FOR_TRAINING = (1.0, 0.6, 1.3)


def val_views(images: Sequence[tuple[str, NDArray[np.uint8]]], size: int = 256) -> dict[tuple[str, int], View]:
    """Each validation photo whole and as ``CROPS`` random crops (the same crops on every call)."""
    rng = np.random.default_rng(0)
    return {(name, k): v for name, bgr in images for k, v in enumerate(photo_views(name, bgr, CROPS, rng, size))}


@contextmanager
def unrestrained(model: Any) -> Iterator[Any]:
    """The colorizer with its restraint off for the block, restored however the block ends."""
    saved, model.restrain = model.restrain, False
    try:
        yield model
    finally:
        model.restrain = saved


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` threads for the block, back to its earlier count however the block ends."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def real_outputs(
    views: dict[tuple[str, int], View], model: Any, gammas: Sequence[float]
) -> dict[tuple[str, int, float], F32]:
    """The colorizer's raw output (no restraint) for each (photo, view, chroma_gamma)."""
    out: dict[tuple[str, int, float], F32] = {}
    saved = model.chroma_gamma
    with unrestrained(model):
        try:
            photos = sorted({p for p, _ in views})
            for name in photos:
                keys = sorted(k for k in views if k[0] == name)
                x = np.stack([views[k].work for k in keys])
                for g in gammas:
                    model.chroma_gamma = g
                    pred = model.predict_ab(x)
                    for i, k in enumerate(keys):
                        out[(k[0], k[1], g)] = pred.ab[i]
        finally:
            model.chroma_gamma = saved
    return out


def real_samples(views: dict[tuple[str, int], View], outputs: dict[tuple[str, int, float], F32]) -> list[Sample]:
    s = []
    for (name, k, _), ab in outputs.items():
        for scale in SCALES_FOR_TRAINING:
            s.append(make_sample(views[(name, k)], ab * scale, real=True))
    return s


def save_samples(samples: Sequence[Sample], path: Path) -> None:
    np.savez_compressed(
        path,
        photo=np.array([s.photo for s in samples]),
        real=np.array([s.real for s in samples]),
        feats=np.stack([s.feats for s in samples]),
        err=np.stack([s.err for s in samples]),
        excess=np.stack([s.excess for s in samples]),
        img=np.array([[s.img_err, s.img_grey] for s in samples]),
    )


def load_samples(path: Path) -> list[Sample]:
    z = np.load(path)
    return [
        Sample(str(p), bool(r), f, e, x, float(i[0]), float(i[1]))
        for p, r, f, e, x, i in zip(z["photo"], z["real"], z["feats"], z["err"], z["excess"], z["img"], strict=True)
    ]


# ---- the model ----------------------------------------------------------------------------------------------

HIDDEN = (48, 24)
REAL_WEIGHT = 4.0


def fit_regions(samples: Sequence[Sample], seed: int = 0, epochs: int = 30) -> dict[str, Any]:
    """Fit the region MLP (err as log1p CIEDE2000, excess in CIEDE2000 units, weighted a quarter in the loss)."""
    X = np.concatenate([s.feats for s in samples])
    Y = np.stack([np.concatenate([np.log1p(s.err) for s in samples]), np.concatenate([s.excess for s in samples])], 1)
    W = np.concatenate([np.full(len(s.err), REAL_WEIGHT if s.real else 1.0, np.float32) for s in samples])
    return fit_mlp(X, Y, W, HIDDEN, epochs, seed, loss_scale=(1.0, 0.25))


def fit_mlp(
    X: F32,
    Y: F32,
    W: F32,
    hidden: Sequence[int],
    epochs: int,
    seed: int = 0,
    loss_scale: Sequence[float] | None = None,
) -> dict[str, Any]:
    """A small ReLU MLP fitted with Adam on a weighted Huber loss (each output times ``loss_scale`` in the
    loss, when given); one torch thread (a tiny network: fastest so, and it leaves the other core free);
    returned as JSON-ready layers."""
    import torch

    torch.manual_seed(seed)
    with torch_threads(1):
        return _fit_mlp(X, Y, W, hidden, epochs, loss_scale)


def _fit_mlp(
    X: F32, Y: F32, W: F32, hidden: Sequence[int], epochs: int, loss_scale: Sequence[float] | None
) -> dict[str, Any]:
    import torch

    mean, std = X.mean(0), X.std(0) + 1e-3
    xt = torch.from_numpy(((X - mean) / std).astype(np.float32))
    yt, wt = torch.from_numpy(Y.astype(np.float32)), torch.from_numpy((W / W.mean()).astype(np.float32))
    dims = [X.shape[1], *hidden, Y.shape[1]]
    mods: list[torch.nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    scale = None if loss_scale is None else torch.tensor(list(loss_scale), dtype=torch.float32)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 4096):
            idx = perm[i : i + 4096]
            pred, target = net(xt[idx]), yt[idx]
            if scale is not None:
                pred, target = pred * scale, target * scale
            loss = torch.nn.functional.huber_loss(pred, target, reduction="none").sum(1) * wt[idx]
            opt.zero_grad()
            loss.mean().backward()  # type: ignore[no-untyped-call]
            opt.step()
    layers = [(m.weight.detach().numpy().T.tolist(), m.bias.detach().numpy().tolist())
              for m in net if isinstance(m, torch.nn.Linear)]  # fmt: skip
    return {"feature_mean": mean.tolist(), "feature_std": std.tolist(), "layers": layers}


def proxy_samples(images: Sequence[tuple[str, NDArray[np.uint8]]], model: Any, crops: int = 1) -> dict[str, Any]:
    """Region features of the colorizer's output and its mean normalised entropy per region, for each view."""
    rng = np.random.default_rng(2)
    feats, targets, photos, image_u = [], [], [], []
    with unrestrained(model):
        for name, bgr in images:
            views = photo_views(name, bgr, crops, rng, model.input_size)
            pred = model.predict_ab(np.stack([v.work for v in views]))
            for v, ab, u in zip(views, pred.ab, pred.uncertainty, strict=True):
                feats.append(harm.region_features(v.work, ab))
                targets.append(harm._blocks(np.asarray(cv2.resize(u, (harm.AB_SIDE, harm.AB_SIDE))), harm.GRID))
                photos.append(name)
                image_u.append(float(u.mean()))
    return {"feats": np.stack(feats), "u": np.stack(targets), "photo": np.array(photos), "image_u": np.array(image_u)}


def bad_label(samples: Sequence[Sample], target: float) -> NDArray[np.bool_]:
    return np.array([s.img_err > target or s.img_err > s.img_grey for s in samples])


def fit_head(est: harm.HarmEstimator, samples: Sequence[Sample], target: float) -> dict[str, Any]:
    """Logistic regression (numpy, Newton steps with a small ridge) from image features to P(bad)."""
    X = np.stack([_image_x(est, s) for s in samples]).astype(np.float64)
    y = bad_label(samples, target).astype(np.float64)
    w_s = np.array([REAL_WEIGHT if s.real else 1.0 for s in samples])
    beta = logistic(X, y, ridge=1e-2 * len(X), weights=w_s, steps=30)
    return {"w": beta[:-1].tolist(), "b": float(beta[-1])}


def logistic(
    X: NDArray[Any], y: NDArray[Any], ridge: float, weights: NDArray[Any] | None = None, steps: int = 50,
    tol: float | None = None,
) -> NDArray[np.float64]:  # fmt: skip
    """Weighted logistic regression by Newton steps, a ridge on the weights (not the intercept); returns the
    weights with the intercept last. ``tol``: stop once a step moves no coefficient further than it."""
    Xb = np.hstack([X, np.ones((len(X), 1))]).astype(np.float64)
    w_s = np.ones(len(X)) if weights is None else weights
    beta = np.zeros(Xb.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(Xb @ beta, -30, 30)))
        g = Xb.T @ (w_s * (p - y)) + ridge * np.r_[beta[:-1], 0]
        H = (Xb * (w_s * p * (1 - p))[:, None]).T @ Xb + ridge * np.diag(np.r_[np.ones(len(beta) - 1), 0])
        step = np.linalg.solve(H, g)
        beta -= step
        if tol is not None and np.abs(step).max() < tol:
            break
    return beta


def _image_x(est: harm.HarmEstimator, s: Sample) -> F32:
    err, excess = est.regions(s.feats)
    return harm.image_features(err, excess, s.feats)


def fit_estimator(samples: Sequence[Sample], target: float, seed: int = 0) -> harm.HarmEstimator:
    params: dict[str, Any] = {"format": harm.HARM_FORMAT, **fit_regions(samples, seed)}
    params["image_head"] = {"w": [0.0] * 12, "b": 0.0}
    est = harm.HarmEstimator(params)
    params["image_head"] = fit_head(est, samples, target)
    params["target_ciede2000"] = target
    return harm.HarmEstimator(params)


# ---- measurement --------------------------------------------------------------------------------------------


def auroc(scores: Sequence[float] | NDArray[Any], positive: Sequence[bool] | NDArray[Any]) -> float:
    s, p = np.asarray(scores, np.float64), np.asarray(positive, bool)
    pos, neg = s[p], s[~p]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def spearman(x: NDArray[Any], y: NDArray[Any]) -> float:
    rx = np.argsort(np.argsort(x)).astype(np.float64)
    ry = np.argsort(np.argsort(y)).astype(np.float64)
    return float(np.corrcoef(rx, ry)[0, 1])


def folds_of(names: Sequence[str], k: int) -> dict[str, int]:
    order = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return {n: i % k for i, n in enumerate(order)}


SHIPPED = (0.5, 0.0, 1.0)  # (chroma_gamma, restraint strength, gain) shipped: the model's own decoding, no restraint
DECODING_GRID = (  # (chroma_gamma, restraint strength, gain)
    (0.5, 0.0, 1.0),
    (0.75, 0.0, 1.0),
    (1.0, 0.0, 1.0),
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (0.0, 2.0, 1.0),
    (0.0, 4.0, 1.0),
    (0.0, 2.0, 1.2),
    (0.0, 4.0, 1.2),
    (0.0, 4.0, 1.4),
    (0.5, 2.0, 1.0),
    (0.5, 2.0, 1.2),
    (0.5, 4.0, 1.2),
    (0.5, 4.0, 1.4),
)


def _photos(data: Path) -> tuple[list[tuple[str, NDArray[np.uint8]]], list[tuple[str, NDArray[np.uint8]]]]:
    from chromata.models.evaluation import load_images, select_photos

    all_images = load_images(select_photos(data, "all"))
    val_names = {p.name for p in select_photos(data, "val")}
    return all_images, [(n, b) for n, b in all_images if n in val_names]


def prepare(data: Path, cache: Path) -> dict[str, float]:
    """The slow part, once: the colorizer's outputs on the validation views and the synthetic samples."""
    from chromata.models.builtin import BuiltinColorizer

    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    all_images, val_images = _photos(data)
    views = val_views(val_images)
    model = BuiltinColorizer.load(device="cpu")
    gammas = sorted({g for g, _, _ in DECODING_GRID} | set(DECODINGS_FOR_TRAINING))
    outputs = real_outputs(views, model, gammas)
    np.savez_compressed(
        cache / "outputs.npz",
        keys=np.array([f"{n}|{k}|{g}" for n, k, g in outputs]),
        ab=np.stack(list(outputs.values())),
        model_sha256=np.array(model.weights_sha256),
    )
    t1 = time.perf_counter()
    save_samples(synthetic_samples(all_images), cache / "synthetic.npz")
    t2 = time.perf_counter()
    return {"colorizer_outputs_s": round(t1 - t0, 1), "synthetic_samples_s": round(t2 - t1, 1)}


def load_outputs(cache: Path) -> tuple[dict[tuple[str, int, float], F32], str]:
    z = np.load(cache / "outputs.npz")
    out = {}
    for key, ab in zip(z["keys"], z["ab"], strict=True):
        n, k, g = str(key).split("|")
        out[(n, int(k), float(g))] = ab
    return out, str(z["model_sha256"])


def measure(data: Path, cache: Path, folds: int, out: Path, seed: int = 0, plot: Path | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    _, val_images = _photos(data)
    views = val_views(val_images)
    outputs, _ = load_outputs(cache)
    synth = load_samples(cache / "synthetic.npz")
    train_keys = {k: ab for k, ab in outputs.items() if k[2] in DECODINGS_FOR_TRAINING}
    real = real_samples(views, train_keys)
    fold = folds_of(sorted({n for n, _ in val_images}), folds)
    rows: list[dict[str, Any]] = []
    fit_seconds: list[float] = []
    judge_seconds: list[float] = []
    for k in range(folds):
        train = [s for s in synth if fold.get(s.photo, -1) != k] + [s for s in real if fold[s.photo] != k]
        target = float(np.median([s.img_err for s in real if fold[s.photo] != k]))
        t1 = time.perf_counter()
        est = fit_estimator(train, target, seed)
        fit_seconds.append(time.perf_counter() - t1)
        for (name, view, g), ab in outputs.items():
            if fold[name] != k:
                continue
            v = views[(name, view)]
            for gg, strength, gain in DECODING_GRID:
                if gg != g:
                    continue
                shipped_ab = est.restrain(v.work, ab, strength, gain) if (strength > 0 or gain != 1) else ab
                de, dg, cf, cft = full_metrics(v, shipped_ab)
                t2 = time.perf_counter()
                j = est.judge(v.work, shipped_ab)
                judge_seconds.append(time.perf_counter() - t2)
                rows.append(
                    {
                        "photo": name, "view": view, "fold": k, "gamma": gg, "strength": strength, "gain": gain,
                        "ciede2000": de, "grey": dg, "colourfulness": cf, "colourfulness_truth": cft,
                        "p_good": j.p_good, "pred_err": float(j.err.mean()), "pred_excess": float(j.excess.mean()),
                    }
                )  # fmt: skip
    summary = summarise(rows)
    summary["nested_choice"] = nested(rows)
    summary["chosen_on_all_folds"] = decoding_label(*_key(choose(summary["decodings"])))
    summary["seconds"] = {"fit_per_fold_mean": round(float(np.mean(fit_seconds)), 1),
                          "judge_ms_per_image_median": round(float(np.median(judge_seconds)) * 1000, 2),
                          "total": round(time.perf_counter() - t0, 1)}  # fmt: skip
    summary["samples"] = {"synthetic": len(synth), "real_training_per_fold_max": len(real),
                          "measured_views": len({(r["photo"], r["view"]) for r in rows}), "folds": folds}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "harm-cv.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1), encoding="utf-8")
    if plot is not None:
        write_plot(summary, plot)
    return summary


def write_plot(summary: dict[str, Any], plot: Path) -> None:
    """The error/colourfulness plot of a ``measure`` summary, the shipped decoding marked."""
    from chromata.studies.quality import tradeoff_png

    points = [{"label": decoding_label(*_key(d)), **d} for d in summary["decodings"]]
    s = summary["samples"]
    title = f"built-in v2: {s['measured_views']} held-out views, {s['folds']}-fold CV by photo"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_bytes(tradeoff_png(points, title, shipped=decoding_label(*SHIPPED)))


def _key(d: dict[str, Any]) -> tuple[float, float, float]:
    return float(d["chroma_gamma"]), float(d["restraint"]), float(d["gain"])


def decoding_label(gamma: float, strength: float, gain: float) -> str:
    return f"g{gamma:g}" + (f" r{strength:g}" if strength else "") + (f" x{gain:g}" if gain != 1 else "")


MIN_COLOURFULNESS = 0.8  # the decoding rule: the lowest error among decodings at least this colourful


def choose(decodings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The decoding rule: lowest CIEDE2000 among those with colourfulness >= MIN_COLOURFULNESS (else the most
    colourful one)."""
    ok = [d for d in decodings if d["colourfulness_ratio"] >= MIN_COLOURFULNESS]
    if ok:
        return min(ok, key=lambda d: d["ciede2000_vs_grey"])
    return max(decodings, key=lambda d: d["colourfulness_ratio"])


def nested(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The decoding rule applied without the measured photos: for each fold, the decoding is chosen on the other
    folds' rows and measured on this fold's; pooled over folds."""
    chosen: list[dict[str, Any]] = []
    picks = []
    for k in sorted({r["fold"] for r in rows}):
        pick = choose(summarise([r for r in rows if r["fold"] != k])["decodings"])
        key = (pick["chroma_gamma"], pick["restraint"], pick["gain"])
        picks.append(decoding_label(*key))
        chosen += [r for r in rows if r["fold"] == k and (r["gamma"], r["strength"], r["gain"]) == key]
    pooled = summarise([{**r, "gamma": -1.0, "strength": 0.0, "gain": 1.0} for r in chosen])["decodings"][0]
    return {"picked_per_fold": picks, **{k: v for k, v in pooled.items() if k not in ("chroma_gamma", "restraint",
                                                                                          "gain")}}  # fmt: skip


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by: dict[tuple[float, float, float], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["gamma"], r["strength"], r["gain"]), []).append(r)
    decodings = []
    for (g, s, gain), rs in by.items():
        de = np.array([r["ciede2000"] for r in rs])
        grey = np.array([r["grey"] for r in rs])
        worse = de > np.median(de)
        harmful = de > grey
        p = [r["p_good"] for r in rs]
        bad = [1 - x for x in p]
        decodings.append(
            {
                "chroma_gamma": g, "restraint": s, "gain": gain, "views": len(rs),
                "ciede2000_vs_grey": round(float(de.mean() / grey.mean()), 4),
                "colourfulness_ratio": round(
                    float(sum(r["colourfulness"] for r in rs) / sum(r["colourfulness_truth"] for r in rs)), 4
                ),
                "harmful_views": int(harmful.sum()),
                "auroc_worse_half": round(auroc(bad, worse), 4),
                "auroc_harmful": round(auroc(bad, harmful), 4),
                "auroc_harmful_excess_only": round(auroc([r["pred_excess"] for r in rs], harmful), 4),
                "auroc_worse_err_only": round(auroc([r["pred_err"] for r in rs], worse), 4),
            }
        )  # fmt: skip
    return {"decodings": decodings}


PROXY_HIDDEN = (32, 16)


def proxy(data: Path, cache: Path) -> dict[str, Any]:
    """Fit the entropy proxy on the colorizer's *training* photos (its entropy needs no truth, and those photos
    are disjoint from the validation photos it is measured on) and measure it on the validation views."""
    from chromata.models.builtin import BuiltinColorizer

    t0 = time.perf_counter()
    all_images, val_images = _photos(data)
    val_names = {n for n, _ in val_images}
    model = BuiltinColorizer.load(device="cpu")
    train = proxy_samples([(n, b) for n, b in all_images if n not in val_names], model)
    t1 = time.perf_counter()
    X = train["feats"].reshape(-1, len(harm.FEATURE_NAMES))
    Y = train["u"].reshape(-1, 1)
    params = fit_mlp(X, Y, np.ones(len(X), np.float32), PROXY_HIDDEN, epochs=40)
    t2 = time.perf_counter()
    params["colorizer_sha256"] = model.weights_sha256
    params["fitted_on"] = f"{len(train['photo'])} views of the {len(set(train['photo']))} training photos"
    est = harm.HarmEstimator({"format": harm.HARM_FORMAT, **_dummy_regions(), "uncertainty_proxy": params})
    # measure on the validation views (whole + crops), at the shipped decoding
    views = val_views(val_images)
    rows = []
    with unrestrained(model):
        for (name, k), v in views.items():
            pred = model.predict_ab(v.work[None])
            de, dg, _, _ = full_metrics(v, pred.ab[0])
            proxy_u = est.uncertainty(v.work, pred.ab[0])
            rows.append((name, k, float(pred.uncertainty.mean()), float(proxy_u.mean()), de, dg))
    true_u, proxy_u = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    de_v, dg_v = np.array([r[4] for r in rows]), np.array([r[5] for r in rows])
    worse, harmful = de_v > np.median(de_v), de_v > dg_v
    result = {
        "views": len(rows),
        "spearman_with_model_entropy": round(spearman(true_u, proxy_u), 4),
        "auroc_worse_half": {"model_entropy": round(auroc(true_u, worse), 4), "proxy": round(auroc(proxy_u, worse), 4)},
        "auroc_harmful": {
            "model_entropy": round(auroc(true_u, harmful), 4),
            "proxy": round(auroc(proxy_u, harmful), 4),
        },
        "harmful_views": int(harmful.sum()),
        "seconds": {
            "samples": round(t1 - t0, 1),
            "fit": round(t2 - t1, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }
    params["validation"] = result
    np.savez_compressed(cache / "proxy.npz", params=np.array(json.dumps(params)))
    return result


def _dummy_regions() -> dict[str, Any]:
    n = len(harm.FEATURE_NAMES)
    return {"feature_mean": [0.0] * n, "feature_std": [1.0] * n, "layers": [([[0.0, 0.0]] * n, [0.0, 0.0])],
            "image_head": {"w": [0.0] * 12, "b": 0.0}}  # fmt: skip


def fit_shipped(data: Path, cache: Path, weights_dir: Path, cv_report: Path, restraint: dict[str, float]) -> Path:
    from chromata.models.evaluation import dataset_name

    """Fit the shipped estimator on every sample (all synthetic, all validation views) and write it with its card;
    the card quotes the cross-validated figures of ``measure`` (``cv_report``) for the shipped decoding."""
    t0 = time.perf_counter()
    _, val_images = _photos(data)
    views = val_views(val_images)
    outputs, model_sha = load_outputs(cache)
    synth = load_samples(cache / "synthetic.npz")
    real = real_samples(views, {k: ab for k, ab in outputs.items() if k[2] in DECODINGS_FOR_TRAINING})
    target = float(np.median([s.img_err for s in real]))
    t1 = time.perf_counter()
    est = fit_estimator(synth + real, target)
    fit_s = time.perf_counter() - t1
    params = dict(est.params)
    params["name"] = "chromata-harm-v1"
    params["restraint"] = {**restraint, "scale": 3.0}
    params["features"] = list(harm.FEATURE_NAMES)
    if (cache / "proxy.npz").is_file():
        params["uncertainty_proxy"] = json.loads(str(np.load(cache / "proxy.npz")["params"]))
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / harm.HARM_WEIGHTS
    path.write_text(json.dumps(params), encoding="utf-8")
    cv = json.loads(cv_report.read_text(encoding="utf-8"))["summary"]
    card = {
        "name": "chromata-harm-v1",
        "what": "per-region and per-image estimate of whether a colorization's colours are wrong "
        "(chromata.judgement.harm)",
        "inputs": "the grey input at the model's working resolution and the predicted a*, b* (any model family)",
        "architecture": f"MLP {len(harm.FEATURE_NAMES)}-{'-'.join(map(str, HIDDEN))}-2 on 8 x 8 regions "
        "(outputs: log1p CIEDE2000, CIEDE2000 beyond grey) + logistic image head",
        "features": list(harm.FEATURE_NAMES),
        "fitted_on": {
            "synthetic": f"{len(synth)} deliberately wrong chromas from the true colours of all photos in "
            f"{dataset_name(data)}",
            "real": f"{len(real)} outputs of the built-in colorizer (chroma_gamma {list(DECODINGS_FOR_TRAINING)}, "
            f"scaled by {list(SCALES_FOR_TRAINING)}) on its {len(val_images)} validation photos, whole + "
            f"{CROPS} crops each",
            "colorizer_sha256": model_sha,
            "uses_model_specific_signals": False,
        },
        "uncertainty_proxy": {
            k: v
            for k, v in params.get("uncertainty_proxy", {}).items()
            if k in ("colorizer_sha256", "fitted_on", "validation")
        },
        "target_ciede2000": round(target, 3),
        "restraint": params["restraint"],
        "fit_seconds": round(fit_s, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "cross_validated": cv,
        "reproduce": "python -m chromata.studies.harm prepare; python -m chromata.studies.harm measure; "
        "python -m chromata.studies.harm proxy; python -m chromata.studies.harm fit",
    }
    (weights_dir / "harm-v1.card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m chromata.studies.harm", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    ap.add_argument("--cache", type=Path, default=Path("eval-report/harm/cache"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare", help="the colorizer's outputs and the synthetic samples (the slow part)")
    m = sub.add_parser("measure", help="cross-validated figures on the validation photos")
    m.add_argument("--folds", type=int, default=5)
    m.add_argument("--out", type=Path, default=Path("eval-report/harm"))
    m.add_argument("--plot", type=Path, default=None, help="write the error/colourfulness plot here (PNG)")
    pl = sub.add_parser("plot", help="draw the error/colourfulness plot from a measure report")
    pl.add_argument("--report", type=Path, default=Path("eval-report/harm/harm-cv.json"))
    pl.add_argument("--out", type=Path, default=Path("docs/img/quality-tradeoff.png"))
    sub.add_parser("proxy", help="fit and measure the entropy proxy for models without an uncertainty output")
    f = sub.add_parser("fit", help="fit the shipped estimator on everything and write it with its card")
    f.add_argument("--report", type=Path, default=Path("eval-report/harm/harm-cv.json"))
    f.add_argument("--out", type=Path, default=Path(str(harm.harm_weights_path().parent)))
    f.add_argument("--strength", type=float, default=SHIPPED[1])
    f.add_argument("--gain", type=float, default=SHIPPED[2])
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        sys.stdout.write(json.dumps(prepare(args.data, args.cache)) + "\n")
    elif args.cmd == "plot":
        write_plot(json.loads(args.report.read_text(encoding="utf-8"))["summary"], args.out)
    elif args.cmd == "proxy":
        sys.stdout.write(json.dumps(proxy(args.data, args.cache), indent=1) + "\n")
    elif args.cmd == "measure":
        summary = measure(args.data, args.cache, args.folds, args.out, plot=args.plot)
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    else:
        restraint = {"strength": args.strength, "gain": args.gain}
        sys.stdout.write(f"{fit_shipped(args.data, args.cache, args.out, args.report, restraint)}\n")


if __name__ == "__main__":
    main()
