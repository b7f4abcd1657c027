"""Peak memory (RSS) of one worker colorizing a huge 16-bit scan; writes its section of docs/benchmarks.md.

For each size, a grey 16-bit TIFF (LZW, 256 x 256 tiles, written tile by tile so this script stays small
too) is colorized by a fresh worker process — ``ShardProcessor`` on a one-image shard, what a Ray actor
runs — with ``memory_budget_mb`` (default 2048). Four readings of that process, each its own:

* *after model load*: its resident memory once the model is loaded and warmed up (``VmRSS``);
* *loading peak*: its peak up to then (``VmHWM``: building the inference graph, warming up);
* *scan peak*: its peak while it colorizes the scan alone — the kernel's high-water mark is reset after the
  model is loaded (``/proc/self/clear_refs``), then read again (``VmHWM``);
* *peak RSS*: the process's peak over its whole life, the larger of the two peaks (the reset also resets what
  ``wait4`` would report).

What the scan itself costs is its peak less the memory after the model load; the budget bounds that part.

    python benchmarks/large_scans.py --megapixels 100 400 --c2pa   # each scan unsigned, then C2PA-signed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from chromata.config import build_config
    from chromata.pipeline import ShardProcessor, make_shards
    from chromata.archive.local import LocalStorage

    def status_kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise SystemExit(f"no {field} in /proc/self/status")

    src, out, budget, cert, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), *(sys.argv[4:6] or [None, None])
    cfg = build_config(source=src, destination=out, memory_budget_mb=budget, scratch_dir=out + "-scratch",
                       c2pa_cert=cert, c2pa_key=key)
    with ShardProcessor(cfg) as proc:
        loaded, loading_peak = status_kib("VmRSS"), status_kib("VmHWM")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the high-water mark starts again from the resident memory now
        t0 = time.perf_counter()
        rec = proc.process(next(make_shards(LocalStorage(src).list(), 1)), "bench").records[0]
        seconds, scan_peak = time.perf_counter() - t0, status_kib("VmHWM")
    print(json.dumps({"status": rec.status, "error": rec.error, "seconds": seconds, "rss_after_model_kib": loaded,
                      "loading_peak_kib": loading_peak, "scan_peak_kib": scan_peak, "width": rec.width,
                      "height": rec.height}))
    """
)


def write_scan(path: Path, side: int) -> None:
    """A side x side 16-bit grey scan with structure, generated and written one row of tiles at a time."""
    import tifffile

    tile = 256
    x = np.linspace(0.15, 0.85, side, dtype=np.float32)

    def tiles() -> Iterator[np.ndarray]:
        for y0 in range(0, side, tile):
            yy = np.arange(y0, min(y0 + tile, side), dtype=np.float32)[:, None]
            band = x[None, :] + 0.1 * np.sin(yy / 97.0) * np.cos(x[None, :] * 40.0)
            band += 0.2 * (((yy - side / 2) ** 2 + (x[None, :] * side - side / 3) ** 2) < (side / 5) ** 2)
            band16 = (np.clip(band, 0, 1) * 65535).astype(np.uint16)
            for x0 in range(0, side, tile):
                yield band16[:, x0 : x0 + tile]

    tifffile.imwrite(
        path, data=tiles(), shape=(side, side), dtype=np.uint16, tile=(tile, tile), compression="lzw", metadata=None
    )


