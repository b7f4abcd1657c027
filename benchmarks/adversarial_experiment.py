"""Does the adversarial (PatchGAN) stage help? Three models, one run, the same validation photos.

* ``base``: fine-tune from ``--init`` (default: the shipped model) with the archive augmentations;
* ``adversarial``: ``base`` + the PatchGAN stage for ``--stage-minutes``;
* ``control``: ``base`` + the same minutes of cross-entropy only (same extra compute, no discriminator).

Each is trained by ``chromata.training.train`` (what ``chromata train`` runs), its decoding chosen on the
validation split, and its weights + model card written under ``--out``; ``experiment.json`` holds the
comparison. Sized for one GPU in a few minutes; on a CPU give it hours or shrink it.

    python benchmarks/adversarial_experiment.py --data ../shared/data/photos --out /tmp/adv \\
        --base-minutes 2 --stage-minutes 1 --batch-size 32 --crop 224
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init", default="builtin")
    ap.add_argument("--base-minutes", type=float, default=2.0)
    ap.add_argument("--stage-minutes", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of the base fine-tune")
    ap.add_argument("--stage-lr", type=float, default=3e-5, help="peak learning rate of both follow-up stages")
    ap.add_argument("--adversarial-weight", type=float, default=0.03)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.38, 0.5])
    ap.add_argument("--gammas", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    ap.add_argument("--max-steps", type=int, default=1_000_000, help="step cap per stage (the minutes decide)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from chromata.training import TrainConfig, train

    common: dict[str, Any] = {
        "data": args.data,
        "batch_size": args.batch_size,
        "crop": args.crop,
        "temperatures": tuple(args.temperatures),
        "chroma_gammas": tuple(args.gammas),
        "log_every": 100,
    }
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}

    def run(label: str, **kw: Any) -> dict[str, Any]:
        t = time.monotonic()
        card = train(TrainConfig(out=args.out, name=f"chromata-builtin-{label}", **common, **kw))
        v = card["validation"]
        results[label] = {
            "weights": str(args.out / card["weights_file"]),
            "seconds": round(time.monotonic() - t, 1),
            "steps": card["training"]["steps_done"],
            "adversarial_steps": card["training"]["adversarial_steps_done"],
            "device": card["training"]["device"],
            **{k: v[k] for k in ("mean_ciede2000", "mean_ciede2000_gray_baseline", "ciede2000_vs_gray")},
            "colourfulness_ratio": v["colourfulness_ratio"],
            "chosen_decoding": v["chosen_decoding"],
            "by_decoding": v["by_decoding"],
        }
        (args.out / "experiment.json").write_text(json.dumps(results, indent=2))
        return card

    base = run("base", init=args.init, steps=args.max_steps, lr=args.lr, max_minutes=args.base_minutes)
    base_weights = str(args.out / base["weights_file"])
    run(
        "adversarial",
        init=base_weights,
        steps=0,
        adversarial=True,
        adversarial_steps=args.max_steps,
        adversarial_lr=args.stage_lr,
        adversarial_weight=args.adversarial_weight,
        lr=args.stage_lr,
        max_minutes=args.stage_minutes,
    )
    run("control", init=base_weights, steps=args.max_steps, lr=args.stage_lr, max_minutes=args.stage_minutes)
    print(
        json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "by_decoding"} for k, v in results.items()}, indent=2)
    )
    return results


if __name__ == "__main__":
    main()
