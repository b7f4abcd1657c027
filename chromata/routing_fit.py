"""Decisions teach the routing: refit the confidence score from the curators' approve / reject / re-colour
decisions (``chromata calibrate --from-decisions``).

The fixed score multiplies the model's certainty by ``INPUT_PENALTY`` for every input risk. A routing fit
replaces that guess by what the curators said: an L2-regularised logistic regression of "approved" against
"rejected or needs re-colour" on the model's certainty and one indicator per reason code, so each reason gets
the weight the decisions give it. A collection with at least ``MIN_DECISIONS`` decisions (both kinds) gets its
own fit; the others use the global one.

    examples = examples_from(storage)         # decided manifest rows -> features + label
    fit = fit_routing(examples)               # the models, with a cross-validated report
    key = save(storage, fit)                  # _chromata/routing/fit-<utc>.json (create-once)
    fit = load_latest(storage)                # the newest, or None
    score = apply(fit, certainty, reasons, collection)   # P(good): what routes images to curators

The certainty of a decided row is read back from its confidence heatmap (the viridis PNG of the very
uncertainty map the score was computed from, so it holds whatever calibration the score went through); a row
without a heatmap is inverted from its recorded score when that score was the plain fixed one. Plain core code.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.calibration import auroc
from chromata.confidence import INFORMATIVE_REASONS, INPUT_PENALTY, U_CERTAIN, U_UNSURE, ConfidenceReport
from chromata.reasons import reason
from chromata.storage import Storage

FIT_FORMAT = "chromata-routing-fit/1"
ROUTING_PREFIX = "_chromata/routing"
MIN_DECISIONS = 30  # a collection's own fit needs this many decisions (both approvals and rejections)
MIN_GLOBAL = 10  # the global fit needs this many
GOOD = frozenset({"approved"})
BAD = frozenset({"rejected", "needs_recolour"})
L2 = 1.0
FOLDS = 5


class RoutingFitError(ValueError):
    """Not enough decisions to fit from (one line, for the CLI)."""


@dataclass(frozen=True)
class Example:
    image_id: str
    collection: str
    certainty: float
    reasons: tuple[str, ...]  # the row's reasons less routing ones (least_confident, curator_rerun)
    good: bool
    current: float  # the score the row was routed by
    decided_at: float


@dataclass(frozen=True)
class Model:
    """log-odds(good) = intercept + certainty_weight × certainty + Σ reasons[code] over the reasons present."""

    intercept: float
    certainty_weight: float
    reasons: dict[str, float]
    decisions: int

    def score(self, certainty: float, reasons: Iterable[str]) -> float:
        z = self.intercept + self.certainty_weight * certainty
        for code in set(reasons):
            if code in self.reasons:
                z += self.reasons[code]
            elif reason(code).kind == "risk" and code not in INFORMATIVE_REASONS:
                z += math.log(INPUT_PENALTY)  # a risk the decisions never saw keeps the fixed penalty
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class RoutingFit:
    created_at: str
    decisions: int
    latest_decided_at: float
    min_decisions: int
    overall: Model
    collections: dict[str, Model]
    report: dict[str, Any] = field(default_factory=dict)
    format: str = FIT_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> RoutingFit:
        try:
            data = json.loads(text)
            if data.get("format") != FIT_FORMAT:
                raise ValueError(f"not a {FIT_FORMAT} file")
            data["overall"] = Model(**data["overall"])
            data["collections"] = {k: Model(**v) for k, v in data["collections"].items()}
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RoutingFitError(f"not a routing fit: {exc}") from exc

    def model_for(self, collection: str | None) -> Model:
        return self.collections.get(collection or "", self.overall)


def certainty_of(mean_uncertainty: float) -> float:
    """The fixed score's certainty (chromata.confidence) from the mean normalised entropy."""
    return float(np.clip((U_UNSURE - mean_uncertainty) / (U_UNSURE - U_CERTAIN), 0.0, 1.0))


