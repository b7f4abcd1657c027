"""Benchmark 5 of docs/benchmarks.md: peak memory (RSS) of one worker colorizing a huge 16-bit scan.

For each size, a grey 16-bit TIFF (LZW, 256 x 256 tiles, written tile by tile so this script stays small
too) is colorized by a fresh worker process — ``ShardProcessor`` on a one-image shard, what a Ray actor
runs — with ``memory_budget_mb`` (default 2048). The peak RSS of that process comes from the kernel
(``wait4``'s ``ru_maxrss``), next to the same process's peak right after loading the model (which the
processor warms up with one prediction, so this includes building its inference graph: on a small scan the
two can be equal).

    python benchmarks/large_scans.py --megapixels 100 400
    python benchmarks/large_scans.py --megapixels 100 --c2pa   # outputs C2PA-signed too (tests/certs.py chain)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

WORKER = textwrap.dedent(
    """
    import json, resource, sys, time
    from chromata.config import build_config
    from chromata.pipeline import ShardProcessor, make_shards
    from chromata.storage import LocalStorage

    src, out, budget, cert, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), *(sys.argv[4:6] or [None, None])
    cfg = build_config(source=src, destination=out, memory_budget_mb=budget, scratch_dir=out + "-scratch",
                       c2pa_cert=cert, c2pa_key=key)
    proc = ShardProcessor(cfg)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rec = proc.process(next(make_shards(LocalStorage(src).list(), 1)), "bench").records[0]
    print(json.dumps({"status": rec.status, "error": rec.error, "seconds": time.perf_counter() - t0,
                      "rss_after_model_kib": loaded, "width": rec.width, "height": rec.height}))
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
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"worker failed for {megapixels} MP (exit {child.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    peak_mib = usage.ru_maxrss / 1024
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
        "peak_rss_mib": round(peak_mib, 0),
        "budget_mib": budget_mb,
        "c2pa_signed": bool(sign),
        "within_budget": peak_mib <= budget_mb,
        "generate_seconds": round(made, 1),
    }


def main() -> list[dict[str, float | str | None]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, nargs="+", default=[100, 400])
    ap.add_argument("--budget-mb", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed after)")
    ap.add_argument("--c2pa", action="store_true", help="C2PA-sign the outputs (a test chain made on the spot)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        sign: list[str] = []
        if args.c2pa:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.certs import signing_chain

            sign = [str(p) for p in signing_chain(Path(tmp))[:2]]
        for mp in args.megapixels:
            results.append(measure(mp, args.budget_mb, Path(tmp), sign))
            print(json.dumps(results[-1]), flush=True)
            for p in Path(tmp).rglob("*.tif"):
                p.unlink()
    print("\n| scan | source | output | C2PA | peak RSS | after model load | budget | time | MP/s | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['side']}² 16-bit ({r['megapixels']:.0f} MP) | {r['source_mib']} MiB | {r['output_mib']} MiB | "
            f"{'signed' if r['c2pa_signed'] else '—'} | **{r['peak_rss_mib']:.0f} MiB** | "
            f"{r['rss_after_model_mib']:.0f} MiB | {r['budget_mib']} MiB | {r['seconds']} s | "
            f"{r['megapixels_per_s']} | {r['status'] if r['status'] == 'ok' else r['error']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results[-1] if len(results) == 1 else results, indent=2))
    return results


if __name__ == "__main__":
    main()
