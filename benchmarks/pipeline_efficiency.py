"""Benchmarks 1 and 2 of docs/benchmarks.md, in one run so that the ratios compare like with like.

* model-only bound: the same model and batch size on working-resolution L tensors already in memory;
* pipeline: ``ShardProcessor.process`` — read, decode, L*, model, full-resolution merge, encode, write,
  with decode/encode threads around the model (what each Ray actor runs);
* naive loop: ``for f in files: read → decode → colorize (batch 1) → encode → write``, sequential, with
  the same building blocks (L* by table, the same merge), the model on all the threads.

    python benchmarks/pipeline_efficiency.py --images 24 --megapixels 1 4 --batch-size 8

``--before REV`` adds the engine comparison: the same scans through ``ShardProcessor`` of this tree and of
commit REV (a git worktree made for the run), each in a fresh process, alternating for ``--rounds`` rounds
so that both meet the same machine; it writes its section of docs/benchmarks.md (``engine-before-after``).
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


ENGINE_WORKER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])  # the engine under test
    import torch
    import chromata
    from chromata.config import build_config
    from chromata.pipeline import ShardProcessor, make_shards
    from chromata.archive.local import LocalStorage

    root, src, dst, batch, threads = sys.argv[1:6]
    cfg = build_config(source=src, destination=dst, batch_size=int(batch), workers=1,
                       threads_per_worker=int(threads))
    proc = ShardProcessor(cfg)
    objects = sorted(LocalStorage(src).list(), key=lambda o: o.key)
    proc.process(next(make_shards(objects[:int(batch)], 100_000)), "warm-up")
    t = time.perf_counter()
    records = proc.process(next(make_shards(objects, 100_000)), "bench").records
    seconds = time.perf_counter() - t
    assert all(r.status == "ok" for r in records), [r.error for r in records if r.status != "ok"]
    print(json.dumps({"images_per_s": len(records) / seconds, "engine": chromata.__file__}))
    """
)


def engine_before_after(src: Path, rev: str, rounds: int, batch: int, threads: int, work: Path) -> dict[str, object]:
    """Images/s of ``ShardProcessor`` in this tree and at ``rev`` on the same scans, alternating."""
    root = Path(__file__).resolve().parents[1]
    before = work / "before"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "-q", "--detach", str(before), rev], check=True)
    rates: dict[str, list[float]] = {"before": [], "after": []}
    try:
        for i in range(rounds):
            order = (("before", before), ("after", root))
            for name, engine in order if i % 2 == 0 else order[::-1]:
                dst = work / f"out-{name}-{i}"
                out = subprocess.run(
                    [sys.executable, "-c", ENGINE_WORKER, str(engine), str(src), str(dst), str(batch), str(threads)],
                    check=True, capture_output=True, text=True, cwd=str(work),
                )  # fmt: skip
                result = json.loads(out.stdout.strip().splitlines()[-1])
                assert Path(result["engine"]).resolve().is_relative_to(engine.resolve()), result["engine"]
                rates[name].append(result["images_per_s"])
                print(f"round {i + 1} {name}: {result['images_per_s']:.2f} images/s", flush=True)
                subprocess.run(["rm", "-rf", str(dst)], check=True)
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(before)], check=False)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["after"] / med["before"]
    return {"rev": rev, "rounds": rounds, "rates": rates, "median": med, "after_vs_before": ratio}


def write_engine_section(res: dict[str, object], args: argparse.Namespace, megapixels: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import machine, write_section

    rates, med = res["rates"], res["median"]
    assert isinstance(rates, dict) and isinstance(med, dict)
    body = "\n".join(
        [
            "## The engine before and after its split into `chromata/pipeline/`"
            " (`benchmarks/pipeline_efficiency.py --before`)",
            "",
            f"`python benchmarks/pipeline_efficiency.py --images {args.images} --megapixels {args.megapixels[0]:g} "
            f"{args.megapixels[1]:g} --batch-size {args.batch_size} --before {res['rev']} --rounds {res['rounds']}` — "
            f"{args.images} grey JPEG scans (mean {megapixels:.2f} MP) through `ShardProcessor` (what each Ray actor "
            f"runs: read, decode, L*, model, merge, encode, label, write), {args.threads} threads, each engine in a "
            "fresh process after a warm-up batch, the two alternating.",
            "",
            "| engine | images/s, each round | median |",
            "|---|---|---|",
            f"| before ({res['rev']}) | {', '.join(f'{r:.2f}' for r in rates['before'])} | {med['before']:.2f} |",
            f"| after (this tree) | {', '.join(f'{r:.2f}' for r in rates['after'])} | {med['after']:.2f} |",
            "",
            f"After / before: **{res['after_vs_before']:.3f}**. Machine: {machine()}.",
        ]
    )
    write_section("engine-before-after", body)


def main() -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--megapixels", type=float, nargs=2, default=(1.0, 4.0))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU run of benchmark 4)")
    ap.add_argument("--precision", default="auto", help="auto (fp16 on a GPU), fp32, fp16 or bf16")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--before", help="also compare the engine with this git revision's (see above)")
    ap.add_argument("--rounds", type=int, default=4, help="with --before: alternating rounds per engine")
    args = ap.parse_args()
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            make_scans(src, args.images, tuple(args.megapixels))
            pixels = sum(int(np.prod(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).shape)) for f in src.iterdir())
            res = engine_before_after(src, args.before, args.rounds, args.batch_size, args.threads, Path(tmp))
        print(json.dumps(res, indent=2))
        write_engine_section(res, args, pixels / args.images / 1e6)
        return res

    import torch

    from chromata.archive.local import LocalStorage
    from chromata.colormath import color
    from chromata.config import build_config
    from chromata.media.imageio import EncodeOptions, decode, encode
    from chromata.pipeline import ShardProcessor, lightness_of, make_shards

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
        proc.close()
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