def apply(fit: RoutingFit, certainty: float, reasons: Sequence[str], collection: str | None) -> float:
    """The routing score (P(good) under the decisions) of one image."""
    return round(fit.model_for(collection).score(certainty, reasons), 4)


def rescore(fit: RoutingFit, report: ConfidenceReport, collection: str | None) -> ConfidenceReport:
    """``report`` with its score from the routing fit instead of the fixed penalties."""
    return replace(report, score=apply(fit, certainty_of(report.mean_uncertainty), report.reasons, collection))


# -- reading decided rows -------------------------------------------------------------------------------------
_VIRIDIS = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_VIRIDIS)[0]
_PACKED = _VIRIDIS[:, 0].astype(np.int64) << 16 | _VIRIDIS[:, 1].astype(np.int64) << 8 | _VIRIDIS[:, 2]
_ORDER = np.argsort(_PACKED)


def mean_uncertainty_of_heatmap(png: bytes) -> float:
    """The mean uncertainty a confidence heatmap (``confidence.heatmap_png``) shows, to within its 8 bits."""
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a PNG heatmap")
    px = img.reshape(-1, 3).astype(np.int64)
    packed = px[:, 0] << 16 | px[:, 1] << 8 | px[:, 2]
    pos = np.clip(np.searchsorted(_PACKED[_ORDER], packed), 0, 255)
    grey = _ORDER[pos].astype(np.float64)
    return float(np.clip(1.0 - grey.mean() / 255.0, 0.0, 1.0))


def _certainty_of_row(storage: Storage, row: dict[str, Any]) -> float | None:
    key = row.get("heatmap_key")
    if key and storage.exists(key):
        try:
            return certainty_of(mean_uncertainty_of_heatmap(storage.read(key)))
        except ValueError:
            pass
    params = json.loads(row.get("params_json") or "{}")
    if params.get("calibration_sha256") or params.get("routing_fit_sha256") or row.get("confidence") is None:
        return None  # the recorded score went through a map that cannot be undone
    risks = [c for c in _input_reasons(row) if c not in INFORMATIVE_REASONS and c != "high_chroma_uncertainty"]
    return min(1.0, float(row["confidence"]) / INPUT_PENALTY ** len(risks))


def _input_reasons(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(c for c in row.get("confidence_reasons") or () if reason(c).kind != "routing")


def examples_from(storage: Storage) -> tuple[list[Example], int]:
    """Every decided ``ok`` row of the destination as an example (the newest decision on each output), and
    how many decided rows were left out because their certainty could not be recovered."""
    from chromata.manifest_index import ManifestIndex

    index = ManifestIndex.load(storage)
    examples, skipped = [], 0
    for row in index.rows():
        d = index.decision(row["image_id"], row["output_sha256"])
        if row["status"] != "ok" or d is None or d["decision"] not in GOOD | BAD:
            continue
        certainty = _certainty_of_row(storage, row)
        if certainty is None:
            skipped += 1
            continue
        examples.append(
            Example(
                row["image_id"], d.get("collection") or "", certainty, _input_reasons(row),
                d["decision"] in GOOD, float(row["confidence"] or 0.0), float(d["decided_at"] or 0.0),
            )
        )  # fmt: skip
    return examples, skipped


# -- fitting --------------------------------------------------------------------------------------------------
def _design(examples: Sequence[Example], codes: Sequence[str]) -> NDArray[np.float64]:
    x = np.zeros((len(examples), 2 + len(codes)))
    col = {c: 2 + i for i, c in enumerate(codes)}
    for i, e in enumerate(examples):
        x[i, 0], x[i, 1] = 1.0, e.certainty
        for c in set(e.reasons):
            if c in col:
                x[i, col[c]] = 1.0
    return x


def _logistic(x: NDArray[np.float64], y: NDArray[np.float64], l2: float) -> NDArray[np.float64]:
    """L2-regularised logistic regression by Newton's method (the intercept barely regularised)."""
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[0] = 1e-4
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _fit_model(examples: Sequence[Example], l2: float) -> Model:
    codes = sorted({c for e in examples for c in e.reasons})
    w = _logistic(_design(examples, codes), np.array([float(e.good) for e in examples]), l2)
    return Model(
        round(float(w[0]), 5),
        round(float(w[1]), 5),
        {c: round(float(v), 5) for c, v in zip(codes, w[2:], strict=True)},
        len(examples),
    )


def _both(examples: Sequence[Example]) -> bool:
    return any(e.good for e in examples) and not all(e.good for e in examples)


def _fit_models(examples: Sequence[Example], min_decisions: int, l2: float) -> tuple[Model, dict[str, Model]]:
    by: dict[str, list[Example]] = {}
    for e in examples:
        by.setdefault(e.collection, []).append(e)
    own = {c: _fit_model(es, l2) for c, es in sorted(by.items()) if len(es) >= min_decisions and _both(es)}
    return _fit_model(examples, l2), own


def _score(overall: Model, own: dict[str, Model], e: Example) -> float:
    return own.get(e.collection, overall).score(e.certainty, e.reasons)


def _fold_of(image_id: str, folds: int) -> int:
    return int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16) % folds


