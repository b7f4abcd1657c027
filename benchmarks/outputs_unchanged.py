"""A change that must not change behaviour (a move, a refactor): what ``chromata run`` writes for the bundled
sample, and ``chromata eval``'s figures, with the code of this tree and of a commit before the change.

* ``chromata run examples/scans`` with each tree (``--before REV``: a git worktree, its own ``flows/`` and
  ``actors/`` linked inside its package so every process, Ray's workers included, runs that tree's code),
  into the same destination path one after the other. Every file is compared byte for byte once the run id and
  the timestamps (which differ between any two runs) are replaced by placeholders of the same length (a PNG's
  chunk checksums recomputed): the
  derivatives with their embedded XMP, the sidecars and the heatmaps. The manifest and the review queue are
  compared row by row without their run id, timestamp and duration columns (and the output hash, which covers
  the embedded run id). The HTML run report is throughput and timings: only its presence is compared.
* ``chromata eval`` of the built-in model on the validation photos with each tree: every photo's CIEDE2000,
  colourfulness and uncertainty, to four decimals.

    python benchmarks/outputs_unchanged.py --before REV

Writes its section of docs/benchmarks.md (``outputs-unchanged``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality_unchanged import METRICS, evaluate, tree_at, tree_env  # noqa: E402

ISO_TIME = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOLATILE_COLUMNS = {"run_id", "started_at", "finished_at", "duration_ms", "output_sha256", "created_at",
                    "enqueued_at", "updated_at", "decided_at", "claimed_at", "claim_expires_at"}  # fmt: skip


def run_sample(tree: Path, dest: Path, keep: Path) -> None:
    """``chromata run examples/scans --out DEST`` with ``tree``'s code, then ``DEST`` moved to ``keep``."""
    cmd = [sys.executable, "-m", "chromata.cli", "run", str(ROOT / "examples" / "scans"), "--out", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tree_env(tree), cwd=dest.parent, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"chromata run failed with {tree}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    shutil.move(dest, keep)


def _manifest_rows(out: Path) -> tuple[list[dict[str, Any]], set[str]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for fragment in sorted((out / "_chromata" / "manifest").glob("*.parquet")):
        rows += pq.read_table(fragment).to_pylist()
    run_ids = {str(r["run_id"]) for r in rows}
    kept = [{k: v for k, v in r.items() if k not in VOLATILE_COLUMNS} for r in rows]
    return sorted(kept, key=lambda r: str(r["source_key"])), run_ids


def _queue_rows(out: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(out / "_chromata" / "review.sqlite")
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        found: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables:
            cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if c[1] not in VOLATILE_COLUMNS]
            if not cols:
                continue
            found[table] = sorted(db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)
        return found
    finally:
        db.close()


def _normalised(data: bytes, run_ids: set[str]) -> bytes:
    for run_id in run_ids:
        data = data.replace(run_id.encode(), b"R" * len(run_id))
    data = ISO_TIME.sub(lambda m: b"T" * len(m.group(0)), data)
    if data.startswith(PNG_SIGNATURE):  # a chunk's CRC covers the run id in its XMP: recomputed after the swap
        out, at = bytearray(data[:8]), 8
        while at + 8 <= len(data):
            size = struct.unpack(">I", data[at : at + 4])[0]
            body = data[at + 4 : at + 8 + size]
            out += data[at : at + 4] + body + struct.pack(">I", zlib.crc32(body))
            at += 12 + size
        data = bytes(out + data[at:])
    return data


def compare_runs(before: Path, after: Path) -> dict[str, Any]:
    def files(out: Path) -> set[str]:
        return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}

    def kind(rel: str) -> str:
        if rel.startswith("_chromata/reports/"):
            return "report"
        if rel.startswith("_chromata/manifest/") or rel == "_chromata/review.sqlite":
            return "record"
        return "heatmap" if rel.startswith("_chromata/heatmaps/") else "output"

    old_rows, old_runs = _manifest_rows(before)
    new_rows, new_runs = _manifest_rows(after)
    old_files = {(kind(f), f if kind(f) != "report" else "report") for f in files(before)}
    new_files = {(kind(f), f if kind(f) != "report" else "report") for f in files(after)}
    compared = {"output": 0, "heatmap": 0}
    differing: list[str] = []
    for k, rel in sorted(old_files & new_files):
        if k in compared:
            compared[k] += 1
            a = _normalised((before / rel).read_bytes(), old_runs)
            b = _normalised((after / rel).read_bytes(), new_runs)
            if a != b:
                differing.append(rel)
    return {
        "files_only_before": sorted(f for _, f in old_files - new_files),
        "files_only_after": sorted(f for _, f in new_files - old_files),
        "outputs_compared": compared["output"],
        "heatmaps_compared": compared["heatmap"],
        "files_differing": differing,
        "manifest_rows": len(new_rows),
        "manifest_rows_equal": old_rows == new_rows,
        "queue_rows": sum(len(v) for v in _queue_rows(after).values()),
        "queue_rows_equal": _queue_rows(before) == _queue_rows(after),
    }


def compare_eval(old: Any, new: Any) -> dict[str, Any]:
    assert list(old.index) == list(new.index), "the two trees evaluated different photos"
    out: dict[str, Any] = {"photos": len(new)}
    for col in METRICS:
        out[col] = {
            "before": round(float(old[col].mean()), 4),
            "after": round(float(new[col].mean()), 4),
            "photos_differing_at_4_decimals": int((old[col].round(4) != new[col].round(4)).sum()),
        }
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tree_at(args.before) as (before, work):
        for adapter in ("flows", "actors"):  # chromata.flows / chromata.actors of that tree, not this one
            (before / "chromata" / adapter).symlink_to(before / adapter, target_is_directory=True)
        run_sample(before, work / "out", work / "run-before")
        run_sample(ROOT, work / "out", work / "run-after")
        runs = compare_runs(work / "run-before", work / "run-after")
        old = evaluate(before, args.data.resolve(), work / "eval-before", args.limit)
        new = evaluate(ROOT, args.data.resolve(), work / "eval-after", args.limit)
    return {"run": runs, "eval": compare_eval(old, new)}


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    run, ev = r["run"], r["eval"]
    same_files = not run["files_only_before"] and not run["files_only_after"]
    lines = [
        "## Outputs unchanged by a refactor (`benchmarks/outputs_unchanged.py`)",
        "",
        f"`python benchmarks/outputs_unchanged.py --before {args.before}` — the code of {args.before} and of this "
        f"tree. {machine}.",
        "",
        "| | before vs this tree |",
        "|---|---|",
        f"| `chromata run examples/scans`: the same files | {'yes' if same_files else 'no: ' + str(run)} |",
        f"| derivatives (with embedded XMP) and heatmaps byte-identical, run id and timestamps aside | "
        f"{run['outputs_compared'] - sum(not f.startswith('_chromata/') for f in run['files_differing'])} of "
        f"{run['outputs_compared']} derivatives, "
        f"{run['heatmaps_compared'] - sum(f.startswith('_chromata/') for f in run['files_differing'])} of "
        f"{run['heatmaps_compared']} heatmaps |",
        f"| manifest rows equal, run id, timestamps, durations and output hash aside | "
        f"{'yes' if run['manifest_rows_equal'] else '**no**'} ({run['manifest_rows']} rows) |",
        f"| review queue rows equal, the same columns aside | {'yes' if run['queue_rows_equal'] else '**no**'} "
        f"({run['queue_rows']} rows) |",
    ]
    for col, label in METRICS.items():
        m = ev[col]
        lines.append(
            f"| `chromata eval`, {ev['photos']} validation photos: {label} | {m['before']:.4f} → {m['after']:.4f}; "
            f"{m['photos_differing_at_4_decimals']} photos differ at four decimals |"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    ap.add_argument("--before", metavar="REV", required=True, help="the commit to compare with")
    ap.add_argument("--limit", type=int, help="only the first N validation photos (a smoke run)")


def check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from throughput import installed_here  # "this tree" runs the installed chromata

    installed_here(ap)
    if os.environ.get("PYTHONPATH"):
        ap.error("unset PYTHONPATH: each tree is put first on the path by this script")


def main() -> dict[str, Any]:
    from _report import main_for

    return main_for("outputs-unchanged", __doc__, add_arguments, measure, markdown, check)


if __name__ == "__main__":
    main()
