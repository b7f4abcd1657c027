from dataclasses import replace

from chromata.config import build_config
from chromata.imageio import is_image_key
from chromata.manifest import write_fragment
from chromata.models import weights_sha256
from chromata.planning import plan_run
from chromata.storage import LocalStorage
from tests.test_manifest import rec


def _record_all(collection, out, model_sha, status="ok"):
    rows = [
        replace(rec(o.key, status=status), source_etag=o.etag, source_size=o.size, model_sha256=model_sha)
        for o in LocalStorage(collection).list()
        if is_image_key(o.key)
    ]
    write_fragment(LocalStorage(out), "earlier", rows)
    return rows


def test_plan_skips_recorded_versions_and_reports_deleted(collection, tmp_path):
    out = tmp_path / "out"
    cfg = build_config(source=str(collection), destination=str(out), shard_size=2)
    fresh = plan_run(cfg)
    assert (fresh.listed, fresh.images, fresh.ignored, len(fresh.shards)) == (6, 6, 1, 3)
    assert plan_run(cfg).shards == fresh.shards  # deterministic
    _record_all(collection, out, weights_sha256())
    (collection / "a.jpg").unlink()
    (collection / "b.png").write_bytes((collection / "nested" / "C.JPEG").read_bytes())  # changed content
    again = plan_run(cfg)
    assert [o.key for s in again.shards for o in s.objects] == ["b.png"]
    assert (again.deleted, again.deleted_examples) == (1, ("a.jpg",))


def test_retry_failed_and_reprocess_if_model_changed(collection, tmp_path):
    out = tmp_path / "out"
    _record_all(collection, out, "older-weights", status="failed")
    base = dict(source=str(collection), destination=str(out))
    assert plan_run(build_config(**base)).images == 0
    assert plan_run(build_config(**base, retry_failed=True)).images == 6
    assert plan_run(build_config(**base, reprocess_if_model_changed=True)).images == 6


def test_planner_streams_the_listing(collection, tmp_path):
    from chromata.planning import Planner

    planner = Planner(build_config(source=str(collection), destination=str(tmp_path / "out"), shard_size=2))
    shards = planner.shards()
    first = next(shards)
    assert len(first.objects) == 2
    assert planner.listed == 2  # only as much of the source as the first shard needed was listed
    rest = list(shards)
    assert planner.listed == 6 and planner.images == 6 and len(rest) == 2


def test_retry_of_committed_shards_gets_new_fragments(collection, tmp_path):
    out = tmp_path / "out"
    cfg = build_config(source=str(collection), destination=str(out), shard_size=2)
    first = plan_run(cfg)
    for shard in first.shards:  # as if a run had committed every shard, every image failed
        write_fragment(
            LocalStorage(out),
            shard.shard_id,
            [
                replace(rec(o.key, status="failed"), source_etag=o.etag, source_size=o.size, shard_id=shard.shard_id)
                for o in shard.objects
            ],
        )
    assert plan_run(cfg).images == 0
    retry = plan_run(build_config(source=str(collection), destination=str(out), shard_size=2, retry_failed=True))
    assert retry.images == 6
    assert not {s.shard_id for s in retry.shards} & {s.shard_id for s in first.shards}
    assert [s.shard_id for s in retry.shards] == [
        s.shard_id
        for s in plan_run(
            build_config(source=str(collection), destination=str(out), shard_size=2, retry_failed=True)
        ).shards
    ]  # an interrupted retry resumes into the same fragments
