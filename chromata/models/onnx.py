"""ONNX colorizers: export the built-in model, and run the ONNX graphs museums already have.

Export wraps the whole decoding (network, annealed mean, certainty-weighted chroma, normalised
entropy) into one graph with inputs ``lightness`` (N, 1, H, W; L* in 0..100) and outputs ``ab``
(N, 2, H/4, W/4) and ``uncertainty`` (N, H/4, W/4), so ONNX Runtime reproduces the torch model
exactly (tested).

Foreign graphs are read by their conventions (:class:`Convention`), recognised from the graph's first input
and output, or described by a JSON card beside the file (``MODEL.onnx.json``, keys as :class:`Convention`):

* 1 -> 2 channels: L* in 0..100 -> a*/b* (chromata export-onnx, chromata's own signature);
* 3 -> 2 channels: the grey image as RGB in 0..1 -> a*/b* (DDColor's own export script: ``input``
  [1, 3, 512, 512] -> ``output`` [1, 2, 512, 512], ImageNet normalisation inside the graph);
* 3 -> 3 channels: the grey image as RGB in 0..255 -> a colour RGB image in 0..255 (the common DeOldify ONNX
  ports, which wrap the generator between a /255 + ImageNet normalisation and its inverse); chromata merges that
  image as DeOldify does (its U, V with the grey input's Y) and keeps the result's CIELab a*/b*, which it merges
  with the full-resolution L*.

Without an ``uncertainty`` output the uncertainty is estimated from the grey input and the colours by the
harm estimator's proxy for the built-in model's entropy (``chromata.judgement.harm``), so images still get different
confidences.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from chromata.judgement.calibration import Calibration
from chromata.models.base import F32, ChromaPrediction
from chromata.models.postprocess import (
    estimated_uncertainty,
    grey_rgb,
    restrained,
    restraint_facts,
    rgb_to_ab,
    yuv_merged,
)

log = logging.getLogger(__name__)

OPSET = 17


def export_builtin(model: Any, path: Path, opset: int = OPSET, uncertainty: bool = True) -> Path:
    """Write a :class:`BuiltinColorizer` (weights + decoding) as an ONNX graph with dynamic N, H, W; with
    ``uncertainty=False`` the graph has the ``ab`` output only (as most foreign models do)."""
    import torch

    from chromata.models.ab_bins import annealed_mean, normalised_entropy

    class Decoded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model.net.float().cpu().eval()

        def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.net(lightness)
            unc = normalised_entropy(logits)
            ab = annealed_mean(logits, model.temperature)
            if model.chroma_gamma > 0:
                ab = ab * (1.0 - unc).clamp(0.0, 1.0).pow(model.chroma_gamma).unsqueeze(1)
            return ab, unc

    class AbOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoded = Decoded()

        def forward(self, lightness: torch.Tensor) -> torch.Tensor:
            ab: torch.Tensor = self.decoded(lightness)[0]
            return ab

    wrapper = (Decoded() if uncertainty else AbOnly()).eval()
    example = torch.full((1, 1, model.input_size, model.input_size), 50.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (example,),
        str(path),
        input_names=["lightness"],
        output_names=["ab", "uncertainty"] if uncertainty else ["ab"],
        dynamic_axes={
            "lightness": {0: "n", 2: "h", 3: "w"},
            "ab": {0: "n", 2: "h4", 3: "w4"},
            **({"uncertainty": {0: "n", 1: "h4", 2: "w4"}} if uncertainty else {}),
        },
        opset_version=opset,
        dynamo=False,
    )
    import onnx

    proto = onnx.load(str(path))
    meta = {
        "chromata.name": model.name,
        "chromata.source_sha256": model.weights_sha256,
        "chromata.input_size": str(model.input_size),
        "chromata.decoding": json.dumps({"temperature": model.temperature, "chroma_gamma": model.chroma_gamma}),
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))
    model.net.to(model.device)
    return path


@dataclass(frozen=True)
class Convention:
    """How a graph's first input and first (or ``ab``/``output``) output are to be read."""

    input: str  # "lightness" (L* 0..100, 1 channel) or "rgb" (the grey image, 3 channels)
    output: str  # "ab" (CIELab a*/b*, 2 channels) or "rgb" (a colour image, 3 channels)
    input_range: float = 1.0  # rgb input: the value of white (1.0 or 255.0)
    output_range: float = 1.0  # rgb output: the value of white
    input_size: int | None = None  # working size where the graph's is dynamic
    source: str = "recognised from the graph"  # or the card's file name

    @classmethod
    def recognise(cls, in_channels: int, out_channels: int) -> Convention:
        if in_channels == 1 and out_channels == 2:
            return cls("lightness", "ab")
        if in_channels == 3 and out_channels == 2:
            return cls("rgb", "ab", input_range=1.0)  # DDColor's export
        if in_channels == 3 and out_channels == 3:
            return cls("rgb", "rgb", input_range=255.0, output_range=255.0)  # the common DeOldify ports
        raise ValueError(
            f"a graph of {in_channels} -> {out_channels} channels has no known convention (1 or 3 in, 2 or 3 out); "
            "describe it in a card beside the file (docs/model.md)"
        )

    @classmethod
    def from_card(cls, path: Path) -> Convention:
        """The convention a JSON card states; one-line errors for anything it gets wrong."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"unreadable ONNX card {path}: {str(exc).splitlines()[0]}") from exc
        known = {f.name for f in fields(cls)} - {"source"}
        if not isinstance(raw, dict) or set(raw) - known or not {"input", "output"} <= set(raw):
            raise ValueError(f"ONNX card {path}: expected keys input, output and optionally {', '.join(sorted(known))}")
        number: tuple[type, ...] = (int, float)
        types = {"input": (str,), "output": (str,), "input_range": number, "output_range": number}
        types["input_size"] = (int, type(None))
        for key, want in types.items():
            if key in raw and (not isinstance(raw[key], want) or isinstance(raw[key], bool)):
                raise ValueError(f"ONNX card {path}: {key} has the wrong type ({type(raw[key]).__name__})")
        conv = cls(**raw, source=path.name)
        if conv.input not in ("lightness", "rgb") or conv.output not in ("ab", "rgb"):
            raise ValueError(f"ONNX card {path}: input must be lightness or rgb, output ab or rgb")
        if conv.input_range <= 0 or conv.output_range <= 0 or (conv.input_size is not None and conv.input_size < 8):
            raise ValueError(f"ONNX card {path}: ranges must be positive and input_size at least 8")
        return conv

    @property
    def channels(self) -> tuple[int, int]:
        return (1 if self.input == "lightness" else 3), (2 if self.output == "ab" else 3)


def card_path(path: Path) -> Path:
    """Where a graph's convention card lies: ``MODEL.onnx.json`` beside ``MODEL.onnx``."""
    return path.with_name(path.name + ".json")


