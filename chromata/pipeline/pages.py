"""Multi-page TIFFs: every page colorized and written as one multi-page TIFF (one manifest row), the XMP in
page 1; the input checks run on every page and the confidence is the least confident page's."""

from __future__ import annotations

import cv2
import numpy as np

from chromata.colormath import color
from chromata.config import RunConfig
from chromata.errors import ImageError
from chromata.judgement import inputchecks
from chromata.media import labels, visible_label
from chromata.models import Colorizer
from chromata.models.base import model_input
from chromata.models.postprocess import assessments
from chromata.pipeline.output import format_for
from chromata.pipeline.still import merge_on
from chromata.pipeline.work import Colorized, Encoded, Item, Skip


class PagesHandler:
    def __init__(self, cfg: RunConfig, model: Colorizer) -> None:
        self.cfg, self.model = cfg, model
        self.merge = merge_on(model.device)

    def run(self, item: Item) -> Colorized | Skip:
        assert item.data is not None  # routing reads multi-page TIFFs (their size is within the budget)
        fmt = format_for(item, self.cfg)
        ok, pages = cv2.imdecodemulti(np.frombuffer(item.data, np.uint8), cv2.IMREAD_UNCHANGED)
        if not ok or not pages:
            raise ImageError("decode_error", "no readable page in the multi-page TIFF")
        if sum(p.shape[0] * p.shape[1] for p in pages) > self.cfg.max_pixels:
            raise ImageError("too_large", f"{len(pages)} pages exceed the pixel limit {self.cfg.max_pixels}")
        pages = [p[..., :3] if p.ndim == 3 and p.shape[2] == 4 else p for p in pages]
        checks = inputchecks.InputChecks("any")
        lights, works = [], []
        for page in pages:
            light = color.lightness_of(page)
            small = color.reduce_lightness(light)
            checks.add(small, page.shape[1], page.shape[0], inputchecks.unit_tone(page))
            lights.append(light)
            works.append(model_input(self.model, small))
        if checks.already_colour:
            n = checks.colour_units
            return Skip("already_colour", f"{n} of its {len(pages)} pages already have colour")
        bs = max(1, self.cfg.batch_size)
        preds = [self.model.predict_ab(np.stack(works[i : i + bs])) for i in range(0, len(works), bs)]
        abs_ = [ab for pred in preds for ab in pred.ab]
        uncertainty = [u for pred in preds for u in pred.uncertainty]
        outs = [
            visible_label.visible_label(self.merge(li, ab, page.dtype), self.cfg.label)
            for li, ab, page in zip(lights, abs_, pages, strict=True)
        ]
        carried = labels.source_metadata_tiff(item.data)

        def finish(xmp: bytes) -> Encoded:
            ok, buf = cv2.imencodemulti(".tif", outs, [cv2.IMWRITE_TIFF_COMPRESSION, 5])
            if not ok:
                raise ImageError("encode_error", "OpenCV could not encode the multi-page TIFF")
            return Encoded(labels.embed_tiff(buf.tobytes(), xmp, carried))

        h, w = pages[0].shape[:2]
        depth = 16 if pages[0].dtype == np.uint16 else 8
        judged = assessments(np.stack(works), np.stack(abs_))
        return Colorized(fmt, uncertainty, checks.reasons(), w, h, depth, finish, frames=len(pages), assessments=judged)
