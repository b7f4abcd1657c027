"""A Ray worker node dies mid-run (ray.cluster_utils.Cluster: a head and a worker node on this machine, the
worker node removed while its actor is inside a shard): the actor is restarted on the surviving node, its
shard re-run, and every image comes back exactly once."""

from __future__ import annotations

import time

import pytest

from tests.test_faults import run_pool_under_fault

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

        def remove_worker_node(pool) -> None:  # type: ignore[no-untyped-def]
            nodes = {ray.get(a.info.remote())["node_id"] for a in pool.actors}
            assert len(nodes) == 2  # SPREAD: one actor on each node
            time.sleep(1.5)  # both actors are inside a shard
            cluster.remove_node(worker, allow_graceful=False)

        results = run_pool_under_fault(tmp_path, remove_worker_node)
        assert len({r.worker for r in results}) >= 2
    finally:
        ray.shutdown()
        cluster.shutdown()
