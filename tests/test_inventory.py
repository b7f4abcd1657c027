"""Reading S3 Inventory reports (CSV.gz and Parquet, local and on moto's S3 over HTTP) and planning from them."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chromata.archive import inventory as inv
from chromata.archive.inventory import Inventory
from chromata.archive.storage import ObjectInfo
from chromata.errors import StorageError

CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; "
    "optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); "
    "optional binary storage_class (UTF8);}"
)
T0 = datetime(2026, 11, 30, 1, 2, 3, 456000, tzinfo=UTC)


def _row(key: str, size: int, etag: str, latest: bool = True, marker: bool = False) -> dict:
    return {"key": key, "size": size, "etag": etag, "latest": latest, "marker": marker, "version": "v1"}


def write_report(root: Path, rows: list[dict], fmt: str = "CSV", files: int = 3, bucket: str = "scans") -> dict:
    """An inventory report as AWS lays it out in its destination bucket (``root`` mirrors that bucket):
    ``<bucket>/<config>/data/<id>.csv.gz|.parquet`` and ``<bucket>/<config>/<date>/manifest.json``."""
    rng = random.Random(7)
    shuffled = rows[:]
    rng.shuffle(shuffled)  # AWS promises no order: rows and files both unsorted, ranges overlapping
    chunks = [shuffled[i::files] for i in range(files)]
    entries = []
    for i, chunk in enumerate(chunks):
        ext = "csv.gz" if fmt == "CSV" else "parquet"
        key = f"{bucket}/nightly/data/{i:04d}-{hashlib.sha1(str(i).encode()).hexdigest()[:8]}.{ext}"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "CSV":
            buf = io.StringIO()
            w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for r in chunk:
                w.writerow(
                    [
                        bucket,
                        quote_plus(r["key"], safe="/"),
                        r["version"],
                        str(r["latest"]).lower(),
                        str(r["marker"]).lower(),
                        "" if r["marker"] else r["size"],
                        T0.strftime("%Y-%m-%dT%H:%M:%S.") + f"{T0.microsecond // 1000:03d}Z",
                        "" if r["marker"] else r["etag"],
                        "STANDARD",
                    ]
                )
            path.write_bytes(gzip.compress(buf.getvalue().encode()))
        else:
            table = pa.table(
                {
                    "bucket": [bucket] * len(chunk),
                    "key": [r["key"] for r in chunk],
                    "version_id": [r["version"] for r in chunk],
                    "is_latest": [r["latest"] for r in chunk],
                    "is_delete_marker": [r["marker"] for r in chunk],
                    "size": pa.array([None if r["marker"] else r["size"] for r in chunk], pa.int64()),
                    "last_modified_date": pa.array([T0] * len(chunk), pa.timestamp("ms", tz="UTC")),
                    "e_tag": [None if r["marker"] else r["etag"] for r in chunk],
                    "storage_class": ["STANDARD"] * len(chunk),
                }
            )
            pq.write_table(table, path)
        data = path.read_bytes()
        entries.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::inventory-reports",
        "version": "2016-11-30",
        "creationTimestamp": "1764464523000",
        "fileFormat": fmt,
        "fileSchema": CSV_SCHEMA if fmt == "CSV" else PARQUET_SCHEMA,
        "files": entries,
    }
    mpath = root / bucket / "nightly" / "2026-11-30T01-00Z" / "manifest.json"
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(manifest, indent=2))
    return manifest


ODD_KEYS = [
    "coll/a.jpg",
    "coll/a b+c%d.tif",  # space, plus and percent: URL-encoded in CSV reports
    "coll/ä/ö-ü.png",
    "coll/a/b.jpg",
    "coll/a-b.jpg",
    "coll/z/y/x.jpeg",
    "coll/notes.txt",
    "other/outside.jpg",  # not under the source prefix
]


def _rows() -> list[dict]:
    rows = [_row(k, 100 + i, f"etag{i:02d}") for i, k in enumerate(ODD_KEYS)]
    rows.append(_row("coll/folder/", 0, "d41d8cd98f00b204e9800998ecf8427e"))  # a "folder" marker object
    rows.append(_row("coll/old.jpg", 5, "old", latest=False))  # a noncurrent version
    rows.append(_row("coll/old.jpg", 0, "", marker=True))  # ... and the delete marker on top of it
    rows.append(_row("coll/kept.jpg", 7, "v2"))
    rows.append(_row("coll/kept.jpg", 6, "v1", latest=False))
    return rows


def _expected() -> list[tuple[str, int, str]]:
    want = [(k.removeprefix("coll/"), 100 + i, f"etag{i:02d}") for i, k in enumerate(ODD_KEYS) if k.startswith("coll/")]
    return sorted([*want, ("kept.jpg", 7, "v2")])


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_local_report_streams_current_objects_in_key_order(tmp_path, fmt):
    write_report(tmp_path, _rows(), fmt=fmt)
    report = Inventory(str(tmp_path / "scans" / "nightly" / "2026-11-30T01-00Z" / "manifest.json"))
    objects = list(report.objects("coll"))
    assert all(isinstance(o, ObjectInfo) for o in objects)
    assert [(o.key, o.size, o.etag) for o in objects] == _expected()
    assert {o.mtime for o in objects} == {T0.timestamp()}
    # the folder holding manifest.json names the report as well
    assert [o.key for o in Inventory(str(tmp_path / "scans/nightly/2026-11-30T01-00Z")).objects("coll/")] == [
        k for k, _, _ in _expected()
    ]


def test_many_overlapping_files_are_merged_in_order_within_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(inv, "MERGE_ROWS", 64)  # chunks of 1024 rows at most, so each file has several
    monkeypatch.setattr(inv, "BATCH_ROWS", 1000)
    rng = random.Random(3)
    keys = [f"img/{rng.randrange(10**9):09d}-{i}.jpg" for i in range(30_000)]
    rows = [_row(k, i, f"e{i}") for i, k in enumerate(keys)]
    rows += [_row(keys[5], 5, "e5"), _row(keys[77], 77, "e77")]  # the same current key in two files: once
    write_report(tmp_path, rows, fmt="Parquet", files=12)
    got = list(Inventory(str(tmp_path / "scans/nightly/2026-11-30T01-00Z/manifest.json")).batches())
    assert max(len(t) for t in got) <= 1000
    flat = [k for t in got for k in t["key"].to_pylist()]
    assert flat == sorted(keys)


def test_bad_reports_fail_with_one_sentence(tmp_path):
    manifest = write_report(tmp_path, _rows(), fmt="CSV", files=1)
    mdir = tmp_path / "scans/nightly/2026-11-30T01-00Z"
    data = tmp_path / manifest["files"][0]["key"]
    data.write_bytes(data.read_bytes()[:-10])  # truncated in transfer
    with pytest.raises(StorageError, match="does not match its MD5checksum"):
        list(Inventory(str(mdir)).objects())
    (mdir / "manifest.json").write_text(json.dumps({**manifest, "fileFormat": "ORC"}))
    with pytest.raises(StorageError, match="ORC inventory reports are not supported"):
        Inventory(str(mdir))
    (mdir / "manifest.json").write_text("{}")
    with pytest.raises(StorageError, match=r"is not an S3 Inventory manifest\.json"):
        Inventory(str(mdir))
    with pytest.raises(StorageError, match="inventory manifest not found"):
        Inventory(str(tmp_path / "nowhere"))


def _upload_folder(s3, bucket: str, root: Path) -> None:
    s3.create_bucket(Bucket=bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes())


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_report_in_s3_is_read_over_http(tmp_path, s3, moto_endpoint, fmt):
    import uuid

    write_report(tmp_path, _rows(), fmt=fmt)
    dest = f"inventory-reports-{uuid.uuid4().hex[:6]}"
    manifest = json.loads((tmp_path / "scans/nightly/2026-11-30T01-00Z/manifest.json").read_text())
    manifest["destinationBucket"] = f"arn:aws:s3:::{dest}"
    (tmp_path / "scans/nightly/2026-11-30T01-00Z/manifest.json").write_text(json.dumps(manifest))
    _upload_folder(s3, dest, tmp_path)
    report = Inventory(f"s3://{dest}/scans/nightly/2026-11-30T01-00Z/manifest.json", endpoint_url=moto_endpoint)
    assert [(o.key, o.size, o.etag) for o in report.objects("coll")] == _expected()


def test_plan_from_inventory_equals_plan_from_listing(tmp_path, s3, moto_endpoint, collection):
    """The same bucket planned by listing and by its inventory: the same shards; recorded, it is all done."""
    import uuid
    from dataclasses import replace

    from chromata.archive.local import LocalStorage
    from chromata.config import build_config
    from chromata.pipeline.planning import plan_run
    from chromata.record.manifest import write_fragment
    from tests.conftest import upload_collection
    from tests.test_manifest import rec

    bucket = f"scans-{uuid.uuid4().hex[:6]}"
    upload_collection(s3, bucket, "coll", collection)
    listed = [_row(o["Key"], o["Size"], o["ETag"].strip('"')) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    report = tmp_path / "report"
    write_report(report, listed, fmt="CSV", files=2, bucket=bucket)
    out = tmp_path / "out"
    base = dict(source=f"s3://{bucket}/coll", destination=str(out), endpoint_url=moto_endpoint, shard_size=2)
    by_listing = plan_run(build_config(**base))
    inventory = str(report / bucket / "nightly/2026-11-30T01-00Z/manifest.json")
    by_inventory = plan_run(build_config(**base, inventory=inventory))

    def ids(plan):  # last-modified differs (the report's date vs the listing's): the rest must not
        return [(s.shard_id, [(o.key, o.size, o.etag) for o in s.objects]) for s in plan.shards]

    assert ids(by_inventory) == ids(by_listing) and len(by_listing.shards) == 3
    assert (by_inventory.listed, by_inventory.ignored) == (by_listing.listed, by_listing.ignored) == (6, 1)
    objects = [o for s in by_listing.shards for o in s.objects]
    write_fragment(
        LocalStorage(out), "x", [replace(rec(o.key), source_etag=o.etag, source_size=o.size) for o in objects[1:]]
    )
    again = plan_run(build_config(**base, inventory=inventory))
    assert [o.key for s in again.shards for o in s.objects] == [objects[0].key]
    assert again.already_done == 5
    other = write_report(tmp_path / "other", listed, bucket="another-bucket")
    assert other["sourceBucket"] == "another-bucket"
    with pytest.raises(StorageError, match="describes bucket 'another-bucket'"):
        plan_run(build_config(**base, inventory=str(tmp_path / "other/another-bucket/nightly/2026-11-30T01-00Z")))


def test_plan_command_reads_the_inventory(tmp_path, s3, moto_endpoint, collection):
    import uuid

    from typer.testing import CliRunner

    from chromata.cli import app
    from tests.conftest import upload_collection

    bucket = f"scans-{uuid.uuid4().hex[:6]}"
    upload_collection(s3, bucket, "coll", collection)
    rows = [_row(o["Key"], o["Size"], o["ETag"].strip('"')) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    write_report(tmp_path / "report", rows[:3], bucket=bucket)  # the report knows three objects only
    report = str(tmp_path / "report" / bucket / "nightly/2026-11-30T01-00Z/manifest.json")
    args = ["plan", f"s3://{bucket}/coll", "--out", str(tmp_path / "out"), "--endpoint-url", moto_endpoint]
    shown = CliRunner().invoke(app, [*args, "--inventory", report])
    assert shown.exit_code == 0, shown.output
    media = sum(1 for r in rows[:3] if not r["key"].endswith(".txt"))
    assert re.search(r"images listed\D*(\d+)", shown.output).group(1) == str(media), shown.output
    bad = CliRunner().invoke(app, [*args, "--inventory", str(tmp_path / "missing.json")])
    assert isinstance(bad.exception, StorageError) and "inventory manifest not found" in str(bad.exception)


@pytest.mark.slow
def test_archive_scale_benchmark_runs():
    """The benchmark's own smoke run at a tiny size (no figure asserted, only that it plans right)."""
    import ast
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "archive_scale.py"), "--sizes", "3000", "--no-write"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    steps = {
        line.split("{", 1)[0].strip(): ast.literal_eval("{" + line.split("{", 1)[1])
        for line in proc.stdout.splitlines()
        if line.startswith("  ") and "{" in line
    }
    before, after = steps["plan before compaction"], steps["plan after compaction"]
    assert (before["images"], before["already_done"], before["ignored"]) == (3, 2967, 30)
    assert {k: after[k] for k in ("images", "already_done", "ignored")} == {
        k: before[k] for k in ("images", "already_done", "ignored")
    }
    assert steps["compaction"]["fragments"] == 6 and steps["compaction"]["files_after"] == 1
