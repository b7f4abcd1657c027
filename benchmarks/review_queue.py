"""Review-queue statistics at archive scale: the SQL aggregates against the per-item Python they replaced.

What each shard commit (the queue gauges), the admin page (health) and the queue page (facets) cost with
N items in the queue (a third of them decided, reasons drawn from the pipeline's set), on SQLite. The
"per item" column is the code these replaced, run on the same database: the gauges from every pending
item (``pending_summary`` + the metrics' tally), health from every decision loaded into Python, facets
from every stored reasons list parsed.

    flock /tmp/chromata-tests.lock python3 benchmarks/review_queue.py [--sizes 10000 50000]

Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from benchmarks._report import machine, write_section
from chromata.monitoring.metrics import METRICS
from chromata.record.manifest import ImageRecord
from chromata.review.schema import ReviewDecision, ReviewItem
from chromata.review.store import ReviewQueue

REASONS = ["low_contrast", "high_chroma_uncertainty", "skin_tone", "sky", "small_image"]


def _records(n: int) -> list[ImageRecord]:
    base = ImageRecord(
        image_id="", source_uri="", source_key="", source_etag="e", source_size=1, source_sha256="s" * 64,
        width=8, height=8, bit_depth=8, output_uri="", output_sha256="o" * 64, heatmap_uri=None, status="ok",
        error=None, confidence=0.0, needs_review=True, model_sha256="m", run_id="r", shard_id="s",
    )  # fmt: skip
    return [
        replace(
            base,
            image_id=f"{i:024x}",
            source_uri=f"/src/{i}.jpg",
            source_key=f"{i}.jpg",
            output_uri=f"/out/{i}.jpg",
            output_key=f"{i}.jpg",
            confidence=(i % 997) / 997,
            confidence_reasons=REASONS[: i % 4],
        )
        for i in range(n)
    ]


def _fill(q: ReviewQueue, n: int) -> None:
    recs = _records(n)
    for start in range(0, n, 1000):  # one shard commit per 1000 images
        q.enqueue(recs[start : start + 1000], collection=f"coll-{start // 10000}")
    q.add_user("ada", "correct horse battery")
    now = time.time()
    with Session(q.engine) as s, s.begin():
        ids = list(s.scalars(select(ReviewItem.id).order_by(ReviewItem.id).limit(n // 3)))
        s.execute(
            insert(ReviewDecision),
            [{"item_id": i, "image_id": f"{i:024x}", "username": "ada", "decision": "approve", "note": "",
              "decided_at": now - (i % 60) * 86400} for i in ids],
        )  # fmt: skip
        s.execute(ReviewItem.__table__.update().where(ReviewItem.id.in_(ids)).values(status="approved"))


def _old_health(q: ReviewQueue) -> dict[str, Any]:
    with Session(q.engine) as s:
        rows = s.execute(select(ReviewDecision.username, ReviewDecision.decided_at)).all()
    per_day: dict[tuple[str, str], int] = {}
    for user, ts in rows:
        day = time.strftime("%Y-%m-%d", time.gmtime(ts))
        per_day[(user, day)] = per_day.get((user, day), 0) + 1
    return {"pending": q.count("pending"), "per_day": per_day}


def _old_facets(q: ReviewQueue) -> list[str]:
    with Session(q.engine) as s:
        return sorted({r for js in s.scalars(select(ReviewItem.reasons_json).distinct()) for r in json.loads(js)})


def _median_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure(n: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        q = ReviewQueue(f"sqlite:///{Path(tmp) / 'review.sqlite'}")
        _fill(q, n)
        names = ["coll-0"]
        out = {
            "queue gauges (each shard commit)": (
                _median_ms(lambda: METRICS.observe_review_queue(q.pending_summary(), names)),
                _median_ms(lambda: METRICS.observe_review_counts(*q.pending_stats(), names)),
            ),
            "admin health": (_median_ms(lambda: _old_health(q)), _median_ms(q.health)),
            "queue page facets": (_median_ms(lambda: _old_facets(q)), _median_ms(q.facets)),
        }
        q.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    args = ap.parse_args()
    results = {n: measure(n) for n in args.sizes}
    lines = [
        "## Review queue statistics at scale (`benchmarks/review_queue.py`)",
        "",
        f"SQLite, median of 5; a third of the items decided. {machine()}.",
        "",
        "| operation | items | per item (before) | SQL aggregate (now) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for n, ops in results.items():
        for op, (old, new) in ops.items():
            lines.append(f"| {op} | {n:,} | {old:.1f} ms | {new:.1f} ms |")
    body = "\n".join(lines)
    print(body)
    write_section("review_queue", body)


if __name__ == "__main__":
    main()
