"""A pool of Ray actors, each holding one loaded model and colorizing whole shards.

The actor is a thin wrapper over ``chromata.pipeline.ShardProcessor``: it loads the model once in
``__init__`` and calls ``process`` per shard. Outputs are deterministic keys, so a shard run again after
its actor died overwrites the same objects instead of duplicating them. The pool alone decides re-runs
(Ray's own task retries are off: one layer), and isolates an image that kills its worker every time.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ray

from chromata.config import RunConfig
from chromata.errors import ConfigError, StorageError
from chromata.monitoring.metrics import METRICS
from chromata.pipeline import Shard, ShardProcessor, ShardResult, allocator, merge_results

log = logging.getLogger(__name__)

LOST_RUNS = 2  # a shard (or an image run alone) that loses its actor this often is split (or fails)
ACTOR_RECOVERY_SECONDS = 120.0
PROGRESS_SECONDS = 0.5  # how often the pool asks busy actors how far their shards are


# ``progress`` runs in a concurrency group of its own, so the pool can ask while ``process`` is busy.
@ray.remote(max_restarts=2, max_task_retries=0, concurrency_groups={"progress": 1})  # type: ignore[call-overload]
class ColorizerActor:
    def __init__(self, cfg: RunConfig) -> None:
        logging.basicConfig(level=logging.WARNING)
        # threads from this actor's own CPUs (not the node's count, which on a pod is the host's)
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)  # type: ignore[no-untyped-call]
        self.processor = ShardProcessor(cfg, threads=max(1, int(cpus)))
        self.shards_done = 0
        self.images_done: dict[str, int] = {}  # shard in progress -> its rows made so far

    def process(self, shard: Shard, run_id: str) -> ShardResult:
        self.images_done[shard.shard_id] = 0

        def made(_: object) -> None:
            self.images_done[shard.shard_id] += 1

        try:
            result = self.processor.process(shard, run_id, on_image=made)
        finally:
            self.images_done.pop(shard.shard_id, None)
        result.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.shards_done += 1
        return result

    @ray.method(concurrency_group="progress")
    def progress(self) -> dict[str, int]:
        """Rows made so far in the shard this actor is processing (progress per image, not per shard)."""
        return dict(self.images_done)

    def lost_worker_result(self, shard: Shard, run_id: str, detail: str) -> ShardResult:
        return self.processor.lost_worker_result(shard, run_id, detail)

    def __ray_shutdown__(self) -> None:
        """Ray's hook when the actor exits gracefully: end the processor's threads. (``ColorizerPool.shutdown``
        kills its actors, and their threads end with their processes.)"""
        self.processor.close()

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "device": self.processor.model.device,
            "model_id": id(self.processor.model),
            "threads": self.processor.threads,
            "shards_done": self.shards_done,
            "allocator": os.environ.get("GLIBC_TUNABLES", ""),
            "allocator_in_effect": allocator.in_effect(),
        }


@ray.remote(num_cpus=0)
def _colorizer_env() -> dict[str, str]:
    """What a colorizer actor's process is to start with (``chromata.pipeline.allocator.worker_env``), worked out in a
    plain worker of the cluster: its glibc, and the environment its node gives workers (an operator's own malloc
    settings there win)."""
    return allocator.worker_env()


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or RAY_ADDRESS); else start a small local instance.

    An address that does not answer is a ``ConfigError`` (one line), found in seconds rather than after
    Ray's own minutes of retries. A local instance keeps Ray's default, token authentication, without
    Ray's notice that it chose it (every local run printed it)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            hint = ""
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":  # Ray sends no token to an explicit address
                hint = (
                    "; if the cluster uses token authentication (the default of `ray start --head`), set "
                    "RAY_AUTH_MODE=token with its token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
                )
            raise ConfigError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())}{hint}") from None
    else:
        _quiet_default_token_auth_notice()
        ray.init(
            address="local",  # a new instance: never a cluster some `ray start` left running on this machine
            num_cpus=num_cpus,  # None: Ray's own count, which honours a container's CPU limit (os.cpu_count does not)
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            logging_level=logging.WARNING,
        )


def _quiet_default_token_auth_notice() -> None:
    """Drop Ray's "Token authentication is enabled for this Ray cluster" notice (its default, which we keep);
    any other warning of that logger still shows."""
    name = "ray._private.authentication.authentication_token_setup"
    logger = logging.getLogger(name)
    if not any(isinstance(f, _DropTokenAuthNotice) for f in logger.filters):
        logger.addFilter(_DropTokenAuthNotice())


class _DropTokenAuthNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """``host:port`` (a head's GCS) or ``ray://host:port`` (Ray Client) must accept a connection."""
    target = address.removeprefix("ray://")
    if target in ("auto", "local") or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({exc}); check --ray-address or RAY_ADDRESS "
            "(a head node's GCS address host:6379, or ray://host:10001 for Ray Client)"
        ) from None


