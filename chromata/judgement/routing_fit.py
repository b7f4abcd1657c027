"""Decisions teach the routing: refit the confidence score from the curators' approve / reject / re-colour
decisions (``chromata calibrate --from-decisions``), and adopt the refit only where it beats the current score.

The fixed score multiplies the model's certainty by ``INPUT_PENALTY`` for every input risk. A routing fit
replaces that guess by what the curators said: an L2-regularised logistic regression of "approved" against
"rejected or needs re-colour" on the model's certainty and one indicator per reason code, so each reason gets
the weight the decisions give it. A collection with at least ``MIN_DECISIONS`` decisions (both kinds) gets its
own fit; the others use the global one. A bulk approval (a card approved with others from the queue grid, never
opened on its own page) weighs ``BULK_WEIGHT`` of a reviewed decision.

A fit is **adopted** — written where ``latest`` (nightly runs) finds it — only when it beats the score the
decisions were routed by out of sample: at least ``MIN_ADOPT`` decisions (weighted; ``MIN_ADOPT_EACH`` of each
kind), and the lower end of the ``ADOPT_INTERVAL`` bootstrap interval of (cross-validated AUROC − current
AUROC) above zero. Any other fit is kept for the record under ``_chromata/routing/not-adopted/``.

    examples, left_out = examples_from(storage)   # decided manifest rows -> features + label + weight
    fit = fit_routing(examples)               # the models, with an out-of-sample report and its verdict
    key = save(storage, fit)                  # fit-<utc>.json if adopted, else not-adopted/fit-<utc>.json
    fit = load_latest(storage)                # the newest adopted fit, or None
    score = apply(fit, certainty, reasons, collection)   # P(good): what routes images to curators

The certainty of a decided row is read back from its confidence heatmap: the viridis PNG of the uncertainty
map the score was computed from, resized to at most 256 px and quantised to 8 bits, so the mean read back is
close to the score's, not equal to it (``tests/test_routing_fit.py`` holds a random map's within 0.004); a row
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

from chromata.archive.storage import Storage
from chromata.judgement.confidence import INFORMATIVE_REASONS, INPUT_PENALTY, ConfidenceReport, certainty_v1
from chromata.judgement.reasons import reason

FIT_FORMAT = "chromata-routing-fit/1"
ROUTING_PREFIX = "_chromata/routing"
NOT_ADOPTED_PREFIX = f"{ROUTING_PREFIX}/not-adopted"
MIN_DECISIONS = 30  # a collection's own fit needs this many decisions (both approvals and rejections)
MIN_GLOBAL = 10  # the global fit needs this many
MIN_ADOPT = 30  # a fit is adopted only when measured on at least this many (weighted) decisions …
MIN_ADOPT_EACH = 5  # … with at least this many of each kind
ADOPT_INTERVAL = 0.9  # … and the lower end of this bootstrap interval of its AUROC gain above zero
BOOTSTRAP = 1000  # resamples (of images) for that interval; seeded, so a fit's report is reproducible
BULK_WEIGHT = 0.5  # a bulk approval's weight against a reviewed decision's (a prior, not a measurement)
# The decision log records the curator's verb (approve, reject, recolour), an item its status (approved, …):
# exports carry the verb; both are read.
GOOD = frozenset({"approve", "approved"})
BAD = frozenset({"reject", "rejected", "recolour", "needs_recolour"})
MODES = ("item", "bulk", "unknown")  # reviewed on its own page (or alone through the API), in bulk, not recorded
L2 = 1.0
FOLDS = 5


class RoutingFitError(ValueError):
    """Not enough decisions to fit from (one line, for the CLI)."""


def fixed_factor(code: str) -> float:
    """The fixed score's factor for one reason code (``chromata.judgement.confidence.score``): ``INPUT_PENALTY`` for an
    input risk; 1 for material (tonings), routing reasons and ``high_chroma_uncertainty``, which the certainty
    already holds (the fixed score adds it after the penalties)."""
    if code in INFORMATIVE_REASONS or code == "high_chroma_uncertainty" or reason(code).kind != "risk":
        return 1.0
    return INPUT_PENALTY


@dataclass(frozen=True)
class Example:
    image_id: str
    collection: str
    certainty: float
    reasons: tuple[str, ...]  # the row's reasons less routing ones (least_confident, curator_rerun)
    good: bool
    current: float  # the score the row was routed by
    decided_at: float
    mode: str = "item"  # how the decision was made: item (reviewed on its own), bulk, unknown (not recorded)


def weight_of(e: Example, bulk_weight: float = BULK_WEIGHT) -> float:
    """A decision's weight in the fit and in its measurement: a bulk approval (a card approved from the grid
    with others) counts ``bulk_weight``; reviewed decisions, bulk rejections (the curator picked the card out)
    and decisions made before the mode was recorded count 1."""
    return bulk_weight if e.mode == "bulk" and e.good else 1.0


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
            # a reason the decisions never saw keeps the fixed score's factor (1 for high_chroma_uncertainty)
            z += self.reasons[code] if code in self.reasons else math.log(fixed_factor(code))
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

    @property
    def adopted(self) -> bool:
        """Whether the fit passed the adoption rule when it was made. A fit from before the rule (its report
        has no verdict) is not adopted: refit it (``chromata calibrate --from-decisions``)."""
        verdict = self.report.get("adoption")
        return isinstance(verdict, dict) and verdict.get("adopted") is True

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
    """The fixed score's version-1 certainty (chromata.judgement.confidence) from the mean normalised entropy."""
    return certainty_v1(mean_uncertainty)


