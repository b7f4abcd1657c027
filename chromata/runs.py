"""Run history from the manifest, and time estimates for the work a new run would do."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.compute as pc

from chromata.manifest import read_manifest
from chromata.storage import Storage

# BEGIN reference (written by benchmarks/scaling.py)
# Fallback throughput when a destination has no history: `benchmarks/scaling.py --images 200`, built-in model, 1
# CPU actor, 200 scans of 0.2–0.4 MP, 27.2 MB in 24.6 s (2026-12-02, 2 cores).
REFERENCE_BYTES_PER_SECOND_PER_WORKER = 1.101e+06
# END reference


@dataclass(frozen=True)
class RunStats:
    run_id: str
    started: datetime
    finished: datetime
    ok: int
    failed: int
    skipped: int
    needs_review: int
    source_bytes: int
    workers: int

    @property
    def images(self) -> int:
        return self.ok + self.failed + self.skipped

    @property
    def seconds(self) -> float:
        return max((self.finished - self.started).total_seconds(), 1e-3)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def bytes_per_second_per_worker(self) -> float:
        return self.source_bytes / self.seconds / max(self.workers, 1)


def run_history(storage: Storage) -> list[RunStats]:
    """One entry per run that committed rows to this destination, oldest first."""
    cols = ["run_id", "status", "needs_review", "started_at", "finished_at", "source_size", "params_json"]
    table = read_manifest(storage, columns=cols)
    out = []
    for run_id in sorted(set(table["run_id"].to_pylist())):
        t = table.filter(pc.equal(table["run_id"], run_id))
        status = t["status"].to_pylist()
        params = json.loads(t["params_json"][0].as_py() or "{}")
        out.append(
            RunStats(
                run_id=run_id,
                started=pc.min(t["started_at"]).as_py().astimezone(UTC),
                finished=pc.max(t["finished_at"]).as_py().astimezone(UTC),
                ok=status.count("ok"),
                failed=status.count("failed"),
                skipped=status.count("skipped"),
                needs_review=sum(bool(v) for v in t["needs_review"].to_pylist()),
                source_bytes=int(pc.sum(t["source_size"]).as_py() or 0),
                workers=int(params.get("workers") or 1),
            )
        )
    return sorted(out, key=lambda r: r.started)


@dataclass(frozen=True)
class Estimate:
    images: int
    bytes: int
    workers: int
    bytes_per_second_per_worker: float
    basis: str

    @property
    def hours(self) -> float:
        return self.bytes / (self.bytes_per_second_per_worker * self.workers) / 3600.0


def estimate(images: int, total: int, history: list[RunStats], workers: int) -> Estimate:
    """Expected processing time for ``images`` of ``total`` bytes: the latest run's measured bytes/s per
    worker, else the reference."""
    usable = [r for r in history if r.source_bytes > 0 and r.images >= 10]
    if usable:
        latest = usable[-1]
        rate, basis = latest.bytes_per_second_per_worker, f"measured in run {latest.run_id}"
    else:
        rate, basis = REFERENCE_BYTES_PER_SECOND_PER_WORKER, "reference: built-in model, 1 CPU actor (2-core machine)"
    return Estimate(images, total, workers, rate, basis)


def find_run(storage: Storage, run_id: str) -> RunStats | None:
    """One run's statistics, if the destination holds that run."""
    return next((r for r in run_history(storage) if r.run_id == run_id), None)


def failure_counts(storage: Storage, run_id: str) -> list[tuple[str, int]]:
    """Why a run's images failed: (failure code, images), most frequent first."""
    table = read_manifest(storage, columns=["run_id", "error"])
    errors = table.filter(pc.equal(table["run_id"], run_id))["error"].to_pylist()
    return Counter(e.split(":", 1)[0] for e in errors if e).most_common()
