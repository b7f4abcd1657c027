"""Archive-scale planning: an incremental plan of 10⁶ and 10⁷ objects from an S3 Inventory report,
against a manifest of as many rows in 500-row fragments, before and after manifest compaction.

For each size N the harness generates, in a temporary folder:

* an S3 Inventory report as AWS writes it: ``manifest.json`` (fileFormat CSV, fileSchema, files with
  MD5checksum) and gzip-compressed CSV files with URL-encoded keys; rows are spread over the files at
  random and shuffled inside each, so the reader must sort every file and k-way merge them (the worst
  case: AWS promises no order). 1 % of the keys are XML sidecars (ignored by the plan);
* a manifest at the destination (a local folder) recording every image but one in a thousand, in
  fragments of 500 rows (N/500 fragments: 20 000 for 10⁷), rows with every column of the schema.

Then three fresh processes, each timed from start to end and its peak RSS read from
``getrusage`` (each is a new interpreter, so imports and all are counted):

1. ``plan``: a Planner with ``inventory=`` streams every shard (what ``chromata plan --inventory`` does);
2. ``compact``: ``chromata.record.compaction.compact`` merges all fragments;
3. ``plan`` again, reading the compaction instead of the fragments.

The source bucket exists on moto's S3 server (the plan checks that it can be read); it is never listed.

    flock /tmp/chromata-tests.lock python benchmarks/archive_scale.py --sizes 1000000 10000000
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUCKET = "national-library"
PREFIX = "scans"
FRAGMENT_ROWS = 500
KEYS_PER_FILE = 250_000  # AWS rolls inventory files over at a size; ours hold this many rows


def _key(i: int) -> str:
    ext = ".xml" if i % 100 == 99 else ".tif"
    return f"{PREFIX}/box-{i // 1000:05d}/folder {i // 100 % 10}/item-{i:08d}{ext}"


def make_inventory(root: Path, n: int, seed: int = 0) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    files = max(1, -(-n // KEYS_PER_FILE))
    perm = np.random.default_rng(seed).permutation(n)
    entries = []
    data = root / BUCKET / "nightly" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        idx = perm[f::files].tolist()
        # URL-encoded as in AWS's CSV reports (form encoding; these keys need it for their spaces only)
        keys = pc.replace_substring(pa.array([_key(i) for i in idx]), " ", "+")
        table = pa.table(
            {
                "Bucket": pa.array([BUCKET] * len(idx)),
                "Key": keys,
                "Size": pa.array([1_000_000 + i % 9973 for i in idx], pa.int64()),
                "LastModifiedDate": pa.array(["2026-11-30T01:02:03.000Z"] * len(idx)),
                "ETag": pa.array([f"{i:032x}" for i in idx]),
                "StorageClass": pa.array(["STANDARD"] * len(idx)),
            }
        )
        path = data / f"{f:05d}.csv.gz"
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
        blob = gzip.compress(buf.getvalue().to_pybytes(), compresslevel=1)
        path.write_bytes(blob)
        entries.append(
            {
                "key": path.relative_to(root).as_posix(),
                "size": len(blob),
                "MD5checksum": hashlib.md5(blob, usedforsecurity=False).hexdigest(),
            }
        )
    manifest = root / BUCKET / "nightly" / "2026-11-30T01-00Z" / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "sourceBucket": BUCKET,
                "destinationBucket": "arn:aws:s3:::inventory-reports",
                "version": "2016-11-30",
                "creationTimestamp": "1764464523000",
                "fileFormat": "CSV",
                "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass",
                "files": entries,
            }
        )
    )
    return manifest


def make_manifest(dst: Path, n: int, model_sha: str) -> int:
    """Fragments of ``FRAGMENT_ROWS`` rows recording every image key but one in a thousand; returns rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from chromata.record.manifest import MANIFEST_PREFIX, MANIFEST_SCHEMA

    folder = dst / MANIFEST_PREFIX
    folder.mkdir(parents=True, exist_ok=True)
    recorded = [i for i in range(n) if i % 100 != 99 and i % 1000 != 500]
    rows = 0
    step = 100_000
    for start in range(0, len(recorded), step):
        idx = recorded[start : start + step]
        m = len(idx)
        rel = [_key(i)[len(PREFIX) + 1 :] for i in idx]
        key = pa.array(rel)
        src_uri = pc.binary_join_element_wise(f"s3://{BUCKET}/{PREFIX}/", key, "")
        out_key = pc.binary_join_element_wise("colorized/", key, ".jpg", "")
        const = {
            "status": "ok",
            "model_name": "chromata-builtin-v2",
            "model_sha256": model_sha,
            "params_json": '{"temperature":0.38}',
            "chromata_version": "0.9.0",
            "run_id": "20261101T010000Z-bench",
        }
        cols = {
            "image_id": pa.array([hashlib.sha256(str(i).encode()).hexdigest()[:24] for i in idx]),
            "source_uri": src_uri,
            "source_key": key,
            "source_etag": pa.array([f"{i:032x}" for i in idx]),
            "source_size": pa.array([1_000_000 + i % 9973 for i in idx], pa.int64()),
            "source_sha256": pa.array([f"{i:064x}" for i in idx]),
            "width": pa.array([4000] * m, pa.int32()),
            "height": pa.array([3000] * m, pa.int32()),
            "bit_depth": pa.array([8] * m, pa.int8()),
            "output_uri": pc.binary_join_element_wise("file:///derivatives/", out_key, ""),
            "output_sha256": pa.array([f"{i:064x}" for i in idx]),
            "confidence": pa.array([0.8] * m, pa.float32()),
            "confidence_reasons": pa.array([[]] * m, pa.list_(pa.string())),
            "needs_review": pa.array([False] * m),
            "started_at": pa.array([1_764_000_000_000_000] * m, pa.int64()),
            "finished_at": pa.array([1_764_000_001_000_000] * m, pa.int64()),
            "duration_ms": pa.array([812.5] * m),
            "output_key": out_key,
        }
        arrays = []
        for f in MANIFEST_SCHEMA:
            if f.name in cols:
                arrays.append(cols[f.name].cast(f.type))
            elif f.name in const:
                arrays.append(pa.array([const[f.name]] * m, f.type))
            elif f.name == "shard_id":
                arrays.append(pa.array([f"bench{(start + j) // FRAGMENT_ROWS:07d}" for j in range(m)], f.type))
            else:
                arrays.append(pa.nulls(m, f.type))
        table = pa.Table.from_arrays(arrays, schema=MANIFEST_SCHEMA)
        for off in range(0, m, FRAGMENT_ROWS):
            part = table.slice(off, FRAGMENT_ROWS)
            shard = part["shard_id"][0].as_py()
            pq.write_table(part, folder / f"shard-{shard}.parquet", compression="zstd")
        rows += m
    return rows


