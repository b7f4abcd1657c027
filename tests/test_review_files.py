"""Outputs that can move: a run's destination copied elsewhere still serves its images in the review app
(the queue and the manifest address outputs relative to the destination), heatmaps of long file names
included; and a manifest that exists but cannot be read is an error for the decision export."""

import shutil
import threading
import time

import cv2
import httpx
import numpy as np
import pytest

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.errors import StorageError
from chromata.media.imageio import is_image_key
from chromata.pipeline import ShardProcessor, heatmap_key, make_shards
from chromata.record.manifest import HEATMAP_PREFIX
from chromata.review.app import AppSettings, create_app
from chromata.review.export import export_decisions
from chromata.review.store import ReviewQueue
from tests.conftest import free_port, gradient_gray, write_collection
from tests.test_review_app import PASSWORD, _login

LONG = "glass-plate-" + "x" * 200 + ".jpg"  # a file name over 200 bytes: its heatmap key is a digest


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """A run committed by the flow's own commit step (fragment, then queue), its destination copied to
    another folder and the original deleted: (the copy, the copy's queue URL, the run's records)."""
    from chromata.flows.colorize_collection import commit_shard

    root = tmp_path_factory.mktemp("moving")
    write_collection(root / "scans")
    cv2.imwrite(str(root / "scans" / LONG), gradient_gray(64, 80))
    cfg = build_config(source=str(root / "scans"), destination=str(root / "out"), review_threshold=1.0)
    objs = [o for o in LocalStorage(root / "scans").list() if is_image_key(o.key)]
    result = ShardProcessor(cfg).process(next(make_shards(objs, 100)), "run-moving")
    assert commit_shard.fn(cfg, result) == 5  # the review database lives inside the destination
    copy = root / "elsewhere" / "copy-of-out"
    shutil.copytree(root / "out", copy)
    shutil.rmtree(root / "out")  # nothing can be read from where the run wrote
    return copy, f"sqlite:///{copy / '_chromata' / 'review.sqlite'}", [r for r in result.records if r.status == "ok"]


@pytest.fixture(scope="module")
def served(moved):
    """The copy served by the review app over real HTTP (uvicorn), curator ada logged in."""
    import uvicorn

    copy, url, records = moved
    queue = ReviewQueue(url)
    queue.add_user("ada", PASSWORD, "curator")
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(AppSettings(db_url=url, outputs=str(copy))), port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False) as client:
        assert _login(client).status_code == 303
        yield client, queue, records
    srv.should_exit = True
    thread.join(timeout=10)
    queue.close()


def _image(response: httpx.Response, media: str) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    img = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.size > 0
    return img


def item_height(records, item):
    return next(r.height for r in records if r.image_id == item.image_id)


def item_width(records, item):
    return next(r.width for r in records if r.image_id == item.image_id)


def test_a_copied_destination_serves_every_image(served, moved):
    client, queue, records = served
    copy = moved[0]
    items = queue.list(limit=100)
    assert len(items) == len(records) == 5
    for item in items:
        assert item.output_key and not item.output_key.startswith("/")  # relative, not the old absolute path
        assert not item.output_uri.startswith(str(copy))  # the recorded URI names the deleted folder
        colour = _image(client.get(f"/items/{item.id}/image/colour"), "image/jpeg")
        grey = _image(client.get(f"/items/{item.id}/image/grey"), "image/jpeg")
        _image(client.get(f"/items/{item.id}/image/heatmap"), "image/png")
        assert colour.shape[:2] == grey.shape[:2] == (item_height(records, item), item_width(records, item))
        page = client.get(f"/items/{item.id}")
        assert page.status_code == 200 and "model_sha256" in page.text  # the manifest row, from the copy


def test_a_long_named_images_heatmap_is_served(served):
    client, queue, records = served
    long_rec = next(r for r in records if r.source_key == LONG)
    item = next(e for e in queue.list(limit=100) if e.image_id == long_rec.image_id)
    # the pipeline digests the name: the key the app used to rebuild does not exist
    assert item.heatmap_key == heatmap_key(LONG) != f"{HEATMAP_PREFIX}/{LONG}.png"
    heat = _image(client.get(f"/items/{item.id}/image/heatmap"), "image/png")
    assert heat.ndim == 2 or heat.shape[2] in (1, 3)


def test_items_queued_before_relative_keys_resolve_through_the_manifest(moved, tmp_path):
    """An item from a database of before migration 0003 has no stored keys: the app finds them in its
    shard's manifest fragment, so even the long-named heatmap loads."""
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from chromata.review.schema import ReviewItem

    copy, _, records = moved
    db = tmp_path / "old.sqlite"
    shutil.copy(copy / "_chromata" / "review.sqlite", db)
    queue = ReviewQueue(f"sqlite:///{db}")
    with queue.engine.begin() as c:
        c.execute(update(ReviewItem).values(output_key=None, heatmap_key=None, heatmap_uri=None))
    queue.add_user("cyd", PASSWORD, "curator")
    client = TestClient(create_app(AppSettings(db_url=queue.url, outputs=str(copy))), follow_redirects=False)
    assert _login(client, "cyd").status_code == 303
    long_id = next(r.image_id for r in records if r.source_key == LONG)
    for item in queue.list(limit=100):
        assert item.output_key is None and item.heatmap_key is None
        for kind, media in (("colour", "image/jpeg"), ("heatmap", "image/png")):
            r = client.get(f"/items/{item.id}/image/{kind}")
            assert r.status_code == 200 and r.headers["content-type"] == media, (item.image_id == long_id, r.text)
    queue.close()


def test_export_refuses_a_manifest_it_cannot_read(moto_endpoint, s3, tmp_path, moved):
    """Only an absent manifest is "no manifest": a fragment that answers 500 on every read fails the export
    with a clear error instead of writing decisions that silently lost their join."""
    from chromata.archive.s3 import S3Storage
    from tests.faultproxy import FaultProxy

    copy = moved[0]
    s3.create_bucket(Bucket="unreadable")
    for path in (copy / "_chromata" / "manifest").iterdir():
        s3.put_object(Bucket="unreadable", Key=f"dest/_chromata/manifest/{path.name}", Body=path.read_bytes())
    queue = ReviewQueue(f"sqlite:///{tmp_path / 'q.sqlite'}")
    with FaultProxy(moto_endpoint, fail_rate=0.0) as proxy:
        storage = S3Storage("unreadable", "dest", endpoint_url=proxy.url)
        proxy.poisoned.add("/dest/_chromata/manifest/shard-")
        with pytest.raises(StorageError, match="cannot read the manifest"):
            export_decisions(queue, storage)
        assert proxy.injected["poisoned"] >= 1  # the fault hit the manifest read
        proxy.poisoned.clear()
        empty = S3Storage("unreadable", "nothing-here", endpoint_url=proxy.url)
        key, rows = export_decisions(queue, empty)  # a destination without a manifest: decisions still written
        assert rows == 0 and empty.exists(key)
    queue.close()
