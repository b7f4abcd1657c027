from dataclasses import replace

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.media.imageio import is_image_key
from chromata.models import weights_sha256
from chromata.pipeline.planning import plan_run
from chromata.record.manifest import write_fragment
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
    from chromata.pipeline.planning import Planner

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


def test_media_mask_is_is_media_key():
    import pyarrow as pa

    from chromata.media.formats import is_media_key
    from chromata.pipeline.planning import media_mask

    keys = [
        "a.jpg",
        "a.JPG",
        "b/c.tif",
        "b.d/e",
        "b.d/e.png",
        ".jpg",
        "x/.jpg",
        "x/..jpg",
        "x/a..jpg",
        "x/a.",
        "x/a",
        "x.y.z.TIFF",
        "clip.mp4",
        "notes.txt",
        "a/b.jpg/c",
        "ä/ö.jpeg",
        "a b+c.webp",
        "x/.hidden.png",
        "...",
        "x/.JPG",
        "x/..tif",
        "a.b/.jpg",
        "a/b..jpg",
        ".a/b.gif",
        "a/.b.c/d",
        "a/..b.mkv",
    ]
    assert media_mask(pa.array(keys)).to_pylist() == [is_media_key(k) for k in keys]


def test_parallel_listing_is_the_flat_listing(s3, moto_endpoint):
    import uuid

    from chromata.archive import list_objects
    from chromata.archive.s3 import S3Storage

    bucket = f"nested-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    keys = [
        "a.jpg",
        "a/b.jpg",
        "a/c/d.jpg",
        "a-b/x.jpg",
        "a0.jpg",
        "a!.jpg",
        "b/",
        "b/1.jpg",
        "b/2/3/4.jpg",
        "c",
        "ä/é.jpg",
        "z/z/z/z/z.jpg",
        *[f"big/{i:03d}/{j}.tif" for i in range(12) for j in range(3)],
    ]
    for k in keys:
        for root in ("", "root/"):
            s3.put_object(Bucket=bucket, Key=root + k, Body=k.encode())
    for prefix in ("", "root"):
        store = S3Storage(bucket, prefix, endpoint_url=moto_endpoint)
        flat = list(store.list())
        under = [k for k in keys if not k.endswith("/")]
        assert [o.key for o in flat] == sorted(under if prefix else [*under, *(f"root/{k}" for k in under)])
        for workers, fan_out in ((4, 2), (3, 8), (8, 64)):
            assert list(store.list_parallel(workers=workers, fan_out=fan_out)) == flat
        assert list(store.list_parallel("big", workers=4, fan_out=4)) == list(store.list("big"))
        assert list(list_objects(store, workers=4)) == flat


def test_redo_rejected_needs_the_rerun_set(collection, tmp_path):
    import pytest

    out = tmp_path / "out"
    rows = _record_all(collection, out, weights_sha256())
    cfg = build_config(source=str(collection), destination=str(out), redo_rejected=True)
    with pytest.raises(ValueError, match="rerun_uris"):
        plan_run(cfg)
    assert plan_run(cfg, rerun_uris=set()).images == 0
    src = LocalStorage(collection)
    plan = plan_run(cfg, rerun_uris={src.uri(rows[1].source_key), "s3://elsewhere/x.jpg"})
    assert [o.key for s in plan.shards for o in s.objects] == [rows[1].source_key]


def test_history_matches_batches_across_runs_and_refuses_disorder():
    import pyarrow as pa
    import pytest

    from chromata.errors import StorageError
    from chromata.pipeline.planning import History

    def run(keys, etags, sizes, status, model):
        return pa.table(
            {"source_key": keys, "source_etag": etags, "source_size": sizes, "status": status, "model_sha256": model}
        )

    runs = [  # a sorted run (a compaction) and an unsorted one (loose fragments)
        run(["a.jpg", "b.jpg", "d.jpg"], ["e1", "e2", "e4"], [1, 2, 4], ["ok", "failed", "ok"], ["m", "m", "m"]),
        run(["g.jpg", "b.jpg", "c.jpg"], ["e7", "e3", "e5"], [7, 3, 5], ["ok", "ok", "ok"], ["m", "other", "m"]),
    ]
    none = pa.array([], pa.string())

    def batch(h, *items, rerun=none):
        keys, etags, sizes = (pa.array(list(col)) for col in zip(*items, strict=True))
        todo, attempts = h.match(keys, etags, pa.array(sizes.to_pylist(), pa.int64()), rerun)
        return todo.to_pylist(), attempts

    h = History.from_tables(list(runs), redo_failed=True, model_sha256="m")
    assert batch(h, ("a.jpg", "e1", 1), ("b.jpg", "e3", 3)) == (
        [False, True],
        {"b.jpg": 2},
    )  # b: failed / other weights
    assert batch(h, ("e.jpg", "x", 9), ("g.jpg", "e7", 7), rerun=pa.array(["g.jpg"])) == (
        [True, True],
        {"g.jpg": 1},
    )
    assert (h.gone, h.gone_examples) == (2, ["c.jpg", "d.jpg"])  # passed over without being listed
    with pytest.raises(StorageError, match="not in key order"):
        batch(h, ("f.jpg", "x", 1))
    h2 = History.from_tables(list(runs), redo_failed=False, model_sha256=None)
    assert batch(h2, ("b.jpg", "e2", 2), ("c.jpg", "e5", 5)) == ([False, False], {})
    with pytest.raises(StorageError, match="not in key order"):
        batch(h2, ("z.jpg", "x", 1), ("y.jpg", "x", 1))
    h2.finish()
    assert (h2.gone, h2.gone_examples) == (3, ["a.jpg", "d.jpg", "g.jpg"])