def actor_resources(workers: int) -> dict[str, float]:
    """What each of ``workers`` actors asks Ray for, from the cluster as it is now (``resources_per_actor``)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    return resources_per_actor(workers, nodes)


def resources_per_actor(workers: int, nodes: list[dict[str, float]]) -> dict[str, float]:
    """An equal share of the cluster per actor: of its GPUs when it has them (a fraction when actors outnumber
    GPUs: several actors feed one GPU), and of its CPUs, whole CPUs (at least one, at most a node's), which
    are the threads the actor then runs — on a GPU node the CPU work of decoding, merging and encoding is
    what the GPU waits for (docs/benchmarks.md)."""
    cpus = sum(n.get("CPU", 0.0) for n in nodes) or 1.0
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    per_node = max((n.get("CPU", 0.0) for n in nodes), default=1.0)
    share = float(max(1, min(int(cpus // workers), int(per_node))))
    if gpus >= 1:
        gpu_nodes = [n for n in nodes if n.get("GPU", 0.0) >= 1]
        per_gpu_node = max(n.get("CPU", 0.0) for n in gpu_nodes)
        actors_per_gpu_node = max(1.0, workers / len(gpu_nodes))
        share = float(max(1, min(int(share), int(per_gpu_node // actors_per_gpu_node))))
        return {"num_gpus": min(1.0, gpus / workers), "num_cpus": share}
    return {"num_gpus": 0.0, "num_cpus": share}


class ColorizerPool:
    """N colorizer actors; ``run`` yields shard results as they complete, keeping every actor busy."""

    def __init__(self, cfg: RunConfig) -> None:
        opts = actor_resources(cfg.workers)
        if opts["num_gpus"] == 0 and cfg.device.startswith("cuda"):
            raise ConfigError(
                f"device={cfg.device} was requested but the Ray cluster has no GPUs; use --device auto or cpu, "
                "or add GPU nodes"
            )
        if opts["num_gpus"] == 0 and cfg.precision == "fp16":
            raise ConfigError("--precision fp16 needs a GPU and the Ray cluster has none; use --precision auto")
        self.cfg = cfg
        # SPREAD: actors on as many nodes as possible, so a lost node takes as few of them as possible
        self.options: dict[str, Any] = {**opts, "scheduling_strategy": "SPREAD"}
        # and each actor's process started with the allocator settings that keep its per-image arrays mapped, where
        # the cluster's glibc takes them and its operator set none of their own (chromata.pipeline.allocator): given to
        # these processes alone, as their runtime_env
        env = ray.get(_colorizer_env.remote(), timeout=ACTOR_RECOVERY_SECONDS)
        if env:
            self.options["runtime_env"] = {"env_vars": env}
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

    def run(
        self, shards: Iterable[Shard], run_id: str, on_progress: Callable[[int], None] | None = None
    ) -> Iterator[ShardResult]:
        """Yield each shard's result as it completes; ``on_progress(n)`` hears of images as they are made
        (polled every ``PROGRESS_SECONDS``), n counted once per image even when a shard is run again.

        A shard whose actor is lost (killed, out of memory, its node gone) is run again on the actor once
        it is back, or on a fresh one: outputs have deterministic keys and the manifest fragment is written
        by the driver afterwards, so a re-run overwrites, never duplicates. A shard lost ``LOST_RUNS``
        times is run image by image, so that an image that kills its worker (the kernel's OOM killer, a
        crash inside a decoder) is found: lost ``LOST_RUNS`` times on its own, it gets a failed row
        ``worker_lost: …`` and the rest of its shard is colorized."""
        todo = iter(shards)
        again: list[Shard] = []
        lost: dict[tuple[str, tuple[str, ...]], int] = {}  # (shard id, its keys) -> runs that lost the actor
        split: dict[str, tuple[Shard, list[ShardResult]]] = {}  # shard run image by image -> parts done
        in_flight: dict[Any, tuple[Any, Shard]] = {}
        idle = list(self.actors)
        progress = _Progress(on_progress)

        def done(shard: Shard, result: ShardResult) -> ShardResult | None:
            if shard.shard_id not in split:
                return result
            whole, parts = split[shard.shard_id]
            parts.append(result)
            if len(parts) < len(whole.objects):  # one result per image
                return None
            del split[shard.shard_id]
            return merge_results(whole, parts, self.cfg)

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
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=PROGRESS_SECONDS if on_progress else None)
            if not ready:
                progress.poll(in_flight.values())
            for ref in ready:
                actor, shard = in_flight.pop(ref)
                self.queued.set(len(in_flight))
                try:
                    result: ShardResult = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, StorageError):  # the destination refused a write: stop cleanly
                        raise StorageError(
                            f"{exc.cause}; the run stopped, committed shards are kept: run it again to resume"
                        ) from None
                    raise
                except ray.exceptions.RayActorError as exc:
                    actor = self._recovered(actor)
                    ident = (shard.shard_id, tuple(o.key for o in shard.objects))
                    lost[ident] = runs = lost.get(ident, 0) + 1
                    if runs < LOST_RUNS:
                        log.warning("shard %s lost with its actor (%s); running it again", shard.shard_id, exc)
                        again.append(shard)
                        idle.append(actor)
                        continue
                    if len(shard.objects) > 1:
                        log.warning(
                            "shard %s lost its actor %d times: running its %d images one by one, to find the "
                            "one that kills its worker", shard.shard_id, runs, len(shard.objects),
                        )  # fmt: skip
                        split[shard.shard_id] = (shard, [])
                        again.extend(Shard(shard.shard_id, (o,)) for o in reversed(shard.objects))
                        idle.append(actor)
                        continue
                    result = ray.get(actor.lost_worker_result.remote(shard, run_id, str(exc).splitlines()[0]))
                idle.append(actor)
                merged = done(shard, result)
                if merged is not None:
                    progress.finished(merged)
                    yield merged

    def info(self) -> list[dict[str, Any]]:
        return list(ray.get([a.info.remote() for a in self.actors]))

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []


class _Progress:
    """Images reported per shard, so that each is counted once: a shard run again after its actor was lost
    (or image by image) counts only past what was already reported, and its result settles the total."""

    def __init__(self, listener: Callable[[int], None] | None) -> None:
        self.listener = listener
        self.reported: dict[str, int] = {}

    def _tell(self, shard_id: str, made: int) -> None:
        delta = made - self.reported.get(shard_id, 0)
        if delta > 0 and self.listener is not None:
            self.reported[shard_id] = made
            self.listener(delta)

    def poll(self, busy: Iterable[tuple[Any, Shard]]) -> None:
        if self.listener is None:
            return
        asked = {actor.progress.remote(): shard for actor, shard in busy}
        answered, _ = ray.wait(list(asked), num_returns=len(asked), timeout=PROGRESS_SECONDS)
        for ref in answered:
            try:
                made = ray.get(ref)
            except ray.exceptions.RayError:  # the actor is gone: its shard's result will say what happened
                continue
            shard = asked[ref]
            self._tell(shard.shard_id, min(made.get(shard.shard_id, 0), len(shard.objects)))

    def finished(self, result: ShardResult) -> None:
        self._tell(result.shard_id, len(result.records))
        self.reported.pop(result.shard_id, None)
