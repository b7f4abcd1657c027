"""Manifest rows: one builder for every outcome (colorized, failed, skipped), and the one place an exception
from the per-image path becomes a typed ``Failure``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import cv2

import chromata
from chromata.archive.storage import KeyRefused, Storage
from chromata.config import RunConfig
from chromata.errors import Failure, ImageError, StorageError
from chromata.judgement.confidence import ConfidenceReport
from chromata.models import Colorizer
from chromata.pipeline.work import Colorized, Item, Skip
from chromata.record.manifest import ImageRecord, image_id_for, params_json

log = logging.getLogger(__name__)
BELOW_THRESHOLD = "below_threshold"  # chromata.judgement.reasons has its text


def failure_of(exc: BaseException, read: bool) -> Failure:
    """Why an image failed, from what the per-image path raised (``read``: its bytes had been read)."""
    if isinstance(exc, ImageError):
        return exc.failure
    if isinstance(exc, MemoryError) or (isinstance(exc, cv2.error) and "Insufficient memory" in str(exc)):
        return Failure("too_large", f"out of memory while processing it ({type(exc).__name__}: {exc})")
    if isinstance(exc, KeyRefused):
        return Failure("unsafe_key", str(exc))
    return Failure("processing_error" if read else "read_error", f"{type(exc).__name__}: {exc}")


def is_shard_fatal(exc: BaseException) -> bool:
    """A destination that refuses writes fails the shard (to be resumed), except a name it cannot hold."""
    return isinstance(exc, StorageError) and not isinstance(exc, KeyRefused)


@dataclass
class RecordBuilder:
    cfg: RunConfig
    model: Colorizer
    source: Storage
    dest: Storage
    params: str
    shard_id: str = ""
    run_id: str = ""

    def _base(self, item: Item, status: str) -> dict[str, object]:
        finished = time.time()
        uri = self.source.uri(item.obj.key)
        return dict(
            image_id=image_id_for(uri),
            source_uri=uri,
            source_key=item.obj.key,
            source_etag=item.obj.etag,
            source_size=item.obj.size,
            source_sha256=item.sha256,
            status=status,
            model_name=self.model.name,
            model_sha256=self.model.weights_sha256,
            params_json=self.params,
            chromata_version=chromata.__version__,
            run_id=self.run_id,
            shard_id=self.shard_id,
            started_at=item.started,
            finished_at=finished,
            duration_ms=round((finished - item.started) * 1000.0, 2),
        )

    def ok(
        self, item: Item, out: Colorized, report: ConfidenceReport, output: tuple[str, str], heatmap: str
    ) -> ImageRecord:
        """A colorized image: ``output`` is (its key, the sha256 of its final bytes), ``heatmap`` a key. With
        threshold routing, one below the threshold is queued and says so (budget routing: ``route_for_review``)."""
        threshold = self.cfg.review_threshold
        below = threshold is not None and report.score < threshold
        base = self._base(item, "ok")
        if out.params:
            base["params_json"] = params_json({**json.loads(self.params), **out.params})
        return ImageRecord(
            **base,  # type: ignore[arg-type]
            width=out.width,
            height=out.height,
            bit_depth=out.bit_depth,
            output_uri=self.dest.uri(output[0]),
            output_sha256=output[1],
            heatmap_uri=self.dest.uri(heatmap),
            error=None,
            confidence=report.score,
            confidence_reasons=[*report.reasons, *([BELOW_THRESHOLD] if below else [])],
            needs_review=below,
            frames=out.frames,
            output_key=output[0],
            heatmap_key=heatmap,
        )

    def failed(self, item: Item, failure: Failure) -> ImageRecord:
        error = failure.one_line()
        log.warning("%s failed: %s", item.obj.key, error)
        return self._empty(item, "failed", error=error, error_code=failure.code)

    def skipped(self, item: Item, skip: Skip) -> ImageRecord:
        return self._empty(item, "skipped", reasons=[skip.reason])

    def _empty(
        self, item: Item, status: str, *, error: str | None = None, error_code: str | None = None,
        reasons: list[str] | None = None,
    ) -> ImageRecord:  # fmt: skip
        return ImageRecord(
            **self._base(item, status),  # type: ignore[arg-type]
            width=None,
            height=None,
            bit_depth=None,
            output_uri=None,
            output_sha256=None,
            heatmap_uri=None,
            error=error,
            confidence=None,
            confidence_reasons=reasons or [],
            error_code=error_code,
        )

    def of_exception(self, item: Item, exc: BaseException) -> ImageRecord:
        """The failed row for an image's own problem; a shard-fatal error propagates (``is_shard_fatal``)."""
        if is_shard_fatal(exc):
            raise exc
        return self.failed(item, failure_of(exc, read=item.sha256 is not None))
