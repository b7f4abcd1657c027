"""Model speed and memory: every model family and variant at its working size, so a museum can plan.

Each configuration runs in a process of its own (so its peak memory is its own): the weights are written in
the family's published layout (random weights by the family's deterministic recipe — speed and memory do not
depend on their values), loaded through ``chromata.models.load_colorizer`` as a run loads them, warmed up, and
``predict_ab`` is timed on batches of grey images for at least ``--min-seconds``. Reported: images/s, the
process's resident memory after loading and its peak while predicting (CPU), or the peak CUDA memory the
model allocated (GPU), and the parameter count. ``predict_ab`` includes the family's pre- and post-processing
and the confidence proxy, not decoding or merging the full-resolution image (benchmarks/throughput.py).

    python benchmarks/model_speed.py                       # every family, CPU, writes docs/benchmarks.md
    python benchmarks/model_speed.py --device cuda --batch 8 --no-write --json gpu.json   # on a GPU node
    python benchmarks/model_speed.py --only ddcolor:tiny:512 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (family, variant, working size): the published families at their default and at 256, the others at theirs
CONFIGS: tuple[tuple[str, str, int], ...] = (
    ("builtin", "v2", 256),
    ("eccv16", "", 256),
    ("siggraph17", "", 256),
    ("ddcolor", "tiny", 256),
    ("ddcolor", "tiny", 512),
    ("ddcolor", "large", 256),
    ("ddcolor", "large", 512),
    ("deoldify", "artistic", 256),
    ("deoldify", "artistic", 560),
    ("deoldify", "stable", 256),
    ("deoldify", "stable", 560),
)


def _checkpoint(family: str, variant: str, folder: Path) -> str:
    """The spec of a weights file in the family's published layout (random weights)."""
    from benchmarks._checkpoints import recipe_checkpoint

    return "builtin" if family == "builtin" else f"{family}:{recipe_checkpoint(family, variant, folder)}"


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(
    family: str, variant: str, size: int, spec: str, device: str, batch: int, min_seconds: float
) -> dict[str, Any]:
    """One configuration, in this process: ``spec`` names weights the parent wrote (so that writing them is not
    counted in this process's memory)."""
    import numpy as np
    import torch

    from chromata.models import family as family_of
    from chromata.models import load_colorizer

    size_arg = size if family_of(spec).size_step else None
    t0 = time.perf_counter()
    model = load_colorizer(spec, device=device, input_size=size_arg)
    load_s = time.perf_counter() - t0
    if model.input_size != size:
        raise SystemExit(f"{family} runs at its own working size, {model.input_size}, not {size}")
    net = getattr(model, "net", None)
    params = sum(p.numel() for p in net.parameters()) if isinstance(net, torch.nn.Module) else None
    rss_loaded = _rss_mib()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    x = np.random.default_rng(0).uniform(0, 100, (batch, size, size)).astype(np.float32)
    model.predict_ab(x)  # warm-up: graphs, allocations, kernels
    done, calls, t0 = 0, 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - t0 < min_seconds:
        model.predict_ab(x)
        done, calls = done + batch, calls + 1
    rate = done / (time.perf_counter() - t0)
    row: dict[str, Any] = {
        "family": family,
        "variant": variant or "-",
        "size": size,
        "batch": batch,
        "device": model.device,
        "images_per_s": round(rate, 3),
        "load_s": round(load_s, 1),
        "parameters_m": round(params / 1e6, 1) if params else None,
        "rss_after_load_mib": round(rss_loaded),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if device.startswith("cuda"):
        row["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return row


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every configuration asked for, each in a child process."""
    from benchmarks._report import machine

    configs = CONFIGS if not args.only else tuple(_parse(c) for c in args.only)
    rows = []
    for family, variant, size in configs:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(_run_child(args, family, variant, size, _checkpoint(family, variant, Path(tmp))))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    load = os.getloadavg()[0]  # other work on the machine while it measured (the figures are slower under load)
    return {"machine": machine(), "device": args.device, "threads": args.threads, "batch": args.batch,
            "load_average_1min_at_end": round(load, 1), "rows": rows}  # fmt: skip


def _run_child(args: argparse.Namespace, family: str, variant: str, size: int, spec: str) -> dict[str, Any]:
    """One configuration in a fresh process: its figures, or the last line of its error."""
    child = ["--child", f"{family}:{variant}:{size}", "--spec", spec, "--device", args.device]
    opts = ["--batch", str(args.batch), "--min-seconds", str(args.min_seconds), "--threads", str(args.threads)]
    cmd = [sys.executable, __file__, *child, *opts]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"family": family, "variant": variant or "-", "size": size, "error": tail}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _parse(config: str) -> tuple[str, str, int]:
    family, variant, size = config.split(":")
    return family, variant, int(size)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Model families: speed and memory at their working sizes",
        "",
        f"`python benchmarks/model_speed.py` on {result['machine']}; device {result['device']}, "
        f"{result['threads']} torch threads, batches of {result['batch']}, random weights in each family's "
        "published layout loaded as a run loads them. Images/s of `predict_ab` (the family's pre- and "
        "post-processing and the confidence proxy included; decoding, merging and encoding the full-resolution "
        "scan are not: see the throughput section). Memory is the whole process's (Python, torch and the model): "
        f"resident after loading, and its peak (loading included). The weights are written by another process. "
        f"Load average at the end: "
        f"{result.get('load_average_1min_at_end', '?')} (other work on the machine slows every figure).",
        "",
        "| family | variant | working size | parameters (M) | images/s | s/image | RSS after load (MiB) "
        "| peak RSS (MiB) |" + (" peak CUDA (MiB) |" if result["device"].startswith("cuda") else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if result["device"].startswith("cuda") else ""),
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['family']} | {r['variant']} | {r['size']} | failed: {r['error']} | | | | |")
            continue
        cuda = f" {r['peak_cuda_mib']} |" if "peak_cuda_mib" in r else ""
        lines.append(
            f"| {r['family']} | {r['variant']} | {r['size']} | {r['parameters_m'] or '-'} | {r['images_per_s']:.2f} "
            f"| {1 / r['images_per_s']:.2f} | {r['rss_after_load_mib']} | {r['peak_rss_mib']} |{cuda}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="time each configuration at least this long")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up on one configuration after this long")
    ap.add_argument("--only", nargs="+", help="FAMILY:VARIANT:SIZE configurations (default: all)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        family, variant, size = _parse(args.child)
        row = measure_one(family, variant, size, args.spec, args.device, args.batch, args.min_seconds)
        print(json.dumps(row))
        return
    from benchmarks._report import publish

    result = measure(args)
    section = "model-families" if args.device == "cpu" else f"model-families-{args.device.split(':')[0]}"
    publish(section, markdown(result), result, args.json, write=not args.no_write)


if __name__ == "__main__":
    main()