def fit_routing(
    examples: Sequence[Example],
    *,
    min_decisions: int = MIN_DECISIONS,
    budget: float = 0.15,
    threshold: float = 0.4,
    l2: float = L2,
    folds: int = FOLDS,
) -> RoutingFit:
    """The routing fit of ``examples`` with its report: out-of-fold AUROC (folds grouped by image, so no
    image is in training and test at once) beside the current score's on the same decisions, the queue at
    ``threshold`` and ``budget`` before and after, and each reason's weight against the fixed penalty."""
    bad = sum(not e.good for e in examples)
    if len(examples) < MIN_GLOBAL or not _both(examples):
        raise RoutingFitError(
            f"too few decisions to refit the routing: {len(examples)} ({len(examples) - bad} approved, {bad} "
            f"rejected or re-colour); need at least {MIN_GLOBAL} with both kinds (export them: chromata review export)"
        )
    overall, own = _fit_models(examples, min_decisions, l2)
    positives = [not e.good for e in examples]
    oof = np.zeros(len(examples))
    fold = np.array([_fold_of(e.image_id, folds) for e in examples])
    for k in range(folds):
        train = [e for e, f in zip(examples, fold, strict=True) if f != k]
        if not (fold == k).any():
            continue
        if not _both(train):  # a fold without both kinds to learn from: the whole-data fit, not held out
            o, c = overall, own
        else:
            o, c = _fit_models(train, min_decisions, l2)
        for i in np.flatnonzero(fold == k):
            oof[i] = _score(o, c, examples[int(i)])
    fitted = [_score(overall, own, e) for e in examples]
    current = [e.current for e in examples]
    quota = math.ceil(budget * len(examples))

    def caught(scores: Sequence[float]) -> int:
        order = sorted(range(len(examples)), key=lambda i: (scores[i], examples[i].image_id))
        return sum(not examples[i].good for i in order[:quota])

    weights = []
    for code, w in sorted(overall.reasons.items(), key=lambda kv: kv[1]):
        fixed = 1.0 if code in INFORMATIVE_REASONS or code == "high_chroma_uncertainty" else INPUT_PENALTY
        factor = math.exp(w)
        change = "gained" if factor < fixed - 0.05 else "lost" if factor > fixed + 0.05 else "same"
        entry = {"reason": code, "fixed_factor": fixed, "learned_odds_factor": round(factor, 3), "change": change}
        weights.append(entry)
    report = {
        "decisions": len(examples),
        "approved": len(examples) - bad,
        "rejected_or_recolour": bad,
        "collections_with_own_fit": sorted(own),
        "cv_folds": folds,
        "cv_auroc": round(auroc([-s for s in oof], positives), 4),
        "current_auroc": round(auroc([-s for s in current], positives), 4),
        "threshold": threshold,
        "queue_at_threshold_current": sum(s < threshold for s in current),
        "queue_at_threshold_refit": sum(s < threshold for s in fitted),
        "budget": budget,
        "queue_at_budget": quota,
        "bad_in_budget_queue_current": caught(current),
        "bad_in_budget_queue_refit": caught(fitted),
        "reasons": weights,
    }
    return RoutingFit(
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        decisions=len(examples),
        latest_decided_at=max(e.decided_at for e in examples),
        min_decisions=min_decisions,
        overall=overall,
        collections=own,
        report=report,
    )


