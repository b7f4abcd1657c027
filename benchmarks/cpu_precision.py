"""Issue #17: ways to run the built-in network on a CPU — how fast each is here, and what it does to the colours.

Each variant replaces only the model's forward pass (decoding the distribution, the merge at full resolution and
everything after stay as shipped):

* fp32, frozen TorchScript graph optimised for inference (what chromata ships on CPUs: ``InferenceGraph``);
* fp32 eager; fp32 eager in channels-last memory format;
* bf16 autocast (eager);
* int8: post-training static quantisation (FX graph mode, x86 backend), calibrated on training photos.

For each: images/s of ``predict_ab`` at the working size (256², batch 8, ``--threads``), and on the validation
photos (the model card's held-out photos, full-resolution L* kept) the mean CIEDE2000 against the grey image,
the colourfulness ratio and the difference of the 8-bit colour output from the shipped variant's (99th
percentile and maximum over every pixel and channel). Issue #17's rule for adopting one: CIEDE2000 within
0.05 and the output within 2 levels at the 99th percentile.

    python benchmarks/cpu_precision.py --data ../shared/data/photos

Writes its section of docs/benchmarks.md (``cpu-precision``); no test asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cpu_flags() -> str:
    """The CPU's matrix extensions, as the kernel reports them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of AVX2, AVX-512, AMX"


def variants(model: Any, calibration: list[Any]) -> dict[str, Callable[[Any], Any] | str]:
    """Forward passes to compare (or, for one that cannot be built here, why not)."""
    import torch

    net = model.net.eval()
    out: dict[str, Callable[[Any], Any] | str] = {"fp32, frozen TorchScript (shipped)": model.forward}
    out["fp32, eager"] = net
    cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    out["fp32, eager, channels-last"] = lambda x: cl(x.contiguous(memory_format=torch.channels_last))

    def bf16(x: Any) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x).float()

    out["bf16 autocast, eager"] = bf16
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86"
        example = (torch.zeros(1, 1, model.input_size, model.input_size),)
        prepared = prepare_fx(copy.deepcopy(net), get_default_qconfig_mapping("x86"), example_inputs=example)
        with torch.inference_mode():
            for batch in calibration:
                prepared(batch)
        out["int8, static (FX, x86)"] = convert_fx(prepared)
    except Exception as exc:  # a graph FX cannot trace, an op without an int8 kernel: say so in the table
        out["int8, static (FX, x86)"] = f"not built: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return out


def speed(model: Any, batch: Any, seconds: float) -> float:
    """Images/s of ``predict_ab`` on ``batch`` (after one warm-up call), timed for at least ``seconds``."""
    model.predict_ab(batch)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        model.predict_ab(batch)
        n += len(batch)
    return n / (time.perf_counter() - t)


def colour_outputs(model: Any, photos: list[tuple[str, Any]]) -> list[Any]:
    """Each photo's 8-bit colour output (its own L*, the model's chroma merged at full resolution)."""
    from chromata.colormath import color

    outs = []
    for _, bgr in photos:
        lightness = np.ascontiguousarray(color.bgr_to_lab(color.to_unit_float(bgr))[..., 0])
        ab = model.predict_ab(color.working_lightness(lightness, model.input_size)[None]).ab[0]
        outs.append(np.clip(np.rint(color.merge_chroma(lightness, ab) * 255.0), 0, 255).astype(np.uint8))
    return outs


