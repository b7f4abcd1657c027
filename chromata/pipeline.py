"""The whole per-image path, and a shard of images processed in batches.

``ShardProcessor`` is what an execution engine wraps (a Ray actor, a process pool, a notebook): it
loads the model once and turns a ``Shard`` into ``ImageRecord`` rows, writing outputs as it goes.
Reading/decoding runs in threads ahead of inference and encoding/writing in threads behind it, so the
model is not kept waiting on I/O. One bad image becomes a ``failed`` row; only a destination that
cannot be written fails the shard.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import posixpath
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import chromata
from chromata import color, confidence, inputchecks, labels, tiled
from chromata.color import lightness_of
from chromata.config import RunConfig
from chromata.errors import ImageError, StorageError
from chromata.imageio import (
    CONTENT_TYPES,
    OUTPUT_FORMATS,
    SAME_FORMAT_FALLBACK,
    TIFF_EXTENSIONS,
    DecodedImage,
    EncodeOptions,
    check_pixel_limit,
    decode,
    encode,
    is_video_key,
    probe,
)
from chromata.manifest import HEATMAP_PREFIX, ImageRecord, Status, image_id_for, params_json
from chromata.models import Colorizer, load_colorizer
from chromata.storage import (
    KeyRefused,
    ObjectInfo,
    ReadOnlyStorage,
    Storage,
    open_storage,
    safe_key,
    sha256_file,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    shard_id: str
    objects: tuple[ObjectInfo, ...]

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)


def shard_id_for(objects: Iterable[ObjectInfo], attempt: Callable[[str], int] = lambda key: 0) -> str:
    """Derived from the shard's keys, versions and attempt numbers (how many manifest rows each key
    already has): a re-listing of the same work reproduces it, so an interrupted run resumes into the
    same fragment, while a retry of committed work (``--retry-failed``) gets a fragment of its own."""
    h = hashlib.sha256()
    for o in objects:
        n = attempt(o.key)
        h.update(f"{o.key}\t{o.etag}\t{o.size}{f'#{n}' if n else ''}\n".encode())
    return h.hexdigest()[:16]


def make_shards(
    objects: Iterable[ObjectInfo], shard_size: int, attempt: Callable[[str], int] = lambda key: 0
) -> Iterator[Shard]:
    """Group a key-ordered stream of objects into consecutive shards without holding it all."""
    batch: list[ObjectInfo] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == shard_size:
            yield Shard(shard_id_for(batch, attempt), tuple(batch))
            batch = []
    if batch:
        yield Shard(shard_id_for(batch, attempt), tuple(batch))


@dataclass
class ShardStats:
    """Where a shard's time went, measured in the worker; the driver turns it into metrics."""

    decode_seconds: list[float] = field(default_factory=list)  # per image: read, hash, decode, L*, checks
    encode_seconds: list[float] = field(default_factory=list)  # per image: merge, encode, write, heatmap
    inference_seconds: list[float] = field(default_factory=list)  # per batch: the model alone
    batch_seconds: list[float] = field(default_factory=list)  # per batch: first image taken -> outputs queued
    read_sizes: list[int] = field(default_factory=list)  # list.append is atomic across the I/O threads
    written_sizes: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0  # CPU time of the worker process during the shard (all its threads)
    gpu_utilisation: list[float] = field(default_factory=list)  # NVML samples at each batch, 0..1

    @property
    def bytes_read(self) -> int:
        return sum(self.read_sizes)

    @property
    def bytes_written(self) -> int:
        return sum(self.written_sizes)


@dataclass
class ShardResult:
    shard_id: str
    records: list[ImageRecord]
    seconds: float
    worker: str = ""
    stats: ShardStats = field(default_factory=ShardStats)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.records if r.status == status)