# -- storing --------------------------------------------------------------------------------------------------
def save(storage: Storage, fit: RoutingFit) -> str:
    """Write ``fit`` create-once under ``_chromata/routing/``; returns its key."""
    stamp = fit.created_at.replace("-", "").replace(":", "")
    key = f"{ROUTING_PREFIX}/fit-{stamp}-{fit.sha256[:12]}.json"
    storage.create_once(key, fit.to_json().encode(), content_type="application/json")
    return key


def latest_key(storage: Storage) -> str | None:
    keys = sorted(o.key for o in storage.list(ROUTING_PREFIX + "/") if o.key.endswith(".json"))
    return keys[-1] if keys else None


def load_latest(storage: Storage) -> RoutingFit | None:
    """The newest routing fit of the destination, or None when it has none."""
    key = latest_key(storage)
    return None if key is None else RoutingFit.from_json(storage.read(key).decode())


def from_decisions(storage: Storage, **kw: Any) -> tuple[RoutingFit, str, int]:
    """Fit from the destination's decisions and save it: (the fit, its key, decided rows left out)."""
    examples, skipped = examples_from(storage)
    fit = fit_routing(examples, **kw)
    return fit, save(storage, fit), skipped


LATEST = "latest"


def for_run(value: str | None, storage: Storage) -> RoutingFit | None:
    """The fit a run's ``routing_fit`` names: None, a fit's JSON, or ``latest`` (the destination's newest)."""
    if value is None:
        return None
    if value == LATEST:
        return load_latest(storage)
    return RoutingFit.from_json(value)


def resolved(value: str | None, storage: Storage) -> str | None:
    """``routing_fit`` as a run records it: ``latest`` replaced by that fit's JSON (None when there is none),
    so every shard of the run uses the same fit and its SHA-256 goes into the rows' parameters."""
    fit = for_run(value, storage)
    return None if fit is None else fit.to_json()


def report_rows(fit: RoutingFit, skipped: int = 0) -> list[tuple[str, str]]:
    """The fit's report as (what, value) lines: the one table ``chromata calibrate --from-decisions`` prints."""
    r = fit.report
    own = ", ".join(r["collections_with_own_fit"]) or f"none (< {fit.min_decisions} decisions each)"
    bad = r["rejected_or_recolour"]
    rows = [
        ("decisions", f"{r['decisions']} ({r['approved']} approved, {bad} rejected / re-colour)"),
        ("left out", f"{skipped} decided rows whose certainty could not be read back"),
        ("own fit", own),
        (f"AUROC ({r['cv_folds']}-fold CV)", f"{r['cv_auroc']:.3f} refit vs {r['current_auroc']:.3f} current"),
        (
            f"queue at threshold {r['threshold']}",
            f"{r['queue_at_threshold_refit']} refit vs {r['queue_at_threshold_current']} current",
        ),
        (
            f"bad in the queue at budget {r['budget']}",
            f"{r['bad_in_budget_queue_refit']} refit vs {r['bad_in_budget_queue_current']} current "
            f"(queue {r['queue_at_budget']})",
        ),
    ]
    for w in r["reasons"]:
        factors = f"odds x {w['learned_odds_factor']} (fixed x {w['fixed_factor']})"
        rows.append((f"reason {w['reason']}", f"{w['change']}: {factors}"))
    return rows
