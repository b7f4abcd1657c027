"""One optimisation step and the stages made of them: the loss, the learning-rate schedule, the time budget.

Stage 1 (``main``): soft-encoded cross-entropy with class rebalancing, linear warm-up then cosine decay.
Stage 2 (``adversarial``, optional): a PatchGAN discriminator judges (L, ab) at the model's 1/4 resolution;
the generator adds its least-squares GAN loss (Mao et al. 2017) to the cross-entropy.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chromata.training.config import TrainConfig
from chromata.training.data import Prefetcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimeBudget:
    """When each stage must stop. With a budget and both stages, it is shared in proportion to their steps."""

    start: float
    main_end: float
    deadline: float

    @classmethod
    def for_run(cls, cfg: TrainConfig, start: float) -> TimeBudget:
        deadline = start + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        adv_steps = cfg.adversarial_steps if cfg.adversarial else 0
        if deadline == math.inf:
            return cls(start, deadline, deadline)
        return cls(start, start + (deadline - start) * cfg.steps / max(1, cfg.steps + adv_steps), deadline)


def stage_progress(step: int, total: int, start: float, end: float) -> float:
    """Fraction of a stage done, by steps or by the time budget, whichever is further along: the
    learning rate then decays to zero by the end even when the budget, not the step count, ends it."""
    by_time = (time.monotonic() - start) / max(1e-9, end - start) if end < math.inf else 0.0
    return min(1.0, max(step / max(1, total), by_time))


class LossLog:
    """Running means of the losses every ``log_every`` steps: the loss curve of the model card."""

    def __init__(
        self, log_every: int, rank: int, start: float, progress: Callable[[int, float], None] | None = None
    ) -> None:
        self.log_every = log_every
        self.rank = rank
        self.start = start
        self.progress = progress
        self.curve: list[dict[str, Any]] = []
        self._running: dict[str, float] = {}
        self._steps = 0

    def record(self, stage: str, step: int, total: int, values: dict[str, float]) -> None:
        self._steps += 1
        for k, v in values.items():
            self._running[k] = self._running.get(k, 0.0) + v
        if step % self.log_every:
            return
        elapsed = time.monotonic() - self.start
        losses = {k: round(v / self.log_every, 4) for k, v in self._running.items()}
        self.curve.append({"stage": stage, "step": step, "seconds": round(elapsed, 1), **losses})
        self._running.clear()
        if self.rank == 0:
            log.info("%s step %d/%d %s (%.3f s/step)", stage, step, total, losses, elapsed / self._steps)
            if self.progress:
                self.progress(step, losses["loss"])


def patch_discriminator() -> Any:
    """PatchGAN (Isola et al. 2017) on (L, a, b) at the model's 1/4 resolution: 70-px-style receptive field."""
    from torch import nn

    def block(cin: int, cout: int, stride: int, norm: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=stride, padding=1)]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        return layers

    return nn.Sequential(
        *block(3, 64, 2, False), *block(64, 128, 2, True), *block(128, 256, 1, True), nn.Conv2d(256, 1, 4, padding=1)
    )


