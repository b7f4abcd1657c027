"""What ``chromata.pipeline.allocator``'s glibc settings do to a colorizer worker, each switched on and off.

The same worker steps run in a fresh process per setting (the settings are read when a process starts), on a
thread other than the main one, as a Ray actor's methods run, with the threads a 2-CPU actor gets:

* L* of a grey 2.5 MP scan (``color.lightness_of``), per scan;
* the model on a batch of 8 at 256² (``predict_ab``: network and distribution decoding), per image;
* the 8-bit merge at full resolution (``color.merge_chroma_to``), per scan;
* ``ShardProcessor`` on a shard of grey 2.5 MP JPEG scans (read, decode, L*, checks, model, merge, encode,
  label, write), images/s;

and the process's peak resident memory (``VmHWM``). Settings (``GLIBC_TUNABLES``; the process starts with no
``MALLOC_*`` variables):

* *glibc defaults*: none;
* *chromata's settings*: ``chromata.pipeline.allocator.tunables()`` (mmap and trim thresholds, one arena);
* *thresholds, arenas as glibc's*: the two thresholds without ``arena_max``;
* *as glibc 2.26–2.34 takes them*: what an older glibc is left with when it refuses the mmap threshold — the trim
  threshold and the one arena, which turn off glibc's adaptive mmap threshold (on this machine's glibc the same
  tunables minus ``mmap_threshold`` reproduce that state). Why ``chromata.pipeline.allocator`` gives nothing to such
  a glibc.

Settings alternate round by round; each figure is the median over rounds.

    python benchmarks/allocator.py --rounds 3

Writes its section of docs/benchmarks.md (``allocator``); no test asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    import cv2, numpy as np, torch
    from chromata.colormath import color, kernels
    from chromata.config import build_config
    from chromata.models import load_colorizer
    from chromata.models.base import warm_up
    from chromata.pipeline import ShardProcessor, make_shards
    from chromata.pipeline.scheduler import thread_split
    from chromata.archive.local import LocalStorage

    scans, out, threads, repeats = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    result = {}

    def per_item(fn, n):
        fn()  # warm: the first call pays for what the steps build once
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t) / (repeats * n) * 1000.0

    def work():
        model_threads, _ = thread_split(threads)
        torch.set_num_threads(model_threads)
        cv2.setNumThreads(1)
        kernels.prepare()
        files = sorted(scans.glob("*.jpg"))
        grey = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE)
        model = load_colorizer("builtin", device="cpu")
        warm_up(model)
        light = color.lightness_of(grey)
        batch = np.stack([color.working_lightness(color.reduce_lightness(light), model.input_size)] * 8)
        ab = model.predict_ab(batch).ab[0]
        result["L* (ms per scan)"] = per_item(lambda: color.lightness_of(grey), 1)
        result["model, batch of 8 (ms per image)"] = per_item(lambda: model.predict_ab(batch), 8)
        merge = lambda: color.merge_chroma_to(light, ab, np.uint8)  # noqa: E731
        result["merge at full resolution (ms per scan)"] = per_item(merge, 1)
        cfg = build_config(source=str(scans), destination=out, batch_size=8, workers=1)
        with ShardProcessor(cfg, model=model, threads=threads) as proc:
            objects = sorted(LocalStorage(str(scans)).list(), key=lambda o: o.key)
            proc.process(next(make_shards(objects[:8], 100_000)), "warm-up")
            t = time.perf_counter()
            records = proc.process(next(make_shards(objects, 100_000)), "bench").records
            assert all(r.status == "ok" for r in records), [r.error for r in records if r.status != "ok"]
            result["ShardProcessor (images/s)"] = len(records) / (time.perf_counter() - t)

    worker = threading.Thread(target=work, name="actor-method")  # not the main thread, as in an actor
    worker.start()
    worker.join()
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            result["peak RSS (MiB)"] = int(line.split()[1]) / 1024
    print(json.dumps(result))
    """
)

STEPS = (
    "L* (ms per scan)",
    "model, batch of 8 (ms per image)",
    "merge at full resolution (ms per scan)",
    "ShardProcessor (images/s)",
    "peak RSS (MiB)",
)


