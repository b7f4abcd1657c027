"""Progress per image, not per shard: a busy actor says how far its shard is, the pool turns that into
per-image advances counted once each, and the flow shows them to the CLI and as Prefect's progress artifact."""

import time

import cv2
import numpy as np
import pytest

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.monitoring import progress
from chromata.pipeline import ShardResult, make_shards

pytestmark = [pytest.mark.ray, pytest.mark.slow]
IMAGES = 16


@pytest.fixture
def scans(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(IMAGES):
        img = np.clip(np.tile(np.linspace(10, 240, 320), (240, 1)) + rng.normal(0, 8, (240, 320)), 0, 255)
        cv2.imwrite(str(src / f"scan-{i:02d}.png"), img.astype(np.uint8))
    return src


def test_a_busy_actor_reports_the_images_of_its_shard_as_they_are_made(ray_local, scans, tmp_path):
    import ray

    from chromata.actors.colorizer import ColorizerActor

    cfg = build_config(source=str(scans), destination=str(tmp_path / "out"), batch_size=1, workers=1)
    (shard,) = make_shards(sorted(LocalStorage(scans).list(""), key=lambda o: o.key), IMAGES)
    actor = ColorizerActor.remote(cfg)
    ray.get(actor.info.remote())  # loaded
    ref = actor.process.remote(shard, "run-p")
    seen = []
    while not ray.wait([ref], timeout=0)[0]:
        seen.append(ray.get(actor.progress.remote()).get(shard.shard_id, 0))
        time.sleep(0.02)
    result = ray.get(ref)
    assert len(result.records) == IMAGES
    partial = sorted({n for n in seen if 0 < n < IMAGES})
    assert partial, f"no partial count seen while the shard ran: {sorted(set(seen))}"
    while seen and seen[-1] == 0:  # the shard may end between the wait and the question: it then says 0
        seen.pop()
    assert seen == sorted(seen)  # counts only grow while it runs
    assert ray.get(actor.progress.remote()) == {}  # nothing in progress once it is done
    ray.kill(actor)


def test_images_are_counted_once_when_a_shard_is_run_again():
    from chromata.actors.colorizer import _Progress

    told: list[int] = []
    p = _Progress(told.append)
    p._tell("s", 3)  # 3 images made, then the actor is lost
    p._tell("s", 1)  # the shard runs again from its start: nothing new to say
    p._tell("s", 4)
    p.finished(ShardResult("s", [object()] * 6, 1.0))  # type: ignore[list-item]
    assert told == [3, 1, 2] and sum(told) == 6
    p.finished(ShardResult("t", [object()] * 2, 1.0))  # type: ignore[list-item]
    assert told[-1] == 2


def test_the_flow_shows_progress_per_image_to_the_cli_and_to_prefect(ray_local, prefect_harness, scans, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from chromata.flows.colorize_collection import colorize_collection

    class Listener:
        def __init__(self) -> None:
            self.advances: list[int] = []

        def planned(self, images: int) -> None:
            pass

        def advance(self, images: int) -> None:
            self.advances.append(images)

    cfg = build_config(source=str(scans), destination=str(tmp_path / "out"), shard_size=IMAGES, workers=1)
    listener = Listener()
    with progress.listening(listener):
        colorize_collection(cfg)
    assert sum(listener.advances) == IMAGES  # each image once
    with get_client(sync_client=True) as client:
        key = ArtifactFilterKey(any_=["chromata-run-progress"])
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=key))
    latest = max(arts, key=lambda a: a.created)
    assert latest.type == "progress" and float(latest.data) == pytest.approx(100.0)
