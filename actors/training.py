"""Data-parallel training on Ray Train: ``chromata train --workers N``.

A thin wrapper: every worker runs the same ``chromata.training.fit`` as a single-process run, with
its model wrapped for DistributedDataParallel by ``ray.train.torch.prepare_model`` (gloo on CPUs,
NCCL on GPUs) and its own crop sampler seed; gradients are averaged, so N workers see N × batch crops
per step. Worker 0 reports the trained weights as a Ray Train checkpoint; the driver evaluates them and
writes the weights and model card exactly as a single-process run does (``chromata.training.finish``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from chromata.training import TrainConfig, TrainingData, finish, fit, prepare_data

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"


def _worker_loop(config: dict[str, Any]) -> None:
    import ray.train
    import torch
    from ray.train.torch import prepare_model

    cfg: TrainConfig = config["cfg"]
    ctx = ray.train.get_context()
    data: TrainingData = config["data"]
    rank = ctx.get_world_rank()
    net, stats = fit(cfg, data, rank=rank, world_size=ctx.get_world_size(), wrap=prepare_model)
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"state_dict": net.state_dict(), "stats": stats}, Path(tmp) / STATE_FILE)
            ray.train.report({"steps": stats["steps_done"]}, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report({"steps": stats["steps_done"]})


def train_distributed(cfg: TrainConfig, workers: int, address: str | None = None) -> dict[str, Any]:
    """Train with ``workers`` Ray Train workers (one GPU each when the cluster has GPUs); returns the card."""
    import ray
    import torch
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from chromata.actors.colorizer import connect
    from chromata.models.builtin_net import ChromaNet

    connect(address, num_cpus=None)
    gpus = float(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
    use_gpu = gpus >= workers and cfg.device != "cpu"
    data = prepare_data(cfg)  # read once on the driver, shipped to workers through the object store
    log.info("training on %d photos with %d workers (%s)", len(data.train), workers, "GPU" if use_gpu else "CPU")
    with tempfile.TemporaryDirectory() as storage:
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"cfg": cfg, "data": data},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
            run_config=RunConfig(name="chromata-train", storage_path=storage),
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError(f"distributed training produced no checkpoint: {result.error}")
        with result.checkpoint.as_directory() as ckpt:
            blob = torch.load(Path(ckpt) / STATE_FILE, map_location="cpu", weights_only=True)
    net = ChromaNet(decoder=tuple(blob["stats"]["decoder"]))
    net.load_state_dict(blob["state_dict"])
    stats = dict(blob["stats"])
    stats["workers"] = workers
    return finish(cfg, data, net.eval(), stats)
