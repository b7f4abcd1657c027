"""The calibration study behind ``chromata calibrate``: colour photos with their colour removed, a fitted map
from raw confidence to P(good), and how well it does on photos it was not fitted on.

Photos are split by a hash of their name: one half fits the map (:func:`chromata.judgement.calibration.fit`), the other
half measures it (AUROC, Brier score, reliability diagram), so no photo is used for both.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chromata.colormath import color
from chromata.errors import ConfigError
from chromata.judgement import calibration as cal
from chromata.judgement import confidence, inputchecks
from chromata.judgement.calibration_map import Calibration
from chromata.models.base import Colorizer, model_input
from chromata.models.postprocess import assessments

MIN_PHOTOS = 6


@dataclass(frozen=True)
class Sample:
    photo: str
    raw: float
    delta_e: float
    reasons: tuple[str, ...]
    version: str = "1"  # the score version (chromata.judgement.confidence)


def views_of(bgr: NDArray[np.uint8], crops: int, rng: np.random.Generator) -> list[NDArray[np.uint8]]:
    """The whole photo and ``crops`` random crops of it (50-85 % of each side): the many framings an archive
    holds."""
    h, w = bgr.shape[:2]
    views = [bgr]
    for _ in range(crops):
        s = rng.uniform(0.5, 0.85)
        ch, cw = int(h * s), int(w * s)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        views.append(bgr[y : y + ch, x : x + cw])
    return views


def collect_samples(
    images: Sequence[tuple[str, NDArray[np.uint8]]], model: Colorizer, crops_per_photo: int = 4, seed: int = 0
) -> list[Sample]:
    """Colour photos -> (raw confidence, CIEDE2000) for each photo and for random crops of it.

    Crops (50-85 % of each side) stand in for the many framings an archive holds; they are grouped by
    photo so that calibration and test sets never share a photograph.
    """
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for name, bgr in images:
        for view in views_of(bgr, crops_per_photo, rng):
            lab = color.bgr_to_lab(color.to_unit_float(np.ascontiguousarray(view)))
            lightness = np.ascontiguousarray(lab[..., 0])
            work = model_input(model, lightness)[None]
            pred = model.predict_ab(work)
            reasons = inputchecks.input_reasons(lightness, view.shape[1], view.shape[0])
            judged = assessments(work, pred.ab)  # the score a run records: version 2 where the estimator ships
            report = confidence.score(pred.uncertainty[0], reasons, assessment=judged[0] if judged else None)
            result = color.bgr_to_lab(color.merge_chroma(lightness, pred.ab[0]))
            de = float(color.ciede2000(lab, result).mean())
            out.append(Sample(name, report.score, de, report.reasons, report.version))
    return out


def photo_half(name: str) -> int:
    """0 (fit) or 1 (test) from a hash of the photo's name. SHA-256, not the SHA-1 that picked the model
    card's validation photos (which would put them all in one half)."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 2


@dataclass(frozen=True)
class CalibrationStudy:
    calibration: Calibration
    summary: dict[str, Any]  # what the CLI prints and calibration.json records
    probabilities: tuple[float, ...]  # calibrated P(good) of each test sample
    good: tuple[bool, ...]  # whether each test sample was good (CIEDE2000 <= target)

    def write(self, target: Path, report_dir: Path | None = None) -> None:
        """The calibration JSON at ``target``; with ``report_dir``, reliability.png and calibration.json."""
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.calibration.to_json(), encoding="utf-8")
        if report_dir:
            report_dir.mkdir(parents=True, exist_ok=True)
            test = self.summary["test"]
            title = f"held-out test photos: AUROC {test['auroc_calibrated']}, n={test['samples']}"
            png = cal.reliability_diagram_png(self.probabilities, self.good, title)
            (report_dir / "reliability.png").write_bytes(png)
            (report_dir / "calibration.json").write_text(json.dumps(self.summary, indent=2), encoding="utf-8")


def study(
    images: Sequence[tuple[str, NDArray[np.uint8]]],
    model: Colorizer,
    crops_per_photo: int = 4,
    target: float | None = None,
) -> CalibrationStudy:
    """Fit on one half of the photos (by name hash), measure on the other. ``model.calibration`` is ignored:
    the map is fitted on the raw score."""
    if len(images) < MIN_PHOTOS:
        raise ConfigError(f"need at least {MIN_PHOTOS} photos to calibrate, found {len(images)}")
    saved, model.calibration = model.calibration, None
    try:
        samples = collect_samples(images, model, crops_per_photo=crops_per_photo)
    finally:
        model.calibration = saved
    half = {name: photo_half(name) for name, _ in images}
    fit_set = [s for s in samples if half[s.photo] == 0]
    test_set = [s for s in samples if half[s.photo] == 1]
    fitted = cal.fit(
        [s.raw for s in fit_set],
        [s.delta_e for s in fit_set],
        model.weights_sha256,
        photos=sum(1 for v in half.values() if v == 0),
        target=target,
        score_version=samples[0].version if samples else "1",
    )
    good = [s.delta_e <= fitted.target_ciede2000 for s in test_set]
    probs = [fitted.apply(s.raw) for s in test_set]
    summary = {
        "model_sha256": model.weights_sha256,
        "target_ciede2000": fitted.target_ciede2000,
        "fit": {"photos": fitted.photos, "samples": len(fit_set)},
        "test": {
            "photos": len({s.photo for s in test_set}),
            "samples": len(test_set),
            "auroc_raw_score": round(cal.auroc([s.raw for s in test_set], good), 4),
            "auroc_calibrated": round(cal.auroc(probs, good), 4),
            "brier": round(float(sum((p - g) ** 2 for p, g in zip(probs, good, strict=True)) / len(good)), 4),
        },
        "reasons": dict(Counter(r for s in samples for r in s.reasons).most_common()),
        "samples_with_no_reason": sum(1 for s in samples if not s.reasons),
    }
    return CalibrationStudy(fitted, summary, tuple(probs), tuple(good))


def calibrate_model(
    data: Path,
    spec: str = "builtin",
    files: str = "val",
    crops_per_photo: int = 4,
    target: float | None = None,
    out: Path | None = None,
    report_dir: Path | None = None,
) -> tuple[CalibrationStudy, Path]:
    """Run the study for the model a spec names on the photos in ``data`` (``files``: val or all) and write
    the calibration (default: beside the model's weights, where loading the model finds it)."""
    from chromata.models import calibration_path, load_colorizer, model_path
    from chromata.models.evaluation import load_images, select_photos

    paths = select_photos(data, files, purpose="calibration", option="--files")
    colorizer = load_colorizer(spec)
    images = load_images(paths)
    if len(images) < MIN_PHOTOS:
        raise ConfigError(f"need at least {MIN_PHOTOS} photos to calibrate, found {len(images)} in {data}")
    result = study(images, colorizer, crops_per_photo=crops_per_photo, target=target)
    target_path = out or calibration_path(model_path(spec))
    result.write(target_path, report_dir)
    return result, target_path
