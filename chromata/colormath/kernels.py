"""Per-pixel work fused into one pass, compiled by numba (issue #17).

The 8-bit merge — L* and upsampled chroma to Lab, Lab → XYZ → linear sRGB, 8-bit companding — is a chain of
some twenty elementwise steps. Done as OpenCV passes (``chromata.colormath.color``'s fallback) each step reads and
writes every sample once more: 30 ms for a 2.5 MP scan on this project's CPUs. Here each pixel goes through
the whole chain in registers, rows at a time: 6-7 ms, the same output to within one level of the exact path
(and of the OpenCV path: they round at different points). Plain IEEE float32 arithmetic (no fast-math), so
the result does not depend on the CPU's vector width.

Compiled on first use (about a second; then cached beside this module, or in numba's user cache when the
package is read-only, or not cached at all when neither can be written) — workers compile them while they
load their model (``prepare``). The kernels release the GIL, so the writer threads of a worker merge images
side by side. Where numba is missing or disabled, or cannot compile them (a warning says why),
``available()`` is False and ``chromata.colormath.color`` and ``chromata.models.ab_bins`` keep their OpenCV and torch
passes.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _compiled() -> Any:
    try:
        import numba
    except ImportError:
        return None
    if getattr(numba.config, "DISABLE_JIT", False):  # interpreted it would be ~100x slower than OpenCV
        return None
    try:
        try:
            kernels = _jitted(numba, cache=True)
        except RuntimeError as exc:  # nowhere to cache (a read-only package and home): compile in each process
            log.info("numba kernels not cached (%s); compiling them in this process", exc)
            kernels = _jitted(numba, cache=False)
        _run_once(kernels)  # numba compiles on a kernel's first call: any failure to is found here
    except Exception as exc:  # a numba, LLVM or NumPy it cannot compile with: the passes it replaces still work
        globals()["_exp"] = _exp_nonpositive
        log.warning(
            "chromata's fused kernels could not be compiled by numba (%s: %s); using the OpenCV and torch passes "
            "instead (same results, slower)", type(exc).__name__, " ".join(str(exc).split())[:300],
        )  # fmt: skip
        return None
    return kernels


def _jitted(numba: Any, cache: bool) -> dict[str, Any]:
    jit = numba.njit(cache=cache, nogil=True, error_model="numpy")
    globals()["_exp"] = jit(_exp_nonpositive)  # what the decoding kernel calls, compiled
    return {"merge8": jit(_merge8), "decode": jit(_decode)}


def _run_once(kernels: dict[str, Any]) -> None:
    """Call each kernel once with the argument types ``merge8`` and ``decode_distribution`` pass it (C-contiguous
    float32 arrays, a float32 scalar), which compiles it or loads it from numba's cache."""
    one = np.zeros((1, 1), np.float32)
    kernels["merge8"](one, one, one.copy(), np.eye(3, dtype=np.float32), np.zeros(65536, np.uint8),
                      np.empty((1, 1, 3), np.uint8))  # fmt: skip
    centres = np.zeros(2, np.float32)
    kernels["decode"](np.zeros((1, 2, 1), np.float32), centres, centres.copy(), np.float32(1.0 / 0.38),
                      np.empty((1, 2, 1), np.float32), np.empty((1, 1), np.float32))  # fmt: skip


def available() -> bool:
    """Whether the fused kernels are compiled and run here (compiling them on the first call)."""
    return _compiled() is not None


def prepare() -> None:
    """Compile (or load from the cache) the kernels now, off a worker's first image; where they cannot be
    compiled the worker keeps the passes they replace (``available()`` is then False)."""
    available()


def merge8(
    lightness: NDArray[np.float32],
    fa: NDArray[np.float32],
    fb: NDArray[np.float32],
    matrix: NDArray[np.float32],
    table: NDArray[np.uint8],
) -> NDArray[np.uint8]:
    """(H, W) L*, a/500 and −b/200 at full resolution, the XYZ/white → linear BGR matrix and the 65 536-entry
    linear → 8-bit sRGB table -> (H, W, 3) uint8 BGR (``chromata.colormath.color.merge_chroma_to`` for 8-bit)."""
    kernels = _compiled()
    assert kernels is not None, "kernels.merge8 without numba: check kernels.available() first"
    out = np.empty((*lightness.shape, 3), np.uint8)
    kernels["merge8"](lightness, fa, fb, matrix, table, out)
    return out


