"""chromata.pipeline.allocator: the settings go to colorizer workers only where their glibc takes them, never over an
operator's own malloc settings."""

import os
import subprocess
import sys

import pytest

from chromata.pipeline import allocator

SETTINGS = {f"{k}={v}" for k, v in allocator.SETTINGS.items()}


def test_a_worker_gets_the_settings_where_its_glibc_takes_them():
    env = allocator.worker_env({}, libc="glibc 2.35")
    assert set(env["GLIBC_TUNABLES"].split(":")) == SETTINGS
    assert allocator.in_effect(env, libc="glibc 2.35")


@pytest.mark.parametrize("libc", ["glibc 2.26", "glibc 2.31", "glibc 2.34", ""], ids=["2.26", "2.31", "2.34", "musl"])
def test_no_settings_where_the_glibc_refuses_the_threshold_or_is_not_glibc(libc):
    """Before 2.35 a mmap_threshold over 32 MiB is refused while the trim threshold still switches glibc's adaptive
    threshold off: every block over 128 KiB would be a fresh mmap. Such a worker gets none of them."""
    assert allocator.worker_env({}, libc=libc) == {}
    assert not allocator.in_effect({"GLIBC_TUNABLES": allocator.tunables()}, libc=libc)


def test_glibc_version_is_read_from_confstr():
    assert allocator.glibc_version("glibc 2.31") == (2, 31)
    assert allocator.glibc_version("glibc 2.36.9000") == (2, 36)
    assert allocator.glibc_version("") is None and allocator.glibc_version("musl 1.2") is None
    if sys.platform == "linux" and os.confstr("CS_GNU_LIBC_VERSION"):
        assert allocator.glibc_version() == allocator.glibc_version(os.confstr("CS_GNU_LIBC_VERSION"))


@pytest.mark.parametrize(
    "theirs",
    [
        {"MALLOC_ARENA_MAX": "4"},
        {"MALLOC_TRIM_THRESHOLD_": "131072"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"},
        {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F:glibc.malloc.arena_max=2"},
    ],
)
def test_an_operators_own_malloc_settings_are_left_alone(theirs):
    """The operator has chosen how malloc behaves: chromata adds none of its settings (a partial merge would make
    a combination neither chose)."""
    assert allocator.operator_settings(theirs)
    assert allocator.worker_env(theirs, libc="glibc 2.36") == {}


def test_an_operators_other_tunables_are_kept():
    env = allocator.worker_env({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"}, libc="glibc 2.36")
    items = env["GLIBC_TUNABLES"].split(":")
    assert set(items) == SETTINGS | {"glibc.cpu.hwcaps=-AVX512F"} and items[-1] == "glibc.cpu.hwcaps=-AVX512F"


@pytest.mark.skipif(not allocator.accepts(allocator.glibc_version()), reason="this glibc does not take the settings")
def test_the_settings_take_effect_in_a_process_started_with_them():
    """A 100 MiB block from a thread other than the main one (as an actor's method runs) comes from the heap, not
    a fresh mmap, in a process started with the settings; with glibc's defaults it is mmapped."""
    code = (
        "import ctypes, threading\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "class Info(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in 'arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks "
        "fordblks keepcost'.split()]\n"
        "libc.mallinfo2.restype = Info\nlibc.malloc.restype = ctypes.c_void_p\n"
        "libc.malloc.argtypes = [ctypes.c_size_t]\n"
        "out = []\n"
        "def work():\n"
        "    libc.malloc(100 * 2**20)\n"
        "    out.append(libc.mallinfo2().hblkhd)\n"
        "t = threading.Thread(target=work); t.start(); t.join()\n"
        "print(out[0])\n"
    )
    base = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    mapped = {}
    for name, env in (("defaults", base), ("settings", {**base, **allocator.worker_env(base)})):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        mapped[name] = int(out.stdout.split()[-1])
    assert mapped["defaults"] >= 100 * 2**20 and mapped["settings"] == 0, mapped
