"""Manifest compaction: same rows read from fewer files, history and exactly-once commits kept, crash-safe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chromata.archive.local import LocalStorage
from chromata.archive.s3 import S3Storage
from chromata.record import compaction
from chromata.record.compaction import COMPACTED_PREFIX, compact, load_layout, local_files
from chromata.record.manifest import MANIFEST_PREFIX, fragment_key, read_manifest, to_table, write_fragment
from tests.test_manifest import rec


def _fill(store, shards: range, per: int = 3, status: str = "ok") -> None:
    for s in shards:
        rows = [replace(rec(f"k{s:03d}-{i}.jpg", status=status), shard_id=f"s{s:03d}") for i in range(per)]
        write_fragment(store, f"s{s:03d}", rows)


def _files_read(store) -> int:
    with local_files(store) as fetch:
        return load_layout(store, fetch).files_to_read()


def test_compaction_keeps_every_row_in_order_and_reads_few_files(tmp_path):
    store = LocalStorage(tmp_path)
    _fill(store, range(0, 40, 2))
    # one fragment written before schema 1.1/1.2 (no frames, error_code, output_key, heatmap_key)
    old = to_table([replace(rec("old.jpg", status="failed"), error="decode_error: truncated")]).drop_columns(
        ["frames", "error_code", "output_key", "heatmap_key"]
    )
    pq.write_table(old, tmp_path / MANIFEST_PREFIX / "shard-old.parquet")
    before = read_manifest(store)
    history_before = read_manifest(store, columns=["source_key", "status"])
    assert _files_read(store) == 21

    report = compact(store, min_fragments=1)
    assert report.key is not None and report.fragments == 21 and report.rows == 61
    assert (report.files_before, report.files_after) == (21, 1) == (21, _files_read(store))
    assert read_manifest(store).equals(before)  # same rows, same order, old rows still derived
    assert read_manifest(store, columns=["source_key", "status"]).equals(history_before)
    assert read_manifest(store).filter(
        __import__("pyarrow").compute.equal(read_manifest(store)["source_key"], "old.jpg")
    )["error_code"].to_pylist() == ["decode_error"]
    # history: every fragment is still there, and read alone it still gives its rows
    assert len(list((tmp_path / MANIFEST_PREFIX).glob("shard-*.parquet"))) == 21

    # new fragments interleave with the compacted ones by key; nothing to do below the threshold
    _fill(store, range(1, 9, 2))
    assert compact(store, min_fragments=10).key is None
    assert _files_read(store) == 5
    both = read_manifest(store)
    assert len(both) == 61 + 12
    second = compact(store, min_fragments=1, max_files=8)
    assert second.superseded == () and _files_read(store) == 2
    assert read_manifest(store).equals(both)

    # past max_files the new compaction absorbs the live ones; superseded files are never opened again
    _fill(store, range(41, 45))
    third = compact(store, min_fragments=1, max_files=2)
    assert set(third.superseded) == {report.key, second.key} and _files_read(store) == 1
    for key in third.superseded:
        (tmp_path / key).write_bytes(b"not parquet any more")  # would fail if read
    assert len(read_manifest(store)) == 61 + 12 + 12


def test_a_compacted_shard_stays_committed_exactly_once(tmp_path):
    store = LocalStorage(tmp_path)
    _fill(store, range(3))
    compact(store, min_fragments=1)
    # a retried commit of a compacted shard: the first fragment stays, no row is read twice
    write_fragment(store, "s001", [replace(rec("k001-0.jpg", status="failed"), shard_id="s001")])
    assert len(read_manifest(store)) == 9 and "failed" not in read_manifest(store)["status"].to_pylist()
    # a fragment listed in a compaction counts as committed even where the fragment file is gone
    (tmp_path / fragment_key("s002")).unlink()
    with local_files(store) as fetch:
        assert fragment_key("s002") in load_layout(store, fetch).committed()
    assert len(read_manifest(store)) == 9


class _Interrupted(RuntimeError):
    pass


class _CrashingStore(LocalStorage):
    """A real local destination whose process "dies" (raises) at one chosen point of a compaction."""

    def __init__(self, root: Path, at: str) -> None:
        super().__init__(root)
        self.at, self.hit = at, False

    def local_path(self, key: str) -> Path | None:  # how a compaction opens a fragment it copies
        if self.at == "reading" and key.endswith("shard-s009.parquet"):
            self.hit = True
            raise _Interrupted(key)
        return super().local_path(key)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        if self.at == "publishing":
            self.hit = True
            tmp = self._path(key).parent / ".tmp-partial"  # what a killed rename leaves behind
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(path.read_bytes()[:100])
            raise _Interrupted(key)
        super().write_file(key, path, content_type)


@pytest.mark.parametrize("at", ["reading", "publishing"])
def test_an_interrupted_compaction_loses_and_duplicates_nothing(tmp_path, at):
    _fill(LocalStorage(tmp_path), range(8))
    compact(LocalStorage(tmp_path), min_fragments=1)
    _fill(LocalStorage(tmp_path), range(8, 12))
    before = read_manifest(LocalStorage(tmp_path))
    crashing = _CrashingStore(tmp_path, at)
    with pytest.raises(_Interrupted):
        compact(crashing, min_fragments=1, max_files=1)  # would absorb the first compaction
    assert crashing.hit  # the fault hit the compaction in progress
    assert read_manifest(LocalStorage(tmp_path)).equals(before)
    assert len(list((tmp_path / COMPACTED_PREFIX).glob("c-*.parquet"))) == 1
    # the next night's compaction completes and still reads the same rows
    assert compact(LocalStorage(tmp_path), min_fragments=1, max_files=1).key is not None
    assert read_manifest(LocalStorage(tmp_path)).equals(before)


def test_concurrent_compactions_overlap_without_duplicating_rows(tmp_path):
    store = LocalStorage(tmp_path)
    _fill(store, range(6))
    first = compact(store, min_fragments=1)
    assert first.key is not None
    # a second compactor that listed the folder before the first one published (it saw no compaction),
    # and one more fragment: both compactions are live and cover s000..s005 twice
    hidden = tmp_path / first.key
    kept = hidden.read_bytes()
    hidden.unlink()
    _fill(store, range(6, 7))
    expected = read_manifest(store)
    second = compact(store, min_fragments=1)
    hidden.write_bytes(kept)
    assert second.key is not None and second.key != first.key
    with local_files(store) as fetch:
        assert len(load_layout(store, fetch).live) == 2
    assert len(expected) == 21 and read_manifest(store).equals(expected)


def test_planning_after_compaction_is_the_same_plan(collection, tmp_path):
    """--retry-failed attempt counting and resumption read the compacted history like the fragments."""
    from chromata.config import build_config
    from chromata.pipeline.planning import plan_run

    out = tmp_path / "out"
    base = dict(source=str(collection), destination=str(out), shard_size=2)
    first = plan_run(build_config(**base))
    for shard in first.shards[:2]:  # two shards committed, every image failed
        write_fragment(
            LocalStorage(out),
            shard.shard_id,
            [
                replace(rec(o.key, status="failed"), source_etag=o.etag, source_size=o.size, shard_id=shard.shard_id)
                for o in shard.objects
            ],
        )
    plans = [plan_run(build_config(**base)), plan_run(build_config(**base, retry_failed=True))]
    compact(LocalStorage(out), min_fragments=1)
    for frag in (out / MANIFEST_PREFIX).glob("shard-*.parquet"):
        frag.unlink()  # even without the fragments, the compaction alone carries history and commits
    again = [plan_run(build_config(**base)), plan_run(build_config(**base, retry_failed=True))]
    assert [p.shards for p in again] == [p.shards for p in plans]
    assert [p.images for p in again] == [2, 6]


def test_compaction_on_s3(s3, moto_endpoint):
    import uuid

    bucket = f"derivatives-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    store = S3Storage(bucket, "coll", endpoint_url=moto_endpoint)
    _fill(store, range(5))
    before = read_manifest(store)
    report = compact(store, min_fragments=1)
    assert report.key is not None and store.exists(report.key)
    assert read_manifest(store).equals(before) and _files_read(store) == 1
    assert compaction.is_compaction_key(report.key)


def test_manifest_compact_command(tmp_path):
    from typer.testing import CliRunner

    from chromata.cli import app

    _fill(LocalStorage(tmp_path), range(4))
    before = read_manifest(LocalStorage(tmp_path))
    done = CliRunner().invoke(app, ["manifest", "compact", str(tmp_path)])
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert "compacted 4 fragments (12 rows)" in said and "open 1 files instead of 4" in said
    assert read_manifest(LocalStorage(tmp_path)).equals(before)
    again = CliRunner().invoke(app, ["manifest", "compact", str(tmp_path)])
    assert again.exit_code == 0 and "nothing to compact: readers open 1 files" in " ".join(again.output.split())