class OnnxColorizer:
    """Runs an ONNX colorization graph with ONNX Runtime (CUDA provider when present, else CPU)."""

    def __init__(self, path: Path, device: str = "auto") -> None:
        import onnxruntime as ort

        from chromata.archive.storage import sha256_file

        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        available = ort.get_available_providers()
        want_cuda = device.startswith("cuda") or (device == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise ValueError(f"{path} is not a loadable ONNX model: {str(exc).splitlines()[0]}") from exc
        self.device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        shape = inp.shape
        outs = self.session.get_outputs()
        out = next((o for o in outs if o.name in ("ab", "output")), outs[0])
        if len(shape) != 4 or shape[1] not in (1, 3) or len(out.shape) != 4 or out.shape[1] not in (2, 3):
            raise ValueError(
                f"{path}: {inp.name} {shape} -> {out.name} {out.shape} is not (N, 1|3, H, W) -> (N, 2|3, …)"
            )
        card = card_path(path)
        self.convention = Convention.from_card(card) if card.is_file() else Convention.recognise(shape[1], out.shape[1])
        if self.convention.channels != (shape[1], out.shape[1]):
            raise ValueError(
                f"{card}: says {self.convention.channels} channels, the graph has {shape[1]} -> {out.shape[1]}"
            )
        self.input_name, self.ab_name = inp.name, out.name
        self.channels = int(shape[1])
        fixed = shape[2] if isinstance(shape[2], int) else None
        self.input_size = int(fixed or self.convention.input_size or meta.get("chromata.input_size", 256))
        self.unc_name = next((o.name for o in outs if o.name == "uncertainty"), None)
        self.name = meta.get("chromata.name", f"onnx-{path.stem}")
        self.weights_sha256 = sha256_file(path)
        self.source_sha256 = meta.get("chromata.source_sha256")
        self.calibration: Calibration | None = None
        # chromata's own graphs restrain as the built-in model does; foreign graphs reproduce their colours
        self.restrain = self.convention.input == "lightness"
        # a DDColor export (grey RGB -> a*/b*) is fed as DDColor's inference feeds it (models.base.model_input)
        self.resample = "srgb-bilinear" if (self.convention.input, self.convention.output) == ("rgb", "ab") else "area"

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        conv = self.convention
        x = np.ascontiguousarray(lightness, dtype=np.float32)[:, None]
        grey = grey_rgb(x[:, 0]) if "rgb" in (conv.input, conv.output) else x
        if conv.input == "rgb":
            x = np.ascontiguousarray((grey * np.float32(conv.input_range)).transpose(0, 3, 1, 2), dtype=np.float32)
        names = [self.ab_name] + ([self.unc_name] if self.unc_name else [])
        result = self.session.run(names, {self.input_name: x})
        y = np.ascontiguousarray(np.asarray(result[0], dtype=np.float32).transpose(0, 2, 3, 1))
        # a colour image's chroma as DeOldify merges it: its U, V with the grey input's Y (postprocess.yuv_merged)
        ab_nhwc = y if conv.output == "ab" else rgb_to_ab(yuv_merged(grey, y / np.float32(conv.output_range)))
        if self.unc_name:
            unc = np.asarray(result[1], dtype=np.float32)
        else:
            unc = estimated_uncertainty(np.asarray(lightness, np.float32), ab_nhwc)
        return ChromaPrediction(ab=restrained(self, lightness, ab_nhwc), uncertainty=unc)

    def describe(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "model_sha256": self.weights_sha256,
            "model_family": "onnx",
            "exported_from_sha256": self.source_sha256,
            "input_size": self.input_size,
            "runtime": "onnxruntime",
            "convention": {k: v for k, v in asdict(self.convention).items() if v is not None},
            "uncertainty": "model output"
            if self.unc_name
            else "not provided by the model: estimated from the grey input and the colours "
            "(chromata.judgement.harm proxy)",
            "restraint": restraint_facts(self),
            "device": self.device,
        }