def apply(fit: RoutingFit, certainty: float, reasons: Sequence[str], collection: str | None) -> float:
    """The routing score (P(good) under the decisions) of one image."""
    return round(fit.model_for(collection).score(certainty, reasons), 4)


def rescore(fit: RoutingFit, report: ConfidenceReport, collection: str | None) -> ConfidenceReport:
    """``report`` with its score from the routing fit instead of the fixed penalties."""
    return replace(report, score=apply(fit, report.certainty, report.reasons, collection))


# -- reading decided rows -------------------------------------------------------------------------------------
_VIRIDIS = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_VIRIDIS)[0]
_PACKED = _VIRIDIS[:, 0].astype(np.int64) << 16 | _VIRIDIS[:, 1].astype(np.int64) << 8 | _VIRIDIS[:, 2]
_ORDER = np.argsort(_PACKED)


def mean_uncertainty_of_heatmap(png: bytes) -> float:
    """The mean uncertainty a confidence heatmap (``confidence.heatmap_png``) shows: the mean of the map after
    its resizing to the heatmap's size and 8-bit quantisation, close to the map's own mean but not equal."""
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a PNG heatmap")
    px = img.reshape(-1, 3).astype(np.int64)
    packed = px[:, 0] << 16 | px[:, 1] << 8 | px[:, 2]
    pos = np.clip(np.searchsorted(_PACKED[_ORDER], packed), 0, 255)
    grey = _ORDER[pos].astype(np.float64)
    return float(np.clip(1.0 - grey.mean() / 255.0, 0.0, 1.0))


def _certainty_of_row(storage: Storage, row: dict[str, Any]) -> float | None:
    params = json.loads(row.get("params_json") or "{}")
    key = row.get("heatmap_key")
    # the heatmap shows the model's uncertainty: version 1's certainty; a version-2 score's certainty is the
    # estimator's, recovered from the score itself below
    if str(params.get("score_version", "1")) == "1" and key and storage.exists(key):
        try:
            return certainty_of(mean_uncertainty_of_heatmap(storage.read(key)))
        except ValueError:
            pass
    calibrated = params.get("score_calibrated", bool(params.get("calibration_sha256")))
    if calibrated or params.get("routing_fit_sha256") or row.get("confidence") is None:
        return None  # the recorded score went through a map that cannot be undone
    factor = math.prod(fixed_factor(c) for c in set(_input_reasons(row)))
    return min(1.0, float(row["confidence"]) / factor)