def level_differences(a: list[Any], b: list[Any]) -> tuple[int, int]:
    """99th percentile and maximum of |a − b| over every pixel and channel, in 8-bit levels."""
    hist = np.zeros(256, np.int64)
    for x, y in zip(a, b, strict=True):
        hist += np.bincount(np.abs(x.astype(np.int16) - y).ravel(), minlength=256)
    cum = np.cumsum(hist) / hist.sum()
    return int(np.searchsorted(cum, 0.99)), int(np.flatnonzero(hist).max())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from chromata.colormath import color
    from chromata.models import load_colorizer
    from chromata.models.builtin import builtin_card
    from chromata.models.evaluation import evaluate, load_images, select_photos

    torch.set_num_threads(args.threads)
    model = load_colorizer("builtin", device="cpu")
    val = load_images(select_photos(args.data, "val")[: args.photos])
    held_out = set(builtin_card()["data"]["validation_files"])
    train = [p for p in sorted(args.data.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    train = [p for p in train if p.name not in held_out][: args.calibration_photos]
    size = model.input_size

    def work_l(bgr: Any) -> Any:
        return color.working_lightness(color.bgr_to_lab(color.to_unit_float(bgr))[..., 0], size)

    calibration = [torch.from_numpy(work_l(bgr)[None, None]) for _, bgr in load_images(train)]
    batch = np.stack([work_l(bgr) for _, bgr in (val * 8)[: args.batch]])
    shipped_forward = model.forward
    for _ in range(3):  # TorchScript's executor profiles its first runs of a shape, then optimises: the reference
        colour_outputs(model, val[:1])  # comes from the graph as it runs from then on, like every variant's output
    reference = colour_outputs(model, val)
    rows = []
    for name, forward in variants(model, calibration).items():
        if isinstance(forward, str):
            rows.append({"variant": name, "note": forward})
            print(json.dumps(rows[-1]), flush=True)
            continue
        model.forward = forward
        try:
            rate = speed(model, batch, args.seconds)
            quality = evaluate(val, model).as_dict()
            p99, worst = level_differences(colour_outputs(model, val), reference)
        finally:
            model.forward = shipped_forward
        rows.append({"variant": name, "images_per_s": rate, **quality, "p99_levels": p99, "max_levels": worst})
        print(json.dumps(rows[-1]), flush=True)
    return {
        "photos": len(val),
        "calibration_photos": len(calibration),
        "threads": args.threads,
        "cpu_flags": cpu_flags(),
        "rows": rows,
    }


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    base = next(row for row in r["rows"] if "images_per_s" in row)
    lines = [
        "## Inference precision and layout on this CPU (`benchmarks/cpu_precision.py`)",
        "",
        f"`python benchmarks/cpu_precision.py --data {os.path.relpath(args.data, ROOT)} --threads {args.threads}` — "
        "the built-in network's forward pass run each way, the rest of the decoding as shipped; speed of "
        f"`predict_ab` at 256², batch {args.batch}, "
        f"{r['threads']} threads; quality on {r['photos']} validation photos (full-resolution L* kept); int8 "
        f"calibrated on {r['calibration_photos']} training photos. CPU extensions: {r['cpu_flags']}. {machine}.",
        "",
        "| variant | images/s | × shipped | CIEDE2000 × grey | Δ vs shipped | colourfulness "
        "| output vs shipped: p99, max levels |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["rows"]:
        if "images_per_s" not in row:
            lines.append(f"| {row['variant']} | — | | | | | {row['note']} |")
            continue
        d = row["mean_ciede2000"] - base["mean_ciede2000"]
        lines.append(
            f"| {row['variant']} | {row['images_per_s']:.2f} | {row['images_per_s'] / base['images_per_s']:.2f} × "
            f"| {row['ciede2000_vs_gray']:.4f} | {d:+.3f} | {row['colourfulness_ratio']:.3f} "
            f"| {row['p99_levels']}, {row['max_levels']} |"
        )
    passing = [
        row["variant"]
        for row in r["rows"][1:]
        if "images_per_s" in row
        and row["images_per_s"] > base["images_per_s"]
        and abs(row["mean_ciede2000"] - base["mean_ciede2000"]) <= 0.05
        and row["p99_levels"] <= 2
    ]
    verdict = "**None passes on this CPU**: the shipped graph stays."
    if passing:
        verdict = f"Passing here: {', '.join(passing)}."
    lines += [
        "",
        "Issue #17 adopts a variant that is faster and keeps CIEDE2000 within 0.05 and the output within 2 levels "
        f"at the 99th percentile of the shipped one's. {verdict}",
    ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    ap.add_argument("--photos", type=int, default=1000, help="at most this many validation photos")
    ap.add_argument("--calibration-photos", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="images per batch when timing")
    ap.add_argument("--seconds", type=float, default=3.0, help="time each variant's speed for at least this long")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("cpu-precision", __doc__, add_arguments, measure, markdown)


if __name__ == "__main__":
    main()
