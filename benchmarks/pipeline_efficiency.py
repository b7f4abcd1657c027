"""Benchmarks 1 and 2 of docs/benchmarks.md, in one run so that the ratios compare like with like.

* model-only bound: the same model and batch size on working-resolution L tensors already in memory;
* pipeline: ``ShardProcessor.process`` — read, decode, L*, model, full-resolution merge, encode, write,
  with decode/encode threads around the model (what each Ray actor runs);
* naive loop: ``for f in files: read → decode → colorize (batch 1) → encode → write``, sequential, with
  the same building blocks (L* by table, the same merge), the model on all the threads.

    python benchmarks/pipeline_efficiency.py --images 24 --megapixels 1 4 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np


def make_scans(folder: Path, n: int, mp_range: tuple[float, float], seed: int = 0) -> None:
    """Grey JPEGs of 1–4 MP built from the bundled sample (resized, so they have real structure)."""
    rng = np.random.default_rng(seed)
    sample = sorted((Path(__file__).resolve().parents[1] / "examples" / "scans").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        grey = cv2.imread(str(sample[i % len(sample)]), cv2.IMREAD_GRAYSCALE)
        mp = rng.uniform(*mp_range) * 1e6
        scale = (mp / (grey.shape[0] * grey.shape[1])) ** 0.5
        big = cv2.resize(
            grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
        )
        cv2.imwrite(str(folder / f"scan-{i:04d}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])


class GpuSampler:
    """Mean GPU utilisation (NVML, via torch) sampled every 50 ms while the pipeline runs."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.05):
            try:
                self.samples.append(int(torch.cuda.utilization()))
            except Exception:
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def main() -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--megapixels", type=float, nargs=2, default=(1.0, 4.0))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU run of benchmark 4)")
    ap.add_argument("--precision", default="auto", help="auto (fp16 on a GPU), fp32, fp16 or bf16")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    import torch

    from chromata import color
    from chromata.config import build_config
    from chromata.imageio import EncodeOptions, decode, encode
    from chromata.pipeline import ShardProcessor, lightness_of, make_shards
    from chromata.storage import LocalStorage

    torch.set_num_threads(args.threads)
    from chromata.models.builtin import BuiltinColorizer

    model = BuiltinColorizer.load(device=args.device, precision=args.precision)
    gpu = GpuSampler() if args.device.startswith("cuda") else None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, naive_dst = Path(tmp) / "src", Path(tmp) / "dst", Path(tmp) / "naive"
        make_scans(src, args.images, tuple(args.megapixels))
        files = sorted(src.iterdir())
        pixels = sum(int(np.prod(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).shape)) for f in files)

        # model-only bound: same model, same batch size, tensors in memory
        work = np.stack(
            [
                color.working_lightness(
                    color.gray_to_lightness(color.to_unit_float(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))),
                    model.input_size,
                )
                for f in files
            ]
        )
        model.predict_ab(work[: args.batch_size])  # warm-up
        t = time.perf_counter()
        for i in range(0, len(work), args.batch_size):
            model.predict_ab(work[i : i + args.batch_size])
        model_only = len(work) / (time.perf_counter() - t)

        # the pipeline each actor runs
        cfg = build_config(
            source=str(src),
            destination=str(dst),
            batch_size=args.batch_size,
            workers=1,
            threads_per_worker=args.threads,
            device=args.device,
        )
        proc = ShardProcessor(cfg, model=model)
        shard = next(make_shards(LocalStorage(src).list(), 100_000))
        if gpu:
            gpu.start()
        t = time.perf_counter()
        result = proc.process(shard, "bench")
        pipeline = len(result.records) / (time.perf_counter() - t)
        gpu_util = gpu.stop() if gpu else None
        assert all(r.status == "ok" for r in result.records)

        # naive sequential loop, same model
        naive_dst.mkdir()
        t = time.perf_counter()
        for f in files:
            img = decode(f.read_bytes(), 10**9)
            lightness = lightness_of(img.pixels)  # the same building blocks as the pipeline's
            pred = model.predict_ab(color.working_lightness(lightness, model.input_size)[None])
            out = color.merge_chroma_to(lightness, pred.ab[0], np.uint8)
            (naive_dst / f.name).write_bytes(encode(out, ".jpg", EncodeOptions()))
        naive = len(files) / (time.perf_counter() - t)

    results = {
        "images": args.images,
        "megapixels_mean": round(pixels / len(files) / 1e6, 2),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "device": model.device,
        "precision": model.precision,
        "gpu_name": torch.cuda.get_device_name() if model.device.startswith("cuda") else None,
        "gpu_utilisation_during_pipeline_pct": gpu_util,
        "model_only_images_per_s": round(model_only, 2),
        "pipeline_images_per_s": round(pipeline, 2),
        "naive_loop_images_per_s": round(naive, 2),
        "pipeline_vs_model_bound": round(pipeline / model_only, 3),
        "pipeline_vs_naive": round(pipeline / naive, 3),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