def merge_results(shard: Shard, parts: Iterable[ShardResult], cfg: RunConfig) -> ShardResult:
    """One result for ``shard`` from the results of its parts (a shard run image by image), its rows in
    the shard's order, its statistics pooled, the review policy applied to the whole shard again."""
    parts = list(parts)
    order = {o.key: i for i, o in enumerate(shard.objects)}
    records = sorted((r for part in parts for r in part.records), key=lambda r: order.get(r.source_key, len(order)))
    stats = ShardStats(cpu_seconds=sum(part.stats.cpu_seconds for part in parts))
    for f in fields(ShardStats):
        if f.name != "cpu_seconds":
            for part in parts:
                getattr(stats, f.name).extend(getattr(part.stats, f.name))
    workers = ", ".join(sorted({part.worker for part in parts if part.worker}))
    seconds = sum(part.seconds for part in parts)
    return ShardResult(shard.shard_id, route_for_review(records, cfg), seconds, workers, stats)


@dataclass
class _Prepared:
    obj: ObjectInfo
    started: float
    sha256: str
    image: DecodedImage
    lightness: np.ndarray = field(repr=False)
    work: np.ndarray = field(repr=False)
    reasons: list[str] = field(default_factory=list)
    source: bytes = field(default=b"", repr=False)  # the encoded source, for its metadata


@dataclass
class _MultiPage:
    """A multi-page TIFF: colorized page by page into a multi-page TIFF (one manifest row)."""

    obj: ObjectInfo
    started: float
    sha256: str
    data: bytes = field(repr=False)


@dataclass
class _Huge:
    """A TIFF too big to hold in memory: colorized in bands (``chromata.tiled``) from a local file."""

    obj: ObjectInfo
    started: float
    sha256: str | None = None
    data: bytes | None = field(default=None, repr=False)  # already read (it was small on disk)


Prepared = _Prepared | _MultiPage | _Huge | tuple[ObjectInfo, float, str | None, Exception]

# What the in-memory path needs per pixel at its peak (decoded samples, float L*, upsampled chroma, Lab and
# sRGB intermediates, the quantised output and its encoding): measured 50 B (8-bit) to 62 B (16-bit).
IN_MEMORY_BYTES_PER_PIXEL = 64


def output_key(source_key: str, output_format: str = "same") -> str:
    """Deterministic derivative key: the source's relative path; the extension follows ``output_format``."""
    key = safe_key(source_key)
    stem, ext = posixpath.splitext(key)
    if output_format == "same":
        return stem + SAME_FORMAT_FALLBACK[ext.lower()] if ext.lower() in SAME_FORMAT_FALLBACK else key
    return stem + OUTPUT_FORMATS[output_format]


def route_for_review(records: list[ImageRecord], cfg: RunConfig) -> list[ImageRecord]:
    """Apply the review policy: the confidence threshold, or a budget (the least confident fraction of
    the colorized images, counted per shard so that a shard's commit never waits for the whole run)."""
    if cfg.review_budget is None:
        return records
    ok = sorted((r for r in records if r.status == "ok"), key=lambda r: (r.confidence or 0.0, r.source_key))
    quota = math.ceil(cfg.review_budget * len(ok))
    chosen = {r.source_key for r in ok[:quota]}
    return [replace(r, needs_review=r.source_key in chosen) for r in records]


