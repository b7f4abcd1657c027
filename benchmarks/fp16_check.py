"""Half precision on a GPU: does each family's output stay within one 8-bit level of float32?

For each family and variant (weights in the published layout by the family's deterministic recipe, so the
check runs without downloads; ``--weights`` for the published files themselves, which is what decides), both
precisions colorize the bundled sample (examples/scans) at the family's
default working size; each prediction is merged with the scan's full-resolution L* as a run merges it and
encoded to 8 bits. Reported: the largest and the 99th-percentile difference in 8-bit levels, and the speed-up.
A family may run fp16 by default only where the largest difference is at most one level. Needs a CUDA device.

    python benchmarks/fp16_check.py --json fp16.json          # on a GPU node (benchmarks/gpu_session.sh)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = (("ddcolor", "tiny"), ("ddcolor", "large"), ("deoldify", "artistic"), ("deoldify", "stable"))


def _scans() -> list[Any]:
    import cv2

    from chromata.colormath import color

    out = []
    for path in sorted((ROOT / "examples" / "scans").iterdir()):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is not None:
            grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            out.append(color.lightness_of(grey))
    return out


def check(family: str, variant: str, device: str, weights: str | None = None) -> dict[str, Any]:
    import numpy as np
    import torch

    from benchmarks._checkpoints import recipe_checkpoint
    from chromata.colormath import color
    from chromata.models import load_colorizer
    from chromata.models.base import model_input

    with tempfile.TemporaryDirectory() as tmp:
        spec = weights or f"{family}:{recipe_checkpoint(family, variant, Path(tmp))}"
        models = {p: load_colorizer(spec, device=device, precision=p) for p in ("fp32", "fp16")}
    levels: list[Any] = []
    seconds = {"fp32": 0.0, "fp16": 0.0}
    for lightness in _scans():
        outs = {}
        for precision, model in models.items():
            work = model_input(model, lightness)[None]
            model.predict_ab(work)  # warm
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            ab = model.predict_ab(work).ab[0]
            torch.cuda.synchronize()
            seconds[precision] += time.perf_counter() - t0
            outs[precision] = color.merge_chroma_to(lightness, np.ascontiguousarray(ab), np.uint8).astype(np.int16)
        levels.append(np.abs(outs["fp16"] - outs["fp32"]).ravel())
    diff = np.concatenate(levels)
    return {
        "family": family,
        "variant": variant,
        "size": models["fp32"].input_size,
        "max_levels": int(diff.max()),
        "p99_levels": float(np.percentile(diff, 99)),
        "share_differing": round(float((diff > 0).mean()), 5),
        "fp16_speedup": round(seconds["fp32"] / max(seconds["fp16"], 1e-9), 2),
        "within_one_level": bool(diff.max() <= 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--weights",
        nargs="+",
        help="SPEC … (e.g. ddcolor:ddcolor_paper.pth): your downloaded files instead of recipe"
        " weights — activations, and so fp16's range, depend on the trained weights",
    )
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("fp16_check needs a CUDA device (fp16 is a GPU option): run it on a GPU node")
    if args.weights:
        rows = [check(spec.partition(":")[0], "as loaded", args.device, spec) for spec in args.weights]
    else:
        rows = [check(family, variant, args.device) for family, variant in FAMILIES]
    text = json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
