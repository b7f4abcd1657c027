"""Prometheus metrics: one registry, fed by the driver from what the workers measured.

The Ray actors do not each serve an endpoint: every ``ShardResult`` carries its ``ShardStats``
(decode / encode / inference / batch times, bytes, CPU time, GPU utilisation), and the process that
commits shards records them here. So one scrape target — or one push — covers the whole pool, and a
metric exists only where the code measures it (``tests/test_metrics.py`` checks every name the
dashboards and alert rules use against this registry after a real run).

Export is the batch-job way Prometheus recommends, at the end of every run (also the scheduled ones,
which Prefect runs in their own processes):
* ``CHROMATA_PUSHGATEWAY=host:9091`` pushes to a Pushgateway, grouped by collection;
* ``chromata run --metrics-textfile PATH`` (or ``metrics_textfile`` in a collection's config) writes the
  node-exporter textfile format.
``Metrics.serve(port)`` exposes the registry over HTTP for a long-lived process that records into it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest, push_to_gateway, start_http_server, write_to_textfile

if TYPE_CHECKING:
    from chromata.pipeline import ShardResult
    from chromata.record.manifest import ImageRecord

log = logging.getLogger(__name__)

FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONFIDENCE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """Every metric chromata exports. One instance per process (``METRICS``); tests make their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        c = ["collection"]
        # -- colorizer workers (measured in the actors, recorded by the driver) --
        self.images = Counter(
            "chromata_images", "Images processed, by status and reason", [*c, "status", "reason"], registry=r
        )
        self.confidence = Histogram(
            "chromata_confidence", "Confidence of colorized images", c, buckets=CONFIDENCE, registry=r
        )
        self.decode = Histogram(
            "chromata_decode_seconds", "Read + decode + L* + input checks, per image", c, buckets=FAST, registry=r
        )
        self.encode = Histogram(
            "chromata_encode_seconds", "Merge + encode + write + heatmap, per image", c, buckets=FAST, registry=r
        )
        self.inference = Histogram(
            "chromata_inference_seconds", "Model inference per batch", c, buckets=FAST, registry=r
        )
        self.batch = Histogram(
            "chromata_batch_seconds", "Batch latency: first image taken to outputs queued", c, buckets=FAST, registry=r
        )
        self.worker_cpu = Counter("chromata_worker_cpu_seconds", "CPU time of colorizer workers", c, registry=r)
        self.gpu = Gauge("chromata_gpu_utilisation_ratio", "Mean GPU utilisation over the last shard", c, registry=r)
        self.pool_queue = Gauge(
            "chromata_pool_queued_shards", "Shards submitted to the actor pool and not yet returned", c, registry=r
        )
        # -- the flow --
        self.objects_listed = Counter("chromata_objects_listed", "Objects listed in the source", c, registry=r)
        self.shards = Counter("chromata_shards", "Shards finished, by outcome", [*c, "outcome"], registry=r)
        self.bytes_read = Counter("chromata_bytes_read", "Bytes read from the source", c, registry=r)
        self.bytes_written = Counter("chromata_bytes_written", "Bytes written to the destination", c, registry=r)
        self.run_duration = Gauge("chromata_run_duration_seconds", "Wall time of the last run", c, registry=r)
        self.run_last_success = Gauge(
            "chromata_run_last_success_timestamp_seconds", "When the last successful run ended", c, registry=r
        )
        self.run_failed = Gauge(
            "chromata_run_failed", "1 if the last run of the collection failed, else 0", c, registry=r
        )
        # -- the review queue --
        self.review_items = Gauge(
            "chromata_review_queue_items", "Pending review items, by reason", [*c, "reason"], registry=r
        )
        self.review_oldest = Gauge(
            "chromata_review_oldest_pending_age_seconds", "Age of the oldest pending review item", c, registry=r
        )
        # -- the review web app --
        self.review_decisions = Counter(
            "chromata_review_decisions",
            "Curator decisions, by curator and decision",
            ["curator", "decision"],
            registry=r,
        )
        self.http_latency = Histogram(
            "chromata_http_request_seconds",
            "Review app request latency",
            ["route", "method", "status"],
            buckets=FAST,
            registry=r,
        )

    # -- recording ------------------------------------------------------------------------------------
    def observe_records(self, records: Iterable[ImageRecord], collection: str) -> None:
        tally: Tally[tuple[str, str]] = Tally()
        for rec in records:
            reason = (rec.error_code or "unknown") if rec.status == "failed" else ""
            if rec.status == "skipped":
                reason = ",".join(rec.confidence_reasons) or ""
            tally[(rec.status, reason)] += 1
            if rec.status == "ok" and rec.confidence is not None:
                self.confidence.labels(collection).observe(rec.confidence)
        for (status, reason), n in tally.items():
            self.images.labels(collection, status, reason).inc(n)

    def observe_shard(self, result: ShardResult, collection: str) -> None:
        s = result.stats
        self.observe_records(result.records, collection)
        for seconds, hist in (
            (s.decode_seconds, self.decode),
            (s.encode_seconds, self.encode),
            (s.inference_seconds, self.inference),
            (s.batch_seconds, self.batch),
        ):
            for v in seconds:
                hist.labels(collection).observe(v)
        self.bytes_read.labels(collection).inc(s.bytes_read)
        self.bytes_written.labels(collection).inc(s.bytes_written)
        self.worker_cpu.labels(collection).inc(s.cpu_seconds)
        if s.gpu_utilisation:
            self.gpu.labels(collection).set(sum(s.gpu_utilisation) / len(s.gpu_utilisation))
        failed = bool(result.records) and all(r.status == "failed" for r in result.records)
        self.shards.labels(collection, "failed" if failed else "done").inc()

    def observe_run(self, collection: str, seconds: float, listed: int, failed: bool) -> None:
        self.objects_listed.labels(collection).inc(listed)
        self.run_duration.labels(collection).set(seconds)
        self.run_failed.labels(collection).set(1.0 if failed else 0.0)
        if not failed:
            self.run_last_success.labels(collection).set(time.time())

    def observe_review_queue(self, pending: Iterable[tuple[str, str, float]], collection_names: Iterable[str]) -> None:
        """``pending``: (collection, reasons joined by ',', enqueued-at epoch seconds) per pending item."""
        counts: Tally[tuple[str, str]] = Tally()
        oldest: dict[str, float] = {}
        for coll, reasons, enqueued in pending:
            for reason in (reasons or "none").split(","):
                counts[(coll, reason)] += 1
            oldest[coll] = min(oldest.get(coll, enqueued), enqueued)
        self.observe_review_counts(counts, oldest, collection_names)

    def observe_review_counts(
        self, counts: Mapping[tuple[str, str], int], oldest: Mapping[str, float], collection_names: Iterable[str]
    ) -> None:
        """The review gauges from aggregates: pending items per (collection, reason) ("none" for items
        without one) and the oldest pending item's enqueue time per collection (the queue counts in SQL)."""
        self.review_items.clear()
        for (coll, reason), n in counts.items():
            self.review_items.labels(coll, reason).set(n)
        now = time.time()
        for coll in set(collection_names) | set(oldest):
            self.review_oldest.labels(coll).set(now - oldest[coll] if coll in oldest else 0.0)

    # -- export -----------------------------------------------------------------------------------------
    def names(self) -> set[str]:
        """Every series name this registry can expose, with the suffixes of each metric type."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
        out: set[str] = set()
        for fam in self.registry.collect():
            out.add(fam.name)
            out.update(fam.name + sfx for sfx in suffixes.get(fam.type, ("",)))
            out.update(s.name for s in fam.samples)
        return out

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", addr, port)

    def export_run(self, collection: str, textfile: Path | None = None) -> None:
        """End of a batch run: textfile and/or Pushgateway, as configured."""
        if textfile:
            textfile.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(textfile), self.registry)
        gateway = os.environ.get("CHROMATA_PUSHGATEWAY")
        if gateway:
            try:
                push_to_gateway(
                    gateway, job="chromata", grouping_key={"collection": collection}, registry=self.registry
                )
            except OSError as exc:  # monitoring must never fail a finished run
                log.warning("could not push metrics to %s: %s", gateway, exc)


METRICS = Metrics()
