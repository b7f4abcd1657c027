"""Prefect flow: plan → colorize shards on the Ray actor pool → commit each shard → summary.

Composition only: the work is done by ``chromata.pipeline.planning``, the actors (``chromata.actors``) and
``chromata.record.manifest`` / ``chromata.review``. Works in Prefect's ephemeral mode with no server.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NONE

from chromata.archive import open_storage
from chromata.config import RunConfig
from chromata.judgement import routing_fit
from chromata.monitoring import progress
from chromata.monitoring.metrics import METRICS
from chromata.monitoring.report import ReportCollector, write_report
from chromata.monitoring.summary import RunSummary
from chromata.pipeline import Shard, ShardResult
from chromata.pipeline.planning import Planner
from chromata.record.iiif import write_manifest as write_iiif_manifest
from chromata.record.manifest import records_needing_review, write_fragment
from chromata.review.store import ReviewQueue

log = logging.getLogger(__name__)
CURATOR_RERUN = "curator_rerun"  # chromata.judgement.reasons has its text
# actor pools started ahead of their flow run by ``run`` in this process, each under a token of its own run (two
# runs of the same config in one process each take their own)
_STARTED_POOLS: dict[str, Any] = {}


@task(name="open-plan", cache_policy=NONE)
def open_plan(cfg: RunConfig) -> Planner:
    """Check both locations and load the manifest history; the listing itself streams later. With
    ``redo_rejected``, the images curators rejected (from the review store) are planned again."""
    rerun = None
    if cfg.redo_rejected:
        queue = ReviewQueue(cfg.review_db_url())
        try:
            rerun = queue.rerun_source_uris()
        finally:
            queue.close()
    return Planner(cfg, rerun_uris=rerun)


# Storage I/O is retried by boto3 (one layer); this retry covers the review database only.
@task(name="commit-shard", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def commit_shard(cfg: RunConfig, result: ShardResult, rerun: frozenset[str] = frozenset()) -> int:
    """Outputs are already written; the manifest fragment goes last, then the review queue.
    Images colorized again after a curator rejected them (``rerun``) always go back to the curators."""
    records = [
        replace(r, needs_review=True, confidence_reasons=[*r.confidence_reasons, CURATOR_RERUN])
        if r.source_key in rerun and r.status == "ok"
        else r
        for r in result.records
    ]
    write_fragment(open_storage(cfg.destination, cfg.endpoint_url), result.shard_id, records)
    queue = ReviewQueue(cfg.review_db_url())
    try:
        if rerun:
            queue.mark_rerun(r.source_uri for r in records if r.source_key in rerun and r.status == "ok")
        added = queue.enqueue(records, collection=cfg.collection_name)
        METRICS.observe_review_counts(*queue.pending_stats(), [cfg.collection_name])
        return added
    finally:
        queue.close()


@task(name="reconcile-review-queue", cache_policy=NONE, retries=2, retry_delay_seconds=2)
def reconcile_review_queue(cfg: RunConfig) -> int:
    """Re-enqueue committed rows that need review: covers a run killed between a shard's manifest
    fragment and its queue write. Idempotent, so normally it adds nothing."""
    queue = ReviewQueue(cfg.review_db_url())
    try:
        return queue.enqueue(
            records_needing_review(open_storage(cfg.destination, cfg.endpoint_url)), collection=cfg.collection_name
        )
    finally:
        queue.close()


@task(name="publish-summary", cache_policy=NONE)
def publish_summary(cfg: RunConfig, summary: RunSummary, collector: ReportCollector) -> str:
    """The HTML report into the destination, and the markdown artifact in Prefect."""
    dest = open_storage(cfg.destination, cfg.endpoint_url)
    uri = write_report(summary, collector, dest, cfg.review_url)
    if cfg.iiif_base_url:
        write_iiif_manifest(dest, cfg.iiif_base_url, cfg.collection_name, source_id_template=cfg.iiif_source_id)
    summary.report_uri = uri
    create_markdown_artifact(
        markdown=summary.to_markdown(), key="chromata-run-summary", description=f"chromata run {summary.run_id}"
    )
    return uri


@flow(name="colorize-collection", log_prints=True)
def colorize_collection(cfg: RunConfig, started_pool: str | None = None) -> dict[str, Any]:
    """``started_pool``: the token under which ``run`` started this run's actor pool ahead of it (else the flow
    starts its own, as a flow run by a deployment does)."""
    t0 = time.monotonic()
    try:
        result = _colorize(cfg, t0, started_pool)
    except BaseException:
        METRICS.observe_run(cfg.collection_name, time.monotonic() - t0, 0, failed=True)
        METRICS.export_run(cfg.collection_name, cfg.metrics_textfile_path())
        raise
    METRICS.observe_run(cfg.collection_name, time.monotonic() - t0, int(result["listed"]), failed=False)
    METRICS.export_run(cfg.collection_name, cfg.metrics_textfile_path())
    return result


def run(cfg: RunConfig) -> dict[str, Any]:
    """The flow, with its engines started side by side rather than one after another: Prefect's temporary
    API server (when no ``PREFECT_API_URL`` is set) starts in a thread while Ray starts in this one and the
    colorizer actors begin loading their model, which then goes on while the flow plans. A flow run by a
    deployment starts its own pool in the flow."""
    from chromata.actors.colorizer import ColorizerPool, connect

    server = threading.Thread(target=_start_prefect_api, name="prefect-api", daemon=True)
    server.start()
    cfg = _with_routing_fit(cfg)  # the actors are given the config the flow will run with
    key = uuid.uuid4().hex  # this run's own: another run of the same config in this process has another
    try:
        connect(cfg.ray_address)
        _STARTED_POOLS[key] = ColorizerPool(cfg)
    finally:
        server.join()
    try:
        return colorize_collection(cfg, started_pool=key)
    finally:
        pool = _STARTED_POOLS.pop(key, None)  # not taken by the flow: nothing to do, or it failed first
        if pool is not None:
            pool.shutdown()


def _with_routing_fit(cfg: RunConfig) -> RunConfig:
    """``routing_fit = "latest"`` resolved to the destination's newest routing fit, one for the whole run."""
    if cfg.routing_fit != "latest":
        return cfg
    fit = routing_fit.resolved(cfg.routing_fit, open_storage(cfg.destination, cfg.endpoint_url))
    return cfg.model_copy(update={"routing_fit": fit})


