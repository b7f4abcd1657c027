"""Training data: loading colour photos, the deterministic train/validation split, the ab prior, crop batches."""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from chromata.models.evaluation import load_images
from chromata.training.config import TrainConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
Photo = tuple[str, np.ndarray]


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
    from chromata.archive import open_storage

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


def empirical_prior(images: list[np.ndarray]) -> np.ndarray:
    """Distribution of ab bins over all training pixels (images downscaled to 64 px long side)."""
    import torch

    from chromata.colormath import color
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