def settings() -> dict[str, str | None]:
    """Each setting's GLIBC_TUNABLES (None: unset)."""
    from chromata.pipeline import allocator

    ours = allocator.tunables()
    items = ours.split(":")
    return {
        "glibc defaults": None,
        "chromata's settings": ours,
        "thresholds, arenas as glibc's": ":".join(i for i in items if not i.startswith("glibc.malloc.arena_max=")),
        "as glibc 2.26–2.34 takes them": ":".join(i for i in items if not i.startswith("glibc.malloc.mmap_threshold=")),
    }


def run_child(scans: Path, out: Path, tunables: str | None, threads: int, repeats: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(scans), str(out), str(threads), str(repeats)],
        capture_output=True, text=True, env=env, timeout=1800, cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"allocator benchmark child failed ({tunables}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import make_scans

    from chromata.pipeline import allocator

    configs = settings()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        scans = Path(tmp) / "scans"
        make_scans(scans, args.images)
        for r in range(args.rounds):
            order = list(configs.items())
            for name, tunables in order if r % 2 == 0 else order[::-1]:
                out = Path(tmp) / f"out-{r}-{len(runs[name])}-{abs(hash(name))}"
                runs[name].append(run_child(scans, out, tunables, args.threads, args.repeats))
                print(json.dumps({"setting": name, **{k: round(v, 2) for k, v in runs[name][-1].items()}}), flush=True)
    medians = {name: {s: statistics.median(run[s] for run in rs) for s in STEPS} for name, rs in runs.items()}
    return {
        "glibc": os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else "",
        "takes_the_settings": allocator.accepts(allocator.glibc_version()),
        "tunables": configs,
        "medians": medians,
        "runs": runs,
    }


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    names = list(r["medians"])
    base, ours = r["medians"][names[0]], r["medians"][names[1]]
    lines = [
        "## Allocator settings of a colorizer worker (`benchmarks/allocator.py`)",
        "",
        f"`python benchmarks/allocator.py --images {args.images} --rounds {args.rounds} --repeats {args.repeats} "
        f"--threads {args.threads}` — each setting in a fresh process (its `GLIBC_TUNABLES`, no `MALLOC_*`), the "
        "steps on a thread other than the main one (as an actor's methods run) with the threads of an actor given "
        f"{args.threads} CPUs; grey 1920 × 1300 JPEG scans (2.5 MP) made from the bundled samples; medians of "
        f"{args.rounds} rounds, settings alternating. {r['glibc']}"
        f"{' (takes the settings)' if r['takes_the_settings'] else ' (refuses them: chromata gives it none)'}. "
        f"{machine}.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for step in STEPS:
        digits = 0 if step.startswith("peak") else 2 if "images/s" in step else 1
        lines.append(f"| {step} | " + " | ".join(f"{r['medians'][n][step]:.{digits}f}" for n in names) + " |")
    lines += [
        "",
        "With chromata's settings against glibc's defaults: L* "
        f"{base['L* (ms per scan)']:.1f} → {ours['L* (ms per scan)']:.1f} ms, the model "
        f"{base['model, batch of 8 (ms per image)']:.1f} → {ours['model, batch of 8 (ms per image)']:.1f} ms an "
        f"image, the merge {base['merge at full resolution (ms per scan)']:.1f} → "
        f"{ours['merge at full resolution (ms per scan)']:.1f} ms, `ShardProcessor` "
        f"{base['ShardProcessor (images/s)']:.2f} → {ours['ShardProcessor (images/s)']:.2f} images/s, for a peak of "
        f"{base['peak RSS (MiB)']:.0f} → {ours['peak RSS (MiB)']:.0f} MiB. The last column is what a glibc that "
        "refuses the mmap threshold (2.26–2.34) would run with if it were given them; "
        "`chromata.pipeline.allocator` gives such a glibc none, nor any worker whose environment already sets "
        "malloc's tunables.",
    ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--images", type=int, default=24, help="scans in the ShardProcessor shard")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per setting, settings alternating")
    ap.add_argument("--repeats", type=int, default=10, help="timed calls of each step per process")
    ap.add_argument("--threads", type=int, default=2, help="the CPUs of the actor the worker stands for")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("allocator", __doc__, add_arguments, measure, markdown)


if __name__ == "__main__":
    main()