def save_resume(path: Path, state: dict[str, Any]) -> None:
    """Write a resumable checkpoint atomically (a temporary file, then a rename)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_resume(path: Path) -> dict[str, Any] | None:
    """The checkpoint an interrupted run left (read with ``weights_only``), or None."""
    from chromata.models.base import load_untrusted

    if not path.is_file():
        return None
    state = load_untrusted(path)
    if not isinstance(state, dict) or not {"step", "model", "opt"} <= set(state):
        raise ValueError(f"{path}: not a chromata training checkpoint")
    return state


class Trainer:
    """The model, its optimiser and its batches on one device; runs the two training stages.

    ``net`` is the bare ChromaNet, ``model`` what the forward pass goes through (``wrap(net)`` under Ray
    Train's data parallelism, else ``net`` itself); ``wrap`` wraps the discriminator the same way.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        net: Any,
        device: str,
        prior: np.ndarray,
        feed: Prefetcher,
        wrap: Callable[[Any], Any] | None = None,
    ) -> None:
        import torch

        from chromata.models.ab_bins import rebalance_weights

        self.cfg = cfg
        self.net = net
        self.model = wrap(net) if wrap else net
        self.wrap = wrap
        self.device = device
        self.feed = feed
        self.weights = rebalance_weights(torch.from_numpy(prior), lam=cfg.rebalance_lambda).to(device)
        groups = dict(net.parameter_groups())
        self.opt = torch.optim.AdamW(
            [
                {"params": groups["encoder"], "lr": cfg.lr * cfg.encoder_lr_scale},
                {"params": groups["decoder"], "lr": cfg.lr},
            ],
            weight_decay=cfg.weight_decay,
        )
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    def batch(self) -> tuple[Any, Any, Any]:
        """(augmented L* in, clean L*, ab at 1/4 resolution) of the next batch of crops."""
        import torch
        import torch.nn.functional as F

        from chromata.colormath.torchcolor import bgr_u8_to_lab
        from chromata.training.augment import augment_lightness

        crops = torch.from_numpy(self.feed.get()).to(self.device, non_blocking=True)
        lab = bgr_u8_to_lab(crops)
        light = lab[:, :1]
        ab = F.avg_pool2d(lab[:, 1:], 4)
        return (augment_lightness(light) if self.cfg.augment else light), light, ab

    def ce_loss(self, logits: Any, ab: Any) -> Any:
        """Soft-encoded cross-entropy, each pixel weighted by the rebalancing weight of its nearest bin."""
        import torch

        from chromata.models.ab_bins import soft_encode

        target = soft_encode(ab)
        logp = torch.log_softmax(logits.float(), dim=1)
        return (-(target * logp).sum(dim=1) * self.weights[target.argmax(dim=1)]).mean()

    def _descend(self, opt: Any, loss: Any) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def resume_state(self, step: int) -> dict[str, Any]:
        return {"step": step, "model": self.net.state_dict(), "opt": self.opt.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])

    def run_main(self, budget: TimeBudget, losses: LossLog, start: int = 0, save: Path | None = None) -> int:
        """Cross-entropy training with warm-up and cosine decay from step ``start + 1``; returns the number of
        steps done. With ``save``, a resumable checkpoint is written there every ``cfg.checkpoint_every``
        steps and when the time budget stops the stage (atomically: a session that ends mid-write loses
        nothing)."""
        cfg = self.cfg
        steps_done = start
        warmup = min(100, max(1, cfg.steps // 10))
        for step in range(start + 1, cfg.steps + 1):
            done = stage_progress(step, cfg.steps, budget.start, budget.main_end)
            frac = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * done))
            for g, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
                g["lr"] = base * frac
            light_in, _, ab = self.batch()
            with self.autocast:
                logits = self.model(light_in)
            loss = self.ce_loss(logits, ab)
            self._descend(self.opt, loss)
            steps_done = step
            losses.record("main", step, cfg.steps, {"loss": float(loss.detach())})
            out_of_time = time.monotonic() > budget.main_end
            if save is not None and (step % cfg.checkpoint_every == 0 or out_of_time):
                save_resume(save, self.resume_state(step))
            if out_of_time:
                log.warning("stopping at step %d: time budget of %.1f min reached", step, cfg.max_minutes)
                break
        return steps_done

    def run_adversarial(self, budget: TimeBudget, losses: LossLog) -> int:
        """The PatchGAN fine-tune (if configured and time is left); returns the number of steps done."""
        import torch

        cfg = self.cfg
        if not cfg.adversarial or not cfg.adversarial_steps or time.monotonic() > budget.deadline:
            return 0
        disc_net = patch_discriminator().to(self.device).train()
        disc = self.wrap(disc_net) if self.wrap else disc_net
        d_opt = torch.optim.Adam(disc_net.parameters(), lr=4 * cfg.adversarial_lr, betas=(0.5, 0.999))
        stage_start = time.monotonic()
        adv_done = 0
        for step in range(1, cfg.adversarial_steps + 1):
            done = stage_progress(step, cfg.adversarial_steps, stage_start, budget.deadline)
            decay = 0.5 * (1 + math.cos(math.pi * done))
            for g, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
                g["lr"] = cfg.adversarial_lr * base / cfg.lr * decay
            for g in d_opt.param_groups:
                g["lr"] = 4 * cfg.adversarial_lr * decay
            values = self._adversarial_step(disc, d_opt)
            adv_done = step
            losses.record("adversarial", step, cfg.adversarial_steps, values)
            if time.monotonic() > budget.deadline:
                log.warning("stopping the adversarial stage at step %d: time budget reached", step)
                break
        return adv_done

    def _adversarial_step(self, disc: Any, d_opt: Any) -> dict[str, float]:
        """One discriminator step (least squares, real vs. decoded), then one generator step (CE + GAN)."""
        import torch
        import torch.nn.functional as F

        from chromata.models.ab_bins import annealed_mean

        light_in, light, ab = self.batch()
        light_small = F.avg_pool2d(light, 4) / 50.0 - 1.0
        with self.autocast:
            logits = self.model(light_in)
        fake_ab = annealed_mean(logits.float(), 0.38)
        real = torch.cat([light_small, ab / 110.0], dim=1)
        fake = torch.cat([light_small, fake_ab / 110.0], dim=1)
        d_loss = 0.5 * ((disc(real) - 1) ** 2).mean() + 0.5 * (disc(fake.detach()) ** 2).mean()
        self._descend(d_opt, d_loss)
        ce = self.ce_loss(logits, ab)
        g_adv = ((disc(fake) - 1) ** 2).mean()
        loss = ce + self.cfg.adversarial_weight * g_adv
        self._descend(self.opt, loss)
        return {
            "loss": float(loss.detach()),
            "ce": float(ce.detach()),
            "g_adv": float(g_adv.detach()),
            "d": float(d_loss.detach()),
        }