def child(args: argparse.Namespace) -> None:
    """One measured step in a fresh interpreter; prints a JSON line."""
    t0 = time.monotonic()
    out: dict[str, float | int | str] = {}
    if args.child == "plan":
        from chromata.config import build_config
        from chromata.pipeline.planning import Planner

        cfg = build_config(
            source=f"s3://{BUCKET}/{PREFIX}",
            destination=str(args.dst),
            endpoint_url=args.endpoint,
            inventory=str(args.inventory),
            model="builtin",
        )
        p = Planner(cfg)
        history = time.monotonic() - t0
        for _ in p.shards():
            pass
        out = {
            "listed": p.listed,
            "already_done": p.already_done,
            "ignored": p.ignored,
            "images": p.images,
            "shards": p.shard_count,
            "deleted": p.deleted,
            "history_s": round(history, 1),
        }
    else:
        from chromata.archive.local import LocalStorage
        from chromata.record.compaction import compact

        r = compact(LocalStorage(args.dst), min_fragments=1)
        out = {"fragments": r.fragments, "rows": r.rows, "files_before": r.files_before, "files_after": r.files_after}
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out), flush=True)


def _run_child(*argv: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"child {argv[:2]} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _dir_mib(path: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in path.glob(pattern)) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--workdir", type=Path, default=None, help="where the synthetic data goes (default: a temp dir)")
    ap.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    ap.add_argument("--child", choices=["plan", "compact"])
    ap.add_argument("--dst", type=Path)
    ap.add_argument("--inventory", type=Path)
    ap.add_argument("--endpoint")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if args.child:
        child(args)
        return

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from chromata.models import weights_sha256

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    model_sha = weights_sha256("builtin")
    results = []
    try:
        for n in args.sizes:
            work = Path(tempfile.mkdtemp(prefix=f"archive-{n}-", dir=args.workdir))
            try:
                t = time.monotonic()
                inventory = make_inventory(work / "inventory", n)
                inv_s = time.monotonic() - t
                t = time.monotonic()
                rows = make_manifest(work / "dst", n, model_sha)
                man_s = time.monotonic() - t
                print(f"N={n}: inventory in {inv_s:.0f} s, manifest ({rows} rows) in {man_s:.0f} s", flush=True)
                common = ["--dst", str(work / "dst"), "--inventory", str(inventory), "--endpoint", endpoint]
                before = _run_child("--child", "plan", *common)
                print("  plan before compaction", before, flush=True)
                comp = _run_child("--child", "compact", *common)
                print("  compaction", comp, flush=True)
                after = _run_child("--child", "plan", *common)
                print("  plan after compaction", after, flush=True)
                results.append(
                    {
                        "n": n,
                        "rows": rows,
                        "inventory_files": len(json.loads(inventory.read_text())["files"]),
                        "inventory_mib": _dir_mib(work / "inventory" / BUCKET / "nightly" / "data", "*.csv.gz"),
                        "fragments_mib": _dir_mib(work / "dst" / "_chromata" / "manifest", "shard-*.parquet"),
                        "compacted_mib": _dir_mib(work / "dst" / "_chromata" / "manifest" / "compacted", "*.parquet"),
                        "before": before,
                        "compact": comp,
                        "after": after,
                    }
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        server.stop()
    body = report(results)
    print(body)
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _report import write_section

        write_section("archive-scale", body)


def report(results: list[dict]) -> str:
    from _report import machine  # type: ignore[import-not-found]

    lines = [
        "## Archive-scale planning (S3 Inventory, manifest compaction)",
        "",
        f"`benchmarks/archive_scale.py` on {machine()}. Synthetic data: an S3 Inventory report (CSV.gz, "
        f"{KEYS_PER_FILE:,} rows a file, rows spread over files at random and shuffled: every file is sorted and "
        "all are k-way merged) and a manifest recording every image but one in a thousand, in fragments of "
        f"{FRAGMENT_ROWS} rows with every schema column, at a local destination. Each step is a fresh process "
        "(time from interpreter start; peak RSS from `getrusage`). The plan streams every shard, as `chromata "
        "plan --inventory` does.",
        "",
        "| objects in inventory | manifest rows | fragments | step | files read | time | peak RSS | result |",
        "|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        b, c, a = r["before"], r["compact"], r["after"]
        frags = c["fragments"]
        plan = f"{b['images']:,} to do, {b['already_done']:,} done, {b['ignored']:,} ignored"
        lines += [
            f"| {r['n']:,} | {r['rows']:,} | {frags:,} | incremental plan | {r['inventory_files']} + {frags:,} "
            f"| {b['seconds']:.1f} s | {b['peak_rss_mib']:,} MiB | {plan} |",
            f"| | | | compaction | {frags:,} | {c['seconds']:.1f} s | {c['peak_rss_mib']:,} MiB "
            f"| {c['rows']:,} rows into 1 file ({r['fragments_mib']:.0f} MiB of fragments → "
            f"{r['compacted_mib']:.0f} MiB) |",
            f"| | | | incremental plan after compaction | {r['inventory_files']} + {c['files_after']} "
            f"| {a['seconds']:.1f} s | {a['peak_rss_mib']:,} MiB | same plan: {a['images']:,} to do |",
        ]
    if len(results) >= 2:
        lo, hi = results[0], results[-1]
        k = hi["n"] / lo["n"]
        lines += [
            "",
            f"From {lo['n']:,} to {hi['n']:,} objects (×{k:.0f}): the plan after compaction takes "
            f"×{hi['after']['seconds'] / lo['after']['seconds']:.1f} the time, the compaction "
            f"×{hi['compact']['seconds'] / lo['compact']['seconds']:.1f}; memory grows with the manifest's "
            "history (held as Arrow columns, sorted by key), the inventory is streamed within a fixed budget.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
