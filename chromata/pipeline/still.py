"""Stills: one image decoded in memory. Prepared in a reader thread (decode, L*, checks), predicted in a batch
with other stills by the scheduler, then merged with the full-resolution L* in a writer thread."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from numpy.typing import NDArray

from chromata.colormath import color
from chromata.config import RunConfig
from chromata.judgement import inputchecks
from chromata.media import labels, visible_label
from chromata.media.formats import Format
from chromata.media.imageio import DecodedImage, EncodeOptions, decode, encode
from chromata.models import Colorizer
from chromata.models.base import model_input
from chromata.models.postprocess import assessments
from chromata.pipeline.output import format_for
from chromata.pipeline.work import F32, Colorized, Encoded, Item, Skip


@dataclass
class PreparedStill:
    item: Item
    fmt: Format  # the output format, decided before any decoding (an impossible --format fails first)
    image: DecodedImage
    lightness: F32 = field(repr=False)  # full resolution: what the output keeps
    work: F32 = field(repr=False)  # the model's input
    reasons: list[str]


Merge = Callable[[F32, F32, Any], NDArray[Any]]


def merge_on(device: str) -> Merge:
    """The full-resolution merge (L* + the model's chroma -> output pixels) where the model runs: on a GPU in
    torch (``chromata.colormath.torchcolor.merge_chroma_to``), leaving the node's cores to decoding and encoding; on a
    CPU by ``chromata.colormath.color`` (numba's fused pass). The two agree within one level."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():  # an ONNX model can be on a GPU (ONNX Runtime's) while torch has none
            from chromata.colormath import torchcolor

            return functools.partial(torchcolor.merge_chroma_to, device=device)
    return color.merge_chroma_to


class StillHandler:
    def __init__(self, cfg: RunConfig, model: Colorizer) -> None:
        self.cfg, self.model = cfg, model
        self.encode_opts = EncodeOptions(jpeg_quality=cfg.jpeg_quality)
        self.merge = merge_on(model.device)

    def prepare(self, item: Item) -> PreparedStill | Skip:
        assert item.data is not None and item.info is not None  # routing reads stills
        fmt = format_for(item, self.cfg)
        image = decode(item.data, self.cfg.max_pixels, item.info)
        checks = inputchecks.InputChecks("any")
        lightness = color.lightness_of(image.pixels)
        small = color.reduce_lightness(lightness)  # ≤ 1024 px: all the model and the checks need
        tone = inputchecks.classify_tone(image.pixels) if image.is_colour else None
        checks.add(small, image.width, image.height, tone, image.colour_space_note)
        if checks.already_colour:
            return Skip("already_colour", "the source already has colour")
        work = model_input(self.model, small)
        return PreparedStill(item, fmt, image, lightness, work, checks.reasons())

    def render(self, p: PreparedStill, ab: F32, uncertainty: F32) -> Colorized:
        fmt = p.fmt
        pixels = visible_label.visible_label(self.merge(p.lightness, ab, p.image.pixels.dtype), self.cfg.label)
        h, w = pixels.shape[:2]
        source = p.item.data or b""

        def finish(xmp: bytes) -> Encoded:
            data, sidecar = labels.label_output(source, encode(pixels, fmt.extension, self.encode_opts), fmt.extension,
                                                xmp, w, h)  # fmt: skip
            return Encoded(data, sidecar)

        judged = assessments(p.work[None], ab[None])
        return Colorized(fmt, [uncertainty], p.reasons, p.image.width, p.image.height, p.image.bit_depth, finish,
                         assessments=judged)  # fmt: skip