def _start_prefect_api() -> None:
    """Start the temporary local API server the flow run would start for itself (Prefect's ephemeral mode);
    the flow's client finds it running. Does nothing when an API URL is set."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    try:
        SubprocessASGIServer().start()
    except Exception as exc:  # the flow run tries again; the operator hears why the first start failed
        log.warning(
            "Prefect's temporary API server did not start ahead of the flow (%s: %s); the flow run starts it "
            "again and stops with Prefect's own error if that fails too",
            type(exc).__name__, " ".join(str(exc).split()),
        )  # fmt: skip


def _colorize(cfg: RunConfig, t0: float, started_pool: str | None = None) -> dict[str, Any]:
    from chromata.actors.colorizer import ColorizerPool, connect

    logger = get_run_logger()
    cfg = _with_routing_fit(cfg)
    planner = open_plan(cfg)
    recovered = reconcile_review_queue(cfg)
    if recovered:
        logger.warning("re-queued %d images for review that an interrupted run had not queued", recovered)
    summary = RunSummary(planner.run_id, cfg.source, cfg.destination, queued=recovered)
    collector = ReportCollector()

    def announced(shards: Iterator[Shard]) -> Iterator[Shard]:
        for shard in shards:  # the listing streams: the total grows as shards are found
            progress.planned(planner.images)
            yield shard

    shards = announced(planner.shards())
    first = next(shards, None)
    if first is not None:
        connect(cfg.ray_address)
        # taken only when used (``run`` ends one left untaken)
        pool = (_STARTED_POOLS.pop(started_pool, None) if started_pool else None) or ColorizerPool(cfg)
        shown = _ImageProgress(planner)
        try:
            for result in pool.run(itertools.chain([first], shards), planner.run_id, on_progress=shown.advance):
                queued = commit_shard(cfg, result, planner.rerun)
                METRICS.observe_shard(result, cfg.collection_name)
                summary.add(result.records, queued)
                collector.add(result.records)
                logger.info(
                    "shard %s: %d ok, %d failed, %d skipped in %.1f s on %s",
                    result.shard_id,
                    result.count("ok"),
                    result.count("failed"),
                    result.count("skipped"),
                    result.seconds,
                    result.worker,
                )
        finally:
            pool.shutdown()
            shown.close()
    progress.planned(planner.images)
    summary.listed, summary.already_done = planner.listed, planner.already_done
    summary.deleted, summary.deleted_examples = planner.deleted, list(planner.deleted_examples)
    summary.seconds = time.monotonic() - t0
    summary.report_uri = publish_summary(cfg, summary, collector)
    return summary.as_dict()


class _ImageProgress:
    """Images made, as the actors report them (per image, not per shard): to the CLI's bar through
    ``chromata.monitoring.progress`` and to Prefect as the run's progress artifact (updated at most every second)."""

    def __init__(self, planner: Planner) -> None:
        self.planner, self.done, self.shown_at = planner, 0, 0.0
        self.artifact: Any = create_progress_artifact(0.0, key="chromata-run-progress", description="images colorized")

    def advance(self, images: int) -> None:
        self.done += images
        progress.advance(images)
        if time.monotonic() - self.shown_at >= 1.0:
            self._show()

    def _show(self) -> None:
        self.shown_at = time.monotonic()
        total = max(self.planner.images, self.done, 1)
        update_progress_artifact(self.artifact, 100.0 * self.done / total, description=f"{self.done} of {total} images")

    def close(self) -> None:
        self._show()
