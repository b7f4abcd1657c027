"""The shipped confidence fitted on real mistakes (issue #23): ``python -m chromata.studies.confidence_fit STAGE``.

It reads the cross-fit cache (``python -m chromata.studies.crossfit folds|train|outputs``: every view colorized by
a built-in model that never saw its photo) and

* ``compare`` — ranks candidate estimators by cross-validation over groups of photos (an estimator never scores
  a photo it was fitted on, and the region stage is refitted inside each group too): AUROC worse half and
  AUROC harmful for the entropy, the proxy, harm-v1 and each candidate, the region stage's AUROC, how the blamed
  regions' kinds hold up, the calibration of the chosen one (reliability by decile) and its spread;
* ``fit`` — fits the chosen candidate on every view and writes ``confidence-v2.json`` and its card into the
  package (:mod:`chromata.judgement.assess` reads it);
* ``restraint`` — the trade-off of damping chroma where the region stage predicts harm (out of sample) against
  damping it everywhere: CIEDE2000 (× grey) and colourfulness (× truth) on the 128 x 128 judging grid, a PNG;
  restraint is adopted only where it moves that frontier.

``--doc docs/confidence.md`` writes the tables into that file's sections.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chromata.judgement import assess, harm
from chromata.judgement.assess import Linear
from chromata.studies.crossfit import _folds, load_views, write_doc_section
from chromata.studies.harm import auroc, folds_of, logistic

GROUPS = 5  # cross-validation groups of photos
RIDGE_REGION = 1.0
RIDGE_IMAGE = 3.0
# name -> (image-stage column groups (assess.ConfidenceEstimator.image_row), logistic or MLP)
CANDIDATES: dict[str, tuple[tuple[str, ...], str]] = {
    "harm-v1 summary + proxy (refit)": (("old_image", "proxy"), "linear"),
    "+ regions by kind": (("old_image", "proxy", "regions"), "linear"),
    "+ semantics": (("old_image", "proxy", "semantic"), "linear"),
    "+ regions by kind + semantics": (("old_image", "proxy", "regions", "semantic"), "linear"),
    "+ regions by kind + semantics, MLP": (("old_image", "proxy", "regions", "semantic"), "mlp"),
    "+ regions by kind + semantics + pooled features": (
        ("old_image", "proxy", "regions", "semantic", "pooled"),
        "linear",
    ),
}
POOLED_COMPONENTS = 16
N_KINDS = 9


def fit_linear(X: NDArray[Any], y: NDArray[Any], ridge: float) -> Linear:
    """A standardised logistic regression (chromata.studies.harm.logistic's Newton steps)."""
    mean, std = X.mean(0), X.std(0) + 1e-6
    beta = logistic((X - mean) / std, y.astype(np.float64), ridge=ridge, tol=1e-8)
    return Linear(mean.astype(np.float32), std.astype(np.float32), beta[:-1].astype(np.float32), float(beta[-1]))


def fit_mlp(X: NDArray[Any], y: NDArray[Any], hidden: int = 16, decay: float = 1e-2, epochs: int = 400,
            seed: int = 0) -> assess.Mlp:  # fmt: skip
    """A one-hidden-layer MLP (full-batch Adam, weight decay, a fixed number of epochs) on standardised X."""
    import torch

    mean, std = X.mean(0), X.std(0) + 1e-6
    torch.manual_seed(seed)
    xt = torch.from_numpy(((X - mean) / std).astype(np.float32))
    yt = torch.from_numpy(np.asarray(y, np.float32))
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=decay)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt)[:, 0], yt)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    layers = tuple((m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                   for m in net if isinstance(m, torch.nn.Linear))  # fmt: skip
    return assess.Mlp(mean.astype(np.float32), std.astype(np.float32), layers)


def fit_image(X: NDArray[Any], y: NDArray[Any], kind: str) -> Linear | assess.Mlp:
    return fit_mlp(X, y) if kind == "mlp" else fit_linear(X, y, RIDGE_IMAGE)


class Views:
    """The cache's views with what the two stages read, per view and per region."""

    def __init__(self, cache: Path) -> None:
        v = load_views(cache)
        self.v = v
        self.n = len(v["photo"])
        self.photos = v["photo"]
        figures = v["figures"].astype(np.float64)
        self.de, self.grey, self.cf, self.cf_truth = figures.T
        self.harmful = self.de > self.grey
        self.feats = v["region_feats"].astype(np.float32)  # (n, 64, F)
        self.kinds = v["region_kind"].astype(np.int64)  # (n, 64)
        self.err = v["region_err_pred"].astype(np.float32)
        self.excess = v["region_excess"].astype(np.float32)
        self.region_harmful = v["region_de"] > v["region_grey_de"]  # (n, 64)
        cells = self.feats.shape[1]
        self.region_x = assess.region_matrix(
            self.feats.reshape(self.n * cells, -1), self.err.reshape(-1), self.excess.reshape(-1),
            self.kinds.reshape(-1), N_KINDS,
        ).reshape(self.n, cells, -1)  # fmt: skip
        group = folds_of(sorted(set(self.photos.tolist())), GROUPS)
        self.group = np.array([group[p] for p in self.photos])

    def inputs(self, i: int) -> assess.Inputs:
        v = self.v
        return assess.Inputs(self.feats[i], self.err[i], self.excess[i], self.kinds[i].astype(np.int8),
                             v["old_image"][i], float(v["proxy"][i]), v["semantic"][i],
                             v["pooled"][i].astype(np.float32))  # fmt: skip

    def pca(self, rows: NDArray[np.bool_]) -> dict[str, Any]:
        """The pooled features' leading principal components, from ``rows`` only."""
        X = self.v["pooled"][rows].astype(np.float64)
        mean = X.mean(0)
        _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
        return {"mean": mean.round(6).tolist(), "components": vt[:POOLED_COMPONENTS].T.round(6).tolist()}

    def fit_region(self, rows: NDArray[np.bool_], drop: Sequence[int] = ()) -> Linear:
        """The region stage on ``rows``; the columns in ``drop`` get weight 0 (not read)."""
        X = self.region_x[rows].reshape(-1, self.region_x.shape[2])
        keep = np.array([i for i in range(X.shape[1]) if i not in set(drop)])
        fitted = fit_linear(X[:, keep], self.region_harmful[rows].reshape(-1), RIDGE_REGION)
        width = X.shape[1]
        mean, std, w = np.zeros(width, np.float32), np.ones(width, np.float32), np.zeros(width, np.float32)
        mean[keep], std[keep], w[keep] = fitted.mean, fitted.std, fitted.w
        return Linear(mean, std, w, fitted.b)

    def image_matrix(self, region: Linear, columns: Sequence[str], pca: dict[str, Any] | None = None
                     ) -> NDArray[np.float32]:  # fmt: skip
        est = _estimator(region, None, columns, 0.5, {"pooled_pca": pca} if pca else None)
        rows = []
        for i in range(self.n):
            x = self.inputs(i)
            rows.append(est.image_row(x, region(self.region_x[i])))
        return np.asarray(rows, np.float32)


def _estimator(region: Linear, image: Linear | assess.Mlp | None, columns: Sequence[str], blame: float,
               extra: dict[str, Any] | None = None) -> assess.ConfidenceEstimator:  # fmt: skip
    from chromata.models.semantics import KINDS

    dummy = Linear(np.zeros(1, np.float32), np.ones(1, np.float32), np.zeros(1, np.float32), 0.0)
    params = {
        "format": assess.CONFIDENCE_FORMAT,
        "kinds": list(KINDS),
        "region": region.to_dict(),
        "image": (image or dummy).to_dict(),
        "image_columns": list(columns),
        "blame_threshold": blame,
        **(extra or {}),
    }
    return assess.ConfidenceEstimator(params)


def cross_validated(views: Views) -> dict[str, Any]:
    """Every candidate's P(worse) and P(harmful), and the region stage's P(harm), for every view from fits on
    the other groups' photos."""
    out: dict[str, Any] = {name: {"worse": np.zeros(views.n), "harmful": np.zeros(views.n)} for name in CANDIDATES}
    region_p = np.zeros(views.region_harmful.shape)
    for g in range(GROUPS):
        train, test = views.group != g, views.group == g
        region = views.fit_region(train)
        pca = views.pca(train)
        region_p[test] = region(views.region_x[test].reshape(-1, views.region_x.shape[2])).reshape(test.sum(), -1)
        worse = views.de > np.median(views.de[train])
        matrices: dict[tuple[str, ...], NDArray[np.float32]] = {}
        for name, (columns, kind) in CANDIDATES.items():
            if columns not in matrices:
                matrices[columns] = views.image_matrix(region, columns, pca if "pooled" in columns else None)
            X = matrices[columns]
            for label, y in (("worse", worse), ("harmful", views.harmful)):
                model = fit_image(X[train], y[train], kind)
                out[name][label][test] = model(X[test])
    out["_region_p"] = region_p
    return out


def reliability(p: NDArray[Any], y: NDArray[Any], bins: int = 10) -> list[dict[str, float]]:
    order = np.argsort(p)
    return [{"predicted": round(float(p[c].mean()), 3), "observed": round(float(y[c].mean()), 3), "n": len(c)}
            for c in np.array_split(order, bins)]  # fmt: skip


def blame_table(views: Views, region_p: NDArray[Any], threshold: float) -> dict[str, Any]:
    """Out of sample: the regions blamed at ``threshold`` (and with visible chroma), how often they are truly
    harmful, by kind."""
    from chromata.models.semantics import KINDS

    chroma = views.feats[..., assess.CHROMA_COLUMN] * 20.0
    blamed = (region_p > threshold) & (chroma >= assess.VISIBLE_CHROMA)
    visible = chroma >= assess.VISIBLE_CHROMA
    rows = []
    for i, kind in enumerate(KINDS):
        m = blamed & (views.kinds == i)
        base = visible & (views.kinds == i)
        if base.sum() == 0:
            continue
        rows.append({"kind": kind, "regions": int(base.sum()), "blamed": int(m.sum()),
                     "harmful_if_blamed": round(float(views.region_harmful[m].mean()), 3) if m.any() else None,
                     "harmful_overall": round(float(views.region_harmful[base].mean()), 3)})  # fmt: skip
    return {
        "threshold": threshold,
        "blamed": int(blamed.sum()),
        "precision": round(float(views.region_harmful[blamed].mean()), 3) if blamed.any() else None,
        "base_rate": round(float(views.region_harmful[visible].mean()), 3) if visible.any() else None,
        "views_with_a_blame": round(float(blamed.any(axis=1).mean()), 3),
        "by_kind": rows,
    }


BLAME_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
BLAME_VIEWS = 0.25  # a region reason on at most this share of views: a reason on every image is no reason


def blame_threshold(thresholds: dict[float, dict[str, Any]]) -> float:
    """The lowest threshold whose blamed regions are harmful at least 1.5 times as often as coloured regions are,
    on at most ``BLAME_VIEWS`` of the views (the highest candidate when none is)."""
    base = float(thresholds[min(thresholds)]["base_rate"] or 0.0)
    for t, b in sorted(thresholds.items()):
        if float(b["precision"] or 0) >= min(0.95, 1.5 * base) and b["views_with_a_blame"] <= BLAME_VIEWS:
            return t
    return max(thresholds)


def compare(cache: Path, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    views = Views(cache)
    cv = cross_validated(views)
    worse = views.de > np.median(views.de)
    v = views.v
    rows: list[dict[str, Any]] = [
        {"signal": "the model's entropy (score v1)", "worse": auroc(v["entropy"], worse),
         "harmful": auroc(v["entropy"], views.harmful)},
        {"signal": "the model-agnostic proxy", "worse": auroc(v["proxy"], worse),
         "harmful": auroc(v["proxy"], views.harmful)},
        {"signal": "harm-v1 (as shipped)", "worse": auroc(1 - v["old_p_good"], worse),
         "harmful": auroc(1 - v["old_p_good"], views.harmful)},
    ]  # fmt: skip
    rows += [{"signal": name, "worse": auroc(cv[name]["worse"], worse),
              "harmful": auroc(cv[name]["harmful"], views.harmful)} for name in CANDIDATES]  # fmt: skip
    chosen = max(CANDIDATES, key=lambda name: auroc(cv[name]["worse"], worse))
    p_worse = cv[chosen]["worse"]
    region_p = cv["_region_p"]
    thresholds = {t: blame_table(views, region_p, t) for t in BLAME_THRESHOLDS}
    blame = blame_threshold(thresholds)
    summary = {
        "views": views.n,
        "photos": len(set(views.photos.tolist())),
        "folds": int(_folds(cache)["folds"]),
        "groups": GROUPS,
        "harmful_views": int(views.harmful.sum()),
        "ciede2000_vs_grey": round(float(views.de.mean() / views.grey.mean()), 4),
        "colourfulness_ratio": round(float(views.cf.sum() / views.cf_truth.sum()), 4),
        "rows": [
            {"signal": r["signal"], "worse": round(r["worse"], 4), "harmful": round(r["harmful"], 4)} for r in rows
        ],
        "region_auroc_harmful": round(auroc(region_p.reshape(-1), views.region_harmful.reshape(-1)), 4),
        "chosen": chosen,
        "chosen_reliability": reliability(1 - p_worse, ~worse),
        "confidence_spread_5_50_95": [round(float(q), 3) for q in np.quantile(1 - p_worse, (0.05, 0.5, 0.95))],
        "blame_threshold": blame,
        "blame": {str(t): b for t, b in thresholds.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "confidence-compare.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    np.savez_compressed(out / "confidence-cv.npz", region_p=region_p, p_worse=p_worse)
    return summary


HARM_V1_COLUMNS = (len(harm.FEATURE_NAMES), len(harm.FEATURE_NAMES) + 1)  # harm-v1's predictions in region_matrix


def fit(cache: Path, out_dir: Path, compared: Path, without: frozenset[str] = frozenset(),
        restraint: assess.Restraint | None = None, region_without_harm_v1: bool = False) -> dict[str, Any]:  # fmt: skip
    """The chosen candidate fitted on every view (but those of the photos named in ``without``):
    ``confidence-v2.json`` and ``confidence-v2.card.json``, with ``restraint`` (None: the identity).
    ``region_without_harm_v1``: the region stage does not read harm-v1's predictions (for a check on photos
    harm-v1 was fitted on: the shipped model's outputs on its validation photos)."""
    s = json.loads((compared / "confidence-compare.json").read_text(encoding="utf-8"))
    views = Views(cache)
    rows = np.array([str(p) not in without for p in views.photos], bool)
    left_out = sorted(set(views.photos[~rows].tolist()))  # the named photos the cache holds
    region = views.fit_region(rows, HARM_V1_COLUMNS if region_without_harm_v1 else ())
    columns, kind = CANDIDATES[s["chosen"]]
    pca = views.pca(rows) if "pooled" in columns else None
    X = views.image_matrix(region, columns, pca)[rows]
    median = float(np.median(views.de[rows]))
    image = fit_image(X, views.de[rows] > median, kind)
    folds = _folds(cache)
    est = _estimator(region, image, columns, float(s["blame_threshold"]), {
        **({"pooled_pca": pca} if pca else {}),
        **({"restraint": restraint.to_dict()} if restraint is not None and not restraint.is_identity else {}),
        "name": "confidence-v2",
        "target": "P(worse half): CIEDE2000 above the cross-fit views' median",
        "median_ciede2000": round(median, 4),
    })  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / assess.CONFIDENCE_WEIGHTS
    weights.write_text(json.dumps(est.params, indent=None, separators=(",", ":")), encoding="utf-8")
    card = {
        "name": "confidence-v2",
        "what": "P(the colorization is in the better half) for any model family, from the grey input, the predicted "
        "chroma, harm-v1's region predictions and the semantic reading (chromata.judgement.assess)",
        "data": {"source": folds["data"], "photos": len(set(views.photos[rows].tolist())), "views": int(rows.sum()),
                 "folds": s["folds"],
                 "models": "the built-in recipe cross-fitted: each photo colorized by a model that never saw it",
                 **({"left_out": left_out} if left_out else {}),
                 **({"region_stage": "without harm-v1's predictions"} if region_without_harm_v1 else {})},
        "restraint": est.restraint.to_dict() if not est.restraint.is_identity else "the identity",
        "image_columns": list(columns),
        "cross_validated": {"groups": s["groups"], "rows": s["rows"], "region_auroc_harmful": s["region_auroc_harmful"],
                            "reliability": s["chosen_reliability"], "spread_5_50_95": s["confidence_spread_5_50_95"]},
        "blame_threshold": s["blame_threshold"],
        "weights_sha256": est.sha256,
        "reproduce": "python -m chromata.studies.crossfit folds|train|outputs, then python -m "
        "chromata.studies.confidence_fit compare|restraint|confirm|fit (docs/confidence.md)",
    }  # fmt: skip
    (out_dir / "confidence-v2.card.json").write_text(json.dumps(card, indent=1), encoding="utf-8")
    return {"weights": str(weights), "sha256": est.sha256, "columns": list(columns), "median": median}


# -- restraint ------------------------------------------------------------------------------------------------


def _grid_figures(views: Views, i: int, factor: NDArray[Any] | float) -> tuple[float, float, float, float]:
    """(CIEDE2000, grey's, colourfulness, truth's) of view ``i`` on the 128 x 128 judging grid with its chroma
    times ``factor`` (a scalar or an 8 x 8 map, bilinear as the runtime applies it)."""
    import cv2

    from chromata.colormath import color

    v = views.v
    L = v["l_de"][i].astype(np.float32)
    truth = np.dstack([L, v["ab_de"][i].astype(np.float32)])
    ab = v["ab64"][i].astype(np.float32)
    if not np.isscalar(factor):
        up = cv2.resize(np.asarray(factor, np.float32), (ab.shape[1], ab.shape[0]), interpolation=cv2.INTER_LINEAR)
        ab = ab * up[..., None]
    else:
        ab = ab * float(factor)  # type: ignore[arg-type]
    ab128 = np.asarray(cv2.resize(ab, (L.shape[1], L.shape[0]), interpolation=cv2.INTER_LINEAR), np.float32)
    out = np.dstack([L, ab128])
    grey = np.dstack([L, np.zeros_like(ab128)])
    de = float(color.ciede2000(truth, out).mean())
    de_grey = float(color.ciede2000(truth, grey).mean())
    return de, de_grey, color.colourfulness(color.lab_to_bgr(out)), color.colourfulness(color.lab_to_bgr(truth))


EVERYWHERE = (
    1.4,
    1.2,
    1.0,
    0.9,
    0.8,
    0.7,
    0.6,
)  # chroma damped (or boosted) everywhere: the frontier without judgement
WHERE = tuple(assess.Restraint(t, keep, gain) for t, keep, gain in (
    (0.5, 0.5, 1.0), (0.5, 0.0, 1.0), (0.6, 0.3, 1.0), (0.7, 0.0, 1.0), (0.5, 0.5, 1.2), (0.6, 0.3, 1.2),
    (0.7, 0.0, 1.2), (0.6, 0.3, 1.4)))  # fmt: skip
SHIPPED_LABEL = "x1.00 everywhere"


def _chosen(everywhere: list[dict[str, Any]], where: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The adoption rule, applied to the cross-fit: of the settings at least as colourful as the model's own
    decoding and below the frontier, the one that moves it most (None: none does)."""
    own = next(p for p in everywhere if p["label"] == SHIPPED_LABEL)
    ok = [p for p in where if p["colourfulness_ratio"] >= own["colourfulness_ratio"] and p["moves_frontier_by"] > 0]
    return max(ok, key=lambda p: p["moves_frontier_by"]) if ok else None


def _label(r: assess.Restraint) -> str:
    return f"p>{r.threshold}: x{r.keep}, else x{r.gain}"


def _frontier_moves(everywhere: list[dict[str, Any]], where: list[dict[str, Any]]) -> None:
    """Each point of ``where`` gains the error damping everywhere has at its colourfulness (interpolated), and by
    how much it lies below that frontier."""
    pts = sorted((p["colourfulness_ratio"], p["ciede2000_vs_grey"]) for p in everywhere)
    for p in where:
        at = float(np.interp(p["colourfulness_ratio"], [x for x, _ in pts], [y for _, y in pts]))
        p["everywhere_at_same_colourfulness"] = round(at, 4)
        p["moves_frontier_by"] = round(at - p["ciede2000_vs_grey"], 4)


def _point(views: Views, label: str, factors: Sequence[NDArray[Any] | float]) -> dict[str, Any]:
    f = np.array([_grid_figures(views, i, factors[i]) for i in range(views.n)])
    return {"label": label, "ciede2000_vs_grey": round(float(f[:, 0].mean() / f[:, 1].mean()), 4),
            "colourfulness_ratio": round(float(f[:, 2].sum() / f[:, 3].sum()), 4)}  # fmt: skip


def restraint(cache: Path, out: Path, compared: Path) -> dict[str, Any]:
    """Damping where harm is predicted (out of sample) against damping everywhere; PNG and JSON in ``out``."""
    from chromata.studies.quality import tradeoff_png

    t0 = time.perf_counter()
    views = Views(cache)
    region_p = np.load(compared / "confidence-cv.npz")["region_p"]
    everywhere = [_point(views, f"x{g:.2f} everywhere", [g] * views.n) for g in EVERYWHERE]
    where = []
    for r in WHERE:
        where.append(_point(views, _label(r), [r.factors(region_p[i]) for i in range(views.n)]))
    _frontier_moves(everywhere, where)
    best = max(where, key=lambda p: p["moves_frontier_by"])
    chosen = _chosen(everywhere, where)
    summary = {"views": views.n, "grid": "128 x 128 judging grid (CIEDE2000 and colourfulness)",
               "everywhere": everywhere, "where_harm_predicted": where, "best": best["label"],
               "best_moves_frontier_by": best["moves_frontier_by"],
               "chosen": None if chosen is None else chosen["label"], "seconds": 0.0}  # fmt: skip
    title = "damping where harm is predicted (p>...) vs everywhere (x...), out of sample"
    png = tradeoff_png(everywhere + where, title, shipped=SHIPPED_LABEL)
    out.mkdir(parents=True, exist_ok=True)
    (out / "restraint-tradeoff.png").write_bytes(png)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "restraint.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def confirm(data: Path, out: Path, estimator: Path | None = None, crops: int = 4, seed: int = 0,
            split: str = "val") -> dict[str, Any]:  # fmt: skip
    """The restraint settings of :func:`restraint` on the shipped built-in model at full resolution: each
    validation photo of its card (never trained on) and ``crops`` crops of it, the model's raw chroma damped
    everywhere or where the region stage of ``estimator`` (default: the packaged one; for a fair check, one fitted
    ``--without-validation``) predicts harm, merged with the photo's own L* and scored against the truth as
    ``chromata eval`` scores (CIEDE2000 and colourfulness at full resolution). The setting the cross-fit chose
    (``restraint.json`` in ``out``) is confirmed where it moves this frontier too."""
    from collections import defaultdict

    from chromata.colormath import color
    from chromata.models import load_colorizer, semantics
    from chromata.models.base import model_input
    from chromata.models.evaluation import load_images, select_photos
    from chromata.studies.calibration import views_of
    from chromata.studies.quality import tradeoff_png

    t0 = time.perf_counter()
    est = assess.ConfidenceEstimator.load(estimator) if estimator is not None else assess.shipped()
    region_est = harm.shipped()
    if est is None or region_est is None:
        raise RuntimeError("the package ships no confidence estimator to restrain with")
    picked = json.loads((out / "restraint.json").read_text(encoding="utf-8")).get("chosen")
    model: Any = load_colorizer("builtin", device="cpu")
    model.restrain = False  # the model's raw chroma: each setting below is applied to it
    images = load_images(select_photos(data, split))
    rng = np.random.default_rng(seed)
    labels = [f"x{g:.2f} everywhere" for g in EVERYWHERE] + [_label(r) for r in WHERE]
    de: dict[str, list[float]] = defaultdict(list)
    cf: dict[str, list[float]] = defaultdict(list)
    grey_de: list[float] = []
    truth_cf: list[float] = []
    for _, bgr in images:
        for view in views_of(bgr, crops, rng):
            truth = color.to_unit_float(np.ascontiguousarray(view))
            lab = color.bgr_to_lab(truth)
            lightness = np.ascontiguousarray(lab[..., 0])
            work = model_input(model, lightness)
            ab = model.predict_ab(work[None]).ab[0]
            rp = est.region_probabilities(work, ab, semantics.semantics_of(work), region_est)
            grey_de.append(float(color.ciede2000(lab, np.dstack([lightness, np.zeros_like(lab[..., 1:])])).mean()))
            truth_cf.append(color.colourfulness(truth))
            outs = [ab * np.float32(g) for g in EVERYWHERE] + [r.apply(ab, rp) for r in WHERE]
            for label, a in zip(labels, outs, strict=True):
                merged = color.merge_chroma(lightness, a)
                de[label].append(float(color.ciede2000(lab, color.bgr_to_lab(merged)).mean()))
                cf[label].append(color.colourfulness(merged))
    g = np.asarray(grey_de)

    def point(label: str) -> dict[str, Any]:
        d = np.asarray(de[label])
        return {"label": label, "ciede2000_vs_grey": round(float(d.mean() / g.mean()), 4),
                "colourfulness_ratio": round(float(np.sum(cf[label]) / np.sum(truth_cf)), 4),
                "harmful_views": int((d > g).sum())}  # fmt: skip

    everywhere = [point(label) for label in labels[: len(EVERYWHERE)]]
    where = [point(label) for label in labels[len(EVERYWHERE) :]]
    _frontier_moves(everywhere, where)
    check = next((p for p in where if p["label"] == picked), None)
    confirmed = check is not None and check["moves_frontier_by"] > 0
    summary = {"views": len(grey_de), "photos": len(images), "model": model.name,
               "estimator": est.name if estimator is None else str(estimator), "estimator_sha256": est.sha256,
               "grid": "full resolution, the shipped built-in model on its card's validation photos and "
               f"{crops} crops of each", "everywhere": everywhere, "where_harm_predicted": where,
               "chosen": picked, "confirmed": confirmed,
               "adopt": next(r.to_dict() for r in WHERE if _label(r) == picked) if confirmed else None,
               "seconds": 0.0}  # fmt: skip
    title = "shipped model, full resolution: damping where harm is predicted (p>...) vs everywhere (x...)"
    out.mkdir(parents=True, exist_ok=True)
    (out / "restraint-confirm.png").write_bytes(tradeoff_png(everywhere + where, title, shipped=SHIPPED_LABEL))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "restraint-confirm.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


# -- docs -----------------------------------------------------------------------------------------------------
GOALS = {"worse": 0.9, "harmful": 0.8}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def compare_markdown(s: dict[str, Any], command: str) -> str:
    lines = [
        f"`{command}` — {s['views']} views of {s['photos']} photos ({s['harmful_views']} harmful), each colorized "
        f"by the one of {s['folds']} cross-fitted built-in models that never saw it; estimators cross-validated "
        f"by photo ({s['groups']} groups; the region stage refitted inside each).",
        "",
        "| signal (higher = worse) | AUROC worse half | AUROC harmful |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r['signal']} | {r['worse']:.3f} | {r['harmful']:.3f} |" for r in s["rows"]]
    lines += ["", "| goal | reached | closest signal |", "|---|---|---|"]
    for label, goal in GOALS.items():
        best = max(s["rows"], key=lambda r: r[label])
        gap = goal - best[label]
        verdict = "yes" if gap <= 0 else f"no: {gap:.3f} short"
        lines.append(f"| AUROC {label.replace('worse', 'worse half')} ≥ {goal} | {verdict} | {best['signal']} "
                     f"({best[label]:.3f}) |")  # fmt: skip
    ratio_ok = s["ciede2000_vs_grey"] <= 0.9 and s["colourfulness_ratio"] >= 0.8
    lines.append(
        f"| CIEDE2000 ≤ 0.90 × grey at colourfulness ≥ 0.8 | {'yes' if ratio_ok else 'no'} "
        f"({s['ciede2000_vs_grey']:.3f} × at {s['colourfulness_ratio']:.3f}, full resolution, these fold models; "
        "restraint: below) | — |"
    )
    rel = ", ".join(f"{r['predicted']:.2f}→{r['observed']:.2f}" for r in s["chosen_reliability"])
    q = s["confidence_spread_5_50_95"]
    b = s["blame"][str(s["blame_threshold"])]
    lines += [
        "",
        f"Shipped as the confidence (score version 2): **{s['chosen']}**. Out of sample its confidence is spread "
        f"{q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} (5th / 50th / 95th percentile), and by decile it reads (confidence → "
        f"share in the better half): {rel}.",
        "",
        f"The region stage ranks harmful regions at AUROC {s['region_auroc_harmful']:.3f}. At its blame threshold "
        f"{s['blame_threshold']} a blamed region (with visible colour) is harmful {_pct(b['precision'])} of the time, "
        f"against {_pct(b['base_rate'])} of all coloured regions; {b['views_with_a_blame']:.0%} of views carry a "
        "blame. By kind:",
        "",
        "| kind | coloured regions | blamed | harmful if blamed | harmful overall |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in b["by_kind"]:
        hb = "—" if r["harmful_if_blamed"] is None else f"{r['harmful_if_blamed']:.2f}"
        lines.append(f"| {r['kind']} | {r['regions']} | {r['blamed']} | {hb} | {r['harmful_overall']:.2f} |")
    return "\n".join(lines)


def restraint_markdown(s: dict[str, Any], command: str) -> str:
    judged = ("out of sample" if "confirmed" not in s else
              f"harm predicted by {s['estimator']} (sha256 {s['estimator_sha256'][:12]}…)")  # fmt: skip
    lines = [
        f"`{command}` — {s['views']} views, {judged}; {s['grid']}. Damping everywhere traces the frontier "
        "that needs no judgement; restraint where harm is predicted earns its place only below it.",
        "",
        "| decoding | CIEDE2000 × grey | colourfulness × truth | everywhere, same colourfulness | moves frontier by |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in s["everywhere"]:
        lines.append(f"| {p['label']} | {p['ciede2000_vs_grey']:.4f} | {p['colourfulness_ratio']:.3f} | — | — |")
    for p in s["where_harm_predicted"]:
        lines.append(f"| {p['label']} | {p['ciede2000_vs_grey']:.4f} | {p['colourfulness_ratio']:.3f} | "
                     f"{p['everywhere_at_same_colourfulness']:.4f} | {p['moves_frontier_by']:+.4f} |")  # fmt: skip
    if "confirmed" in s:
        verdict = "confirmed: it moves this frontier too" if s["confirmed"] else "not confirmed here"
        lines += ["", f"The cross-fit's choice, **{s['chosen']}**: {verdict} (estimator: {s['estimator']}).",
                  "", "![restraint on the shipped model](img/restraint-confirm.png)"]  # fmt: skip
    else:
        chosen = s.get("chosen") or "none (no setting as colourful as the model's own moves the frontier)"
        lines += [
            "",
            f"Chosen by the rule (of the settings at least as colourful as x1.00, the one that moves the "
            f"frontier most): **{chosen}**.",
            "",
            "![restraint trade-off](img/restraint-tradeoff.png)",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m chromata.studies.confidence_fit",
                                 description=(__doc__ or "").splitlines()[0])  # fmt: skip
    ap.add_argument("--cache", type=Path, default=Path("eval-report/crossfit"))
    ap.add_argument("--out", type=Path, default=Path("eval-report/crossfit"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="candidates cross-validated by photo")
    c.add_argument("--doc", type=Path, default=None, help="write the table into this file's confidence-v2 section")
    f = sub.add_parser("fit", help="the chosen candidate on every view, into the package")
    f.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help="where to write (default: the package; with --without-validation: OUT/without-validation)",
    )
    f.add_argument(
        "--without-validation",
        action="store_true",
        help="leave out the built-in model card's validation photos (for confirm's fair check)",
    )
    f.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    f.add_argument(
        "--region-without-harm-v1",
        action="store_true",
        help="the region stage ignores harm-v1's predictions (harm-v1 saw the validation photos)",
    )
    f.add_argument(
        "--restraint",
        type=Path,
        default=None,
        help="restraint-confirm.json: ship its setting where it was confirmed (else the identity)",
    )
    r = sub.add_parser("restraint", help="damping where harm is predicted against damping everywhere")
    r.add_argument("--png", type=Path, default=None, help="also copy the plot here (docs/img/…)")
    r.add_argument("--doc", type=Path, default=None, help="write the table into this file's restraint section")
    k = sub.add_parser("confirm", help="the same settings on the shipped model at full resolution")
    k.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    k.add_argument("--estimator", type=Path, default=None, help="a confidence-v2.json (default: the packaged one)")
    k.add_argument("--png", type=Path, default=None, help="also copy the plot here (docs/img/…)")
    k.add_argument("--doc", type=Path, default=None, help="write the table into this file's restraint-confirm section")
    args = ap.parse_args(argv)
    result: Any
    if args.cmd == "confirm":
        result = confirm(args.data, args.out, args.estimator)
        if args.png is not None:
            args.png.write_bytes((args.out / "restraint-confirm.png").read_bytes())
        if args.doc is not None:
            est_opt = f" --estimator {args.estimator}" if args.estimator is not None else ""
            cmd = f"python -m chromata.studies.confidence_fit confirm{est_opt} --doc {args.doc}"
            write_doc_section(args.doc, "restraint-confirm", restraint_markdown(result, cmd))
    elif args.cmd == "compare":
        result = compare(args.cache, args.out)
        if args.doc is not None:
            cmd = f"python -m chromata.studies.confidence_fit compare --doc {args.doc}"
            write_doc_section(args.doc, "confidence-v2", compare_markdown(result, cmd))
    elif args.cmd == "fit":
        without: frozenset[str] = frozenset()
        if args.without_validation:
            from chromata.models.evaluation import select_photos

            without = frozenset(p.name for p in select_photos(args.data, "val"))
        adopt = None
        if args.restraint is not None:
            adopted = json.loads(args.restraint.read_text(encoding="utf-8")).get("adopt")
            adopt = assess.Restraint.of(adopted) if adopted else None
        weights_dir = args.weights_dir or (
            args.out / "without-validation" if without else Path(str(assess.confidence_weights_path().parent))
        )
        result = fit(args.cache, weights_dir, args.out, without, adopt, args.region_without_harm_v1)
    else:
        result = restraint(args.cache, args.out, args.out)
        if args.png is not None:
            args.png.write_bytes((args.out / "restraint-tradeoff.png").read_bytes())
        if args.doc is not None:
            cmd = f"python -m chromata.studies.confidence_fit restraint --doc {args.doc}"
            write_doc_section(args.doc, "restraint", restraint_markdown(result, cmd))
    sys.stdout.write(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
