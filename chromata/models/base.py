"""The one interface every colorization model implements."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from chromata.judgement.calibration_map import Calibration

F32 = NDArray[np.float32]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChromaPrediction:
    """Model output for a batch: chroma and a per-pixel uncertainty, both at the model's resolution."""

    ab: F32  # (N, h, w, 2), CIE a*/b*
    uncertainty: F32  # (N, h, w), 0 = certain … 1 = no idea


@runtime_checkable
class Colorizer(Protocol):
    """Predicts chroma from lightness. ``input_size`` is the square working resolution."""

    name: str
    weights_sha256: str
    input_size: int
    device: str
    calibration: Calibration | None  # maps the raw confidence score to P(good colorization)

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        """``lightness``: (N, input_size, input_size) float32 L* in [0, 100]."""
        ...

    def describe(self) -> dict[str, object]:
        """Provenance facts about the model (name, weights hash, decoding parameters)."""
        ...


def model_input(model: Colorizer, lightness: F32) -> F32:
    """A scan's L* (or its reduction) at the model's working size, resampled as the model's family feeds its
    network (``model.resample``: chromata's area reduction unless the family's official inference differs)."""
    from chromata.colormath import color

    return color.working_lightness(lightness, model.input_size, getattr(model, "resample", "area"))


class Inert:
    """What an object a checkpoint names in ``inert`` becomes when it is read (:func:`load_untrusted`): nothing.
    Constructing, calling or restoring it runs no code of the named class or function."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> Inert:
        return Inert()

    def __setstate__(self, state: object) -> None:
        pass


def load_untrusted(path: Path, inert: Collection[str] = (), mmap: bool = False) -> Any:
    """A downloaded checkpoint, read as untrusted input: ``torch.load(weights_only=True)`` (tensors, numbers,
    strings and containers only: no code runs). ``mmap``: the tensors mapped from the file, not read (zip-format
    files; for a check that builds nothing: a network must not keep pointing into a file someone may replace
    while a run holds it). ``inert``: the
    fully qualified names of classes and functions a family's files are known to carry beside their weights
    (fastai's optimiser settings: ``functools.partial``, ``torch.optim.adam.Adam``, numpy scalars); each is read
    as an :class:`Inert` placeholder instead of being imported — every other global is still refused. Anything
    wrong with the file is one ValueError line naming it; FileNotFoundError when it is missing."""
    import pickle
    import zipfile

    import torch

    if not path.is_file():
        raise FileNotFoundError(f"model weights not found: {path}")
    try:
        with torch.serialization.safe_globals([(Inert, name) for name in inert]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # weights_only refused a class or function the file wants to import
            raise ValueError(f"{path} holds Python objects, not only tensors: refused unread") from exc
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (not a PyTorch file, or damaged)") from exc
    except Exception as exc:  # whatever a damaged file makes torch's readers raise (RuntimeError, KeyError, EOF…)
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:120]
        if isinstance(exc, KeyError | EOFError) or not first:  # the legacy reader on bytes that are no pickle
            first = f"{type(exc).__name__} reading it: not a PyTorch file"
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or damaged: {first})") from exc


def pick_device(requested: str = "auto") -> str:
    """``auto``: the first CUDA device when torch sees one, else the CPU; anything else as given."""
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def warm_up(model: Colorizer) -> None:
    """One prediction on a flat grey image, so that the first batch of a run does not pay for what a model
    builds on its first call: the built-in's TorchScript graph and the executor's first optimising run
    (2.6 s of a 3.2 s first batch on 2 cores, then 0.7 s a batch of 8), ONNX Runtime's first run, a CUDA
    context."""
    model.predict_ab(np.full((1, model.input_size, model.input_size), 50.0, np.float32))


class InferenceGraph:
    """A network's forward pass as used for inference: on a CPU in float32, a frozen TorchScript graph
    optimised for inference (batch norms folded into convolutions, MKLDNN kernels; built on first use,
    valid for any batch size, the same outputs to ~1e-4): 1.2-1.9x the eager network on this project's
    CPUs. Eager on GPUs, with reduced precision, with ``CHROMATA_EAGER=1`` or when the graph cannot be
    built."""

    def __init__(self, net: Any, input_size: int, device: str, enabled: bool = True) -> None:
        self.net, self.input_size, self.device, self.enabled = net, input_size, device, enabled
        self.graph: Any = None

    def __call__(self, x: Any) -> Any:
        if not self.enabled or self.device != "cpu" or os.environ.get("CHROMATA_EAGER") == "1":
            return self.net(x)
        if self.graph is None:
            import torch

            try:
                example = torch.zeros(2, 1, self.input_size, self.input_size)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # tracer warnings about shapes: checked by the tests
                    traced = torch.jit.trace(self.net, example)  # type: ignore[no-untyped-call]
                    self.graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            except Exception as exc:  # an exotic torch build: eager is correct, just slower
                log.warning("TorchScript inference graph unavailable (%s); running eager", exc)
                self.graph = self.net
        return self.graph(x)
