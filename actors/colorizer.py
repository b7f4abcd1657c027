"""A pool of Ray actors, each holding one loaded model and colorizing whole shards.

The actor is a thin wrapper over ``chromata.pipeline.ShardProcessor``: it loads the model once in
``__init__`` and calls ``process`` per shard. Outputs are deterministic keys, so a shard retried after
an actor died overwrites the same objects instead of duplicating them (``max_task_retries``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import ray

from chromata.config import RunConfig
from chromata.errors import StorageError
from chromata.metrics import METRICS
from chromata.pipeline import Shard, ShardProcessor, ShardResult

log = logging.getLogger(__name__)

SHARD_ATTEMPTS = 3  # a shard is run at most this often when the actors running it are lost
ACTOR_RECOVERY_SECONDS = 120.0


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
            "node_id": ray.get_runtime_context().get_node_id(),
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
        self.cfg = cfg
        # SPREAD: actors on as many nodes as possible, so a lost node takes as few of them as possible
        self.options = {**opts, "scheduling_strategy": "SPREAD"}
        self.actors = [self._start() for _ in range(cfg.workers)]
        self.queued = METRICS.pool_queue.labels(cfg.collection_name)
        log.info("started %d colorizer actors with %s", len(self.actors), opts)

    def _start(self) -> Any:
        return ColorizerActor.options(**self.options).remote(self.cfg)  # type: ignore[attr-defined]

    def _recovered(self, actor: Any) -> Any:
        """The actor back from a restart (Ray restarts it on a surviving node), or a fresh one in its place
        when it is gone for good. Waits for it to answer, so the shard resubmitted to it is not lost again
        while it is still starting (a lost node fails calls within a second, faster than a restart)."""
        deadline = time.monotonic() + ACTOR_RECOVERY_SECONDS
        while time.monotonic() < deadline:
            try:
                ray.get(actor.info.remote(), timeout=30)
                return actor
            except ray.exceptions.ActorDiedError:
                break  # out of restarts
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(1.0)
        fresh = self._start()
        self.actors = [fresh if a is actor else a for a in self.actors]
        return fresh

    def run(self, shards: Iterable[Shard], run_id: str) -> Iterator[ShardResult]:
        """Results as shards complete, every actor kept busy. A shard whose actor was lost (its node died,
        or Ray's own task retries ran out while it restarted) is run again, up to ``SHARD_ATTEMPTS`` times:
        outputs have deterministic keys and the manifest fragment is written by the driver afterwards, so
        a re-run overwrites, never duplicates."""
        todo = iter(shards)
        again: list[Shard] = []
        attempts: dict[str, int] = {}
        in_flight: dict[Any, tuple[Any, Shard]] = {}
        idle = list(self.actors)
        while True:
            while idle:
                shard = again.pop() if again else next(todo, None)
                if shard is None:
                    break
                actor = idle.pop()
                in_flight[actor.process.remote(shard, run_id)] = (actor, shard)
            self.queued.set(len(in_flight))
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                actor, shard = in_flight.pop(ref)
                self.queued.set(len(in_flight))
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, StorageError):  # the destination refused a write: stop cleanly
                        raise StorageError(
                            f"{exc.cause}; the run stopped, committed shards are kept: run it again to resume"
                        ) from None
                    raise
                except ray.exceptions.RayActorError as exc:
                    attempts[shard.shard_id] = attempts.get(shard.shard_id, 0) + 1
                    if attempts[shard.shard_id] >= SHARD_ATTEMPTS:
                        raise
                    log.warning("shard %s lost with its actor (%s); running it again", shard.shard_id, exc)
                    again.append(shard)
                    idle.append(self._recovered(actor))
                    continue
                idle.append(actor)
                yield result

    def info(self) -> list[dict[str, Any]]:
        return list(ray.get([a.info.remote() for a in self.actors]))

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []
