"""The one configuration object of a training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INITS = ("imagenet", "scratch", "builtin")


@dataclass(frozen=True)
class TrainConfig:
    data: str | Path  # a folder, or s3://bucket/prefix/
    out: Path
    steps: int = 4000
    batch_size: int = 12
    crop: int = 160
    lr: float = 3e-4
    encoder_lr_scale: float = 0.3
    weight_decay: float = 1e-4
    rebalance_lambda: float = 0.5
    val_fraction: float = 0.1
    input_size: int = 256
    temperatures: tuple[float, ...] = (0.2, 0.38, 0.5, 1.0)
    chroma_gammas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    init: str = "imagenet"  # imagenet | scratch | builtin | path to a chromata weights file
    augment: bool = True
    adversarial: bool = False
    adversarial_steps: int = 1000
    adversarial_weight: float = 0.03
    adversarial_lr: float = 5e-5
    device: str = "auto"
    endpoint_url: str | None = None
    seed: int = 0
    threads: int | None = None
    log_every: int = 50
    max_minutes: float | None = None
    name: str = "chromata-builtin-v2"
    extra: dict[str, Any] = field(default_factory=dict)
