"""Issue #17's profile: what a worker spends on each step of one still, before and after a change.

Each step of ``chromata.pipeline.still`` and the output path timed on its own, on one thread (torch and
OpenCV set to one thread), per grey 1920 × 1300 JPEG scan (2.5 MP, the throughput benchmark's files):
decoding, L*, the block reduction, the input checks, the model's input, the model (a batch of 8 through the
network and the distribution's decoding, per image), the full-resolution merge, the JPEG encode with its
XMP label, the heatmap and the hashes. Each tree runs in a fresh process in the environment its workers
get: this tree with ``chromata.pipeline.allocator``'s settings (what a colorizer actor starts with), a ``--before``
tree without them (it had none). The trees alternate for ``--rounds`` rounds; the median of each step is
reported.

    python benchmarks/pixel_steps.py --before REV

Writes its section of docs/benchmarks.md (``pixel-steps``); no test asserts a time.
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

STEPS = (
    "decode",
    "L*",
    "block reduction",
    "input checks",
    "model input",
    "model (batch of 8, per image)",
    "merge at full resolution",
    "JPEG encode + XMP label",
    "heatmap",
    "hashes",
)

CHILD = textwrap.dedent(
    """
    import hashlib, json, sys, time
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    import cv2, numpy as np, torch
    torch.set_num_threads(1); cv2.setNumThreads(1)
    from chromata.colormath import color
    from chromata.judgement import confidence, inputchecks
    from chromata.media import labels
    from chromata.media.imageio import EncodeOptions, decode, encode
    from chromata.models import load_colorizer
    from chromata.models.base import warm_up
    try:
        from chromata.colormath import kernels
        kernels.prepare()
    except ImportError:
        pass
    files = sorted(Path(sys.argv[2]).glob("*.jpg"))
    model = load_colorizer("builtin", device="cpu")
    warm_up(model)
    prov = labels.Provenance(source_uri="file:///scan.jpg", source_sha256="0" * 64, image_id="i", run_id="r",
                             model_name=model.name, model_sha256=model.weights_sha256, chromata_version="x",
                             confidence=0.5, created_at="2026-01-01T00:00:00Z",
                             digital_source_type="algorithmicallyEnhanced")
    xmp = labels.xmp_packet(prov)
    opts = EncodeOptions(jpeg_quality=90)
    spent = {}

    def timed(step, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        spent[step] = spent.get(step, 0.0) + time.perf_counter() - t
        return out

    for rep in range(2):  # the first pass warms every step (tables, caches); the second is measured
        spent.clear()
        batches = 0
        for b in range(0, len(files) - len(files) % 8, 8):  # a batch at a time, as a worker holds them
            prepared = []
            for f in files[b:b + 8]:
                data = f.read_bytes()
                image = timed("decode", decode, data, 10**9, None)
                light = timed("L*", color.lightness_of, image.pixels)
                small = timed("block reduction", color.reduce_lightness, light)
                checks = inputchecks.InputChecks("any")
                timed("input checks", checks.add, small, image.width, image.height, None, None)
                work = timed("model input", color.working_lightness, small, model.input_size)
                prepared.append((data, image, light, work))
            pred = timed("model (batch of 8, per image)", model.predict_ab, np.stack([p[3] for p in prepared]))
            batches += 1
            for (data, image, light, _), ab, unc in zip(prepared, pred.ab, pred.uncertainty):
                pixels = timed("merge at full resolution", color.merge_chroma_to, light, ab, np.uint8)
                jpeg = timed("JPEG encode + XMP label", lambda: labels.label_output(
                    data, encode(pixels, ".jpg", opts), ".jpg", xmp, image.width, image.height)[0])
                timed("heatmap", confidence.heatmap_png, unc, image.width, image.height)
                timed("hashes", lambda: (hashlib.sha256(data).hexdigest(), hashlib.sha256(jpeg).hexdigest()))
    print(json.dumps({k: v / (8 * batches) * 1000 for k, v in spent.items()}))
    """
)


def run_tree(tree: Path, scans: Path, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(scans)], capture_output=True, text=True, env=env, timeout=1800
    )
    if proc.returncode != 0:
        raise SystemExit(f"pixel steps failed in {tree}: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import before_tree, make_scans

    from chromata.pipeline import allocator

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scans = work / "scans"
        make_scans(scans, args.images)
        base = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        trees: dict[str, tuple[Path, dict[str, str]]] = {"this tree": (ROOT, {**base, **allocator.worker_env(base)})}
        if args.before:
            trees = {f"before ({args.before})": (before_tree(args.before, work), base), **trees}
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
        try:
            for r in range(args.rounds):
                order = list(trees.items())
                for label, (tree, env) in order if r % 2 == 0 else order[::-1]:
                    runs[label].append(run_tree(tree, scans, env))
                    print(json.dumps({"tree": label, **{k: round(v, 2) for k, v in runs[label][-1].items()}}))
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "before")])
    medians = {label: {s: statistics.median(r[s] for r in rs) for s in STEPS} for label, rs in runs.items()}
    return {"images": args.images, "rounds": args.rounds, "ms_per_image": medians}


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    labels = list(r["ms_per_image"])
    lines = [
        "## What a worker spends on each step of a still (`benchmarks/pixel_steps.py`)",
        "",
        f"`python benchmarks/pixel_steps.py --images {r['images']} --rounds {r['rounds']}"
        + (f" --before {args.before}" if args.before else "")
        + f"` — milliseconds per grey 1920 × 1300 JPEG scan (2.5 MP), each step alone on one thread, median of "
        f"{r['rounds']} rounds over {r['images']} scans; each tree in a fresh process in its workers' environment "
        f"(this tree: `chromata.pipeline.allocator`'s settings). {machine}.",
        "",
        "| step | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for step in STEPS:
        lines.append(f"| {step} | " + " | ".join(f"{r['ms_per_image'][t][step]:.1f}" for t in labels) + " |")
    totals = [sum(r["ms_per_image"][t].values()) for t in labels]
    lines.append("| **all steps** | " + " | ".join(f"**{v:.1f}**" for v in totals) + " |")
    if len(labels) == 2:
        lines += ["", f"One core's work per scan, after / before: **{totals[1] / totals[0]:.2f}**."]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--images", type=int, default=32, help="scans (a multiple of 8: the model runs in batches)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", metavar="REV", help="also time the steps with the code of this commit")


def check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.images < 8 or args.images % 8:
        ap.error("--images must be a multiple of 8 (the model runs in batches of 8)")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("pixel-steps", __doc__, add_arguments, measure, markdown, check)


if __name__ == "__main__":
    main()