def gpu_utilisation(device: str) -> float | None:
    """NVML's utilisation of the model's GPU (0..1), or None on a CPU / without NVML."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return float(torch.cuda.utilization(torch.device(device))) / 100.0
    except Exception:  # NVML missing or unsupported: no figure rather than a failed batch
        return None


def heatmap_key(source_key: str) -> str:
    """Where an output's per-region confidence heatmap goes (under _chromata/, not among the images); a
    file name too long to take the suffix is replaced by its digest."""
    key = safe_key(source_key)
    head, name = posixpath.split(key)
    if len(name.encode()) > 200:
        name = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"{HEATMAP_PREFIX}/{posixpath.join(head, name)}.png"


def thread_split(threads: int) -> tuple[int, int]:
    """(model threads, decode/encode threads) for a worker with ``threads`` cores. The model's intra-op
    threads and the pixel work around it share the cores: with both at full width they stall each other
    (2 cores, 2.5 MP JPEGs: inference took 2.2x its time alone). One core in three, at least one, goes to
    decoding, merging and encoding; the rest to the model."""
    io = max(1, threads // 3)
    return max(1, threads - io), io


class ShardProcessor:
    """Holds a loaded model and both storages; ``process(shard)`` colorizes one shard."""

    def __init__(self, cfg: RunConfig, model: Colorizer | None = None, io_threads: int | None = None) -> None:
        self.cfg = cfg
        threads = cfg.threads_per_worker or max(1, (os.cpu_count() or 1) // cfg.workers)
        self.model_threads, io = thread_split(threads)
        if model is None:
            import torch

            torch.set_num_threads(self.model_threads)
            model = load_colorizer(
                cfg.model, device=cfg.device, temperature=cfg.temperature, chroma_gamma=cfg.chroma_gamma
            )
        self.model = model
        self.source: Storage = ReadOnlyStorage(open_storage(cfg.source, cfg.endpoint_url))
        self.dest: Storage = open_storage(cfg.destination, cfg.endpoint_url)
        self.encode_opts = EncodeOptions(jpeg_quality=cfg.jpeg_quality)
        self.c2pa = (
            labels.C2paSigner.from_files(cfg.c2pa_cert, cfg.c2pa_key) if cfg.c2pa_cert and cfg.c2pa_key else None
        )
        self.io_threads = io_threads or max(2, io)
        # the decode and encode threads live as long as the processor: started once, not per shard (under
        # memory pressure even starting a thread can fail)
        self._readers = ThreadPoolExecutor(self.io_threads, thread_name_prefix="decode")
        self._writers = ThreadPoolExecutor(self.io_threads, thread_name_prefix="encode")
        desc = model.describe()
        self.params = params_json({**cfg.processing_params(), **desc, "score_version": confidence.SCORE_VERSION})

    # -- per-image steps -------------------------------------------------------------------------
    def _record(
        self,
        obj: ObjectInfo,
        started: float,
        status: Status,
        *,
        shard_id: str,
        run_id: str,
        sha: str | None = None,
        image: DecodedImage | None = None,
        error: str | None = None,
        output: tuple[str, str] | None = None,
        heatmap: str | None = None,
        report: confidence.ConfidenceReport | None = None,
        reasons: Iterable[str] = (),
        keys: tuple[str, str | None] = ("", None),  # (output key, heatmap key) relative to the destination
    ) -> ImageRecord:
        finished = time.time()
        conf = report.score if report else None
        return ImageRecord(
            image_id=image_id_for(self.source.uri(obj.key)),
            source_uri=self.source.uri(obj.key),
            source_key=obj.key,
            source_etag=obj.etag,
            source_size=obj.size,
            source_sha256=sha,
            width=image.width if image else None,
            height=image.height if image else None,
            bit_depth=image.bit_depth if image else None,
            output_uri=output[0] if output else None,
            output_sha256=output[1] if output else None,
            heatmap_uri=heatmap,
            status=status,
            error=error,
            confidence=conf,
            confidence_reasons=list(report.reasons if report else reasons),
            needs_review=bool(conf is not None and conf < self.cfg.review_threshold),  # see route_for_review
            model_name=self.model.name,
            model_sha256=self.model.weights_sha256,
            params_json=self.params,
            chromata_version=chromata.__version__,
            run_id=run_id,
            shard_id=shard_id,
            started_at=started,
            finished_at=finished,
            duration_ms=round((finished - started) * 1000.0, 2),
            error_code=error.split(":", 1)[0] if error else None,
            output_key=keys[0] or None,
            heatmap_key=keys[1],
        )

    @property
    def in_memory_pixels(self) -> int:
        """The largest image the in-memory path may take under the worker's memory budget (three
        quarters of it: the model and the images in flight need the rest)."""
        return self.cfg.memory_budget_mb * 2**20 * 3 // 4 // IN_MEMORY_BYTES_PER_PIXEL

    def _prepare(self, obj: ObjectInfo, stats: ShardStats) -> Prepared:
        started = time.time()
        t0 = time.perf_counter()
        sha = None
        try:
            try:
                safe_key(obj.key)
            except KeyRefused as exc:
                raise ImageError("unsafe_key", str(exc)) from exc
            is_tiff = posixpath.splitext(obj.key)[1].lower() in TIFF_EXTENSIONS
            if is_tiff and obj.size > self.cfg.memory_budget_mb * 2**20 // 8:
                return _Huge(obj, started)  # never read whole into memory
            data = self.source.read(obj.key)
            stats.read_sizes.append(len(data))
            sha = hashlib.sha256(data).hexdigest()
            info = probe(data)
            check_pixel_limit(info, self.cfg.max_pixels)  # before a single pixel is decoded
            if info.pixels > self.in_memory_pixels:
                if info.format == "TIFF" and info.frames == 1:
                    return _Huge(obj, started, sha, data)
                need = info.pixels * IN_MEMORY_BYTES_PER_PIXEL / 2**30
                pages = f" x {info.frames} pages" if info.frames > 1 else ""
                advice = "split its pages" if info.frames > 1 else "save it as TIFF (processed in tiles)"
                raise ImageError(
                    "too_large",
                    f"{info.width}x{info.height}{pages} needs about {need:.1f} GiB to colorize in memory, over "
                    f"this worker's memory budget of {self.cfg.memory_budget_mb} MiB; {advice} or raise "
                    "memory_budget_mb",
                )
            if is_tiff and info.frames > 1:
                return _MultiPage(obj, started, sha, data)
            image = decode(data, self.cfg.max_pixels, info)
            tone = inputchecks.classify_tone(image.pixels) if image.is_colour else None
            if tone is not None and tone.kind == "colour":
                return obj, started, sha, ImageError("already_colour", "the source already has colour")
            lightness = lightness_of(image.pixels)
            small = color.reduce_lightness(lightness)  # ≤ 1024 px: all the model and the checks need
            work = color.working_lightness(small, self.model.input_size)
            reasons = inputchecks.input_reasons(small, image.width, image.height, tone)
            if image.colour_space_note and image.colour_space_note.startswith("not sRGB"):
                reasons.append("icc_not_srgb")
            return _Prepared(obj, started, sha, image, lightness, work, reasons, data)
        except Exception as exc:
            return obj, started, sha, exc
        finally:
            stats.decode_seconds.append(time.perf_counter() - t0)

    def _finish(
        self, p: _Prepared, ab: np.ndarray, unc: np.ndarray, shard_id: str, run_id: str, stats: ShardStats
    ) -> ImageRecord:
        pixels = labels.visible_label(color.merge_chroma_to(p.lightness, ab, p.image.pixels.dtype), self.cfg.label)
        key = output_key(p.obj.key, self.cfg.output_format)
        ext = posixpath.splitext(key)[1].lower()
        report = confidence.score(unc, p.reasons, self.model.calibration)
        prov = self._provenance(p.obj.key, p.sha256, run_id, report.score)
        data, sidecar = labels.label_output(
            p.source,
            encode(pixels, ext, self.encode_opts),
            ext,
            labels.xmp_packet(prov),
            pixels.shape[1],
            pixels.shape[0],
        )
        data = self._signed(data, ext, prov, key)
        self._write_or_fail(key, data, CONTENT_TYPES.get(ext, "application/octet-stream"))
        if sidecar is not None:  # formats without a metadata slot get the XMP beside them
            self._write_or_fail(key + ".xmp", sidecar, "application/rdf+xml")
        hkey = heatmap_key(key)
        heatmap = confidence.heatmap_png(unc, p.image.width, p.image.height)
        self._write_or_fail(hkey, heatmap, "image/png")
        stats.written_sizes.append(len(data) + len(heatmap))
        output = (key, hashlib.sha256(data).hexdigest())
        return self._ok(p.obj, p.started, p.sha256, output, hkey, report, shard_id, run_id, image=p.image)

    def _ok(
        self,
        obj: ObjectInfo,
        started: float,
        sha: str | None,
        output: tuple[str, str],  # (output key, its sha256)
        heatmap_key_: str | None,
        report: confidence.ConfidenceReport,
        shard_id: str,
        run_id: str,
        image: DecodedImage | None = None,
    ) -> ImageRecord:
        """The row of an image colorized and written."""
        return self._record(
            obj,
            started,
            "ok",
            shard_id=shard_id,
            run_id=run_id,
            sha=sha,
            image=image,
            output=(self.dest.uri(output[0]), output[1]),
            heatmap=self.dest.uri(heatmap_key_) if heatmap_key_ else None,
            report=report,
            keys=(output[0], heatmap_key_),
        )

    def _write_or_fail(self, key: str, data: bytes | Path, content_type: str) -> None:
        """Write one output; a destination that refuses it fails the shard (StorageError), except for a
        name it cannot hold, which is that image's problem (KeyRefused)."""
        try:
            if isinstance(data, Path):
                self.dest.write_file(key, data, content_type=content_type)
            else:
                self.dest.write_atomic(key, data, content_type=content_type)
        except KeyRefused:
            raise
        except Exception as exc:
            raise StorageError(f"cannot write {self.dest.uri(key)}: {exc}") from exc

    def _provenance(self, source_key: str, sha: str, run_id: str, score: float | None) -> labels.Provenance:
        """What the output file will say about itself (embedded XMP, C2PA)."""
        source_uri = self.source.uri(source_key)
        return labels.Provenance(
            source_uri=source_uri,
            source_sha256=sha,
            image_id=image_id_for(source_uri),
            run_id=run_id,
            model_name=self.model.name,
            model_sha256=self.model.weights_sha256,
            chromata_version=chromata.__version__,
            confidence=score,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            digital_source_type=self.cfg.digital_source_type,
        )

    def _multipage(self, m: _MultiPage, shard_id: str, run_id: str, stats: ShardStats) -> ImageRecord:
        """Every page colorized (in one batch) and written as a multi-page TIFF with the XMP in page 1."""
        t0 = time.perf_counter()
        try:
            ok, pages = cv2.imdecodemulti(np.frombuffer(m.data, np.uint8), cv2.IMREAD_UNCHANGED)
            if not ok or not pages:
                raise ImageError("decode_error", "no readable page in the multi-page TIFF")
            if sum(p.shape[0] * p.shape[1] for p in pages) > self.cfg.max_pixels:
                raise ImageError("too_large", f"{len(pages)} pages exceed the pixel limit {self.cfg.max_pixels}")
            lights = [lightness_of(p[..., :3] if p.ndim == 3 and p.shape[2] == 4 else p) for p in pages]
            pred = self.model.predict_ab(
                np.stack([color.working_lightness(li, self.model.input_size) for li in lights])
            )
            outs = [
                labels.visible_label(color.merge_chroma_to(li, ab, page.dtype), self.cfg.label)
                for li, ab, page in zip(lights, pred.ab, pages, strict=True)
            ]
            report = confidence.score(pred.uncertainty[0], [], self.model.calibration)
            ok, buf = cv2.imencodemulti(".tif", outs, [cv2.IMWRITE_TIFF_COMPRESSION, 5])
            if not ok:
                raise ImageError("encode_error", "OpenCV could not encode the multi-page TIFF")
            prov = self._provenance(m.obj.key, m.sha256, run_id, report.score)
            data = labels.embed_tiff(buf.tobytes(), labels.xmp_packet(prov), labels.source_metadata_tiff(m.data))
            key = output_key(m.obj.key)  # a multi-page TIFF stays one
            data = self._signed(data, ".tif", prov, key)
            h, w = pages[0].shape[:2]
            hkey = heatmap_key(key)
            heatmap = confidence.heatmap_png(pred.uncertainty[0], w, h)
            self._write_or_fail(key, data, "image/tiff")
            self._write_or_fail(hkey, heatmap, "image/png")
            stats.written_sizes.append(len(data) + len(heatmap))  # (its read was counted by _prepare)
            output = (key, hashlib.sha256(data).hexdigest())
            rec = self._ok(m.obj, m.started, m.sha256, output, hkey, report, shard_id, run_id)
            depth = 16 if pages[0].dtype == np.uint16 else 8
            return replace(rec, width=w, height=h, bit_depth=depth, frames=len(pages))
        except Exception as exc:
            return self._row_or_raise((m.obj, m.started, m.sha256, exc), shard_id, run_id)
        finally:
            stats.encode_seconds.append(time.perf_counter() - t0)

    def _huge(self, h: _Huge, shard_id: str, run_id: str, stats: ShardStats) -> ImageRecord:
        """A TIFF too large for memory: analysed and colorized in bands from a local file (the source's own
        file when it is local, else a streamed download into scratch space), the output streamed back."""
        t0 = time.perf_counter()
        sha = h.sha256
        try:
            key = output_key(h.obj.key, self.cfg.output_format)
            if posixpath.splitext(key)[1].lower() not in TIFF_EXTENSIONS:
                raise ImageError("too_large", "too large for memory, and tiled processing writes TIFF only")
            if self.cfg.scratch_dir:
                Path(self.cfg.scratch_dir).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="chromata-", dir=self.cfg.scratch_dir) as tmp:
                src = self.source.local_path(h.obj.key)
                if h.data is not None:
                    src = Path(tmp) / "source.tif"
                    src.write_bytes(h.data)
                elif src is None:
                    src = Path(tmp) / "source.tif"
                    self.source.download(h.obj.key, src)
                if sha is None:
                    sha = sha256_file(src)
                    stats.read_sizes.append(src.stat().st_size)
                info = probe(str(src))
                check_pixel_limit(info, self.cfg.max_pixels)
                budget = self.cfg.memory_budget_mb * 2**20 // 8
                analysis = tiled.analyse(str(src), max_segment_bytes=budget)
                pred = self.model.predict_ab(color.working_lightness(analysis.lightness, self.model.input_size)[None])
                report = confidence.score(pred.uncertainty[0], analysis.reasons, self.model.calibration)
                prov = self._provenance(h.obj.key, sha, run_id, report.score)
                out = Path(tmp) / "output.tif"
                layout = tiled.write_colorized(
                    str(src), str(out), pred.ab[0], label=self.cfg.label, xmp=labels.xmp_packet(prov),
                    max_segment_bytes=budget,
                )  # fmt: skip
                if self.c2pa is not None:
                    out = self._sign_file(self.c2pa, out, Path(tmp) / "signed.tif", prov, key)
                out_sha = sha256_file(out)
                self._write_or_fail(key, out, "image/tiff")
                hkey = heatmap_key(key)
                heatmap = confidence.heatmap_png(pred.uncertainty[0], layout.width, layout.height)
                self._write_or_fail(hkey, heatmap, "image/png")
                stats.written_sizes.append(out.stat().st_size + len(heatmap))
            rec = self._ok(h.obj, h.started, sha, (key, out_sha), hkey, report, shard_id, run_id)
            return replace(rec, width=layout.width, height=layout.height, bit_depth=layout.bit_depth)
        except Exception as exc:
            return self._row_or_raise((h.obj, h.started, sha, exc), shard_id, run_id)
        finally:
            stats.encode_seconds.append(time.perf_counter() - t0)

    def _signed(self, data: bytes, ext: str, prov: labels.Provenance, key: str) -> bytes:
        """The output C2PA-signed when the run signs (formats the SDK does not cover stay as they are)."""
        return data if self.c2pa is None else self.c2pa.sign(data, ext, prov, key)

    def _sign_file(self, signer: labels.C2paSigner, out: Path, signed: Path, prov: labels.Provenance, key: str) -> Path:
        """C2PA-sign a banded output on disk. The SDK holds about the whole file while it signs, so a file
        over half the worker's memory budget fails the image (nothing unsigned is written) with advice."""
        size, limit = out.stat().st_size, self.cfg.memory_budget_mb * 2**20 // 2
        if size > limit:
            raise ImageError(
                "too_large",
                f"the colorized TIFF ({size / 2**20:.0f} MiB) is too large to C2PA-sign within "
                f"memory_budget_mb={self.cfg.memory_budget_mb} (signing holds the whole file): "
                f"set memory_budget_mb to at least {2 * size // 2**20 + 1} on workers that have the memory",
            )
        signer.sign_file(out, signed, prov, key)
        return signed

    def _video(self, obj: ObjectInfo, shard_id: str, run_id: str, stats: ShardStats) -> ImageRecord:
        """A film reel or video: one manifest row with its frame count; XMP in a sidecar."""
        from chromata.video import colorize_video

        started, t0, sha = time.time(), time.perf_counter(), None
        try:
            data = self.source.read(obj.key)
            stats.read_sizes.append(len(data))
            sha = hashlib.sha256(data).hexdigest()
            ext = posixpath.splitext(obj.key)[1].lower()
            result = colorize_video(
                data, ext, self.model, smoothing=self.cfg.video_smoothing, batch_size=self.cfg.batch_size
            )
            report = confidence.score(np.full((1, 1), result.uncertainty, np.float32), [], self.model.calibration)
            prov = self._provenance(obj.key, sha, run_id, report.score)
            key = output_key(obj.key)
            data = self._signed(result.data, ext, prov, key)
            self._write_or_fail(key, data, CONTENT_TYPES.get(ext, "application/octet-stream"))
            self._write_or_fail(key + ".xmp", labels.xmp_packet(prov), "application/rdf+xml")
            stats.written_sizes.append(len(data))
            output = (key, hashlib.sha256(data).hexdigest())
            rec = self._ok(obj, started, sha, output, None, report, shard_id, run_id)
            return replace(rec, width=result.width, height=result.height, bit_depth=8, frames=result.frames)
        except Exception as exc:
            return self._row_or_raise((obj, started, sha, exc), shard_id, run_id)
        finally:
            stats.decode_seconds.append(time.perf_counter() - t0)

    def _row_or_raise(
        self, item: tuple[ObjectInfo, float, str | None, Exception], shard_id: str, run_id: str
    ) -> ImageRecord:
        """An image's own problem becomes its failed row; a destination that refuses writes (StorageError
        from ``_write_or_fail``) fails the shard, to be resumed — except a name it cannot hold (KeyRefused)."""
        exc = item[3]
        if isinstance(exc, StorageError) and not isinstance(exc, KeyRefused):
            raise exc
        return self._failure(item, shard_id, run_id)

    def _failure(
        self, item: tuple[ObjectInfo, float, str | None, Exception], shard_id: str, run_id: str
    ) -> ImageRecord:
        obj, started, sha, exc = item
        if isinstance(exc, ImageError) and exc.code == "already_colour":
            return self._record(
                obj,
                started,
                "skipped",
                shard_id=shard_id,
                run_id=run_id,
                sha=sha,
                reasons=["already_colour"],
                error=None,
            )
        if isinstance(exc, ImageError):
            error = str(exc)
        elif isinstance(exc, MemoryError) or (isinstance(exc, cv2.error) and "Insufficient memory" in str(exc)):
            error = f"too_large: out of memory while processing it ({type(exc).__name__}: {exc})"
        elif isinstance(exc, KeyRefused):
            error = f"unsafe_key: {exc}"
        else:
            error = f"{'read_error' if sha is None else 'processing_error'}: {type(exc).__name__}: {exc}"
        error = " ".join(error.split())  # one line, whatever the library's message looked like
        log.warning("%s failed: %s", obj.key, error)
        return self._record(obj, started, "failed", shard_id=shard_id, run_id=run_id, sha=sha, error=error[:1000])

    def lost_worker_result(self, shard: Shard, run_id: str, detail: str) -> ShardResult:
        """Failed rows for images whose worker process died while processing them, each on its own, every
        time it was tried (killed for memory by the kernel, or a crash inside a decoder): recorded by
        another worker, so that one such image costs its row, not its shard or the run."""
        error = (
            "worker_lost: the worker process died while processing this image, each time it was tried "
            f"(killed for memory, or a crash in a decoder); nothing was written for it ({' '.join(detail.split())})"
        )
        records = []
        for obj in shard.objects:
            log.warning("%s failed: %s", obj.key, error)
            records.append(
                self._record(obj, time.time(), "failed", shard_id=shard.shard_id, run_id=run_id, error=error[:1000])
            )
        return ShardResult(shard.shard_id, records, 0.0)

    # -- the shard --------------------------------------------------------------------------------
    def process(self, shard: Shard, run_id: str, on_image: Callable[[ImageRecord], None] | None = None) -> ShardResult:
        """Colorize one shard; the model runs on ``model_threads`` intra-op threads meanwhile (see
        ``thread_split``), whatever the process had set before."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.model_threads)
        try:
            return self._process(shard, run_id, on_image)
        finally:
            torch.set_num_threads(before)

    def _process(self, shard: Shard, run_id: str, on_image: Callable[[ImageRecord], None] | None = None) -> ShardResult:
        t0 = time.monotonic()
        cpu0 = time.process_time()
        stats = ShardStats()
        batch_started: list[float] = []
        records: list[ImageRecord] = []
        batch: list[_Prepared] = []
        bs = self.cfg.batch_size
        readers, writers = self._readers, self._writers
        pending_reads: deque[Future[Prepared]] = deque()
        pending_writes: deque[Future[ImageRecord]] = deque()
        try:
            for obj in shard.objects:  # videos: whole files, frame batches through the same model
                if is_video_key(obj.key):
                    rec = self._video(obj, shard.shard_id, run_id, stats)
                    records.append(rec)
                    if on_image:
                        on_image(rec)
            objects = (o for o in shard.objects if not is_video_key(o.key))

            def collect_writes(limit: int) -> None:
                while len(pending_writes) > limit:
                    rec = pending_writes.popleft().result()  # StorageError propagates: shard fails
                    records.append(rec)
                    if on_image:
                        on_image(rec)

            def flush() -> None:
                if not batch:
                    return
                t_model = time.perf_counter()
                pred = self.model.predict_ab(np.stack([p.work for p in batch]))
                stats.inference_seconds.append(time.perf_counter() - t_model)
                util = gpu_utilisation(self.model.device)
                if util is not None:
                    stats.gpu_utilisation.append(util)
                for i, p in enumerate(batch):
                    pending_writes.append(
                        writers.submit(
                            self._finish_safe, p, pred.ab[i], pred.uncertainty[i], shard.shard_id, run_id, stats
                        )
                    )
                stats.batch_seconds.append(time.perf_counter() - (batch_started.pop() if batch_started else t_model))
                batch.clear()
                collect_writes(2 * bs)

            def take(item: Prepared) -> None:
                if not batch and isinstance(item, _Prepared):
                    batch_started[:] = [time.perf_counter()]
                if isinstance(item, _MultiPage | _Huge):
                    if isinstance(item, _MultiPage):
                        rec = self._multipage(item, shard.shard_id, run_id, stats)
                    else:
                        rec = self._huge(item, shard.shard_id, run_id, stats)
                    records.append(rec)
                    if on_image:
                        on_image(rec)
                    return
                self._take(item, batch, records, shard, run_id, on_image)

            for obj in objects:  # prefetch up to two batches ahead
                pending_reads.append(readers.submit(self._prepare, obj, stats))
                if len(pending_reads) >= 2 * bs:
                    take(pending_reads.popleft().result())
                    if len(batch) >= bs:
                        flush()
            while pending_reads:
                take(pending_reads.popleft().result())
                if len(batch) >= bs:
                    flush()
            flush()
            collect_writes(0)
        finally:  # a shard that failed (destination unwritable): leave nothing of it running
            left: list[Future[Any]] = [*pending_reads, *pending_writes]
            for future in left:
                future.cancel()
            wait(left)
        order = {o.key: i for i, o in enumerate(shard.objects)}
        records.sort(key=lambda r: order[r.source_key])
        stats.cpu_seconds = time.process_time() - cpu0
        return ShardResult(shard.shard_id, route_for_review(records, self.cfg), time.monotonic() - t0, stats=stats)

    def _take(
        self,
        item: _Prepared | tuple[ObjectInfo, float, str | None, Exception],  # multi-page/huge never get here
        batch: list[_Prepared],
        records: list[ImageRecord],
        shard: Shard,
        run_id: str,
        on_image: Callable[[ImageRecord], None] | None,
    ) -> None:
        if isinstance(item, _Prepared):
            batch.append(item)
            return
        rec = self._failure(item, shard.shard_id, run_id)
        records.append(rec)
        if on_image:
            on_image(rec)

    def _finish_safe(
        self, p: _Prepared, ab: np.ndarray, unc: np.ndarray, shard_id: str, run_id: str, stats: ShardStats
    ) -> ImageRecord:
        t0 = time.perf_counter()
        try:
            return self._finish(p, ab, unc, shard_id, run_id, stats)
        except Exception as exc:
            return self._row_or_raise((p.obj, p.started, p.sha256, exc), shard_id, run_id)
        finally:
            stats.encode_seconds.append(time.perf_counter() - t0)
