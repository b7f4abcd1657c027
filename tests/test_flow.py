"""The whole run through Prefect (test harness) and a real local Ray instance, on local files and on
moto's S3 server over HTTP."""

from pathlib import Path

import pytest

from chromata.archive.local import LocalStorage
from chromata.archive.s3 import S3Storage
from chromata.config import build_config
from chromata.record.manifest import fragment_keys, read_manifest
from chromata.review.store import ReviewQueue
from tests.conftest import upload_collection

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def engines(ray_local, prefect_harness):
    from chromata.flows.colorize_collection import colorize_collection

    return colorize_collection


def _latest_summary_artifact() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["chromata-run-summary"]))
        )
    assert arts, "the flow published no summary artifact"
    return str(max(arts, key=lambda a: a.created).data)


def test_local_run_resume_and_failures(engines, collection, tmp_path):
    out = tmp_path / "out"
    cfg = build_config(
        source=str(collection), destination=str(out), shard_size=2, batch_size=2, review_threshold=1.0, workers=2
    )
    first = engines(cfg)
    assert (first["listed"], first["ok"], first["failed"], first["skipped"]) == (6, 4, 1, 1)
    assert first["shards"] == 3 and first["failures"] == {"decode_error": 1}
    for key in ("a.jpg", "b.png", "deep16.tif", "nested/C.JPEG"):
        assert (out / key).is_file()
    rows = read_manifest(LocalStorage(out)).to_pylist()
    assert sorted(r["source_key"] for r in rows) == sorted(
        ["a.jpg", "b.png", "broken.jpg", "colour.png", "deep16.tif", "nested/C.JPEG"]
    )
    assert {r["run_id"] for r in rows} == {first["run_id"]}
    queue = ReviewQueue(cfg.review_db_url())
    assert queue.count() == 4 == first["queued"]  # threshold 1.0: every colorized image
    assert first["run_id"] in _latest_summary_artifact()
    report = Path(first["report_uri"])
    assert report == out / "_chromata" / "reports" / f"{first['run_id']}.html"
    page = report.read_text()
    assert first["run_id"] in page and "decode_error" in page and "broken.jpg" in page
    assert page.count("data:image/jpeg;base64,") == 4  # contact sheet of the colorized images
    assert "machine estimate, not a historical record" in page

    second = engines(cfg)  # same command again: nothing is done twice
    assert (second["ok"], second["failed"], second["shards"], second["already_done"]) == (0, 0, 0, 6)
    assert len(read_manifest(LocalStorage(out))) == 6
    assert queue.count() == 4

    # An interrupted run: the shard whose fragment was never committed is redone, and only it.
    frags = fragment_keys(LocalStorage(out))
    lost = read_manifest(LocalStorage(out)).filter(
        __import__("pyarrow").compute.equal(
            read_manifest(LocalStorage(out))["shard_id"], frags[0].split("shard-")[1].removesuffix(".parquet")
        )
    )
    (out / frags[0]).unlink()
    third = engines(cfg)
    assert third["ok"] + third["failed"] + third["skipped"] == lost.num_rows
    assert len(read_manifest(LocalStorage(out))) == 6
    assert queue.count() == 4  # same outputs (deterministic keys and bytes): no new queue entries
    queue.close()

    # killed between a fragment and its queue write: the next run re-queues from the manifest
    Path(cfg.review_db_url().removeprefix("sqlite:///")).unlink()
    fourth = engines(cfg)
    assert (fourth["ok"], fourth["queued"]) == (0, 4)
    assert ReviewQueue(cfg.review_db_url()).count() == 4


def test_s3_to_s3_run(engines, collection, moto_endpoint, s3, tmp_path):
    upload_collection(s3, "archive", "collection-a", collection)
    s3.create_bucket(Bucket="derivatives")
    cfg = build_config(
        source="s3://archive/collection-a/",
        destination="s3://derivatives/collection-a/",
        endpoint_url=moto_endpoint,
        shard_size=4,
        review_threshold=1.0,
        review_db=f"sqlite:///{tmp_path / 'q.sqlite'}",
    )
    first = engines(cfg)
    assert (first["ok"], first["failed"], first["skipped"]) == (4, 1, 1)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="derivatives")["Contents"]}
    for key in ("a.jpg", "b.png", "deep16.tif", "nested/C.JPEG"):
        assert f"collection-a/{key}" in keys
    assert not any(k.startswith("collection-a/colour") for k in keys)
    rows = read_manifest(S3Storage("derivatives", "collection-a", endpoint_url=moto_endpoint)).to_pylist()
    assert len(rows) == 6
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["source_uri"].startswith("s3://archive/collection-a/") for r in rows)
    assert all(r["output_uri"].startswith("s3://derivatives/collection-a/") for r in ok)
    assert all(r["source_etag"] for r in rows)
    assert ReviewQueue(cfg.review_db_url()).count() == 4

    second = engines(cfg)
    assert (second["ok"], second["shards"], second["already_done"]) == (0, 0, 6)

    # a new object arriving in the bucket is picked up by the next run, alone
    s3.put_object(Bucket="archive", Key="collection-a/new.jpg", Body=(Path(collection) / "a.jpg").read_bytes())
    # … and so is an object replaced with new content (new ETag), alone
    s3.put_object(Bucket="archive", Key="collection-a/a.jpg", Body=(Path(collection) / "b.png").read_bytes())
    third = engines(cfg)
    assert (third["ok"], third["already_done"]) == (2, 5)  # new.jpg and the new a.jpg

    # a source deleted since: reported, nothing else touched
    s3.delete_object(Bucket="archive", Key="collection-a/b.png")
    fourth = engines(cfg)
    assert (fourth["ok"], fourth["deleted"], fourth["deleted_examples"]) == (0, 1, ["b.png"])
    assert "collection-a/b.png" in {o["Key"] for o in s3.list_objects_v2(Bucket="derivatives")["Contents"]}


