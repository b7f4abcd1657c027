"""The fitted map from a raw confidence score to P(good colorization): a plain value type.

Models carry one (``Colorizer.calibration``) and the confidence score applies it, so this module imports
nothing of chromata's: fitting it lives in :mod:`chromata.judgement.calibration`, measuring it in
:mod:`chromata.studies.calibration`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CALIBRATION_FORMAT = "chromata-calibration/1"


@dataclass(frozen=True)
class Calibration:
    model_sha256: str
    target_ciede2000: float
    x: tuple[float, ...]  # raw scores (block means), increasing
    y: tuple[float, ...]  # P(CIEDE2000 <= target) at those raw scores
    samples: int
    photos: int
    format: str = CALIBRATION_FORMAT
    # the confidence score version the map was fitted on (chromata.judgement.confidence): a map is applied only to
    # scores of that version. Files written before version 2 name none (and keep their hash): version 1.
    score_version: str = "1"

    def apply(self, raw: float) -> float:
        return float(np.interp(raw, self.x, self.y))

    def applies_to(self, score_version: str) -> bool:
        return self.score_version == score_version

    def to_json(self) -> str:
        d = asdict(self)
        if d["score_version"] == "1":
            del d["score_version"]
        return json.dumps(d, indent=2)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def load(cls, path: Path) -> Calibration:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"{path} is not a chromata calibration file")
        data["x"] = tuple(data["x"])
        data["y"] = tuple(data["y"])
        return cls(**data)
