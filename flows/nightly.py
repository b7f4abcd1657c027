"""Nightly deployments: one cron-scheduled Prefect deployment of ``colorize-collection`` per collection.

``chromata serve --collections chromata.toml`` runs them from this process (Prefect's ``serve``: no work
pool needed). Against a Prefect server with a process work pool, register the same deployments for a worker
to pick up from Python: ``for d in build_deployments(path): d.apply(work_pool_name="chromata")`` (there is
no ``chromata deploy`` command; see docs/operations.md).

Each night routes by the destination's newest *adopted* routing fit (``routing_fit = "latest"``, resolved when
the run starts): a fit ``chromata calibrate --from-decisions`` adopted because it beat the current score out of
sample on enough decisions (``chromata.judgement.routing_fit``). A fit that did not is kept under
``_chromata/routing/not-adopted/`` and never used; with no adopted fit the night routes by the fixed score.
A collection's own ``routing_fit`` (a fit's JSON) is used as given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.client.schemas.schedules import CronSchedule

from chromata.collections_config import Collection, load_collections
from chromata.flows.colorize_collection import colorize_collection
from chromata.judgement.routing_fit import LATEST

ROUTING_NOTE = (
    "routes by the destination's newest adopted routing fit (one that beat the current score out of sample), "
    "else by the fixed score"
)


def deployment_name(collection: Collection) -> str:
    return f"nightly-{collection.name}"


def build_deployments(path: Path) -> list[Any]:
    """RunnerDeployments for every collection in the file (validated before anything is registered)."""
    return [
        colorize_collection.to_deployment(
            name=deployment_name(c),
            schedule=CronSchedule(cron=c.schedule, timezone=c.timezone),
            parameters={"cfg": {**c.config.model_dump(), "routing_fit": c.config.routing_fit or LATEST}},
            tags=["chromata", f"collection:{c.name}"],
            description=f"Colorize {c.config.source} into {c.config.destination}; {_routing(c)}",
        )
        for c in load_collections(path)
    ]


def _routing(c: Collection) -> str:
    return ROUTING_NOTE if c.config.routing_fit is None else "routes by the routing fit its collection names"


def serve(path: Path) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(path))
