"""The training run: device set-up, the two stages, statistics; :func:`train` adds evaluation and saving."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chromata.training.checkpoint import build_net, finish
from chromata.training.config import TrainConfig
from chromata.training.data import Prefetcher, TrainingData, prepare_data
from chromata.training.step import LossLog, TimeBudget, Trainer, load_resume

log = logging.getLogger(__name__)


def training_device(cfg: TrainConfig, world_size: int) -> str:
    """``cfg.device``, or the GPU when there is one (this worker's own GPU under Ray Train)."""
    import torch

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and world_size > 1:
        device = f"cuda:{torch.cuda.current_device()}"
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    return device


def resume_file(cfg: TrainConfig) -> Path:
    """Where a run with ``checkpoint_every`` keeps its resumable checkpoint: beside its weights."""
    return Path(cfg.out) / "resume.pt"


def fit(
    cfg: TrainConfig,
    data: TrainingData,
    rank: int = 0,
    world_size: int = 1,
    wrap: Callable[[Any], Any] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The training loop (one process, or one Ray Train worker: ``wrap`` makes the model distributed).

    Returns the trained network (eval mode, on CPU) and the statistics that go into the model card.
    """
    import torch

    torch.manual_seed(cfg.seed + rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = training_device(cfg, world_size)
    net, init_desc = build_net(cfg.init)
    net = net.to(device).train()
    crop_threads = min(6, os.cpu_count() or 1) if device.startswith("cuda") else 1
    resume_path = resume_file(cfg) if cfg.checkpoint_every and rank == 0 and world_size == 1 else None
    resumed = load_resume(resume_path) if resume_path else None
    start = int(resumed["step"]) if resumed else 0
    seed = cfg.seed * 1000 + rank + 7919 * start  # a resumed run draws crops it has not drawn yet
    feed = Prefetcher([img for _, img in data.train], cfg.crop, cfg.batch_size, seed, crop_threads)
    try:
        trainer = Trainer(cfg, net, device, data.prior, feed, wrap)
        if resumed:
            trainer.restore(resumed)
            log.info("resuming at step %d from %s", start, resume_path)
        t0 = time.monotonic()
        budget = TimeBudget.for_run(cfg, t0)
        losses = LossLog(cfg.log_every, rank, t0, progress)
        steps_done = trainer.run_main(budget, losses, start=start, save=resume_path)
        adv_done = trainer.run_adversarial(budget, losses)
    finally:
        feed.close()
    stats = {
        "init": init_desc,
        "decoder": list(net.decoder_channels),
        "steps_done": steps_done,
        "resumed_at_step": start,
        "adversarial_steps_done": adv_done,
        "device": device,
        "workers": world_size,
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.monotonic() - t0, 1),
        "loss_curve": losses.curve,
    }
    return net.eval().cpu(), stats


def train(cfg: TrainConfig, progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train in this process, evaluate on the held-out split, write weights + model card; returns the card."""
    data = prepare_data(cfg)
    log.info("training on %d photos, validating on %d", len(data.train), len(data.val))
    net, stats = fit(cfg, data, progress=progress)
    card = finish(cfg, data, net, stats)
    resume_file(cfg).unlink(missing_ok=True)  # the weights are written: nothing left to resume
    return card
