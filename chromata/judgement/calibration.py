"""Calibrating the confidence score: raw score -> probability that the colorization is good.

"Good" means the image's mean CIEDE2000 against the true colours is at most a target (by default the
median over the calibration photos, so "good" is "in the better half"). A version-1 score (the model's
entropy, not a probability) is mapped by isotonic regression (pool-adjacent-violators); a version-2 score is
already a probability (the confidence estimator's, fitted on other models' outputs) that a model may read too
high or too low, so it is re-scaled by Platt's two-parameter logistic on its logit — smooth, never exactly 0 or
1 (an isotonic map fitted on a few dozen photos would flatten whole ranges to 0.00 and 1.00), stored as the
same table of points. Either way the map is monotone: a higher raw score never means a lower probability.
It is saved as JSON beside the model weights, tied to the weights' SHA-256, and its own
hash goes into every manifest row's params_json.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.judgement.calibration_map import CALIBRATION_FORMAT, Calibration

__all__ = ["CALIBRATION_FORMAT", "Calibration", "auroc", "fit", "pav", "platt", "reliability_diagram_png"]


def pav(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Isotonic (non-decreasing) least-squares fit of y on x by pool-adjacent-violators.

    Returns the blocks' mean x and fitted y, increasing in x: a piecewise-linear monotone map.
    """
    order = np.argsort(np.asarray(x, dtype=np.float64), kind="stable")
    xs = np.asarray(x, dtype=np.float64)[order]
    ys = np.asarray(y, dtype=np.float64)[order]
    blocks: list[list[float]] = []  # [sum_y, sum_x, count]
    for xi, yi in zip(xs, ys, strict=True):
        blocks.append([yi, xi, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][2] > blocks[-1][0] / blocks[-1][2]:
            sy, sx, n = blocks.pop()
            blocks[-1][0] += sy
            blocks[-1][1] += sx
            blocks[-1][2] += n
    return [b[1] / b[2] for b in blocks], [b[0] / b[2] for b in blocks]


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Probability that a random positive scores higher than a random negative (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positives, dtype=bool)
    if p.all() or not p.any():
        raise ValueError("AUROC needs both positive and negative examples")
    ranks = _average_ranks(s)
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _average_ranks(s: NDArray[np.float64]) -> NDArray[np.float64]:
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # ties share their average rank
        tie = s == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


PLATT_POINTS = 101


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(q / (1 - q)), np.float64)


def platt(raw: Sequence[float], good: Sequence[float], ridge: float = 1e-3) -> tuple[list[float], list[float]]:
    """Platt scaling on the logit of a probability-like score: P(good) = sigmoid(a * logit(raw) + b), fitted by
    Newton steps (a small ridge keeps it finite when the two classes separate); as a table of
    ``PLATT_POINTS`` raw scores over [0, 1] and their probabilities (``a`` is kept >= 0: monotone)."""
    z = _logit(np.asarray(raw, np.float64))
    y = np.asarray(good, np.float64)
    X = np.stack([z, np.ones_like(z)], axis=1)
    beta = np.array([1.0, 0.0])
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))
        g = X.T @ (p - y) + ridge * beta
        H = (X * (p * (1 - p))[:, None]).T @ X + ridge * np.eye(2)
        step = np.linalg.solve(H, g)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    a, b = max(float(beta[0]), 0.0), float(beta[1])
    xs = np.linspace(0.0, 1.0, PLATT_POINTS)
    ys = 1 / (1 + np.exp(-(a * _logit(xs) + b)))
    return xs.tolist(), ys.tolist()


def fit(
    raw: Sequence[float],
    delta_e: Sequence[float],
    model_sha256: str,
    photos: int,
    target: float | None = None,
    score_version: str = "1",
) -> Calibration:
    t = float(np.median(delta_e)) if target is None else float(target)
    good = [float(d <= t) for d in delta_e]
    xs, ys = pav(raw, good) if score_version == "1" else platt(raw, good)
    return Calibration(model_sha256, round(t, 4), tuple(round(v, 5) for v in xs), tuple(round(v, 5) for v in ys),
                       len(raw), photos, score_version=score_version)  # fmt: skip


def reliability_diagram_png(probs: Sequence[float], outcomes: Sequence[bool], title: str, bins: int = 5) -> bytes:
    """A reliability diagram (predicted probability vs observed frequency, with counts) as PNG."""
    p = np.asarray(probs, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    size, margin = 420, 60
    img = np.full((size + 2 * margin, size + 2 * margin, 3), 255, np.uint8)

    def pt(px: float, py: float) -> tuple[int, int]:
        return int(margin + px * size), int(margin + (1 - py) * size)

    cv2.rectangle(img, pt(0, 0), pt(1, 1), (0, 0, 0), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (160, 160, 160), 1, cv2.LINE_AA)
    for k in range(6):
        v = k / 5
        cv2.putText(img, f"{v:.1f}", (pt(v, 0)[0] - 12, pt(v, 0)[1] + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{v:.1f}", (pt(0, v)[0] - 32, pt(0, v)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    edges = np.linspace(0, 1, bins + 1)
    prev = None
    for i in range(bins):
        sel = (p >= edges[i]) & ((p < edges[i + 1]) | (i == bins - 1))
        if not sel.any():
            continue
        mp, fo = float(p[sel].mean()), float(o[sel].mean())
        cv2.circle(img, pt(mp, fo), 4 + int(sel.sum() ** 0.5), (200, 90, 30), -1, cv2.LINE_AA)
        cv2.putText(
            img,
            f"n={int(sel.sum())}",
            (pt(mp, fo)[0] + 8, pt(mp, fo)[1] - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (90, 40, 10),
            1,
        )
        if prev:
            cv2.line(img, prev, pt(mp, fo), (200, 90, 30), 2, cv2.LINE_AA)
        prev = pt(mp, fo)
    cv2.putText(img, title, (margin, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(
        img,
        "predicted P(good)",
        (margin + size // 2 - 70, size + 2 * margin - 12),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
    )
    cv2.putText(img, "observed", (4, margin - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover
        raise RuntimeError("could not encode the reliability diagram")
    return bytes(buf.tobytes())
