"""Real mistakes at scale (issue #23): the built-in recipe cross-fitted on folds of the photos, so every photo has
outputs from a model that never saw it, and judgement measured on those outputs.

``python -m chromata.studies.crossfit STAGE`` — each stage reads what the one before it left in ``--cache``
(default ``eval-report/crossfit``, beside the other studies' reports: nothing is written next to the data):

* ``folds`` — the photos of ``--data`` in ``--folds`` groups by a hash of their file names (stable as the folder
  grows), written as ``folds.json`` with the data set named by its own name;
* ``train --fold K`` — the built-in recipe (ImageNet-initialised EfficientNet-Lite0 encoder, the loss, the
  augmentations, the decoding choice) on every photo outside fold K, for ``--minutes`` at most; a fold whose
  weights exist is done, and one interrupted mid-way resumes from its last checkpoint (every 100 steps);
* ``outputs`` — each fold's model colorizes only the photos of its own fold, whole and as crops, at the shipped
  decoding; per view: the quality protocol's figures (CIEDE2000 against the truth, the grey input's,
  colourfulness), the model's own uncertainty, the proxy, harm-v1's verdict and region predictions, the semantic
  reading of the grey input (:mod:`chromata.models.semantics`) with each region's kind, each region's true
  CIEDE2000 and grey's, and the judging grids (for the restraint trade-off).

What is measured and fitted on these views is :mod:`chromata.studies.confidence_fit`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chromata.models.evaluation import dataset_name

VIEWS_CROPS = 3  # each photo whole and as this many crops
SHIPPED_GAMMA = 0.5


def photo_names(data: Path) -> list[str]:
    from chromata.media.formats import BY_EXTENSION

    return sorted(p.name for p in data.iterdir() if p.is_file() and p.suffix.lower() in BY_EXTENSION)


def make_folds(data: Path, cache: Path, k: int) -> dict[str, Any]:
    from chromata.studies.harm import folds_of

    if k < 2:
        raise SystemExit("--folds must be at least 2: a fold's photos are colorized by a model trained on the others")
    names = photo_names(data)
    fold = folds_of(names, k)
    record = {"data": dataset_name(data), "folds": k, "photos": len(names), "fold_of": fold}
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "folds.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return {key: value for key, value in record.items() if key != "fold_of"}


def _folds(cache: Path) -> dict[str, Any]:
    path = cache / "folds.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the folds stage first")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def fold_weights(cache: Path, k: int) -> Path:
    return cache / f"fold-{k}" / "model" / f"crossfit-fold{k}.pt"


def train_fold(
    data: Path,
    cache: Path,
    k: int,
    minutes: float,
    steps: int,
    threads: int | None = None,
    crop: int = 160,
    batch_size: int = 12,
    init: str = "imagenet",
    val_fraction: float = 0.1,
) -> dict[str, Any]:
    """The recipe on every photo outside fold ``k`` (their links in ``fold-K/photos``), unless already done."""
    from chromata.training import TrainConfig, train

    folds = _folds(cache)
    weights = fold_weights(cache, k)
    if weights.is_file():
        return {"fold": k, "done_before": True, "weights": str(weights.relative_to(cache))}
    photos = cache / f"fold-{k}" / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name, f in folds["fold_of"].items():
        link = photos / name
        if f != k and not link.exists():
            link.symlink_to((data / name).resolve())
    cfg = TrainConfig(
        data=photos,
        out=weights.parent,
        steps=steps,
        crop=crop,
        batch_size=batch_size,
        init=init,
        val_fraction=val_fraction,
        max_minutes=minutes,
        threads=threads,
        name=f"crossfit-fold{k}",
        log_every=100,
        checkpoint_every=100,  # an interrupted fold resumes from its last checkpoint (fold-K/model/resume.pt)
    )
    t0 = time.perf_counter()
    card = train(cfg)  # writes fold-K/model/crossfit-foldK.pt and its card
    return {
        "fold": k,
        "train_photos": card["data"]["train_images"] + card["data"]["validation_images"],
        "steps_done": card["training"]["steps_done"],
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }


def fold_outputs(data: Path, cache: Path, k: int) -> dict[str, Any]:
    """Fold ``k``'s model on its own photos (which it never saw): every view's figures and signals, kept in
    ``fold-K/views.npz``. Done folds are kept."""
    import hashlib

    import cv2

    from chromata.judgement import assess, harm
    from chromata.models import load_colorizer, semantics
    from chromata.studies.harm import full_metrics, photo_views, region_err, unrestrained

    out = cache / f"fold-{k}" / "views.npz"
    if out.is_file():
        return {"fold": k, "done_before": True}
    weights = fold_weights(cache, k)
    if not weights.is_file():
        raise SystemExit(f"{weights} not found: run the train stage for fold {k} first")
    names = sorted(n for n, f in _folds(cache)["fold_of"].items() if f == k)
    model = load_colorizer(f"builtin:{weights}", device="cpu")
    est = harm.shipped()
    assert est is not None, "the package ships harm-v1.json"
    cols: dict[str, list[Any]] = {c: [] for c in ("photo", "view", "figures", "entropy", "proxy", "old_p_good",
                                                  "old_image", "semantic", "pooled", "region_kind",
                                                  "region_feats", "region_excess", "region_err_pred", "region_de",
                                                  "region_grey_de", "l_de", "ab_de", "ab64")}  # fmt: skip
    t0 = time.perf_counter()
    with unrestrained(model):
        for name in names:
            bgr = cv2.imread(str(data / name), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
            views = photo_views(name, bgr.astype(np.uint8), VIEWS_CROPS, rng, model.input_size)
            pred = model.predict_ab(np.stack([v.work for v in views]))
            for i, (v, ab, u) in enumerate(zip(views, pred.ab, pred.uncertainty, strict=True)):
                judged = est.judge(v.work, ab)
                feats = harm.region_features(v.work, ab)
                err, excess = est.regions(feats)
                cols["photo"].append(name)
                cols["view"].append(i)
                cols["figures"].append(full_metrics(v, ab))
                cols["entropy"].append(float(np.mean(u)))
                cols["proxy"].append(float(est.uncertainty(v.work, ab).mean()))
                cols["old_p_good"].append(float(judged.p_good))
                cols["old_image"].append(harm.image_features(err, excess, feats))
                reading = semantics.semantics_of(np.ascontiguousarray(v.lab[..., 0]))
                cols["semantic"].append(assess.semantic_columns(reading, ab, len(semantics.KINDS)))
                # per region (the estimator's 8 x 8 grid) and the judging grids, for region-level estimators and
                # the restraint trade-off (chromata.studies.restraint)
                cols["pooled"].append(reading.features.astype(np.float16))
                cols["region_kind"].append(assess.kinds_on_grid(reading.region_kinds, harm.GRID).reshape(-1))
                cols["region_feats"].append(feats.astype(np.float16))
                cols["region_excess"].append(excess.astype(np.float32))
                cols["region_err_pred"].append(err.astype(np.float32))
                cols["region_de"].append(region_err(v, ab).reshape(-1))
                cols["region_grey_de"].append(v.grey_err.reshape(-1))
                cols["l_de"].append(v.l_de.astype(np.float16))
                cols["ab_de"].append(v.ab_de.astype(np.float16))
                ab64 = cv2.resize(ab.astype(np.float32), (harm.AB_SIDE, harm.AB_SIDE), interpolation=cv2.INTER_AREA)
                cols["ab64"].append(np.asarray(ab64, np.float16))
    arrays: dict[str, Any] = {c: np.asarray(v) for c, v in cols.items()}
    np.savez_compressed(out, weights_sha256=np.array(model.weights_sha256), **arrays)
    return {"fold": k, "photos": len(names), "views": len(cols["photo"]),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def load_views(cache: Path) -> dict[str, NDArray[Any]]:
    """Every fold's views, pooled (each row a view colorized by a model that never saw its photo)."""
    parts = [np.load(cache / f"fold-{k}" / "views.npz") for k in range(int(_folds(cache)["folds"]))]
    keys = [key for key in parts[0].files if key != "weights_sha256"]
    views = {key: np.concatenate([part[key] for part in parts]) for key in keys}
    views["fold"] = np.concatenate([np.full(len(part["photo"]), k) for k, part in enumerate(parts)])
    return views