def decode_distribution(
    logits: NDArray[np.float32], centres: NDArray[np.float32], temperature: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``chromata.models.ab_bins.decode_distribution`` on a CPU: (N, Q, H, W) logits and the (Q, 2) ab of the
    bins -> ((N, 2, H, W) annealed-mean ab, (N, H, W) normalised entropy), in one pass over the logits
    (torch's takes eight, each over the whole (N, Q, H, W) tensor: 10-14 ms an image at 256², this 6 ms).
    The exponentials are ``_exp_nonpositive``'s: ab within 0.001 and the entropy within 1e-5 of torch's
    (tests/test_kernels.py). One thread: ``ab_bins`` uses it where the model has at most two."""
    kernels = _compiled()
    assert kernels is not None, "kernels.decode_distribution without numba: check kernels.available() first"
    n, q, h, w = logits.shape
    ab = np.empty((n, 2, h * w), np.float32)
    entropy = np.empty((n, h * w), np.float32)
    flat = np.ascontiguousarray(logits, dtype=np.float32).reshape(n, q, h * w)
    ca = np.ascontiguousarray(centres[:, 0], dtype=np.float32)
    cb = np.ascontiguousarray(centres[:, 1], dtype=np.float32)
    kernels["decode"](flat, ca, cb, np.float32(1.0 / temperature), ab, entropy)
    return ab.reshape(n, 2, h, w), entropy.reshape(n, h, w)


def _merge8(light: Any, fa: Any, fb: Any, m: Any, table: Any, out: Any) -> None:  # pragma: no cover - compiled
    h, w = light.shape
    index = np.empty((w, 3), np.int32)
    one, zero, top, half = np.float32(1.0), np.float32(0.0), np.float32(65535.0), np.float32(0.5)
    delta = np.float32(6.0 / 29.0)
    slope = np.float32(3.0 * (6.0 / 29.0) ** 2)  # f⁻¹ below δ: slope · (t − 4/29), the tangent of t³ at δ
    offset = np.float32(4.0 / 29.0)
    three_delta = np.float32(3.0 * 6.0 / 29.0)
    m00, m01, m02 = m[0, 0], m[0, 1], m[0, 2]
    m10, m11, m12 = m[1, 0], m[1, 1], m[1, 2]
    m20, m21, m22 = m[2, 0], m[2, 1], m[2, 2]
    for y in range(h):
        for x in range(w):
            fy = (light[y, x] + np.float32(16.0)) * (one / np.float32(116.0))
            fx = fy + fa[y, x]
            fz = fy + fb[y, x]
            # f⁻¹(t) = slope · (t − 4/29) + u²(u + 3δ), u = max(t − δ, 0): t³ above δ, the line below
            u = max(fx - delta, zero)
            cx = slope * (fx - offset) + u * u * (u + three_delta)
            u = max(fy - delta, zero)
            cy = slope * (fy - offset) + u * u * (u + three_delta)
            u = max(fz - delta, zero)
            cz = slope * (fz - offset) + u * u * (u + three_delta)
            v0 = (m00 * cx + m01 * cy + m02 * cz) * top + half  # scaled, rounded and saturated to 0..65535
            v1 = (m10 * cx + m11 * cy + m12 * cz) * top + half
            v2 = (m20 * cx + m21 * cy + m22 * cz) * top + half
            index[x, 0] = np.int32(min(max(v0, zero), top))
            index[x, 1] = np.int32(min(max(v1, zero), top))
            index[x, 2] = np.int32(min(max(v2, zero), top))
        for x in range(w):  # the table look-ups apart: the loop above stays free of gathers and vectorises
            for c in range(3):
                out[y, x, c] = table[index[x, c]]


def _exp_nonpositive(z: Any) -> Any:  # pragma: no cover - compiled
    """exp(z) for z ≤ 0 in arithmetic only (so that a loop calling it vectorises): exp(z/1024)^1024, a degree-5
    polynomial then ten squarings, in float64 (each squaring doubles the relative error: in float32 it ended
    near 7e-5, in float64 it is below 1e-6 — measured against numpy's exp — for 20 % more time); z is clamped
    at −80 (exp(−80) ≈ 2e-35, a normal float32: no denormals, which would stall the CPU, and nothing that
    weighs against a bin of weight 1)."""
    t = max(np.float64(z), -80.0) * (1.0 / 1024.0)
    p = 1.0 / 24.0 + t * (1.0 / 120.0)  # Horner, from the t⁵ term down
    p = 1.0 / 6.0 + t * p
    p = 0.5 + t * p
    p = 1.0 + t * p
    p = 1.0 + t * p
    for _ in range(10):
        p = p * p
    return np.float32(p)


_exp = _exp_nonpositive  # replaced by its compiled self in ``_compiled``


def _decode(logits: Any, ca: Any, cb: Any, inv_t: Any, ab: Any, entropy: Any) -> None:  # pragma: no cover
    """Per pixel: m = max logit; z = logit − m; over the bins, s = Σ e^z, Σ z e^z, and with the annealed
    weights e^(z/T): their sum and the a, b they weigh. Entropy = (log s − Σ z e^z / s) / log Q. Pixels in
    chunks, the bins outside: every inner loop runs along contiguous pixels and vectorises."""
    n, q, hw = logits.shape
    chunk = 512
    top = np.empty(chunk, np.float32)
    s = np.empty(chunk, np.float32)
    sz = np.empty(chunk, np.float32)
    st = np.empty(chunk, np.float32)
    sa = np.empty(chunk, np.float32)
    sb = np.empty(chunk, np.float32)
    log_q = np.float32(np.log(np.float32(q)))
    for i in range(n):
        for p0 in range(0, hw, chunk):
            m = min(chunk, hw - p0)
            for p in range(m):
                top[p] = logits[i, 0, p0 + p]
                s[p] = sz[p] = st[p] = sa[p] = sb[p] = np.float32(0.0)
            for k in range(1, q):
                for p in range(m):
                    top[p] = max(top[p], logits[i, k, p0 + p])
            for k in range(q):
                a, b = ca[k], cb[k]
                for p in range(m):
                    z = logits[i, k, p0 + p] - top[p]
                    e = _exp(z)
                    s[p] += e
                    sz[p] += e * z
                    et = _exp(z * inv_t)
                    st[p] += et
                    sa[p] += et * a
                    sb[p] += et * b
            for p in range(m):
                entropy[i, p0 + p] = (np.log(s[p]) - sz[p] / s[p]) / log_q
                ab[i, 0, p0 + p] = sa[p] / st[p]
                ab[i, 1, p0 + p] = sb[p] / st[p]
