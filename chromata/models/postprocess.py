"""What every model family shares after its network: the confidence estimator's restraint, an uncertainty estimate
for models that give none, the confidence estimator's assessment, and the grey input as RGB for models that read
an image rather than L*.

Each family's ``predict_ab`` ends with :func:`restrained`; ``describe`` reports :func:`restraint_facts`. A
family that reproduces its authors' colours by default (DDColor, DeOldify) sets ``restrain = False``."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np

from chromata.models.base import F32

UNKNOWN_UNCERTAINTY = 0.5


def _restraining(model: Any) -> tuple[Any, Any] | None:
    """The confidence estimator and harm-v1 (its region inputs) when ``model`` restrains and the package ships
    both; None otherwise."""
    from chromata.judgement import assess, harm

    if not getattr(model, "restrain", False):
        return None
    est, region_est = assess.shipped(), harm.shipped()
    return None if est is None or region_est is None else (est, region_est)


_UNRESTRAINED = threading.local()


@contextmanager
def without_restraint() -> Iterator[None]:
    """Decode without restraint on this thread while the block runs (films: a per-frame threshold flickers,
    and restraint was measured on stills); other threads sharing the model are unaffected."""
    saved = getattr(_UNRESTRAINED, "on", False)
    _UNRESTRAINED.on = True
    try:
        yield
    finally:
        _UNRESTRAINED.on = saved


def restrained(model: Any, lightness: F32, ab: F32) -> F32:
    """A model's predicted chroma after the confidence estimator's restraint where harm is predicted
    (:class:`chromata.judgement.assess.Restraint`: region by region, from the grey input's semantic reading and
    the colour), when the model restrains and the restraint is not the identity (then ``ab`` itself is
    returned, not a copy)."""
    pair = _restraining(model)
    if pair is None or pair[0].restraint.is_identity or getattr(_UNRESTRAINED, "on", False):
        return ab
    est, region_est = pair
    light = np.asarray(lightness, np.float32)

    def one(i: int) -> F32:
        return np.asarray(est.restrain(light[i], ab[i], reading_of(light[i]), region_est), np.float32)

    if len(light) == 1:
        return one(0)[None]
    # the images of a batch are read side by side (each on its own: a reading never depends on its batch)
    return np.stack(list(_reading_pool().map(one, range(len(light))))).astype(np.float32)


@lru_cache(maxsize=1)
def _reading_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(READING_THREADS, thread_name_prefix="reading")


def restraint_facts(model: Any) -> dict[str, object] | None:
    """What a model's provenance says about the restraint after it (None: none applied)."""
    pair = _restraining(model)
    return pair[0].restraint_facts() if pair is not None else None


_READINGS: OrderedDict[bytes, Any] = OrderedDict()
_READINGS_LOCK = threading.Lock()
READINGS_KEPT = 512  # more than a batch or a page set: the restraint in decoding and the assessment share a reading
READING_THREADS = 4  # a batch's readings side by side (torch releases the GIL)


def reading_of(lightness: F32) -> Any:
    """The semantic reading (:func:`chromata.models.semantics.semantics_of`) of one grey input at the model's
    working size, computed once for the restraint inside decoding and the assessment after it (the last
    ``READINGS_KEPT`` are kept, keyed by a digest of the pixels)."""
    from chromata.models import semantics

    x = np.ascontiguousarray(lightness, np.float32)
    key = hashlib.blake2b(x.tobytes(), digest_size=16, person=str(x.shape).encode()[:16]).digest()
    with _READINGS_LOCK:
        if key in _READINGS:
            _READINGS.move_to_end(key)
            return _READINGS[key]
    reading = semantics.semantics_of(x)
    with _READINGS_LOCK:
        _READINGS[key] = reading
        while len(_READINGS) > READINGS_KEPT:
            _READINGS.popitem(last=False)
    return reading


def estimated_uncertainty(lightness: F32, ab: F32) -> F32:
    """Per-pixel uncertainty (N, h, w) for a model without an uncertainty output: the harm estimator's proxy for
    the built-in model's normalised entropy, from the grey input and the colours (``UNKNOWN_UNCERTAINTY``
    where the package ships no estimator)."""
    from chromata.judgement import harm

    est = harm.shipped()
    if est is None or "uncertainty_proxy" not in est.params:
        return np.full(ab.shape[:3], UNKNOWN_UNCERTAINTY, np.float32)
    return np.stack([est.uncertainty(li, a) for li, a in zip(lightness, ab, strict=True)]).astype(np.float32)


def assessments(lightness: F32, ab: F32) -> list[Any] | None:
    """The shipped confidence estimator's assessment (``chromata.judgement.assess.Assessment``) of each image of
    a batch — (N, S, S) L* at the model's working size and its (N, h, w, 2) chroma — with the semantic reading
    of each grey input; the same for every model family. None where the package ships no estimator."""
    from chromata.judgement import assess, harm

    est, region_est = assess.shipped(), harm.shipped()
    if est is None or region_est is None:
        return None
    light = np.asarray(lightness, np.float32)
    return [est.assess(li, a, reading_of(li), region_est) for li, a in zip(light, ab, strict=True)]


def assessment_facts() -> dict[str, object]:
    """What a run's parameters say about the confidence it records (the estimator, or score version 1)."""
    from chromata.judgement import assess, confidence

    est = assess.shipped()
    return est.describe() if est is not None else {"score_version": confidence.SCORE_VERSION}


def grey_rgb(lightness: F32) -> F32:
    """(N, S, S) L* in [0, 100] -> (N, S, S, 3) float32 RGB in [0, 1]: each L* with a* = b* = 0 converted to
    sRGB as OpenCV's float Lab -> RGB does (D65, sRGB companding) — the grey image a DDColor- or DeOldify-style
    network reads."""
    from chromata.colormath import color

    x = np.asarray(lightness, np.float32)
    zeros = np.zeros_like(x[0])
    return np.stack([color.lab_to_bgr(np.dstack([li, zeros, zeros]))[..., ::-1] for li in x]).astype(np.float32)


def rgb_to_ab(rgb: F32) -> F32:
    """(N, S, S, 3) float RGB in [0, 1] -> (N, S, S, 2) CIELab a*/b* (D65): the chroma of a model that
    predicts a colour image (DeOldify), for chromata's merge with the full-resolution L*."""
    from chromata.colormath import color

    x = np.clip(np.asarray(rgb, np.float32), 0.0, 1.0)
    return np.stack([color.bgr_to_lab(np.ascontiguousarray(im[..., ::-1]))[..., 1:] for im in x]).astype(np.float32)


BT601_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Y of OpenCV's RGB <-> YUV, which DeOldify merges in


def yuv_merged(grey: F32, rgb: F32) -> F32:
    """DeOldify's colour merge at the working size: the U and V of a model's colour ``rgb`` with the Y of the
    ``grey`` input (both (N, S, S, 3) in [0, 1]). YUV is linear in RGB, so keeping U and V and replacing Y is
    adding the same (Y_grey - Y_rgb) to R, G and B; clipped to [0, 1] as an 8-bit image is. The a*/b* of this
    image is what chromata then merges with the scan's full-resolution L*."""
    shift = (np.asarray(grey, np.float32) - np.asarray(rgb, np.float32)) @ BT601_LUMA
    return np.clip(rgb + shift[..., None], 0.0, 1.0).astype(np.float32)
