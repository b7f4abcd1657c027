"""Benchmark 3: model speed — the built-in model vs the Zhang et al. ECCV16 architecture.

Inference throughput (images/s) of the full decoding (network + annealed mean + uncertainty) at each
working size and batch size, in PyTorch and in ONNX Runtime, all in one run so the ratios compare like
with like. ECCV16 uses random weights (speed does not depend on them); its quality is not claimed here.

    python benchmarks/model_speed.py --sizes 256 512 --batches 1 16 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _export_eccv16(path: Path) -> Any:
    import torch

    from chromata.models.ab_bins import normalised_entropy
    from chromata.models.zhang import ECCV16Net

    torch.manual_seed(0)
    net = ECCV16Net().eval()

    class Decoded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.net(lightness)
            probs = torch.softmax(logits / 0.38, dim=1)
            return self.net.model_out(probs) * 110.0, normalised_entropy(logits)

    torch.onnx.export(
        Decoded().eval(),
        (torch.zeros(1, 1, 256, 256),),
        str(path),
        input_names=["lightness"],
        output_names=["ab", "uncertainty"],
        dynamic_axes={"lightness": {0: "n", 2: "h", 3: "w"}},
        dynamo=False,
    )
    return net


def _rate(predict: Any, x: np.ndarray, min_seconds: float) -> float:
    predict(x[:1])  # warm-up (allocations, ONNX Runtime graph optimisation)
    done, t0 = 0, time.perf_counter()
    while True:
        predict(x)
        done += len(x)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return done / elapsed


def main() -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--min-seconds", type=float, default=2.0, help="time each configuration at least this long")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from chromata.models import load_colorizer
    from chromata.models.onnx import OnnxColorizer, export_builtin
    from chromata.models.zhang import ZhangColorizer

    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        builtin = load_colorizer("builtin", device="cpu")
        eccv_net = _export_eccv16(Path(tmp) / "eccv16.onnx")
        models = {
            ("builtin", "torch"): builtin,
            ("builtin", "onnxruntime"): OnnxColorizer(export_builtin(builtin, Path(tmp) / "builtin.onnx"), "cpu"),
            ("eccv16", "torch"): ZhangColorizer("eccv16", eccv_net, "random", device="cpu"),
            ("eccv16", "onnxruntime"): OnnxColorizer(Path(tmp) / "eccv16.onnx", "cpu"),
        }
        params = {
            "builtin": sum(p.numel() for p in builtin.net.parameters()),
            "eccv16": sum(p.numel() for p in eccv_net.parameters()),
        }
        for size in args.sizes:
            for batch in args.batches:
                x = np.random.default_rng(0).uniform(0, 100, (batch, size, size)).astype(np.float32)
                for (name, runtime), model in models.items():
                    rate = _rate(model.predict_ab, x, args.min_seconds)
                    rows.append(
                        {
                            "model": name,
                            "runtime": runtime,
                            "size": size,
                            "batch": batch,
                            "images_per_s": round(rate, 2),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        eccv = next(
            e["images_per_s"]
            for e in rows
            if e["model"] == "eccv16" and (e["runtime"], e["size"], e["batch"]) == (r["runtime"], r["size"], r["batch"])
        )
        r["vs_eccv16_same_runtime"] = round(r["images_per_s"] / eccv, 2)
    summary = {"threads": args.threads, "parameters": params, "rows": rows}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return rows


if __name__ == "__main__":
    main()
