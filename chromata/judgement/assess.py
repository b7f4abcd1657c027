"""The shipped confidence (score version 2): P(this colorization is in the better half), for any model family,
and where in the picture the colour is doubted, said by what is there.

It reads what every family gives — the grey input at the model's working size and the predicted chroma — and a
semantic reading of the grey input (:mod:`chromata.models.semantics`: the ImageNet classes, and the kind of
thing in each region), never a model's internals. Two fitted stages, both plain logistic regressions stored as
JSON (``confidence-v2.json``, fitted by ``python -m chromata.studies.confidence_fit fit`` on the cross-fitted
built-in models' real mistakes, figures in its card and in ``docs/confidence.md``):

* **regions** — for each region of the harm estimator's 8 x 8 grid, P(the colour there is further from the
  truth than grey), from the region's grey and colour statistics (:func:`chromata.judgement.harm.region_features`),
  harm-v1's own prediction for it, and its kind (a wall, skin, foliage … with the chroma put there);
* **image** — P(worse half) from harm-v1's image summary, the uncertainty proxy, the semantic reading (what the
  picture is, and how much colour went on each kind of thing; optionally its pooled features' principal
  components) and the region stage's summaries. The confidence
  is 1 − that: fitted on the worse/better half of the cross-fit views, so it means what the label says.

Where regions are blamed (P(harm) above the file's ``blame_threshold`` and visible chroma), the kind that holds
most of the blamed colour becomes the reason a curator reads (``doubtful_colour_<kind>``,
:mod:`chromata.judgement.reasons`). The reading object is passed in (judgement imports no model): anything with
``probs`` (1 000), ``features`` (pooled), ``kind_probs`` and ``region_kinds`` (an (h, w) grid of indices into
``kinds``) will do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata.judgement import harm

F32 = NDArray[np.float32]
CONFIDENCE_FORMAT = "chromata-confidence/2"
CONFIDENCE_WEIGHTS = "confidence-v2.json"
SCORE_VERSION = "2"
VISIBLE_CHROMA = 6.0  # a region whose mean chroma is below this is not blamed: there is hardly any colour to doubt


class Reading(Protocol):
    """What the semantic reading of the grey input gives (``chromata.models.semantics.Semantics``)."""

    @property
    def probs(self) -> NDArray[np.float32]: ...

    @property
    def region_kinds(self) -> NDArray[np.int64]: ...

    @property
    def features(self) -> NDArray[np.float32]: ...

    @property
    def kind_probs(self) -> NDArray[np.float32]: ...


# the reason code of each kind of thing a region can be (the reading's kinds, in its order)
KIND_CODES = {
    "animal": "doubtful_colour_animal",
    "person or clothing": "doubtful_colour_person",
    "building or stone": "doubtful_colour_building",
    "vehicle": "doubtful_colour_vehicle",
    "landscape, water or sky": "doubtful_colour_landscape",
    "plant": "doubtful_colour_plant",
    "food": "doubtful_colour_food",
    "printed matter": "doubtful_colour_printed",
    "object": "doubtful_colour_object",
}


def kinds_on_grid(region_kinds: NDArray[Any], n: int) -> NDArray[np.int8]:
    """A reading's (h, w) kinds on an ``n`` x ``n`` grid (each cell: the kind under its centre)."""
    h, w = region_kinds.shape
    ys = ((np.arange(n) + 0.5) / n * h).astype(int)
    xs = ((np.arange(n) + 0.5) / n * w).astype(int)
    return np.asarray(region_kinds[np.ix_(ys, xs)], np.int8)


def semantic_columns(reading: Reading, ab: NDArray[Any], n_kinds: int) -> F32:
    """What the grey shows and where the colour went: for each kind, the image's probability of it, the share of
    the reading's regions that are of it and the mean chroma the colorization put there; then the classifier's
    entropy over its classes (low: a clear subject)."""
    chroma = np.hypot(ab[..., 0], ab[..., 1]).astype(np.float32)
    h, w = reading.region_kinds.shape
    per_region = np.asarray(cv2.resize(chroma, (w, h), interpolation=cv2.INTER_AREA))
    share = np.array([(reading.region_kinds == i).mean() for i in range(n_kinds)], np.float32)
    where = [per_region[reading.region_kinds == i] for i in range(n_kinds)]
    chroma_by_kind = np.array([float(x.mean()) if x.size else 0.0 for x in where], np.float32)
    entropy = float(-(reading.probs * np.log(np.maximum(reading.probs, 1e-12))).sum())
    return np.concatenate([reading.kind_probs, share, chroma_by_kind, [entropy]]).astype(np.float32)


@dataclass(frozen=True)
class Inputs:
    """Everything the two stages read of one colorization (also what the fitting study keeps per view)."""

    feats: F32  # (64, len(harm.FEATURE_NAMES)) region features
    err: F32  # (64,) harm-v1's predicted CIEDE2000 per region
    excess: F32  # (64,) harm-v1's predicted excess over grey per region
    kinds: NDArray[np.int8]  # (64,) the kind of each region
    old_image: F32  # harm-v1's image summary (harm.image_features)
    proxy: float  # the uncertainty proxy's mean
    semantic: F32  # semantic_columns
    pooled: F32  # the reading's pooled features


def inputs_of(lightness: F32, ab: F32, reading: Reading, est: harm.HarmEstimator, n_kinds: int) -> Inputs:
    feats = harm.region_features(lightness, ab)
    err, excess = est.regions(feats)
    kinds = kinds_on_grid(reading.region_kinds, harm.GRID).reshape(-1)
    proxy = float(est.uncertainty(lightness, ab).mean())
    return Inputs(feats, err, excess, kinds, harm.image_features(err, excess, feats), proxy,
                  semantic_columns(reading, ab, n_kinds), np.asarray(reading.features, np.float32))  # fmt: skip


CHROMA_COLUMN = harm.FEATURE_NAMES.index("chroma")  # region mean chroma / 20


def region_matrix(feats: F32, err: F32, excess: F32, kinds: NDArray[Any], n_kinds: int) -> F32:
    """The region stage's inputs, (regions, len(FEATURE_NAMES) + 2 + 2 * n_kinds): the region's features,
    harm-v1's two predictions, its kind (one-hot) and its kind times its chroma. Works on stacked views too."""
    onehot = np.eye(n_kinds, dtype=np.float32)[np.asarray(kinds, np.int64)]
    chroma = feats[:, CHROMA_COLUMN : CHROMA_COLUMN + 1]
    return np.hstack([feats, excess[:, None], np.log1p(np.maximum(err, 0))[:, None], onehot, onehot * chroma])


def region_summary(p: F32, feats: F32, kinds: NDArray[Any], n_kinds: int) -> F32:
    """The image stage's view of one view's region P(harm): mean, 90th percentile, share above 0.5, mean
    weighted by chroma, and for each kind the chroma-weighted P(harm) of its regions (0 where it is absent)."""
    chroma = feats[:, CHROMA_COLUMN].astype(np.float64) + 1e-3
    per_kind = []
    for i in range(n_kinds):
        m = np.asarray(kinds) == i
        per_kind.append(float((p[m] * chroma[m]).sum() / chroma[m].sum()) if m.any() else 0.0)
    head = [p.mean(), np.quantile(p, 0.9), (p > 0.5).mean(), (p * chroma).sum() / chroma.sum()]
    return np.asarray(head + per_kind, np.float32)


NAMED_KIND_SUPPORT = 0.1  # a region is named by its kind only where the whole image is at least this likely of it


def named_kinds(kinds: NDArray[Any], kind_probs: NDArray[Any], names: tuple[str, ...]) -> NDArray[np.int64]:
    """The kinds a reason may name: each region's, unless the reading of the whole image gives that kind less
    than ``NAMED_KIND_SUPPORT`` (a stray "animal" patch at the edge of a daisy) — then "object"."""
    k = np.asarray(kinds, np.int64)
    supported = np.asarray(kind_probs)[k] >= NAMED_KIND_SUPPORT
    return np.where(supported, k, names.index("object") if "object" in names else k)


def _sigmoid(z: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))), np.float64)


@dataclass(frozen=True)
class Linear:
    """A standardised logistic regression: P = sigmoid(((x - mean) / std) @ w + b)."""

    mean: F32
    std: F32
    w: F32
    b: float

    @classmethod
    def of(cls, d: dict[str, Any]) -> Linear:
        mean, std, w = (np.asarray(d[k], np.float32) for k in ("mean", "std", "w"))
        return cls(mean, std, w, float(d["b"]))

    def __call__(self, x: NDArray[Any]) -> NDArray[np.float64]:
        return _sigmoid(((np.asarray(x, np.float32) - self.mean) / self.std) @ self.w + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {k: np.asarray(getattr(self, k), np.float64).round(6).tolist() for k in ("mean", "std", "w")} | {
            "b": round(self.b, 6)
        }


@dataclass(frozen=True)
class Mlp:
    """A standardised multi-layer perceptron (ReLU between layers) with a logistic output."""

    mean: F32
    std: F32
    layers: tuple[tuple[F32, F32], ...]

    @classmethod
    def of(cls, d: dict[str, Any]) -> Mlp:
        layers = tuple((np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in d["layers"])
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32), layers)

    def __call__(self, x: NDArray[Any]) -> NDArray[np.float64]:
        h = (np.asarray(x, np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return _sigmoid(h[:, 0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": np.asarray(self.mean, np.float64).round(6).tolist(),
            "std": np.asarray(self.std, np.float64).round(6).tolist(),
            "layers": [[np.asarray(w, np.float64).round(6).tolist(), np.asarray(b, np.float64).round(6).tolist()]
                       for w, b in self.layers],
        }  # fmt: skip


def stage(d: dict[str, Any]) -> Linear | Mlp:
    """A fitted stage from its JSON: layers make an MLP, weights alone a logistic regression."""
    return Mlp.of(d) if "layers" in d else Linear.of(d)


@dataclass(frozen=True)
class Restraint:
    """Restraint where harm is predicted: the chroma of a region whose P(harm) exceeds ``threshold`` is multiplied
    by ``keep``, every other region's by ``gain``; the 8 x 8 factors are upsampled bilinearly to the chroma's
    resolution, so the change is smooth. The default (keep = gain = 1) is the identity."""

    threshold: float = 0.5
    keep: float = 1.0
    gain: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.threshold <= 1.0 and self.keep >= 0.0 and 0.0 <= self.gain <= 2.0):
            raise ValueError(f"not a restraint: threshold in [0, 1], keep >= 0 and gain in [0, 2] ({self})")

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> Restraint:
        d = d or {}
        return cls(float(d.get("threshold", 0.5)), float(d.get("keep", 1.0)), float(d.get("gain", 1.0)))

    @property
    def is_identity(self) -> bool:
        return self.keep == 1.0 and self.gain == 1.0

    def factors(self, region_p: NDArray[Any]) -> F32:
        """The (GRID, GRID) chroma factor of each region."""
        p = np.asarray(region_p, np.float64).reshape(harm.GRID, harm.GRID)
        return np.where(p > self.threshold, self.keep, self.gain).astype(np.float32)

    def apply(self, ab: F32, region_p: NDArray[Any]) -> F32:
        """``ab`` (h, w, 2) with each region's factor, upsampled bilinearly."""
        h, w = ab.shape[:2]
        up = cv2.resize(self.factors(region_p), (w, h), interpolation=cv2.INTER_LINEAR)
        return np.asarray(ab * up[..., None], np.float32)

    def to_dict(self) -> dict[str, float]:
        return {"threshold": self.threshold, "keep": self.keep, "gain": self.gain}


@dataclass(frozen=True)
class Assessment:
    """The estimator's view of one colorization."""

    p_better: float  # P(the colorization is in the better half): the confidence before input penalties
    region_harm: F32  # (GRID, GRID) P(the colour there is further from the truth than grey)
    region_kinds: tuple[str, ...]  # the kind of each region, row by row
    reasons: tuple[str, ...]  # doubtful_colour_<kind> for the kind holding most of the blamed colour (or none)

    @property
    def blamed(self) -> NDArray[np.bool_]:
        return np.asarray(self.region_harm > 0, bool)


class ConfidenceEstimator:
    def __init__(self, params: dict[str, Any]) -> None:
        if params.get("format") != CONFIDENCE_FORMAT:
            raise ValueError("not a chromata confidence-estimator file")
        self.params = params
        self.kinds: tuple[str, ...] = tuple(params["kinds"])
        self.region = stage(params["region"])
        self.image = stage(params["image"])
        self.columns: tuple[str, ...] = tuple(params["image_columns"])
        pca = params.get("pooled_pca")  # the reading's pooled features projected on their principal components
        self.pca = None if pca is None else tuple(np.asarray(pca[k], np.float32) for k in ("mean", "components"))
        self.blame_threshold = float(params["blame_threshold"])
        self.restraint = Restraint.of(params.get("restraint"))

    @classmethod
    def load(cls, path: Path | None = None) -> ConfidenceEstimator:
        p = path or confidence_weights_path()
        return cls(json.loads(p.read_text(encoding="utf-8")))

    @property
    def name(self) -> str:
        return str(self.params.get("name", "confidence-v2"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()

    def region_p(self, x: Inputs) -> NDArray[np.float64]:
        n = len(self.kinds)
        return self.region(region_matrix(x.feats, x.err, x.excess, x.kinds, n))

    def image_row(self, x: Inputs, region_p: NDArray[Any]) -> F32:
        """The image stage's inputs for one view, the columns named in the file (``image_columns``)."""
        parts = {
            "old_image": x.old_image,
            "proxy": np.array([x.proxy], np.float32),
            "semantic": x.semantic,
            "regions": region_summary(np.asarray(region_p, np.float32), x.feats, x.kinds, len(self.kinds)),
        }
        if "pooled" in self.columns:
            assert self.pca is not None, "an estimator reading pooled features carries their projection"
            parts["pooled"] = np.asarray((x.pooled - self.pca[0]) @ self.pca[1], np.float32)
        return np.concatenate([parts[c] for c in self.columns]).astype(np.float32)

    def region_probabilities(self, lightness: F32, ab: F32, reading: Reading, est: harm.HarmEstimator) -> F32:
        """The region stage alone: (GRID * GRID,) P(the colour there is further from the truth than grey)."""
        return np.asarray(self.region_p(inputs_of(lightness, ab, reading, est, len(self.kinds))), np.float32)

    def restrain(self, lightness: F32, ab: F32, reading: Reading, est: harm.HarmEstimator) -> F32:
        """``ab`` after the file's restraint (``ab`` itself when it is the identity)."""
        if self.restraint.is_identity:
            return ab
        return self.restraint.apply(ab, self.region_probabilities(lightness, ab, reading, est))

    def restraint_facts(self) -> dict[str, object]:
        """What a model's provenance says about the restraint after it."""
        return {"estimator": self.name, "estimator_sha256": self.sha256, **self.restraint.to_dict()}

    def assess(self, lightness: F32, ab: F32, reading: Reading, est: harm.HarmEstimator) -> Assessment:
        x = inputs_of(lightness, ab, reading, est, len(self.kinds))
        rp = self.region_p(x)
        p_worse = float(self.image(self.image_row(x, rp)[None])[0])
        chroma = x.feats[:, CHROMA_COLUMN] * 20.0
        blamed = (rp > self.blame_threshold) & (chroma >= VISIBLE_CHROMA)
        reasons: tuple[str, ...] = ()
        if blamed.any():
            named = named_kinds(x.kinds, reading.kind_probs, self.kinds)
            mass = np.bincount(named[blamed], weights=(rp * chroma)[blamed], minlength=len(self.kinds))
            reasons = (KIND_CODES.get(self.kinds[int(mass.argmax())], "doubtful_colour_object"),)
        harm_map = np.where(blamed, rp, 0.0).reshape(harm.GRID, harm.GRID).astype(np.float32)
        return Assessment(round(1.0 - p_worse, 4), harm_map, tuple(self.kinds[int(k)] for k in x.kinds), reasons)

    def describe(self) -> dict[str, object]:
        """What a run's parameters say about the confidence it records."""
        return {"score_version": SCORE_VERSION, "confidence_estimator": self.name,
                "confidence_estimator_sha256": self.sha256}  # fmt: skip


def confidence_weights_path() -> Path:
    return Path(str(resources.files("chromata.models") / "weights" / CONFIDENCE_WEIGHTS))


@lru_cache(maxsize=1)
def shipped() -> ConfidenceEstimator | None:
    """The packaged estimator (None when the package has none, e.g. while it is being fitted)."""
    path = confidence_weights_path()
    return ConfidenceEstimator.load(path) if path.is_file() else None
