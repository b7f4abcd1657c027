"""Colorization models behind one interface (``Colorizer``), chosen by a spec string."""

from __future__ import annotations

from pathlib import Path

from chromata.errors import ConfigError
from chromata.models.base import ChromaPrediction, Colorizer

__all__ = ["ChromaPrediction", "Colorizer", "load_colorizer"]


def weights_sha256(spec: str = "builtin") -> str:
    """SHA-256 of the weights a model spec names, without loading the model."""
    from chromata.models.builtin import builtin_weights_path, sha256_file

    kind, _, arg = spec.partition(":")
    if kind != "builtin":
        raise ConfigError(f"unknown model {spec!r}: use 'builtin' or 'builtin:PATH'")
    path = Path(arg) if arg else builtin_weights_path()
    if not path.is_file():
        raise ConfigError(f"model weights not found: {path}")
    return sha256_file(path)


def load_colorizer(
    spec: str = "builtin",
    device: str = "auto",
    temperature: float | None = None,
    chroma_gamma: float | None = None,
) -> Colorizer:
    """``builtin`` (weights shipped in the package) or ``builtin:PATH`` (ChromaNet weights file)."""
    from chromata.models.builtin import BuiltinColorizer

    kind, _, arg = spec.partition(":")
    if kind != "builtin":
        raise ConfigError(f"unknown model {spec!r}: use 'builtin' or 'builtin:PATH'")
    try:
        return BuiltinColorizer.load(
            Path(arg) if arg else None, device=device, temperature=temperature, chroma_gamma=chroma_gamma
        )
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