def measure(megapixels: float, budget_mb: int, work: Path, sign: list[str]) -> dict[str, float | str | None]:
    side = round((megapixels * 1e6) ** 0.5)
    src, out = work / f"src-{side}", work / f"out-{side}"
    src.mkdir()
    t0 = time.perf_counter()
    write_scan(src / "scan.tif", side)
    made = time.perf_counter() - t0
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(src), str(out), str(budget_mb), *sign], stdout=subprocess.PIPE, text=True
    )
    stdout = child.stdout.read() if child.stdout else ""
    _, status, _ = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"worker failed for {megapixels} MP (exit {child.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    peak_mib = max(result["loading_peak_kib"], result["scan_peak_kib"]) / 1024
    return {
        "megapixels": side * side / 1e6,
        "side": side,
        "source_mib": round((src / "scan.tif").stat().st_size / 2**20, 1),
        "output_mib": round(sum(p.stat().st_size for p in out.rglob("*.tif")) / 2**20, 1),
        "status": result["status"],
        "error": result["error"],
        "seconds": round(result["seconds"], 1),
        "megapixels_per_s": round(side * side / 1e6 / result["seconds"], 2),
        "rss_after_model_mib": round(result["rss_after_model_kib"] / 1024, 0),
        "loading_peak_mib": round(result["loading_peak_kib"] / 1024, 0),
        "scan_peak_mib": round(result["scan_peak_kib"] / 1024, 0),
        "peak_rss_mib": round(peak_mib, 0),
        "budget_mib": budget_mb,
        "c2pa_signed": bool(sign),
        "within_budget": peak_mib <= budget_mb,
        "generate_seconds": round(made, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        signings: list[list[str]] = [[]]
        if args.c2pa:
            sys.path.insert(0, str(ROOT))
            from tests.certs import signing_chain

            signings.append([str(p) for p in signing_chain(Path(tmp))[:2]])
        for mp in args.megapixels:
            for sign in signings:
                rows.append(measure(mp, args.budget_mb, Path(tmp), sign))
                print(json.dumps(rows[-1]), flush=True)
                for p in Path(tmp).rglob("*.tif"):
                    p.unlink()
                for d in Path(tmp).glob("src-*"):
                    shutil.rmtree(d)
                for d in Path(tmp).glob("out-*"):
                    shutil.rmtree(d)
    return {"rows": rows}


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    sizes = " ".join(f"{mp:g}" for mp in args.megapixels)
    signed = " Signed rows: C2PA-signed with a test chain from `tests/certs.py`." if args.c2pa else ""
    lines = [
        "## Large scans: peak memory of one worker (`benchmarks/large_scans.py`)",
        "",
        f"`python benchmarks/large_scans.py --megapixels {sizes} --budget-mb {args.budget_mb}"
        f"{' --c2pa' if args.c2pa else ''}` — a grey 16-bit LZW TIFF (256² tiles) colorized by a fresh worker process "
        f"(`ShardProcessor` on a one-image shard, `memory_budget_mb` {args.budget_mb}). *After model load*: its "
        "resident memory with the model loaded and warmed up; *scan peak*: its peak while it colorizes the scan (the "
        "kernel's high-water mark reset after the model load); *peak RSS*: the process's peak over its life "
        f"(the larger of its loading and scan peaks).{signed} {machine}.",
        "",
        "| scan | source | output | C2PA | after model load | loading peak | scan peak | peak RSS | budget | time "
        "| MP/s | status |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['side']}² 16-bit ({row['megapixels']:.0f} MP) | {row['source_mib']} MiB | {row['output_mib']} MiB "
            f"| {'signed' if row['c2pa_signed'] else '—'} | {row['rss_after_model_mib']:.0f} MiB "
            f"| {row['loading_peak_mib']:.0f} MiB | {row['scan_peak_mib']:.0f} MiB | **{row['peak_rss_mib']:.0f} MiB** "
            f"| {row['budget_mib']} MiB | {row['seconds']} s | {row['megapixels_per_s']} "
            f"| {row['status'] if row['status'] == 'ok' else row['error']} |"
        )
    within = [row for row in r["rows"] if row["within_budget"]]
    own = max(row["scan_peak_mib"] - row["rss_after_model_mib"] for row in r["rows"])
    lines += [
        "",
        f"Peak RSS of the whole worker within the {args.budget_mb} MiB budget: {len(within)} of {len(r['rows'])} runs "
        f"(largest {max(row['peak_rss_mib'] for row in r['rows']):.0f} MiB); the most a scan added over the loaded "
        f"model: {own:.0f} MiB.",
    ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--megapixels", type=float, nargs="+", default=[100, 400])
    ap.add_argument("--budget-mb", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed after)")
    ap.add_argument("--c2pa", action="store_true", help="each scan unsigned, then C2PA-signed (a test chain)")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("large-scans", __doc__, add_arguments, run, markdown)


if __name__ == "__main__":
    main()
