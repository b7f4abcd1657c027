"""Colorization models behind one interface (``Colorizer``), chosen by a spec string.

``builtin`` (the shipped model), ``builtin:v1`` (an earlier shipped model), ``builtin:PATH`` (ChromaNet
weights from ``chromata train``), ``eccv16:PATH`` / ``siggraph17:PATH`` (Zhang et al.'s published
PyTorch state dicts), ``onnx:PATH`` (any ONNX graph with an L -> ab signature, run by ONNX Runtime).
"""

from __future__ import annotations

from pathlib import Path

from chromata.errors import ConfigError
from chromata.models.base import ChromaPrediction, Colorizer

__all__ = ["ChromaPrediction", "Colorizer", "load_colorizer", "model_path", "weights_sha256"]

KINDS = ("builtin", "eccv16", "siggraph17", "onnx")
USAGE = "use builtin, builtin:v1, builtin:PATH, eccv16:PATH, siggraph17:PATH or onnx:PATH"


def model_path(spec: str = "builtin") -> Path:
    """The weights file a model spec names (validated: known kind, existing file)."""
    from chromata.models.builtin import packaged_weights

    kind, _, arg = spec.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"unknown model {spec!r}: {USAGE}")
    if kind == "builtin":
        path = packaged_weights(arg) if arg in ("", "v1", "v2") else Path(arg)
    elif not arg:
        raise ConfigError(f"model {kind!r} needs a weights file: {kind}:PATH")
    else:
        path = Path(arg)
    if not path.is_file():
        raise ConfigError(f"model weights not found: {path}")
    return path


def weights_sha256(spec: str = "builtin") -> str:
    """SHA-256 of the weights a model spec names, without loading the model."""
    from chromata.storage import sha256_file

    return sha256_file(model_path(spec))


def load_colorizer(
    spec: str = "builtin",
    device: str = "auto",
    temperature: float | None = None,
    chroma_gamma: float | None = None,
) -> Colorizer:
    """Load the model a spec names; every failure is a one-line :class:`ConfigError`."""
    path = model_path(spec)
    kind = spec.partition(":")[0]
    try:
        if kind == "builtin":
            from chromata.models.builtin import BuiltinColorizer

            return BuiltinColorizer.load(path, device=device, temperature=temperature, chroma_gamma=chroma_gamma)
        if kind == "onnx":
            from chromata.models.onnx import OnnxColorizer

            return OnnxColorizer(path, device=device)
        from chromata.models.zhang import ZhangColorizer

        return ZhangColorizer.load(kind, path, device=device, temperature=temperature)
    except ImportError as exc:
        raise ConfigError(f"model {kind!r} needs an optional package: {exc}") from exc
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
