"""Colour maths: CIE Lab conversions, the full-resolution chroma merge, colourfulness and CIEDE2000.

* :mod:`~chromata.colormath.color` — the reference NumPy implementation every other part of chromata uses;
* :mod:`~chromata.colormath.kernels` — the same per-pixel chain fused into one numba pass (the 8-bit merge);
* :mod:`~chromata.colormath.torchcolor` — the same maths in torch, for training batches on the GPU.

May import: :mod:`chromata.errors` only. Everything else builds on this package.
"""