def test_pool_reuses_loaded_model_across_shards(ray_local, collection):
    from chromata.actors.colorizer import ColorizerPool
    from chromata.pipeline.planning import plan_run

    cfg = build_config(source=str(collection), destination=str(collection.parent / "pool-out"), shard_size=2, workers=1)
    plan = plan_run(cfg)
    pool = ColorizerPool(cfg)
    try:
        results = list(pool.run(plan.shards, plan.run_id))
        (info,) = pool.info()
        assert len(results) == 3 and info["shards_done"] == 3
        assert len({r.worker for r in results}) == 1  # one actor process, model loaded once in __init__
    finally:
        pool.shutdown()


def test_run_starts_the_pool_ahead_and_the_flow_uses_it(engines, collection, tmp_path, monkeypatch):
    """``run`` starts Ray and the actor pool before the flow (the model loads while Prefect and the planner
    start); the flow colorizes with that very pool, and a run with nothing to do shuts it down unused."""
    from chromata.actors import colorizer
    from chromata.flows import colorize_collection as flow_module

    made: list[object] = []
    ran: list[object] = []
    shut: list[object] = []

    class Pool(colorizer.ColorizerPool):
        def __init__(self, cfg):  # type: ignore[no-untyped-def]
            super().__init__(cfg)
            made.append(self)

        def run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            ran.append(self)
            return super().run(*args, **kwargs)

        def shutdown(self) -> None:
            shut.append(self)
            super().shutdown()

    monkeypatch.setattr(colorizer, "ColorizerPool", Pool)
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), shard_size=2, workers=1)
    first = flow_module.run(cfg)
    assert first["ok"] == 4 and len(made) == 1 and ran == made and shut == made  # one pool, started ahead
    assert not flow_module._STARTED_POOLS
    second = flow_module.run(cfg)  # everything is done already
    assert second["ok"] == 0 and second["already_done"] == 6
    assert len(made) == 2 and ran == made[:1] and shut == made  # started ahead, never used, shut down
    assert not flow_module._STARTED_POOLS


def test_a_failed_start_of_prefects_server_ahead_of_the_flow_is_a_warning(monkeypatch):
    """``run`` starts Prefect's temporary server in a thread while Ray starts; when that fails the flow run tries
    again, and the operator hears why the first start failed (it was logged at debug level, i.e. nowhere)."""
    import logging

    from prefect.server.api import server
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    from chromata.flows import colorize_collection as flow_module

    def refused(self) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    class Records(logging.Handler):  # on the module's logger: Prefect's logging set-up replaces the root's handlers
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    monkeypatch.setattr(server.SubprocessASGIServer, "start", refused)
    seen = Records()
    flow_module.log.addHandler(seen)
    ephemeral = temporary_settings(restore_defaults={PREFECT_API_URL}, updates={PREFECT_SERVER_EPHEMERAL_ENABLED: True})
    try:
        with ephemeral:
            flow_module._start_prefect_api()
    finally:
        flow_module.log.removeHandler(seen)
    (record,) = seen.records
    assert record.levelno == logging.WARNING  # shown by default, unlike debug
    assert "RuntimeError: Timed out while attempting to connect" in record.getMessage()


def test_two_runs_of_one_config_in_one_process_each_take_their_own_pool(engines, collection, tmp_path, monkeypatch):
    """Pools ``run`` starts ahead of their flows were filed under the config's JSON: a second run of the same
    config in the process (here started while the first one's flow is planning) filed its pool over the first's,
    which was then never shut down. Each run now files its pool under a token of its own."""
    from chromata.actors import colorizer
    from chromata.flows import colorize_collection as flow_module
    from chromata.pipeline import ShardProcessor

    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), shard_size=2, workers=1)
    processor = ShardProcessor(cfg)  # what the pools' actors would run, in this process
    made: list[object] = []

    class Pool:
        def __init__(self, cfg) -> None:  # type: ignore[no-untyped-def]
            self.shut = 0
            made.append(self)

        def run(self, shards, run_id, on_progress=None):  # type: ignore[no-untyped-def]
            for shard in shards:
                yield processor.process(shard, run_id)

        def shutdown(self) -> None:
            self.shut += 1

    monkeypatch.setattr(colorizer, "ColorizerPool", Pool)
    monkeypatch.setattr(colorizer, "connect", lambda *args, **kwargs: None)
    real_open_plan, inner, started = flow_module.open_plan, [], []

    def open_plan_with_a_second_run(c):  # type: ignore[no-untyped-def]
        if not started:  # the first run's flow is planning: the same command runs again in this process
            started.append(True)
            inner.append(flow_module.run(cfg))
        return real_open_plan(c)

    monkeypatch.setattr(flow_module, "open_plan", open_plan_with_a_second_run)
    try:
        flow_module.run(cfg)
    finally:
        processor.close()
    assert inner and inner[0]["ok"] == 4  # the second run colorized the collection with its own pool
    shut = [p.shut for p in made]  # type: ignore[attr-defined]
    assert len(made) == 2 and shut == [1, 1], shut  # each pool shut down once, none left behind
    assert not flow_module._STARTED_POOLS
