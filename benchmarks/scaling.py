"""Benchmark 4 of docs/benchmarks.md: the whole ``chromata run`` command with 1, 2, … colorizer actors.

Each configuration is one real ``chromata run`` in a subprocess (a local Ray instance, Prefect, the
manifest, the review queue) over the same scans: grey JPEG, PNG and 16-bit TIFF of 0.2–0.4 MP made from
the bundled samples. Two figures per run: the command's wall time (engine start-up included) and the
processing time the manifest records (first image started to last image finished) — the figure
``chromata.record.runs`` measures for every run and ``chromata plan`` estimates from, so the section also says what
the one-actor run's rate would have predicted for more actors. (``chromata plan`` has no fallback rate for a
destination without history: a figure measured here once went stale with the engine's next speed-up.)

    flock /tmp/chromata-tests.lock python benchmarks/scaling.py --images 200 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FORMATS = (".jpg", ".png", ".tif")


def make_scans(folder: Path, n: int, mp_range: tuple[float, float] = (0.2, 0.4), seed: int = 0) -> int:
    """``n`` grey scans (JPEG, PNG and 16-bit TIFF in turn) resized from the bundled samples; total bytes."""
    rng = np.random.default_rng(seed)
    samples = sorted(p for p in (ROOT / "examples" / "scans").iterdir() if p.suffix in (".jpg", ".png"))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        grey = cv2.imread(str(samples[i % len(samples)]), cv2.IMREAD_GRAYSCALE)
        scale = (rng.uniform(*mp_range) * 1e6 / (grey.shape[0] * grey.shape[1])) ** 0.5
        size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
        img = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        ext = FORMATS[i % len(FORMATS)]
        if ext == ".tif":
            img = img.astype(np.uint16) * 257
        cv2.imwrite(str(folder / f"scan-{i:04d}{ext}"), img)
    return sum(p.stat().st_size for p in folder.iterdir())


def run_once(src: Path, work: Path, workers: int, shard_size: int, batch_size: int) -> dict[str, Any]:
    """One ``chromata run`` into a fresh destination; its wall time and the manifest's run statistics."""
    from chromata.archive.local import LocalStorage
    from chromata.record.runs import run_history

    out = work / f"out-{workers}"
    cmd = [sys.executable, "-m", "chromata.cli", "run", str(src), "--out", str(out), "--workers", str(workers)]
    cmd += ["--shard-size", str(shard_size), "--batch-size", str(batch_size), "--device", "cpu"]
    cmd += ["--review-db", f"sqlite:///{work / f'queue-{workers}.sqlite'}"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("PREFECT_API_URL", None)  # the command's own Prefect, as in a user's shell
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"chromata run --workers {workers} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    (stats,) = run_history(LocalStorage(out))
    return {
        "workers": workers,
        "command_seconds": round(wall, 2),
        "processing_seconds": round(stats.seconds, 2),
        "images": stats.images,
        "ok": stats.ok,
        "source_bytes": stats.source_bytes,
        "images_per_second": round(stats.images_per_second, 3),
        "bytes_per_second_per_worker": round(stats.bytes_per_second_per_worker, 1),
        "load_before": round(load_before, 2),  # 1-min load average: other work sharing the cores shows here
        "load_after": round(os.getloadavg()[0], 2),
    }


def threads_sentence(cores: int, workers: list[int]) -> str:
    """What each actor of a run on one machine of ``cores`` cores is given and runs, for each actor count (the
    pool's ``resources_per_actor`` and the processor's ``thread_split``, as a run sizes them)."""
    from chromata.actors.colorizer import resources_per_actor
    from chromata.pipeline.scheduler import thread_split

    parts = []
    for n in workers:
        cpus = int(resources_per_actor(n, [{"CPU": float(cores)}])["num_cpus"])
        model, io = thread_split(cpus)
        parts.append(
            f"{n} actor{'s' if n > 1 else ''}: {cpus} CPU{'s' if cpus > 1 else ''} each, the model on {model} torch "
            f"thread{'s' if model > 1 else ''} beside {max(2, io)} reader and {max(2, io)} writer threads"
        )
    return (
        f"Each actor asks Ray for an equal share of the {cores} cores and sizes its threads from it ("
        + "; ".join(parts)
        + "), so extra actors on the same cores gain only by overlapping one actor's decoding and writing with "
        "another's inference."
    )


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, mp: str, machine: str, cores: int) -> str:
    base = results[0]
    lines = [
        f"## 4. Scaling: `chromata run` with {' and '.join(str(r['workers']) for r in results)} actors "
        "(`benchmarks/scaling.py`)",
        "",
        f"`python benchmarks/scaling.py --images {args.images} --workers {' '.join(map(str, args.workers))} "
        f"--shard-size {args.shard_size} --batch-size {args.batch_size} --repeats {args.repeats}` — {args.images} "
        f"grey scans of {mp} (JPEG, PNG and 16-bit TIFF in turn, from the bundled samples); each row is the fastest "
        f"of {args.repeats} real `chromata run`s (local Ray, Prefect, manifest, review queue; configurations "
        f"alternate), built-in model on the CPU. {machine}.",
        "",
        "| actors | command wall | processing (manifest) | every try | images/s | × 1 actor | MB/s per actor "
        "| load before, after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speedup = r["images_per_second"] / base["images_per_second"]
        tries = ", ".join(f"{t:.1f}" for t in r["tries"])
        lines.append(
            f"| {r['workers']} | {r['command_seconds']:.1f} s | {r['processing_seconds']:.1f} s | {tries} s "
            f"| {r['images_per_second']:.2f} | {speedup:.2f} × | {r['bytes_per_second_per_worker'] / 1e6:.2f} "
            f"| {r['load_before']:.1f}, {r['load_after']:.1f} |"
        )
    lines += [
        "",
        "*Command wall* includes starting Ray and Prefect; *processing* is what the manifest records (first image "
        "started to last image finished), the figure `chromata runs` and `chromata plan` use. "
        f"{threads_sentence(cores, [r['workers'] for r in results])} "
        "*Load* is the machine's 1-minute load average before and "
        f"after the run ({cores} cores; the previous try's own load is still in it): this machine is "
        "shared with other work, so the figures are a floor.",
        "",
    ]
    for r in results[1:]:  # what the planner would predict from the one-actor run's rate, against the run
        predicted = r["source_bytes"] / (base["bytes_per_second_per_worker"] * r["workers"])
        lines.append(
            f"From the one-actor run's rate ({base['bytes_per_second_per_worker'] / 1e6:.2f} MB/s), `chromata plan` "
            f"would predict {predicted:.1f} s of processing for {r['workers']} actors; the run took "
            f"{r['processing_seconds']:.1f} s (the estimate assumes actors scale linearly, which they do only "
            "when each has cores of its own)."
        )
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> tuple[int, list[dict[str, Any]]]:
    """Every configuration ``--repeats`` times, alternating (so passing load hits them alike); the fastest try
    of each (the least disturbed by other work on the cores), with every try's processing time."""
    tries: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "scans"
        total = make_scans(src, args.images)
        for round_ in range(args.repeats):
            for workers in args.workers:
                work = Path(tmp) / f"round-{round_}"
                work.mkdir(exist_ok=True)
                tries[workers].append(run_once(src, work, workers, args.shard_size, args.batch_size))
                print(json.dumps(tries[workers][-1]))
    results = []
    for workers in args.workers:
        best = min(tries[workers], key=lambda r: r["processing_seconds"])
        results.append({**best, "tries": [r["processing_seconds"] for r in tries[workers]]})
    return total, results


def main() -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shard-size", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each configuration; the fastest is reported")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--render", type=Path, help="write the section again from an earlier --json")
    args = ap.parse_args()
    if args.workers[0] != 1:
        ap.error("the first --workers must be 1: the others are compared with it")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import machine, write_section

    if args.render:  # the figures of an earlier run (its --json), with the machine, date and options they had
        saved = json.loads(args.render.read_text())
        if not {"machine", "date", "cores", "args"} <= saved.keys():
            ap.error(f"{args.render} does not record the machine, date and options it was measured with: measure again")
        total, results = saved["source_bytes"], saved["runs"]
        where, date, cores = saved["machine"], saved["date"], saved["cores"]
        for key, value in saved["args"].items():
            setattr(args, key, value)
    else:
        total, results = measure(args)
        where, date, cores = machine(), time.strftime("%Y-%m-%d"), os.cpu_count() or 1
    mp = "0.2–0.4 MP"
    body = markdown(results, args, mp, where, cores)
    print(body)
    if args.json:
        keep = {k: getattr(args, k) for k in ("images", "workers", "shard_size", "batch_size", "repeats")}
        saved = {"source_bytes": total, "args": keep, "runs": results, "machine": where, "date": date, "cores": cores}
        args.json.write_text(json.dumps(saved, indent=2))
    if not args.no_write:
        write_section("scaling", body)
    return results


if __name__ == "__main__":
    main()