def write_doc_section(doc: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in ``doc``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = doc.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{doc} has no {begin} … {end} section to write")
    head, rest = text.split(begin, 1)
    doc.write_text(head + begin + "\n" + body.strip() + "\n" + end + rest.split(end, 1)[1], encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m chromata.studies.crossfit", description=(__doc__ or "").splitlines()[0]
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    ap.add_argument("--cache", type=Path, default=Path("eval-report/crossfit"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("folds", help="the photos in groups by a hash of their names")
    f.add_argument("--folds", type=int, default=2)
    t = sub.add_parser("train", help="the built-in recipe on every photo outside one fold")
    t.add_argument("--fold", type=int, required=True)
    t.add_argument("--minutes", type=float, default=60.0, help="the fold's training time budget")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--threads", type=int, default=None)
    o = sub.add_parser("outputs", help="each fold's model on the photos of its own fold")
    o.add_argument("--fold", type=int, default=None, help="one fold (default: every fold)")
    args = ap.parse_args(argv)
    if args.cmd == "folds":
        result: Any = make_folds(args.data, args.cache, args.folds)
    elif args.cmd == "outputs":
        ks = [args.fold] if args.fold is not None else range(int(_folds(args.cache)["folds"]))
        result = [fold_outputs(args.data, args.cache, k) for k in ks]
    else:
        result = train_fold(args.data, args.cache, args.fold, args.minutes, args.steps, args.threads)
    sys.stdout.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
