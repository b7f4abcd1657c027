"""A Ray worker node dies mid-run (ray.cluster_utils.Cluster: a head and a worker node on this machine, the
worker node removed while its actor is inside a shard): the actor is restarted on the surviving node, its
shard re-run, and every image comes back exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import cv2
import numpy as np
import pytest

from tests.conftest import gradient_gray

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_worker_node_removed_mid_run(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from chromata.actors.colorizer import ColorizerPool
    from chromata.config import build_config
    from chromata.pipeline import make_shards
    from chromata.storage import LocalStorage

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
        src = tmp_path / "src"
        src.mkdir()
        for i in range(24):
            cv2.imwrite(str(src / f"s{i:02d}.png"), np.roll(gradient_gray(400, 520), 9 * i, axis=1))
        cfg = build_config(source=str(src), destination=str(tmp_path / "out"), workers=2, batch_size=2)
        pool = ColorizerPool(cfg)
        nodes = {ray.get(a.info.remote())["node_id"] for a in pool.actors}
        assert len(nodes) == 2  # SPREAD: one actor per node
        removed: list[bool] = []

        def remove_worker_node() -> None:
            time.sleep(1.5)  # both actors are inside a shard
            cluster.remove_node(worker, allow_graceful=False)
            removed.append(True)

        try:
            killer = threading.Thread(target=remove_worker_node)
            killer.start()
            shards = list(make_shards(LocalStorage(src).list(), 6))
            results = list(pool.run(iter(shards), "run-node"))
            killer.join()
        finally:
            pool.shutdown()
        assert removed
        assert sorted(r.shard_id for r in results) == sorted(s.shard_id for s in shards)
        count = Counter(rec.source_key for r in results for rec in r.records)
        assert len(count) == 24 and set(count.values()) == {1}
        assert all(rec.status == "ok" for r in results for rec in r.records)
        assert len({r.worker for r in results}) >= 2
    finally:
        ray.shutdown()
        cluster.shutdown()
