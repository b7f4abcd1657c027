"""Film reels larger than a worker's memory budget: peak memory (RSS) of one worker colorizing them.

A grey 1080p reel (a real photograph panned, with film grain; uncompressed I420 AVI, as archive masters
are often kept, about 3 MiB a frame) of each length is colorized by a fresh worker process
(``ShardProcessor`` on a one-film shard, what a Ray actor runs) with ``memory_budget_mb`` (default 1024).
Peak RSS comes from the kernel (``wait4``'s ``ru_maxrss``). ``--before REV`` runs the same worker on another
commit's engine too (a git worktree made for the run), so the streamed engine is compared with the one that
read a reel whole.

    python benchmarks/film_memory.py --seconds 4 16 --before 17ef987

Writes its section of docs/benchmarks.md (``film-memory``).
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
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
FPS = 24.0
WORKER = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[4])  # the engine under test
    import chromata
    from chromata.config import build_config
    from chromata.pipeline import ShardProcessor, make_shards
    from chromata.archive.local import LocalStorage

    src, out, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = build_config(source=src, destination=out, memory_budget_mb=budget, scratch_dir=out + "-scratch")
    proc = ShardProcessor(cfg)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rec = proc.process(next(make_shards(LocalStorage(src).list(), 1)), "bench").records[0]
    print(json.dumps({"status": rec.status, "error": rec.error, "seconds": time.perf_counter() - t0,
                      "frames": rec.frames, "rss_after_model_kib": loaded, "engine": chromata.__file__}))
    """
)


def write_reel(path: Path, seconds: float, width: int = 1920, height: int = 1080) -> int:
    """A grey pan across a bundled sample photo with per-frame grain; returns the frame count."""
    photo = cv2.imread(str(sorted((ROOT / "examples" / "scans").glob("*.jpg"))[0]), cv2.IMREAD_GRAYSCALE)
    photo = cv2.resize(photo, (width * 5 // 4, height * 5 // 4), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    grain = [rng.normal(0, 7, (height, width)).astype(np.int16) for _ in range(8)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"I420"), FPS, (width, height))  # uncompressed
    frames = round(seconds * FPS)
    dx, dy = photo.shape[1] - width, photo.shape[0] - height
    for t in range(frames):
        x, y = int(dx * t / max(1, frames - 1)), int(dy * t / max(1, frames - 1))
        frame = np.clip(photo[y : y + height, x : x + width].astype(np.int16) + grain[t % 8], 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return frames


def measure(reel: Path, engine: Path, budget_mb: int, work: Path) -> dict[str, object]:
    out = work / f"out-{reel.stem}-{engine.name}"
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(reel.parent), str(out), str(budget_mb), str(engine)],
        stdout=subprocess.PIPE, text=True, cwd=str(work),
    )  # fmt: skip
    stdout = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"worker failed on {reel} with the engine in {engine}")
    result = json.loads(stdout.strip().splitlines()[-1])
    assert Path(result["engine"]).resolve().is_relative_to(engine.resolve()), result["engine"]
    outputs = [p for p in out.rglob("*.avi")]
    return {
        "reel_mib": round(reel.stat().st_size / 2**20, 1),
        "frames": result["frames"],
        "status": result["status"],
        "error": result["error"],
        "seconds": round(result["seconds"], 1),
        "frames_per_s": round((result["frames"] or 0) / result["seconds"], 2),
        "rss_after_model_mib": round(result["rss_after_model_kib"] / 1024),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "budget_mib": budget_mb,
        "output_mib": round(sum(p.stat().st_size for p in outputs) / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[4.0, 16.0], help="reel lengths (24 fps)")
    ap.add_argument("--budget-mb", type=int, default=1024)
    ap.add_argument("--before", help="a git revision whose engine is measured too (the reel read whole)")
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed after)")
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        engines = [("streamed (this tree)", ROOT)]
        if args.before:
            old = work / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old), args.before],
                           check=True)  # fmt: skip
            engines.append((f"read whole ({args.before})", old))
        try:
            for seconds in args.seconds:
                folder = work / f"reel-{seconds:g}s"
                folder.mkdir()
                t0 = time.perf_counter()
                write_reel(folder / "reel.avi", seconds)
                made = time.perf_counter() - t0
                for name, root in engines:
                    measured = measure(folder / "reel.avi", root, args.budget_mb, work)
                    row = {"engine": name, "reel_seconds": seconds, **measured}
                    row["generate_seconds"] = round(made, 1)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    for p in work.glob("out-*"):
                        subprocess.run(["rm", "-rf", str(p)], check=True)
                (folder / "reel.avi").unlink()
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "before")],
                               check=False)  # fmt: skip
    table = [
        "| engine | reel | file | peak RSS | RSS after model load | budget | time | frames/s | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['engine']} | 1080p, {r['reel_seconds']:g} s ({r['frames']} frames) | {r['reel_mib']} MiB | "
            f"**{r['peak_rss_mib']} MiB** | {r['rss_after_model_mib']} MiB | {r['budget_mib']} MiB | "
            f"{r['seconds']} s | "
            f"{r['frames_per_s']} | {r['status'] if r['status'] == 'ok' else r['error']} |"
        )
    body = "\n".join(
        [
            "## Film reels larger than the memory budget (`benchmarks/film_memory.py`)",
            "",
            f"`python benchmarks/film_memory.py --seconds {' '.join(f'{s:g}' for s in args.seconds)}"
            f"{f' --before {args.before}' if args.before else ''}` — a grey uncompressed 1080p reel colorized by a"
            f" fresh worker process (`ShardProcessor`, `memory_budget_mb` {args.budget_mb}); peak RSS from the kernel"
            " (`wait4`). The streamed engine decodes and encodes a chunk of frames at a time (chunk sized by the"
            " budget) through local files, so its peak does not grow with the reel.",
            "",
            *table,
            "",
            f"Machine: {machine()}.",
        ]
    )
    print(body)
    if not args.no_doc:
        write_section("film-memory", body)


if __name__ == "__main__":
    main()
