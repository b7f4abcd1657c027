"""Films: streamed from a local file (the source's own, or a streamed download into scratch space) into a
colorized file in scratch space, a chunk of frames at a time sized by the memory budget; the XMP label goes
in a sidecar (video containers have no slot OpenCV writes)."""

from __future__ import annotations

from pathlib import Path

from chromata.archive.storage import Storage
from chromata.config import RunConfig
from chromata.errors import ImageError
from chromata.models import Colorizer
from chromata.pipeline.output import format_for, local_copy
from chromata.pipeline.routing import in_memory_pixels
from chromata.pipeline.shards import ShardStats
from chromata.pipeline.video import colorize_stream, film_info, sample_checks
from chromata.pipeline.work import Colorized, Encoded, Item, Skip


def film_chunk(cfg: RunConfig, width: int, height: int) -> int:
    """Frames in flight at once: the batch size, fewer when the frames are large for the memory budget."""
    pixels = width * height
    if pixels > cfg.max_pixels:
        raise ImageError("too_large", f"{width}x{height} frames exceed the pixel limit {cfg.max_pixels}")
    fits = in_memory_pixels(cfg) // pixels
    if fits < 1:
        budget = cfg.memory_budget_mb
        raise ImageError("too_large", f"one {width}x{height} frame does not fit memory_budget_mb={budget}")
    return max(1, min(cfg.batch_size, fits))


class FilmHandler:
    def __init__(self, cfg: RunConfig, model: Colorizer, source: Storage) -> None:
        self.cfg, self.model, self.source = cfg, model, source

    def run(self, item: Item, scratch: Path, stats: ShardStats) -> Colorized | Skip:
        fmt = format_for(item, self.cfg)
        src = local_copy(item, self.source, scratch, stats)
        info = film_info(str(src))
        chunk = film_chunk(self.cfg, info.width, info.height)
        checks = sample_checks(str(src), info)
        if checks.already_colour:
            return Skip("already_colour", "most of its sampled frames already have colour")
        out = scratch / f"output{fmt.extension}"
        result = colorize_stream(str(src), str(out), fmt.fourcc or "mp4v", self.model,
                                 smoothing=self.cfg.video_smoothing, chunk=chunk)  # fmt: skip
        return Colorized(fmt, [result.uncertainty], checks.reasons(), result.width, result.height, 8,
                         lambda xmp: Encoded(out, sidecar=xmp), frames=result.frames,
                         assessments=result.assessments, params={"restraint": None})  # fmt: skip
