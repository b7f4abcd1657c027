"""A pool of Ray actors, each holding one loaded model and colorizing whole shards.

The actor is a thin wrapper over ``chromata.pipeline.ShardProcessor``: it loads the model once in
``__init__`` and calls ``process`` per shard. Outputs are deterministic keys, so a shard retried after
an actor died overwrites the same objects instead of duplicating them (``max_task_retries``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import ray

from chromata.config import RunConfig
from chromata.errors import StorageError
from chromata.metrics import METRICS
from chromata.pipeline import Shard, ShardProcessor, ShardResult

log = logging.getLogger(__name__)


@ray.remote(max_restarts=2, max_task_retries=2)
class ColorizerActor:
    def __init__(self, cfg: RunConfig) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.processor = ShardProcessor(cfg)
        self.shards_done = 0

    def process(self, shard: Shard, run_id: str) -> ShardResult:
        result = self.processor.process(shard, run_id)
        result.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.shards_done += 1
        return result

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "device": self.processor.model.device,
            "model_id": id(self.processor.model),
            "shards_done": self.shards_done,
        }


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or RAY_ADDRESS); else start a small local instance."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            logging_level=logging.WARNING,
        )


def actor_resources(workers: int) -> dict[str, float]:
    """One GPU share per actor when the cluster has GPUs; otherwise a share of the CPUs."""
    res = ray.cluster_resources()  # type: ignore[no-untyped-call]
    gpus = float(res.get("GPU", 0.0))
    cpus = float(res.get("CPU", 1.0))
    if gpus >= 1:
        return {"num_gpus": min(1.0, gpus / workers), "num_cpus": min(1.0, cpus / workers)}
    return {"num_gpus": 0.0, "num_cpus": min(1.0, cpus / workers)}


class ColorizerPool:
    """N colorizer actors; ``run`` yields shard results as they complete, keeping every actor busy."""

    def __init__(self, cfg: RunConfig) -> None:
        opts = actor_resources(cfg.workers)
        if opts["num_gpus"] == 0 and cfg.device.startswith("cuda"):
            raise RuntimeError("device=cuda was requested but the Ray cluster has no GPUs")
        self.actors = [ColorizerActor.options(**opts).remote(cfg) for _ in range(cfg.workers)]  # type: ignore[attr-defined]
        self.queued = METRICS.pool_queue.labels(cfg.collection_name)
        log.info("started %d colorizer actors with %s", len(self.actors), opts)

    def run(self, shards: Iterable[Shard], run_id: str) -> Iterator[ShardResult]:
        todo = iter(shards)
        in_flight: dict[Any, Any] = {}
        idle = list(self.actors)
        while True:
            while idle:
                shard = next(todo, None)
                if shard is None:
                    break
                actor = idle.pop()
                in_flight[actor.process.remote(shard, run_id)] = actor
            self.queued.set(len(in_flight))
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                idle.append(in_flight.pop(ref))
                self.queued.set(len(in_flight))
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, StorageError):  # the destination refused a write: stop cleanly
                        raise StorageError(
                            f"{exc.cause}; the run stopped, committed shards are kept: run it again to resume"
                        ) from None
                    raise
                yield result

    def info(self) -> list[dict[str, Any]]:
        return list(ray.get([a.info.remote() for a in self.actors]))

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []
