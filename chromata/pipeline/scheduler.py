"""The scheduler: owns the threads and the batches, and turns a ``Shard`` into rows.

Reader threads route each object and prepare stills (read, hash, decode, L*, checks) ahead of the model;
stills are predicted in batches on the calling thread; writer threads merge, encode, label and write behind
it. Pages, banded scans and films run on a thread of their own beside the batch loop (at most
``HEAVY_IN_FLIGHT`` at once), so one large item never stalls the stills. Every row is reported through
``on_image`` as soon as it exists (progress per image), and the rows come back in the shard's order.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chromata.archive import open_storage
from chromata.archive.storage import ReadOnlyStorage, Storage
from chromata.colormath import kernels
from chromata.config import RunConfig
from chromata.errors import Failure
from chromata.models import Colorizer, load_colorizer
from chromata.models.base import InferenceGraph, warm_up
from chromata.models.postprocess import assessment_facts
from chromata.pipeline.banded import BandedHandler
from chromata.pipeline.film import FilmHandler
from chromata.pipeline.output import OutputPath
from chromata.pipeline.pages import PagesHandler
from chromata.pipeline.records import RecordBuilder
from chromata.pipeline.routing import intake
from chromata.pipeline.shards import Shard, ShardResult, ShardStats, route_for_review
from chromata.pipeline.still import PreparedStill, StillHandler
from chromata.pipeline.work import Item, Skip
from chromata.record.manifest import ImageRecord, params_json

HEAVY_IN_FLIGHT = 2  # pages / banded scans / films being processed or waiting, per worker
OnImage = Callable[[ImageRecord], None]


def thread_split(threads: int) -> tuple[int, int]:
    """(model threads, decode/encode threads) for a worker with ``threads`` cores. The model's intra-op
    threads and the pixel work around it share the cores: with both at full width they stall each other
    (2 cores, 2.5 MP JPEGs: inference took 2.2x its time alone). One core in three, at least one, goes to
    decoding, merging and encoding; the rest to the model."""
    io = max(1, threads // 3)
    return max(1, threads - io), io


def _profiled_runs() -> int:
    """How many runs of a graph TorchScript's profiling executor profiles before it optimises the graph."""
    try:
        import torch

        return max(1, int(torch._C._jit_get_num_profiled_runs()))  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return 1