def _input_reasons(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(c for c in row.get("confidence_reasons") or () if reason(c).kind != "routing")


def _mode_of(decision: dict[str, Any]) -> str:
    mode = decision.get("mode")
    return mode if mode in ("item", "bulk") else "unknown"


def examples_from(storage: Storage) -> tuple[list[Example], int]:
    """Every decided ``ok`` row of the destination as an example (the newest decision on each output), and
    how many decided rows were left out because their certainty could not be recovered."""
    from chromata.record.manifest_index import ManifestIndex

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
                d["decision"] in GOOD, float(row["confidence"] or 0.0), float(d["decided_at"] or 0.0), _mode_of(d),
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


def _logistic(x: NDArray[np.float64], y: NDArray[np.float64], l2: float, w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Weighted, L2-regularised logistic regression by Newton's method (the intercept barely regularised)."""
    beta = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[0] = 1e-4
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30, 30)))
        grad = x.T @ (w * (p - y)) + reg * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _fit_model(examples: Sequence[Example], l2: float, bulk_weight: float) -> Model:
    codes = sorted({c for e in examples for c in e.reasons})
    y = np.array([float(e.good) for e in examples])
    w = np.array([weight_of(e, bulk_weight) for e in examples])
    beta = _logistic(_design(examples, codes), y, l2, w)
    return Model(
        round(float(beta[0]), 5),
        round(float(beta[1]), 5),
        {c: round(float(v), 5) for c, v in zip(codes, beta[2:], strict=True)},
        len(examples),
    )


def _both(examples: Sequence[Example]) -> bool:
    return any(e.good for e in examples) and not all(e.good for e in examples)


def _fit_models(
    examples: Sequence[Example], min_decisions: int, l2: float, bulk_weight: float
) -> tuple[Model, dict[str, Model]]:
    by: dict[str, list[Example]] = {}
    for e in examples:
        by.setdefault(e.collection, []).append(e)
    own = {c: _fit_model(es, l2, bulk_weight) for c, es in sorted(by.items()) if len(es) >= min_decisions and _both(es)}
    return _fit_model(examples, l2, bulk_weight), own


def _score(overall: Model, own: dict[str, Model], e: Example) -> float:
    return own.get(e.collection, overall).score(e.certainty, e.reasons)


def _fold_of(image_id: str, folds: int) -> int:
    return int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16) % folds


def out_of_fold(
    examples: Sequence[Example], *, min_decisions: int = MIN_DECISIONS, l2: float = L2,
    bulk_weight: float = BULK_WEIGHT, folds: int = FOLDS,
) -> NDArray[np.float64]:  # fmt: skip
    """Each example's score from the fit of the folds it is not in (folds grouped by image, so no image is in
    training and test at once). A fold whose training part has one kind only scores its examples by that part's
    weighted share of approvals: no fit sees the examples it scores."""
    oof = np.zeros(len(examples))
    fold = np.array([_fold_of(e.image_id, folds) for e in examples])
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        if not len(test):
            continue
        train = [e for e, f in zip(examples, fold, strict=True) if f != k]
        if _both(train):
            o, c = _fit_models(train, min_decisions, l2, bulk_weight)
            for i in test:
                oof[i] = _score(o, c, examples[int(i)])
        else:
            w = [weight_of(e, bulk_weight) for e in train]
            oof[test] = (sum(wi for wi, e in zip(w, train, strict=True) if e.good) + 0.5) / (sum(w) + 1.0)
    return oof


def weighted_auroc(scores: NDArray[np.float64], positives: NDArray[np.bool_], weights: NDArray[np.float64]) -> float:
    """P(a positive scores higher than a negative), each pair weighted by the product of its weights (ties
    half); with every weight 1, the plain AUROC (``chromata.judgement.calibration.auroc``)."""
    _, group = np.unique(scores, return_inverse=True)
    return _grouped_auroc(group, positives, weights)


