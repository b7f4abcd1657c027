"""chromata.colormath.kernels: the fused CPU passes equal the torch / OpenCV code they replace."""

import numpy as np
import pytest
import torch

from chromata.colormath import kernels
from chromata.models import ab_bins


def test_numba_is_there_so_the_fused_kernels_run():
    # numba is a dependency: without it every run would silently take the slower passes
    assert kernels.available()


@pytest.fixture
def fused_calls(monkeypatch):
    """torch on the threads the fused decoding runs with (it is used only where the model has at most
    ``ab_bins.FUSED_MAX_THREADS``), and a count of the calls that reach the fused kernel."""
    calls = []
    real = kernels.decode_distribution

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "decode_distribution", counted)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, ab_bins.FUSED_MAX_THREADS))
    try:
        yield calls
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("spread", [1.0, 6.0, 40.0], ids=["flat", "network-like", "extreme"])
def test_fused_distribution_decoding_equals_torch(spread, monkeypatch, fused_calls):
    """Annealed mean and entropy, fused, against the torch passes: on flat, network-like and extreme logits
    (bins 100s of units below the best: the clamped exponentials), a pixel count that is not a multiple of
    the kernel's chunk, and custom bin centres (a foreign model's grid). Each side is checked to have run the
    path it stands for."""
    rng = np.random.default_rng(int(spread))
    logits = torch.from_numpy(rng.normal(0.0, spread, (3, ab_bins.NUM_BINS, 37, 41)).astype(np.float32))
    fused_ab, fused_unc = ab_bins.decode_distribution(logits, 0.38)
    centres = ab_bins.bin_centers() * 0.9 + 1.0
    fused_ab2, _ = ab_bins.decode_distribution(logits, 0.5, centres)
    assert len(fused_calls) == 2, "the fused kernel did not run"
    monkeypatch.setattr(kernels, "available", lambda: False)
    ab, unc = ab_bins.decode_distribution(logits, 0.38)
    ab2, _ = ab_bins.decode_distribution(logits, 0.5, centres)
    assert len(fused_calls) == 2, "the torch side ran the fused kernel"
    assert fused_ab.shape == ab.shape == (3, 2, 37, 41) and fused_unc.shape == unc.shape == (3, 37, 41)
    assert float((fused_ab - ab).abs().max()) < 1e-3
    assert float((fused_unc - unc).abs().max()) < 1e-5
    assert float((fused_ab2 - ab2).abs().max()) < 1e-3
    assert float(ab.abs().max()) > 1.0  # the comparison is of real chroma, not of zeros


def test_kernels_compile_without_a_cache_where_none_can_be_written(monkeypatch):
    """A worker whose package and home are read-only (a hardened container): numba refuses cache=True with a
    RuntimeError; the kernels are then compiled in the process and still run."""
    import numba

    real = numba.njit

    def njit(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function '_merge8': no locator available for file 'kernels.py'")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    kernels._compiled.cache_clear()
    try:
        assert kernels.available()
        ab, unc = kernels.decode_distribution(np.zeros((1, 3, 2, 2), np.float32), np.eye(3, 2, dtype=np.float32), 0.5)
        assert np.allclose(unc, 1.0) and np.allclose(ab, 1.0 / 3.0)  # flat logits: uniform over the 3 bins
    finally:
        kernels._compiled.cache_clear()  # the next test gets the cached kernels again


def test_kernels_that_numba_cannot_compile_leave_the_passes_they_replace(monkeypatch, caplog):
    """numba compiles a kernel on its first call: a failure there (a numba, LLVM or NumPy it cannot compile with)
    must not fail the worker. The kernels are then not used, the decoding and the merge run their torch and
    OpenCV passes, and a warning says why."""
    import numba
    from numba.core.errors import TypingError

    from chromata.colormath import color

    real = numba.njit

    def njit(*args, **kwargs):  # type: ignore[no-untyped-def]
        wrap = real(*args, **kwargs)

        def decorate(fn):  # type: ignore[no-untyped-def]
            wrap(fn)  # as numba does: nothing is compiled yet

            def first_call(*a, **k):  # type: ignore[no-untyped-def]
                raise TypingError(f"Failed in nopython mode pipeline (step: nopython frontend) for {fn.__name__}")

            return first_call

        return decorate

    monkeypatch.setattr(numba, "njit", njit)
    kernels._compiled.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="chromata.colormath.kernels"):
            kernels.prepare()  # what a worker calls while it loads its model: no exception
            assert not kernels.available()
        assert "could not be compiled by numba" in caplog.text and "TypingError" in caplog.text
        logits = torch.from_numpy(np.random.default_rng(0).normal(0, 6, (1, ab_bins.NUM_BINS, 8, 8)).astype(np.float32))
        ab, unc = ab_bins.decode_distribution(logits, 0.38)
        assert ab.shape == (1, 2, 8, 8) and bool(torch.isfinite(unc).all())
        light = np.full((20, 30), 60.0, np.float32)
        out = color.merge_chroma_to(light, np.full((4, 4, 2), 10.0, np.float32), np.uint8)
        assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    finally:
        kernels._compiled.cache_clear()  # the next test gets the compiled kernels again
