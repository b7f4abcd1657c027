"""Run history from the manifest, and time estimates for the work a new run would do."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.compute as pc

from chromata.archive.storage import Storage
from chromata.record.manifest import read_manifest

# There is no fallback rate for a destination without history: a figure measured once, on one machine and one
# tree, goes stale with every change to the engine (the last one predated the #17 speed-ups) and says little about
# another machine's cores or another collection's formats. The first run measures the rate; plans after it use it.
UNKNOWN_BASIS = "unknown: no run on this destination yet; its first run measures the rate (chromata runs list)"


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
    bytes_per_second_per_worker: float | None  # None: no run on this destination has measured it
    basis: str

    @property
    def hours(self) -> float | None:
        if self.bytes_per_second_per_worker is None:
            return None
        return self.bytes / (self.bytes_per_second_per_worker * self.workers) / 3600.0


def estimate(images: int, total: int, history: list[RunStats], workers: int) -> Estimate:
    """Expected processing time for ``images`` of ``total`` bytes: the latest run's measured bytes/s per
    worker; unknown (``hours`` None) when the destination has no run of at least 10 images to measure."""
    usable = [r for r in history if r.source_bytes > 0 and r.images >= 10]
    if not usable:
        return Estimate(images, total, workers, None, UNKNOWN_BASIS)
    latest = usable[-1]
    return Estimate(images, total, workers, latest.bytes_per_second_per_worker, f"measured in run {latest.run_id}")


def find_run(storage: Storage, run_id: str) -> RunStats | None:
    """One run's statistics, if the destination holds that run."""
    return next((r for r in run_history(storage) if r.run_id == run_id), None)


def failure_counts(storage: Storage, run_id: str) -> list[tuple[str, int]]:
    """Why a run's images failed: (failure code, images), most frequent first."""
    table = read_manifest(storage, columns=["run_id", "error"])
    errors = table.filter(pc.equal(table["run_id"], run_id))["error"].to_pylist()
    return Counter(e.split(":", 1)[0] for e in errors if e).most_common()
