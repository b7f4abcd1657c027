"""Scans too large for memory: analysed and colorized in bands (``chromata.pipeline.tiled``) from a local file (the
source's own file when it is local, else a streamed download into scratch space), written as a banded TIFF
in scratch space that the output path streams to the destination."""

from __future__ import annotations

from pathlib import Path

from chromata.archive.storage import Storage
from chromata.config import RunConfig
from chromata.judgement import inputchecks
from chromata.media.imageio import check_pixel_limit, probe
from chromata.models import Colorizer
from chromata.models.base import model_input
from chromata.models.postprocess import assessments
from chromata.pipeline import tiled
from chromata.pipeline.output import format_for, local_copy
from chromata.pipeline.shards import ShardStats
from chromata.pipeline.work import Colorized, Encoded, Item, Skip


class BandedHandler:
    def __init__(self, cfg: RunConfig, model: Colorizer, source: Storage) -> None:
        self.cfg, self.model, self.source = cfg, model, source

    def run(self, item: Item, scratch: Path, stats: ShardStats) -> Colorized | Skip:
        fmt = format_for(item, self.cfg)
        src = local_copy(item, self.source, scratch, stats)
        info = probe(str(src))
        check_pixel_limit(info, self.cfg.max_pixels)
        budget = self.cfg.memory_budget_mb * 2**20 // 8
        analysis = tiled.analyse(str(src), max_segment_bytes=budget)
        layout = analysis.layout
        checks = inputchecks.InputChecks("any")
        checks.add(analysis.lightness, layout.width, layout.height, analysis.tone)
        if checks.already_colour:
            return Skip("already_colour", "the source already has colour")
        work = model_input(self.model, analysis.lightness)[None]
        pred = self.model.predict_ab(work)

        def finish(xmp: bytes) -> Encoded:
            out = scratch / "output.tif"
            tiled.write_colorized(str(src), str(out), pred.ab[0], label=self.cfg.label, xmp=xmp,
                                  max_segment_bytes=budget)  # fmt: skip
            return Encoded(out)

        return Colorized(fmt, [pred.uncertainty[0]], checks.reasons(), layout.width, layout.height,
                         layout.bit_depth, finish, assessments=assessments(work, pred.ab))  # fmt: skip
