"""How a colorizer worker asks glibc's allocator to keep the memory it frees (issues #17, #25).

A worker allocates the same full-size arrays for every image (a float32 plane of a 2.5 MP scan is 10 MB) and the
network's activations for every batch. With glibc's defaults a block that large is a fresh ``mmap`` each time and
returned to the kernel when freed, so every image pays for faulting in and zeroing its pages again. Keeping
blocks of up to ``MMAP_THRESHOLD`` in the heap and trimming its top only past ``TRIM_THRESHOLD`` makes the next
image reuse pages already mapped.

One arena: a thread other than the main one allocates from an arena of its own, whose heaps are at most 64 MiB,
so anything larger (a batch's activations, the 529-bin distribution) is a fresh ``mmap`` there whatever the
threshold — and a Ray actor runs its methods on such a thread. ``ARENA_MAX`` = 1 puts every thread on the main
heap. It serialises malloc across a worker's threads; the allocations that matter are few and large, and
Python's small objects come from its own allocator.

What each setting is worth is measured, not claimed here: ``benchmarks/allocator.py`` runs the steps they act
on (in a thread other than the main one, as an actor does) in fresh processes with them off, on, without the
one arena, and as a glibc that refuses the threshold would run them; its figures are the section
*Allocator settings of a colorizer worker* of docs/benchmarks.md.

The cost is memory: blocks freed below one still in use stay mapped (glibc gives back only the free top of its
heap, past ``TRIM_THRESHOLD``), so a worker's resident memory stays near the peak of what it has held —
per-image arrays and a batch's activations, within its memory budget (the benchmark reports each setting's
peak; ``benchmarks/large_scans.py`` measures a worker's peak on huge scans).

Where they apply, and where not:

* Only to colorizer workers. They are glibc tunables, read when a process starts, so ``ColorizerPool`` gives
  them to its actors' processes (``runtime_env``), and to nothing else: not the driver, Ray's own processes,
  other Ray workers or anything they start.
* Only where the worker's glibc takes them. Before glibc 2.35 a ``mmap_threshold`` above 32 MiB
  (``HEAP_MAX_SIZE / 2`` on 64-bit) is refused while ``trim_threshold`` is still taken, and any threshold set
  turns off glibc's adaptive threshold — so every block over 128 KiB would be a fresh ``mmap``, slower than the
  defaults (glibc commit 0a4df6f534, "Remove upper limit on tunable MALLOC_MMAP_THRESHOLD", first in 2.35). Older
  glibcs and other C libraries get none of them. The version is the worker's: ``ColorizerPool`` asks a plain
  worker of the cluster (``worker_env`` run there), not the driver.
* Never over the operator's. Where the worker's environment already sets any of glibc's malloc tunables
  (``glibc.malloc.*`` in ``GLIBC_TUNABLES``) or their ``MALLOC_*`` variables, the operator has chosen how the
  allocator behaves, and none of these is added; other tunables of theirs are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

MMAP_THRESHOLD = 256 * 2**20  # bytes: blocks below this come from the heap (reused), not a fresh mmap
TRIM_THRESHOLD = 256 * 2**20  # bytes of free heap top kept before it is given back to the kernel
ARENA_MAX = 1  # every thread allocates from the main heap (see above)
SETTINGS = {
    "glibc.malloc.mmap_threshold": MMAP_THRESHOLD,
    "glibc.malloc.trim_threshold": TRIM_THRESHOLD,
    "glibc.malloc.arena_max": ARENA_MAX,
}
MIN_GLIBC = (2, 35)  # the first glibc that takes a mmap_threshold above 32 MiB
# glibc's environment aliases of its malloc tunables (an operator's MALLOC_ARENA_MAX=2 and the like)
MALLOC_VARIABLES = (
    "MALLOC_ARENA_MAX",
    "MALLOC_ARENA_TEST",
    "MALLOC_CHECK_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_PERTURB_",
    "MALLOC_TOP_PAD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def glibc_version(confstr: str | None = None) -> tuple[int, int] | None:
    """This process's glibc as (major, minor), or None under another C library (``confstr``: the value of
    ``CS_GNU_LIBC_VERSION``, e.g. "glibc 2.36", for tests)."""
    if confstr is None:
        try:
            confstr = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (AttributeError, ValueError, OSError):
            return None
    name, _, version = confstr.partition(" ")
    parts = version.split(".")
    if name != "glibc" or len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def accepts(glibc: tuple[int, int] | None) -> bool:
    """Whether a glibc takes the settings as they are (see the module's notes)."""
    return glibc is not None and glibc >= MIN_GLIBC


def operator_settings(environ: Mapping[str, str]) -> list[str]:
    """The malloc settings the environment already has: ``glibc.malloc.*`` tunables and ``MALLOC_*`` variables."""
    found = [v for v in MALLOC_VARIABLES if environ.get(v)]
    for item in environ.get("GLIBC_TUNABLES", "").split(":"):
        name, sep, _ = item.partition("=")
        if sep and name.startswith("glibc.malloc."):
            found.append(name)
    return found


def tunables(existing: str | None = None) -> str:
    """``GLIBC_TUNABLES`` with these settings first and any tunables already there after them (glibc takes a
    tunable's last value, so an existing one wins)."""
    ours = [f"{k}={v}" for k, v in SETTINGS.items()]
    theirs = [item for item in (existing or "").split(":") if item]
    return ":".join(ours + theirs)


def worker_env(environ: Mapping[str, str] | None = None, libc: str | None = None) -> dict[str, str]:
    """The environment variables a colorizer worker is to start with, given the environment it would otherwise
    start with and its C library (``libc``: as ``glibc_version`` reads it; default: this process's): the
    settings, or nothing where that library does not take them or the environment already configures malloc."""
    env = os.environ if environ is None else environ
    if not accepts(glibc_version(libc)) or operator_settings(env):
        return {}
    return {"GLIBC_TUNABLES": tunables(env.get("GLIBC_TUNABLES"))}


def in_effect(environ: Mapping[str, str] | None = None, libc: str | None = None) -> bool:
    """Whether this process (or one with ``environ`` and ``libc``) started with the settings and takes them."""
    env = os.environ if environ is None else environ
    given = env.get("GLIBC_TUNABLES", "").split(":")
    return accepts(glibc_version(libc)) and all(f"{k}={v}" in given for k, v in SETTINGS.items())
