"""How a worker process asks glibc's allocator to keep the memory it frees (issue #17).

A worker allocates the same full-size arrays for every image (L* and the merge's float bands, ~10 MB each
for a 2.5 MP scan) and the network's activations for every batch (tens to a hundred MB). With glibc's
defaults a block that large is a fresh ``mmap`` each time and returned to the kernel when freed, so every
image pays for faulting in and zeroing its pages again. Measured on 2 cores (``benchmarks/throughput.py``,
docs/benchmarks.md): L* of a 2.5 MP scan 13.7 → 1.3 ms, a batch of 8 through the network 46 → 33 ms an
image, ``ShardProcessor`` 15.2 → 19.4 images/s. Keeping blocks of up to ``MMAP_THRESHOLD`` in the heap and
trimming its top only past ``TRIM_THRESHOLD`` makes the next image reuse pages already mapped.

One arena: a thread other than the main one allocates from an arena of its own, whose heaps are at most
64 MB, so anything larger (a batch's activations, the 529-bin distribution) is a fresh ``mmap`` there
whatever the threshold — and a Ray actor with concurrency groups runs its methods on such a thread. Measured
in an actor, a batch of 8: network 27 → 22 ms and decoding the distribution 16 → 10 ms an image with
``ARENA_MAX`` = 1, the same as the driver's main thread. The arena's lock is not contended here: the large
arrays are few, and Python's small objects come from its own allocator.

The cost is memory: blocks freed below one still in use stay mapped (glibc gives back only the free top of
its heap, past ``TRIM_THRESHOLD``), so a worker's resident memory stays near the peak of what it has held —
per-image arrays and a batch's activations, within its memory budget (``benchmarks/large_scans.py``
measures a worker's peak). The settings are glibc tunables: read when a process starts, so they are given to
the worker processes (Ray actors' ``runtime_env``, built from the driver's environment: an operator's own
``GLIBC_TUNABLES`` is set where the run is started, and wins over these), not set in a running one. A glibc
that does not take a threshold this large, or another C library, ignores them: the worker then runs as
before, only slower. Measured on 2 cores; ``ARENA_MAX`` = 1 serialises malloc across a worker's threads, which
costs nothing here because the allocations that matter are few and large.
"""

from __future__ import annotations

import os

MMAP_THRESHOLD = 256 * 2**20  # bytes: blocks below this come from the heap (reused), not a fresh mmap
TRIM_THRESHOLD = 256 * 2**20  # bytes of free heap top kept before it is given back to the kernel
ARENA_MAX = 1  # every thread allocates from the main heap (see below)
_SETTINGS = {
    "glibc.malloc.mmap_threshold": MMAP_THRESHOLD,
    "glibc.malloc.trim_threshold": TRIM_THRESHOLD,
    "glibc.malloc.arena_max": ARENA_MAX,
}


def tunables(existing: str | None = None) -> str:
    """``GLIBC_TUNABLES`` for a worker: ours, with any the operator set already kept (theirs win)."""
    pairs = {k: str(v) for k, v in _SETTINGS.items()}
    for item in (existing or "").split(":"):
        name, sep, value = item.partition("=")
        if sep and name:
            pairs[name] = value
    return ":".join(f"{k}={v}" for k, v in pairs.items())


def worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables a colorizing worker process starts with."""
    env = os.environ if environ is None else environ
    return {"GLIBC_TUNABLES": tunables(env.get("GLIBC_TUNABLES"))}
