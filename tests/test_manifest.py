import duckdb
import pyarrow.parquet as pq

from chromata.archive.local import LocalStorage
from chromata.record.manifest import (
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    ImageRecord,
    fragment_key,
    image_id_for,
    processed_versions,
    read_manifest,
    write_fragment,
)


def rec(key: str, status: str = "ok", **kw) -> ImageRecord:
    base = dict(
        image_id=image_id_for(f"/src/{key}"),
        source_uri=f"/src/{key}",
        source_key=key,
        source_etag="e1",
        source_size=10,
        source_sha256="ab" * 32,
        width=4,
        height=3,
        bit_depth=8,
        output_uri=f"/dst/{key}",
        output_sha256="cd" * 32,
        heatmap_uri=f"/dst/_chromata/heatmaps/{key}.png",
        status=status,
        error=None if status == "ok" else "decode_error: x",
        confidence=0.7 if status == "ok" else None,
        confidence_reasons=["low_contrast"],
        needs_review=False,
        model_name="m",
        model_sha256="00" * 32,
        params_json="{}",
        chromata_version="0",
        run_id="r",
        shard_id="s",
        started_at=1_700_000_000.5,
        finished_at=1_700_000_001.25,
        duration_ms=750.0,
    )
    base.update(kw)
    return ImageRecord(**base)


def test_fragment_round_trip_with_schema_version(tmp_path):
    st = LocalStorage(tmp_path)
    key = write_fragment(st, "s1", [rec("a.jpg"), rec("b.jpg", status="failed")])
    assert key == fragment_key("s1")
    table = pq.read_table(tmp_path / key)
    assert table.schema.equals(MANIFEST_SCHEMA, check_metadata=False)
    assert table.schema.metadata[b"chromata.schema_version"] == SCHEMA_VERSION.encode()
    rows = table.to_pylist()
    assert rows[0]["confidence_reasons"] == ["low_contrast"]
    assert rows[1]["status"] == "failed" and rows[1]["confidence"] is None
    assert rows[0]["started_at"].timestamp() == 1_700_000_000.5


def test_dataset_readable_by_duckdb(tmp_path):
    st = LocalStorage(tmp_path)
    write_fragment(st, "s1", [rec("a.jpg"), rec("b.jpg")])
    write_fragment(st, "s2", [rec("c.jpg", status="failed")])
    glob = str(tmp_path / "_chromata" / "manifest" / "*.parquet")
    counts = dict(duckdb.sql(f"select status, count(*) from read_parquet('{glob}') group by 1").fetchall())
    assert counts == {"ok": 2, "failed": 1}


def test_processed_versions_and_empty_manifest(tmp_path):
    st = LocalStorage(tmp_path)
    assert read_manifest(st).num_rows == 0
    assert processed_versions(st) == set()
    write_fragment(st, "s1", [rec("a.jpg")])
    assert processed_versions(st) == {("a.jpg", "e1", 10)}


def test_fragments_from_before_a_new_column_read_back_with_it_as_null(tmp_path):
    """Schema 1.1 added `frames`; a destination written by schema 1 reads back with frames = null."""
    import pyarrow.parquet as pq

    from chromata.archive.local import LocalStorage
    from chromata.record.manifest import MANIFEST_PREFIX, read_manifest, to_table

    old = to_table([rec("a.jpg")]).drop_columns(["frames"])
    (tmp_path / MANIFEST_PREFIX).mkdir(parents=True)
    pq.write_table(old, tmp_path / MANIFEST_PREFIX / "shard-0000000000000000.parquet")
    table = read_manifest(LocalStorage(tmp_path))
    assert table.column("frames").to_pylist() == [None]


def test_fragments_of_schema_1_1_get_error_code_and_relative_keys_derived(tmp_path):
    """Schema 1.2 added `error_code`, `output_key` and `heatmap_key`; rows written before read back with
    them derived from `error` and from the URIs under the destination, so every reader can use them."""
    from chromata.record.manifest import MANIFEST_PREFIX, to_table

    dest = LocalStorage(tmp_path)
    ok = rec("a/b.jpg", output_uri=dest.uri("a/b.jpg"), heatmap_uri=dest.uri("_chromata/heatmaps/a/b.jpg.png"))
    failed = rec("c.jpg", status="failed", output_uri=None, heatmap_uri=None)
    old = to_table([ok, failed]).drop_columns(["error_code", "output_key", "heatmap_key"])
    (tmp_path / MANIFEST_PREFIX).mkdir(parents=True)
    pq.write_table(old, tmp_path / MANIFEST_PREFIX / "shard-0000000000000001.parquet")
    table = read_manifest(dest)
    assert table.column("error_code").to_pylist() == [None, "decode_error"]
    assert table.column("output_key").to_pylist() == ["a/b.jpg", None]
    assert table.column("heatmap_key").to_pylist() == ["_chromata/heatmaps/a/b.jpg.png", None]
    # a fragment of the current schema keeps what it recorded
    write_fragment(dest, "s2", [rec("d.jpg", output_uri="/elsewhere/d.jpg", output_key="d.jpg")])
    assert "d.jpg" in read_manifest(dest).column("output_key").to_pylist()
