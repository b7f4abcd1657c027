"""Measuring colorization quality on colour photographs with their colour removed.

Each photo's own L* is kept, a model predicts ab, and the result is compared with the true colours:
mean CIEDE2000 (lower is better) against the "return the grey image" baseline, and
Hasler–Süsstrunk colourfulness relative to the truth (1.0 = as colourful as the original).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from chromata.colormath import color
from chromata.models.base import Colorizer, model_input


@dataclass(frozen=True)
class ImageScore:
    name: str
    delta_e: float
    delta_e_gray: float
    colourfulness: float
    colourfulness_truth: float
    uncertainty: float


@dataclass(frozen=True)
class EvalSummary:
    images: int
    delta_e: float
    delta_e_gray: float
    colourfulness_ratio: float
    per_image: tuple[ImageScore, ...]

    def as_dict(self) -> dict[str, float | int]:
        return {
            "images": self.images,
            "mean_ciede2000": round(self.delta_e, 3),
            "mean_ciede2000_gray_baseline": round(self.delta_e_gray, 3),
            "ciede2000_vs_gray": round(self.delta_e / self.delta_e_gray, 4),
            "colourfulness_ratio": round(self.colourfulness_ratio, 4),
        }


def score_image(name: str, bgr_truth: np.ndarray, model: Colorizer) -> ImageScore:
    unit = color.to_unit_float(bgr_truth)
    lab_truth = color.bgr_to_lab(unit)
    lightness = np.ascontiguousarray(lab_truth[..., 0])
    pred = model.predict_ab(model_input(model, lightness)[None])
    out = color.merge_chroma(lightness, pred.ab[0])
    lab_out = color.bgr_to_lab(out)
    gray_lab = lab_truth.copy()
    gray_lab[..., 1:] = 0.0
    return ImageScore(
        name=name,
        delta_e=float(color.ciede2000(lab_truth, lab_out).mean()),
        delta_e_gray=float(color.ciede2000(lab_truth, gray_lab).mean()),
        colourfulness=color.colourfulness(out),
        colourfulness_truth=color.colourfulness(unit),
        uncertainty=float(pred.uncertainty.mean()),
    )


def summarise(scores: Sequence[ImageScore]) -> EvalSummary:
    if not scores:
        raise ValueError("no images to evaluate")
    truth_cf = sum(s.colourfulness_truth for s in scores)
    return EvalSummary(
        images=len(scores),
        delta_e=float(np.mean([s.delta_e for s in scores])),
        delta_e_gray=float(np.mean([s.delta_e_gray for s in scores])),
        colourfulness_ratio=sum(s.colourfulness for s in scores) / max(truth_cf, 1e-6),
        per_image=tuple(scores),
    )


def evaluate(images: Iterable[tuple[str, np.ndarray]], model: Colorizer) -> EvalSummary:
    return summarise([score_image(name, bgr, model) for name, bgr in images])


def select_photos(data: Path, split: str, purpose: str = "evaluation", option: str = "--split") -> list[Path]:
    """The photos of a folder to measure on: ``val`` (those of the shipped model card's held-out photos the
    folder holds) or ``all``; ``purpose`` and ``option`` name them in the one-line errors."""
    from chromata.errors import ConfigError
    from chromata.models.builtin import builtin_card

    if not data.is_dir():
        raise ConfigError(f"{purpose} data folder not found: {data}")
    if split == "val":
        return [data / n for n in builtin_card()["data"]["validation_files"] if (data / n).is_file()]
    if split == "all":
        return sorted(p for p in data.iterdir() if p.is_file())
    raise ConfigError(f"{option} must be val or all")


def dataset_name(data: str | Path) -> str:
    """How model and estimator cards name a data set: an S3 prefix by its URI, a local folder by its own name
    (``photos/``), never by the path it had on the machine that trained (which no reader can open). Files
    inside it are named relative to it, as its MANIFEST.csv names them."""
    text = str(data)
    return text if text.startswith("s3://") else f"{Path(text).resolve().name}/"


def load_images(paths: Iterable[Path]) -> list[tuple[str, np.ndarray]]:
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            out.append((p.name, img))
    return out
