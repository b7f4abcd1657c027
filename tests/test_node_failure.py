"""A Ray worker node dies mid-run (ray.cluster_utils.Cluster: a head and a worker node on this machine, the
worker node removed while its actor is caught inside a shard): the actor is restarted on the surviving node,
the shard it held is run again (asserted: the pool lost it and its result came from another process), and
every image comes back exactly once."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from tests.test_faults import SHARD_SIZE, actor_in_shard, run_pool_under_fault

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_worker_node_removed_mid_run(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    small = 80 * 1024 * 1024
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": small, "include_dashboard": False}
    )
    worker = cluster.add_node(num_cpus=1, object_store_memory=small)
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        cluster.wait_for_nodes()

        def remove_worker_node(actors) -> tuple[int, str]:  # type: ignore[no-untyped-def]
            assert len({info["node_id"] for _, info in actors}) == 2  # SPREAD: one actor on each node
            on_worker = [(a, info) for a, info in actors if info["node_id"] == worker.node_id]
            assert len(on_worker) == 1
            _, shard_id = actor_in_shard([on_worker[0][0]], SHARD_SIZE)  # the node's actor is inside a shard
            pid = int(on_worker[0][1]["pid"])
            # A lost machine takes every process on it at once. remove_node kills the node's raylet, but the
            # actor's worker process only exits when it notices, and in that time it could finish the shard
            # and hand its result straight to the driver (CI saw this): freeze it inside the shard first,
            # remove the node, then kill it, as the machine's loss would.
            os.kill(pid, signal.SIGSTOP)
            try:
                cluster.remove_node(worker, allow_graceful=False)
            finally:
                with contextlib.suppress(ProcessLookupError):  # gone with its raylet already
                    os.kill(pid, signal.SIGKILL)
            return pid, shard_id

        _, lost = run_pool_under_fault(tmp_path, remove_worker_node)
        assert lost  # the shard the removed node held was run again, on the surviving node (checked in there)
    finally:
        ray.shutdown()
        cluster.shutdown()
