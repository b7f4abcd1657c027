"""The run report: one self-contained HTML page per run, written into the destination.

Counts, throughput, failure reasons, how the run routed images to the curators (the fixed score, or the
routing fit its rows name, adopted or not), the slowest images and a contact sheet of the least confident
outputs (thumbnails embedded, so the page works from S3 as well as from disk).
"""

from __future__ import annotations

import base64
import heapq
import html
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cv2
import numpy as np

from chromata.archive.storage import Storage
from chromata.monitoring.summary import RunSummary
from chromata.record.manifest import ImageRecord

log = logging.getLogger(__name__)
REPORT_PREFIX = "_chromata/reports"
THUMB_SIDE = 200


def report_key(run_id: str) -> str:
    return f"{REPORT_PREFIX}/{run_id}.html"


@dataclass
class ReportCollector:
    """Keeps only what the report shows, so a run of millions of images holds a few dozen records."""

    keep: int = 12
    _slow: list[tuple[float, str, ImageRecord]] = field(default_factory=list)
    _unsure: list[tuple[float, str, ImageRecord]] = field(default_factory=list)
    routing: Counter[str] = field(default_factory=Counter)  # colorized images per routing fit SHA-256 ("": none)
    _routing_of: dict[str, str] = field(default_factory=dict)  # params_json -> its routing fit (a run has few)

    def add(self, records: Iterable[ImageRecord]) -> None:
        for r in records:
            if r.status != "ok":
                continue
            params = r.params_json or "{}"
            if params not in self._routing_of:
                self._routing_of[params] = str(json.loads(params).get("routing_fit_sha256") or "")
            self.routing[self._routing_of[params]] += 1
            heapq.heappush(self._slow, (r.duration_ms, r.source_key, r))
            if len(self._slow) > self.keep:
                heapq.heappop(self._slow)
            heapq.heappush(self._unsure, (-(r.confidence or 0.0), r.source_key, r))
            if len(self._unsure) > self.keep:
                heapq.heappop(self._unsure)

    @property
    def slowest(self) -> list[ImageRecord]:
        return [r for _, _, r in sorted(self._slow, reverse=True)]

    @property
    def least_confident(self) -> list[ImageRecord]:
        return [r for _, _, r in sorted(self._unsure, reverse=True)]


def _thumbnail(storage: Storage, record: ImageRecord) -> str | None:
    from chromata.archive.storage import key_for_uri

    try:
        data = storage.read(key_for_uri(storage, record.output_uri or ""))
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return None
        scale = THUMB_SIDE / max(img.shape[:2])
        img = cv2.resize(
            img,
            (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None
    except Exception as exc:
        log.warning("no thumbnail for %s: %s", record.source_key, exc)
        return None


CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0 1.4rem} td,th{padding:.3rem .8rem;border-bottom:1px solid #e3e3e3;
text-align:left} th{background:#f5f5f7} .num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px} .card{width:210px;border:1px solid #ddd;border-radius:6px;padding:5px;
font-size:12px} .card img{display:block;margin:auto;max-width:200px;max-height:200px}
.bad{color:#a40000} .note{background:#fff7e0;border:1px solid #f0d890;padding:.6rem .9rem;border-radius:6px}
"""


def routing_lines(collector: ReportCollector, storage: Storage) -> list[str]:
    """How the run's colorized images were scored for routing, one line per way: the fixed score, or a routing
    fit (its SHA-256, whether it was adopted and why, from the fit file in the destination)."""
    from chromata.judgement import routing_fit

    lines = []
    for sha, n in sorted(collector.routing.items()):
        if not sha:
            lines.append(f"{n} images: the fixed score (no adopted routing fit)")
            continue
        try:
            found = routing_fit.find(storage, sha)
        except (OSError, ValueError) as exc:
            log.warning("could not read routing fit %s: %s", sha[:12], exc)
            found = None
        if found is None:
            lines.append(f"{n} images: routing fit {sha[:12]} (not among the destination's fits)")
            continue
        fit = found[1]
        verdict = fit.report.get("adoption", {}).get("why", "made before the adoption rule")
        state = "adopted" if fit.adopted else "NOT adopted (given explicitly)"
        lines.append(f"{n} images: routing fit {sha[:12]}, {state}: {verdict}")
    return lines


def render_html(
    summary: RunSummary, collector: ReportCollector, storage: Storage, review_url: str | None = None
) -> str:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td class=num>{e(v)}</td></tr>" for k, v in summary.rows())
    failures = "".join(f"<tr><td>{e(k)}</td><td class=num>{v}</td></tr>" for k, v in summary.failures.most_common())
    examples = "".join(
        f"<tr><td><code>{e(k)}</code></td><td class=bad>{e(err)}</td></tr>" for k, err in summary.failed_examples
    )
    slow = "".join(
        f"<tr><td><code>{e(r.source_key)}</code></td><td class=num>{r.duration_ms / 1000:.2f} s</td>"
        f"<td class=num>{r.width}×{r.height}</td></tr>"
        for r in collector.slowest
    )
    cards = []
    for r in collector.least_confident:
        thumb = _thumbnail(storage, r)
        img = f'<img src="{thumb}" alt="{e(r.source_key)}">' if thumb else "<p>(no preview)</p>"
        reasons = ", ".join(r.confidence_reasons) or "—"
        cards.append(
            f"<div class=card>{img}<b>{(r.confidence or 0):.2f}</b> <code>{e(r.source_key)}</code>"
            f"<br>{e(reasons)}</div>"
        )
    review = (
        f'<a href="{e(review_url)}">open the review queue</a>'
        if review_url
        else "<code>chromata review list</code> shows the review queue"
    )
    deleted = ""
    if summary.deleted:
        items = "".join(f"<li><code>{e(k)}</code></li>" for k in summary.deleted_examples)
        deleted = f"<h2>Gone from the source ({summary.deleted})</h2><ul>{items}</ul>"
    routing = "".join(f"<li>{e(line)}</li>" for line in routing_lines(collector, storage))
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html><html lang=en><meta charset=utf-8>
<title>chromata run {e(summary.run_id)}</title><style>{CSS}</style>
<h1>chromata run {e(summary.run_id)}</h1>
<p class=sub>{e(summary.source)} → {e(summary.destination)} · generated {generated}</p>
<p class=note>Colours in these outputs are a machine estimate, not a historical record. {review}.</p>
<h2>Summary</h2><table>{rows}</table>
{f"<h2>Failures by reason</h2><table><tr><th>reason</th><th>images</th></tr>{failures}</table>" if failures else ""}
{f"<table><tr><th>source</th><th>error</th></tr>{examples}</table>" if examples else ""}
{deleted}
{f"<h2>Routing to the curators</h2><ul>{routing}</ul>" if routing else ""}
<h2>Least confident outputs</h2><div class=cards>{"".join(cards) or "<p>none</p>"}</div>
<h2>Slowest images</h2><table><tr><th>source</th><th>time</th><th>size</th></tr>{slow}</table>
</html>
"""


def write_report(
    summary: RunSummary, collector: ReportCollector, storage: Storage, review_url: str | None = None
) -> str:
    """Render and write the report; returns its URI."""
    key = report_key(summary.run_id)
    storage.write_atomic(
        key, render_html(summary, collector, storage, review_url).encode(), content_type="text/html; charset=utf-8"
    )
    return storage.uri(key)
