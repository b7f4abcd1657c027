"""The one configuration object of a training run, and building it from options checked up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromata.errors import ConfigError

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
    checkpoint_every: int = 0  # main-stage steps between resumable checkpoints (out/resume.pt); 0: none
    name: str = "chromata-builtin-v2"
    extra: dict[str, Any] = field(default_factory=dict)


def build_train_config(workers: int = 1, **values: Any) -> TrainConfig:
    """A ``TrainConfig`` for ``workers`` data-parallel workers, checked before any data is read or any network
    built: every problem is one readable line."""
    data, crop, init = str(values["data"]), int(values.get("crop", 160)), str(values.get("init", "imagenet"))
    if not data.startswith("s3://") and not Path(data).is_dir():
        raise ConfigError(f"training data folder not found: {data}")
    if crop % 32:
        raise ConfigError("--crop must be a multiple of 32")
    if init not in INITS and not Path(init).is_file():
        raise ConfigError(f"--init must be one of {', '.join(INITS)} or an existing weights file: {init}")
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if int(values.get("checkpoint_every", 0)) < 0:
        raise ConfigError("--checkpoint-every must be 0 (none) or a number of steps")
    if int(values.get("checkpoint_every", 0)) and workers > 1:
        raise ConfigError("--checkpoint-every resumes a single-process run; with --workers > 1 it is not supported")
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid training configuration: {exc}") from exc
