"""Loading and running the built-in ChromaNet weights shipped in the package."""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from chromata.archive.storage import sha256_file
from chromata.judgement.calibration import Calibration
from chromata.models.base import F32, ChromaPrediction, InferenceGraph, load_untrusted, pick_device
from chromata.models.postprocess import restrained, restraint_facts

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "chromata-chromanet/1"
BUILTIN_WEIGHTS = "builtin-v2.pt"
BUILTIN_CARD = "builtin-v2.card.json"


def builtin_weights_path() -> Path:
    return Path(str(resources.files("chromata.models") / "weights" / BUILTIN_WEIGHTS))


def packaged_weights(version: str = "") -> Path:
    """A weights file shipped in the package: the current one, or an earlier version ("v1")."""
    name = f"builtin-{version}.pt" if version else BUILTIN_WEIGHTS
    return Path(str(resources.files("chromata.models") / "weights" / name))


def builtin_card(weights: Path | None = None) -> dict[str, Any]:
    """The model card beside a weights file (default: the shipped model's)."""
    path = (
        weights.with_name(f"{weights.stem}.card.json")
        if weights
        else Path(str(resources.files("chromata.models") / "weights" / BUILTIN_CARD))
    )
    return dict(json.loads(path.read_text(encoding="utf-8")))


def calibration_path(weights: Path) -> Path:
    """Where a model's confidence calibration lives: beside its weights (builtin-v2.calibration.json)."""
    return weights.with_name(f"{weights.stem}.calibration.json")


def _calibration_beside(weights: Path, weights_sha256: str) -> Calibration | None:
    path = calibration_path(weights)
    if not path.is_file():
        return None
    cal = Calibration.load(path)
    if cal.model_sha256 != weights_sha256:
        log.warning("ignoring %s: it was fitted for other weights", path)
        return None
    return cal


class BuiltinColorizer:
    """ChromaNet with annealed-mean decoding; uncertainty is the normalised entropy of the ab-bin
    distribution at each pixel."""

    def __init__(
        self,
        net: Any,
        config: dict[str, Any],
        weights_sha256: str,
        device: str = "auto",
        temperature: float | None = None,
        chroma_gamma: float | None = None,
        precision: str = "auto",
    ) -> None:
        self.config = dict(config)
        self.device = pick_device(device)
        # "auto" is float32 everywhere: measured on an H100, fp16 autocast moved ab by up to 5.5 (p99 0.64)
        # against the CPU and was no faster (the network is not the bottleneck); bf16 by up to 25. fp16/bf16
        # stay available for throughput experiments; outputs must be reproducible across devices by default.
        if precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"unknown precision {precision!r}: use auto, fp32, fp16 or bf16")
        self.precision = "fp32" if precision == "auto" else precision
        self.net = net.to(self.device).eval()
        self.name = str(self.config.get("name", "chromata-builtin"))
        self.weights_sha256 = weights_sha256
        self.calibration: Calibration | None = None
        self.input_size = int(self.config.get("input_size", 256))
        self.temperature = float(temperature if temperature is not None else self.config.get("temperature", 0.38))
        # Chroma is scaled by certainty**gamma per pixel: vivid where the model is sure, restrained where
        # it is not (gamma = 0 turns this off).
        self.chroma_gamma = float(chroma_gamma if chroma_gamma is not None else self.config.get("chroma_gamma", 0.0))
        self.forward = InferenceGraph(self.net, self.input_size, self.device, enabled=self.precision == "fp32")
        # Then, region by region, chroma is kept where the harm estimator expects the colour to help and damped
        # where it expects harm (chromata.judgement.harm; False: the network's decoding alone).
        self.restrain = True

    @classmethod
    def load(
        cls,
        weights: Path | None = None,
        device: str = "auto",
        temperature: float | None = None,
        chroma_gamma: float | None = None,
        precision: str = "auto",
    ) -> BuiltinColorizer:

        from chromata.models.builtin_net import ChromaNet

        path = weights or builtin_weights_path()
        blob = load_untrusted(path)
        if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"{path} is not a chromata ChromaNet weights file")
        config = dict(blob["config"])
        net = ChromaNet(decoder=tuple(config["decoder"]))
        net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
        model = cls(
            net,
            config,
            sha256_file(path),
            device=device,
            temperature=temperature,
            chroma_gamma=chroma_gamma,
            precision=precision,
        )
        model.calibration = _calibration_beside(path, model.weights_sha256)
        log.info("loaded %s (%s…) on %s", model.name, model.weights_sha256[:12], model.device)
        return model

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        import torch

        from chromata.models.ab_bins import decode_distribution

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(lightness, dtype=np.float32))
            x = x.unsqueeze(1).to(self.device, non_blocking=True)
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
            with torch.autocast(self.device.split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = self.forward(x)
            ab, unc = decode_distribution(logits.float(), self.temperature)
            if self.chroma_gamma > 0:
                ab = ab * (1.0 - unc).clamp(0.0, 1.0).pow(self.chroma_gamma).unsqueeze(1)
            ab = ab.permute(0, 2, 3, 1)
            out = ab.cpu().numpy().astype(np.float32)
        return ChromaPrediction(ab=restrained(self, lightness, out), uncertainty=unc.cpu().numpy().astype(np.float32))

    def describe(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "model_sha256": self.weights_sha256,
            "model_family": "builtin",
            "input_size": self.input_size,
            "temperature": self.temperature,
            "chroma_gamma": self.chroma_gamma,
            "precision": self.precision,
            "calibration_sha256": self.calibration.sha256 if self.calibration else None,
            "restraint": restraint_facts(self),
            "device": self.device,
        }
