"""What a run did, in numbers a person reads at the end of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from chromata.record.manifest import ImageRecord


@dataclass
class RunSummary:
    run_id: str
    source: str
    destination: str
    listed: int = 0
    already_done: int = 0
    deleted: int = 0
    deleted_examples: list[str] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    queued: int = 0
    needs_review: int = 0
    shards: int = 0
    seconds: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    failed_examples: list[tuple[str, str]] = field(default_factory=list)
    report_uri: str | None = None

    def add(self, records: Iterable[ImageRecord], queued: int) -> None:
        self.shards += 1
        self.queued += queued
        for r in records:
            if r.status == "ok":
                self.ok += 1
                self.needs_review += int(r.needs_review)
            elif r.status == "skipped":
                self.skipped += 1
            else:
                self.failed += 1
                self.failures[r.error_code or "unknown"] += 1
                if len(self.failed_examples) < 10:
                    self.failed_examples.append((r.source_key, r.error or ""))

    @property
    def processed(self) -> int:
        return self.ok + self.failed + self.skipped

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("run id", self.run_id),
            ("source", self.source),
            ("destination", self.destination),
            ("images listed", str(self.listed)),
            ("already done (skipped)", str(self.already_done)),
            ("gone from the source", str(self.deleted)),
            ("colorized", str(self.ok)),
            ("failed", str(self.failed)),
            ("skipped (already colour)", str(self.skipped)),
            ("sent to review", f"{self.needs_review} ({self.queued} new in queue)"),
            ("shards", str(self.shards)),
            ("wall time", f"{self.seconds:.1f} s"),
            ("throughput", f"{self.images_per_second:.2f} images/s"),
        ]

    def to_markdown(self) -> str:
        lines = ["# chromata run summary", ""]
        if self.report_uri:
            lines += [f"Full report: {self.report_uri}", ""]
        lines += ["| | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self.rows()]
        if self.deleted_examples:
            lines += ["", f"## {self.deleted} images recorded earlier are gone from the source", ""]
            lines += [f"- `{k}`" for k in self.deleted_examples]
        if self.failures:
            lines += ["", "## Failures by reason", "", "| reason | count |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in self.failures.most_common()]
            lines += ["", "| source key | error |", "|---|---|"]
            lines += [f"| `{k}` | {e.replace('|', '/')} |" for k, e in self.failed_examples]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "listed": self.listed,
            "already_done": self.already_done,
            "deleted": self.deleted,
            "deleted_examples": list(self.deleted_examples),
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "queued": self.queued,
            "needs_review": self.needs_review,
            "shards": self.shards,
            "seconds": round(self.seconds, 3),
            "failures": dict(self.failures),
            "report_uri": self.report_uri,
        }
