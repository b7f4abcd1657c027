"""ONNX colorizers: export the built-in model, and run any ONNX model with an L -> ab signature.

Export wraps the whole decoding (network, annealed mean, certainty-weighted chroma, normalised
entropy) into one graph with inputs ``lightness`` (N, 1, H, W; L* in 0..100) and outputs ``ab``
(N, 2, H/4, W/4) and ``uncertainty`` (N, H/4, W/4), so ONNX Runtime reproduces the torch model
exactly (tested). Foreign models are accepted when their first input has 1 channel (L*, 0..100) or
3 channels (the grey image as RGB in 0..1, the DDColor convention) and an output has 2 channels (a*,
b*); without an ``uncertainty`` output their uncertainty is estimated from the grey input and the colours by the
harm estimator's proxy for the built-in model's entropy (``chromata.harm``), so images still get different confidences.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from chromata.calibration import Calibration
from chromata.models.base import F32, ChromaPrediction
from chromata.models.postprocess import estimated_uncertainty, grey_rgb, restrained, restraint_facts

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


class OnnxColorizer:
    """Runs an ONNX colorization graph with ONNX Runtime (CUDA provider when present, else CPU)."""

    def __init__(self, path: Path, device: str = "auto") -> None:
        import onnxruntime as ort

        from chromata.storage import sha256_file

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
        if len(shape) != 4 or shape[1] not in (1, 3):
            raise ValueError(f"{path}: first input {inp.name} {shape} is not (N, 1|3, H, W)")
        self.input_name = inp.name
        self.channels = int(shape[1])
        fixed = shape[2] if isinstance(shape[2], int) else None
        self.input_size = int(fixed or meta.get("chromata.input_size", 256))
        outs = self.session.get_outputs()
        self.ab_name = next((o.name for o in outs if o.name == "ab"), outs[0].name)
        self.unc_name = next((o.name for o in outs if o.name == "uncertainty"), None)
        self.name = meta.get("chromata.name", f"onnx-{path.stem}")
        self.weights_sha256 = sha256_file(path)
        self.source_sha256 = meta.get("chromata.source_sha256")
        self.calibration: Calibration | None = None
        self.restrain = True  # the harm estimator's restraint after the graph (chromata.harm), as for every model

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        x = np.ascontiguousarray(lightness, dtype=np.float32)[:, None]
        if self.channels == 3:
            x = np.ascontiguousarray(grey_rgb(x[:, 0]).transpose(0, 3, 1, 2), dtype=np.float32)
        names = [self.ab_name] + ([self.unc_name] if self.unc_name else [])
        result = self.session.run(names, {self.input_name: x})
        ab = np.asarray(result[0], dtype=np.float32)
        ab_nhwc = np.ascontiguousarray(ab.transpose(0, 2, 3, 1))
        if self.unc_name:
            unc = np.asarray(result[1], dtype=np.float32)
        else:
            unc = estimated_uncertainty(np.asarray(lightness, np.float32), ab_nhwc)
        return ChromaPrediction(ab=restrained(self, lightness, ab_nhwc), uncertainty=unc)

    def describe(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "model_sha256": self.weights_sha256,
            "exported_from_sha256": self.source_sha256,
            "input_size": self.input_size,
            "runtime": "onnxruntime",
            "uncertainty": "model output"
            if self.unc_name
            else "not provided by the model: estimated from the grey input and the colours (chromata.harm proxy)",
            "restraint": restraint_facts(self),
            "device": self.device,
        }
