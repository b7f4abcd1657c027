"""Benchmark 6 of docs/benchmarks.md: list + incremental diff of N objects on moto's S3 server over HTTP.

For each N: time to plan a first run (stream the listing, cut shards) and a second run against a
manifest that already records every object (the nightly case: everything is skipped), next to a bare
boto3 paginated listing of the same prefix — what moto itself costs — so that chromata's own share is
separated from the server's.

Objects are put straight into the moto server's in-process backend (uploading 100 000 over HTTP takes
longer than the benchmark); every listing and plan goes over HTTP through boto3, as in production.

    python benchmarks/listing.py --counts 5000 20000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main() -> list[dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    import logging

    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    from chromata.archive import open_storage
    from chromata.config import build_config
    from chromata.pipeline.planning import Planner
    from chromata.record.manifest import ImageRecord, image_id_for, write_fragment

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    results = []
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for n in args.counts:
            bucket = f"bench-{n}"
            s3.create_bucket(Bucket=bucket)
            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            for i in range(n):
                backend.put_object(bucket, f"c/{i:08d}.jpg", b"x")
            t = time.perf_counter()
            listed = sum(
                len(page.get("Contents", []))
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="c/")
            )
            raw = time.perf_counter() - t
            assert listed == n
            with tempfile.TemporaryDirectory() as out:
                cfg = build_config(source=f"s3://{bucket}/c/", destination=out, endpoint_url=endpoint, shard_size=500)
                t = time.perf_counter()
                planner = Planner(cfg)
                shards = list(planner.shards())
                first = time.perf_counter() - t
                template = ImageRecord(
                    image_id="",
                    source_uri="",
                    source_key="",
                    source_etag="",
                    source_size=1,
                    source_sha256=None,
                    width=None,
                    height=None,
                    bit_depth=None,
                    output_uri=None,
                    output_sha256=None,
                    heatmap_uri=None,
                    status="ok",
                    error=None,
                    confidence=0.9,
                )
                src = open_storage(cfg.source, endpoint)
                for shard in shards:  # as if the first run had committed every shard
                    write_fragment(
                        open_storage(out),
                        shard.shard_id,
                        [
                            replace(
                                template,
                                image_id=image_id_for(src.uri(o.key)),
                                source_uri=src.uri(o.key),
                                source_key=o.key,
                                source_etag=o.etag,
                                source_size=o.size,
                            )
                            for o in shard.objects
                        ],
                    )
                t = time.perf_counter()
                again = Planner(cfg)
                todo = list(again.shards())
                second = time.perf_counter() - t
                assert not todo and again.already_done == n
            results.append(
                {
                    "objects": n,
                    "bare_listing_s": round(raw, 2),
                    "first_plan_s": round(first, 2),
                    "incremental_plan_s": round(second, 2),
                    "incremental_s_per_100k": round(second / n * 100_000, 1),
                    "chromata_share_of_incremental_s": round(second - raw, 2),
                }
            )
            print(json.dumps(results[-1]))
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