def _grouped_auroc(group: NDArray[np.intp], positives: NDArray[np.bool_], weights: NDArray[np.float64]) -> float:
    pos = np.bincount(group, weights=weights * positives)
    neg = np.bincount(group, weights=weights * ~positives)
    total = pos.sum() * neg.sum()
    if total <= 0:
        raise ValueError("AUROC needs both positive and negative examples")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / total)


def auroc_gain_interval(
    refit: NDArray[np.float64], current: NDArray[np.float64], bad: NDArray[np.bool_], weights: NDArray[np.float64],
    image_ids: Sequence[str], *, level: float = ADOPT_INTERVAL, resamples: int = BOOTSTRAP, seed: int = 0,
) -> tuple[float, float]:  # fmt: skip
    """The central ``level`` interval of AUROC(refit) − AUROC(current) over a paired bootstrap that resamples
    images (every decision on a drawn image comes along, as many times as it is drawn). Scores are P(good), so
    the AUROC ranks bad decisions by low score."""
    images, image = np.unique(np.asarray(image_ids), return_inverse=True)
    g_refit = np.unique(-refit, return_inverse=True)[1]
    g_current = np.unique(-current, return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        drawn = np.bincount(rng.integers(0, len(images), len(images)), minlength=len(images))[image]
        w = weights * drawn
        try:
            gains.append(_grouped_auroc(g_refit, bad, w) - _grouped_auroc(g_current, bad, w))
        except ValueError:  # a resample without both kinds says nothing about either score
            continue
    if not gains:
        return (0.0, 0.0)
    lo, hi = np.quantile(gains, [(1 - level) / 2, (1 + level) / 2])
    return (round(float(lo), 4), round(float(hi), 4))


def adoption(report: dict[str, Any]) -> dict[str, Any]:
    """The verdict on a fit from its report: adopted, and why (one line)."""
    n, good, bad = report["effective_decisions"], report["effective_approved"], report["effective_bad"]
    lo, hi = report["auroc_gain_interval"]
    gain = report["cv_auroc"] - report["current_auroc"]
    level = f"{report['auroc_gain_level']:.0%}"
    if n < MIN_ADOPT or min(good, bad) < MIN_ADOPT_EACH:
        why = (
            f"too few decisions to judge it: {n:g} weighted ({good:g} approved, {bad:g} rejected or re-colour); "
            f"adoption needs {MIN_ADOPT}, at least {MIN_ADOPT_EACH} of each kind"
        )
        adopted = False
    elif lo <= 0:
        why = (
            f"it does not beat the current score out of sample: AUROC {report['cv_auroc']:.3f} cross-validated vs "
            f"{report['current_auroc']:.3f} current (gain {gain:+.3f}, {level} interval {lo:+.3f} to {hi:+.3f})"
        )
        adopted = False
    else:
        why = (
            f"it beats the current score out of sample: AUROC {report['cv_auroc']:.3f} cross-validated vs "
            f"{report['current_auroc']:.3f} current (gain {gain:+.3f}, {level} interval {lo:+.3f} to {hi:+.3f})"
        )
        adopted = True
    rule = (
        f"adopted when measured on at least {MIN_ADOPT} weighted decisions ({MIN_ADOPT_EACH} of each kind) and the "
        f"lower end of the {level} bootstrap interval of (cross-validated AUROC - current AUROC) is above 0"
    )
    return {"adopted": adopted, "why": why, "rule": rule}


def fit_routing(
    examples: Sequence[Example],
    *,
    min_decisions: int = MIN_DECISIONS,
    budget: float = 0.15,
    threshold: float = 0.4,
    l2: float = L2,
    folds: int = FOLDS,
    bulk_weight: float = BULK_WEIGHT,
) -> RoutingFit:
    """The routing fit of ``examples`` with its report, every figure of the refit out of sample (each decision
    scored by the fit of the folds it is not in): AUROC beside the current score's on the same decisions and
    the bootstrap interval of the difference, the queue at ``threshold`` and the bad decisions caught in the
    queue at ``budget``, before and after, each reason's weight against the fixed factor, and the verdict
    (``adoption``). AUROCs are weighted by ``weight_of``; counts are of decisions."""
    if not 0.0 < bulk_weight <= 1.0:
        raise RoutingFitError(f"the bulk weight must be in (0, 1], not {bulk_weight}")
    bad = sum(not e.good for e in examples)
    if len(examples) < MIN_GLOBAL or not _both(examples):
        raise RoutingFitError(
            f"too few decisions to refit the routing: {len(examples)} ({len(examples) - bad} approved, {bad} "
            f"rejected or re-colour); need at least {MIN_GLOBAL} with both kinds (export them: chromata review export)"
        )
    overall, own = _fit_models(examples, min_decisions, l2, bulk_weight)
    oof = out_of_fold(examples, min_decisions=min_decisions, l2=l2, bulk_weight=bulk_weight, folds=folds)
    positives = np.array([not e.good for e in examples])
    weights = np.array([weight_of(e, bulk_weight) for e in examples])
    current = np.array([e.current for e in examples])
    quota = math.ceil(budget * len(examples))

    def caught(scores: NDArray[np.float64]) -> int:
        order = sorted(range(len(examples)), key=lambda i: (scores[i], examples[i].image_id))
        return sum(not examples[i].good for i in order[:quota])

    weights_by_reason = []
    for code, w in sorted(overall.reasons.items(), key=lambda kv: kv[1]):
        fixed = fixed_factor(code)
        factor = math.exp(w)
        change = "gained" if factor < fixed - 0.05 else "lost" if factor > fixed + 0.05 else "same"
        entry = {"reason": code, "fixed_factor": fixed, "learned_odds_factor": round(factor, 3), "change": change}
        weights_by_reason.append(entry)
    modes = {m: sum(e.mode == m for e in examples) for m in MODES}
    report: dict[str, Any] = {
        "decisions": len(examples),
        "approved": len(examples) - bad,
        "rejected_or_recolour": bad,
        "decisions_by_mode": modes,
        "bulk_weight": bulk_weight,
        "effective_decisions": round(float(weights.sum()), 2),
        "effective_approved": round(float(weights[~positives].sum()), 2),
        "effective_bad": round(float(weights[positives].sum()), 2),
        "collections_with_own_fit": sorted(own),
        "cv_folds": folds,
        "cv_auroc": round(weighted_auroc(-oof, positives, weights), 4),
        "current_auroc": round(weighted_auroc(-current, positives, weights), 4),
        "auroc_gain_level": ADOPT_INTERVAL,
        "auroc_gain_interval": list(
            auroc_gain_interval(oof, current, positives, weights, [e.image_id for e in examples])
        ),
        "out_of_sample": "every refit figure scores each decision by the fit of the folds it is not in",
        "threshold": threshold,
        "queue_at_threshold_current": int((current < threshold).sum()),
        "queue_at_threshold_refit": int((oof < threshold).sum()),
        "budget": budget,
        "queue_at_budget": quota,
        "bad_in_budget_queue_current": caught(current),
        "bad_in_budget_queue_refit": caught(oof),
        "reasons": weights_by_reason,
    }
    report["adoption"] = adoption(report)
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
def key_for(fit: RoutingFit) -> str:
    """Where ``save`` writes ``fit``: beside the other adopted fits, or under ``not-adopted/``."""
    stamp = fit.created_at.replace("-", "").replace(":", "")
    folder = ROUTING_PREFIX if fit.adopted else NOT_ADOPTED_PREFIX
    return f"{folder}/fit-{stamp}-{fit.sha256[:12]}.json"


def save(storage: Storage, fit: RoutingFit) -> str:
    """Write ``fit`` create-once: an adopted fit under ``_chromata/routing/`` (where ``latest`` finds it),
    any other under ``_chromata/routing/not-adopted/`` (kept for the record, never used by ``latest``)."""
    key = key_for(fit)
    storage.create_once(key, fit.to_json().encode(), content_type="application/json")
    return key


def latest_key(storage: Storage) -> str | None:
    """The newest adopted fit's key (fits directly under the prefix, newest first, until one is adopted: a
    fit written before the adoption rule lies there too, without a verdict)."""
    prefix = ROUTING_PREFIX + "/"
    keys = [o.key for o in storage.list(prefix) if o.key.endswith(".json") and "/" not in o.key[len(prefix) :]]
    for key in sorted(keys, reverse=True):
        if RoutingFit.from_json(storage.read(key).decode()).adopted:
            return key
    return None


def load_latest(storage: Storage) -> RoutingFit | None:
    """The newest adopted routing fit of the destination, or None when it has none."""
    key = latest_key(storage)
    return None if key is None else RoutingFit.from_json(storage.read(key).decode())


def find(storage: Storage, sha256: str) -> tuple[str, RoutingFit] | None:
    """The fit of the destination whose file has this SHA-256 (adopted or not), with its key; None if none."""
    suffix = f"-{sha256[:12]}.json"
    for o in storage.list(ROUTING_PREFIX + "/"):
        if o.key.endswith(suffix):
            fit = RoutingFit.from_json(storage.read(o.key).decode())
            if fit.sha256 == sha256:
                return o.key, fit
    return None


def from_decisions(storage: Storage, *, write: bool = True, **kw: Any) -> tuple[RoutingFit, str | None, int]:
    """Fit from the destination's decisions and, with ``write``, save it (adopted or for the record): (the fit,
    its key or None, decided rows left out). ``write=False`` is a trial: nothing is written."""
    examples, skipped = examples_from(storage)
    fit = fit_routing(examples, **kw)
    return fit, save(storage, fit) if write else None, skipped


LATEST = "latest"


def for_run(value: str | None, storage: Storage) -> RoutingFit | None:
    """The fit a run's ``routing_fit`` names: None, a fit's JSON, or ``latest`` (the destination's newest
    adopted fit)."""
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
    modes = r.get("decisions_by_mode", {})
    lo, hi = r.get("auroc_gain_interval", (0.0, 0.0))
    rows = [
        ("decisions", f"{r['decisions']} ({r['approved']} approved, {bad} rejected / re-colour)"),
        (
            "how they were made",
            f"{modes.get('item', 0)} reviewed on their own page, {modes.get('bulk', 0)} in bulk, "
            f"{modes.get('unknown', 0)} not recorded; a bulk approval weighs {r.get('bulk_weight', 1.0):g} "
            f"({r.get('effective_decisions', r['decisions']):g} weighted)",
        ),
        ("left out", f"{skipped} decided rows whose certainty could not be read back"),
        ("own fit", own),
        (
            f"AUROC ({r['cv_folds']}-fold CV, out of sample)",
            f"{r['cv_auroc']:.3f} refit vs {r['current_auroc']:.3f} current "
            f"(gain {r.get('auroc_gain_level', ADOPT_INTERVAL):.0%} interval {lo:+.3f} to {hi:+.3f})",
        ),
        (
            f"queue at threshold {r['threshold']} (out of sample)",
            f"{r['queue_at_threshold_refit']} refit vs {r['queue_at_threshold_current']} current",
        ),
        (
            f"bad in the queue at budget {r['budget']} (out of sample)",
            f"{r['bad_in_budget_queue_refit']} refit vs {r['bad_in_budget_queue_current']} current "
            f"(queue {r['queue_at_budget']})",
        ),
    ]
    for w in r["reasons"]:
        factors = f"odds x {w['learned_odds_factor']} (fixed x {w['fixed_factor']})"
        rows.append((f"reason {w['reason']}", f"{w['change']}: {factors}"))
    verdict = r.get("adoption", {})
    rows.append(("adopted", f"{'yes' if fit.adopted else 'no'}: {verdict.get('why', 'made before the adoption rule')}"))
    return rows