def gpu_utilisation(device: str) -> float | None:
    """NVML's utilisation of the model's GPU (0..1), or None on a CPU / without NVML."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return float(torch.cuda.utilization(torch.device(device))) / 100.0
    except Exception:  # NVML missing or unsupported: no figure rather than a failed batch
        return None


# What a reader thread hands the batch loop: a prepared still, an item for the heavy thread, or a row.
Taken = PreparedStill | Item | ImageRecord


class ShardProcessor:
    """Holds a loaded model, both storages, the handlers and the threads; ``process(shard)`` colorizes one
    shard. What an execution engine wraps (a Ray actor, a process pool, a notebook)."""

    def __init__(
        self, cfg: RunConfig, model: Colorizer | None = None, io_threads: int | None = None, threads: int | None = None
    ) -> None:
        """``threads``: the cores this worker has (an actor's own CPUs); else the machine's ÷ workers.
        ``cfg.threads_per_worker`` overrides either."""
        self.cfg = cfg
        self.threads = cfg.threads_per_worker or threads or max(1, (os.cpu_count() or 1) // cfg.workers)
        self.model_threads, io = thread_split(self.threads)
        if model is None:
            import torch

            torch.set_num_threads(self.model_threads)
            model = load_colorizer(
                cfg.model,
                device=cfg.device,
                temperature=cfg.temperature,
                chroma_gamma=cfg.chroma_gamma,
                input_size=cfg.model_size,
                precision=cfg.precision,
            )
            warm_up(model)  # ready for the first batch: an engine loads its model off the run's critical path
            # and runs the batch it will run until TorchScript's executor has profiled and optimised its graph, so
            # that the first batch goes through the same plan as every later one (the same outputs)
            # (only a CPU model run through a TorchScript graph has such a plan: the published families run eager)
            if isinstance(getattr(model, "forward", None), InferenceGraph) and model.device == "cpu":
                for _ in range(_profiled_runs() + 1):
                    model.predict_ab(np.full((cfg.batch_size, model.input_size, model.input_size), 50.0, np.float32))
            kernels.prepare()  # and compiles the merge kernel (chromata.colormath.kernels) before its first image
        self.model = model
        self.source: Storage = ReadOnlyStorage(open_storage(cfg.source, cfg.endpoint_url))
        self.dest: Storage = open_storage(cfg.destination, cfg.endpoint_url)
        self.output = OutputPath(cfg, model, self.source, self.dest)
        self.still = StillHandler(cfg, model)
        self.pages = PagesHandler(cfg, model)
        self.banded = BandedHandler(cfg, model, self.source)
        self.film = FilmHandler(cfg, model, self.source)
        self.io_threads = io_threads or max(2, io)
        # the threads live as long as the processor: started once, not per shard (under memory pressure even
        # starting a thread can fail), and end with ``close`` (or the ``with`` block)
        self._readers = ThreadPoolExecutor(self.io_threads, thread_name_prefix="decode")
        self._writers = ThreadPoolExecutor(self.io_threads, thread_name_prefix="encode")
        self._heavy = ThreadPoolExecutor(1, thread_name_prefix="large")
        desc = model.describe()
        # whether the confidence is a fitted probability or a raw score (then the review budget, not a threshold,
        # is what routes sensibly: chromata calibrate fits one for the weights)
        facts = assessment_facts()
        calibration = model.calibration
        facts["score_calibrated"] = calibration is not None and calibration.applies_to(str(facts["score_version"]))
        self.params = params_json({**cfg.processing_params(), **desc, **facts})

    def close(self) -> None:
        """End the processor's threads (waiting for what they are doing); it processes nothing afterwards."""
        for pool in (self._readers, self._writers, self._heavy):
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ShardProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, shard_id: str = "", run_id: str = "") -> RecordBuilder:
        return RecordBuilder(self.cfg, self.model, self.source, self.dest, self.params, shard_id, run_id)

    # -- per item, on the threads ------------------------------------------------------------------------
    def take(self, item: Item, rows: RecordBuilder, stats: ShardStats) -> Taken:
        """Reader thread: route the object; prepare it if it is a still."""
        t0 = time.perf_counter()
        try:
            intake(item, self.source, self.cfg, stats)
            if item.kind != "still":
                return item
            prepared = self.still.prepare(item)
            return rows.skipped(item, prepared) if isinstance(prepared, Skip) else prepared
        except Exception as exc:
            return rows.of_exception(item, exc)
        finally:
            stats.decode_seconds.append(time.perf_counter() - t0)

    def finish_still(
        self, p: PreparedStill, ab: np.ndarray, unc: np.ndarray, rows: RecordBuilder, stats: ShardStats
    ) -> ImageRecord:
        """Writer thread: merge, then the output path."""
        t0 = time.perf_counter()
        try:
            return self.output.finish(p.item, self.still.render(p, ab, unc), rows, stats)
        except Exception as exc:
            return rows.of_exception(p.item, exc)
        finally:
            stats.encode_seconds.append(time.perf_counter() - t0)

    def finish_heavy(self, item: Item, rows: RecordBuilder, stats: ShardStats) -> ImageRecord:
        """The large-item thread: a page set, a banded scan or a film, in scratch space of its own."""
        t0 = time.perf_counter()
        try:
            if self.cfg.scratch_dir:
                Path(self.cfg.scratch_dir).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="chromata-", dir=self.cfg.scratch_dir) as tmp:
                scratch = Path(tmp)
                if item.kind == "pages":
                    out = self.pages.run(item)
                elif item.kind == "banded":
                    out = self.banded.run(item, scratch, stats)
                else:
                    out = self.film.run(item, scratch, stats)
                if isinstance(out, Skip):
                    return rows.skipped(item, out)
                return self.output.finish(item, out, rows, stats)
        except Exception as exc:
            return rows.of_exception(item, exc)
        finally:
            stats.encode_seconds.append(time.perf_counter() - t0)

    # -- the shard ---------------------------------------------------------------------------------------
    def process(self, shard: Shard, run_id: str, on_image: OnImage | None = None) -> ShardResult:
        """Colorize one shard; the model runs on ``model_threads`` intra-op threads meanwhile (see
        ``thread_split``), whatever the process had set before."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.model_threads)
        try:
            return _ShardRun(self, shard, run_id, on_image).run()
        finally:
            torch.set_num_threads(before)

    def lost_worker_result(self, shard: Shard, run_id: str, detail: str) -> ShardResult:
        """Failed rows for images whose worker process died while processing them, each on its own, every
        time it was tried (killed for memory by the kernel, or a crash inside a decoder): recorded by
        another worker, so that one such image costs its row, not its shard or the run."""
        failure = Failure(
            "worker_lost",
            "the worker process died while processing this image, each time it was tried (killed for memory, "
            f"or a crash in a decoder); nothing was written for it ({' '.join(detail.split())})",
        )
        rows = self.rows(shard.shard_id, run_id)
        records = [rows.failed(Item(obj, time.time()), failure) for obj in shard.objects]
        return ShardResult(shard.shard_id, records, 0.0)


@dataclass
class _ShardRun:
    """One shard's state on its way through the threads."""

    proc: ShardProcessor
    shard: Shard
    run_id: str
    on_image: OnImage | None
    stats: ShardStats = field(default_factory=ShardStats)
    records: list[ImageRecord] = field(default_factory=list)
    batch: list[PreparedStill] = field(default_factory=list)
    reads: deque[Future[Taken]] = field(default_factory=deque)
    outputs: deque[Future[ImageRecord]] = field(default_factory=deque)
    heavy: list[Future[ImageRecord]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _batch_started: float | None = None

    def __post_init__(self) -> None:
        self.rows = self.proc.rows(self.shard.shard_id, self.run_id)
        self.bs = self.proc.cfg.batch_size

    def _report(self, rec: ImageRecord) -> None:
        if self.on_image is not None:
            with self._lock:
                self.on_image(rec)

    def _reported(self, future: Future[ImageRecord]) -> Future[ImageRecord]:
        """Report the row the moment its thread has made it (a shard-fatal error is raised on collection)."""

        def done(f: Future[ImageRecord]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._report(f.result())

        future.add_done_callback(done)
        return future

    def run(self) -> ShardResult:
        t0, cpu0 = time.monotonic(), time.process_time()
        proc = self.proc
        try:
            for obj in self.shard.objects:  # read ahead: up to two batches
                self.reads.append(proc._readers.submit(proc.take, Item(obj, time.time()), self.rows, self.stats))
                if len(self.reads) >= 2 * self.bs:
                    self._next_read()
            while self.reads:
                self._next_read()
            self._flush()
            self._collect(0)
            wait(self.heavy)
            self.outputs.extend(self.heavy)
            self._collect(0)
        finally:  # a shard that failed (destination unwritable): leave nothing of it running
            left: list[Future[Any]] = [*self.reads, *self.outputs, *self.heavy]
            for future in left:
                future.cancel()
            wait(left)
        order = {o.key: i for i, o in enumerate(self.shard.objects)}
        self.records.sort(key=lambda r: order[r.source_key])
        self.stats.cpu_seconds = time.process_time() - cpu0
        records = route_for_review(self.records, proc.cfg)
        return ShardResult(self.shard.shard_id, records, time.monotonic() - t0, stats=self.stats)

    def _next_read(self) -> None:
        taken = self.reads.popleft().result()
        if isinstance(taken, ImageRecord):  # failed or skipped on reading
            self.records.append(taken)
            self._report(taken)
        elif isinstance(taken, PreparedStill):
            if not self.batch:
                self._batch_started = time.perf_counter()
            self.batch.append(taken)
            if len(self.batch) >= self.bs:
                self._flush()
        else:
            self._submit_heavy(taken)

    def _submit_heavy(self, item: Item) -> None:
        busy = [f for f in self.heavy if not f.done()]
        if len(busy) >= HEAVY_IN_FLIGHT:  # bound what large items hold in memory while they wait
            wait(busy, return_when=FIRST_COMPLETED)
        self.heavy.append(self._reported(self.proc._heavy.submit(self.proc.finish_heavy, item, self.rows, self.stats)))

    def _flush(self) -> None:
        if not self.batch:
            return
        proc, stats = self.proc, self.stats
        t_model = time.perf_counter()
        pred = proc.model.predict_ab(np.stack([p.work for p in self.batch]))
        stats.inference_seconds.append(time.perf_counter() - t_model)
        util = gpu_utilisation(proc.model.device)
        if util is not None:
            stats.gpu_utilisation.append(util)
        for i, p in enumerate(self.batch):
            future = proc._writers.submit(proc.finish_still, p, pred.ab[i], pred.uncertainty[i], self.rows, stats)
            self.outputs.append(self._reported(future))
        stats.batch_seconds.append(time.perf_counter() - (self._batch_started or t_model))
        self.batch.clear()
        self._collect(2 * self.bs)

    def _collect(self, limit: int) -> None:
        while len(self.outputs) > limit:
            self.records.append(self.outputs.popleft().result())  # StorageError propagates: the shard fails
