"""Zhang et al.'s colorization networks, loadable from their published PyTorch state dicts.

* ECCV16 — "Colorful Image Colorization" (Zhang, Isola, Efros 2016): a VGG-style network predicting a
  distribution over 313 in-gamut ab bins at 1/4 resolution; the 1×1 ``model_out`` convolution holds
  the bin centres (÷110). Published as ``colorization_release_v2-9b330a0b.pth``.
* SIGGRAPH17 — "Real-Time User-Guided Image Colorization with Learned Deep Priors" (Zhang et al. 2017):
  a U-Net with a regression head (ab ÷110, tanh) and an auxiliary 529-bin classification head at 1/4
  resolution; run here without user hints. Published as ``siggraph17-df00044c.pth``.

The layer layout (module names and ``nn.Sequential`` indices) follows the authors' release so their
files load with ``strict=True``; the code is our own. Those files cannot be downloaded here, so the
tests save randomly initialised networks in the same format and load them back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from chromata.judgement.calibration import Calibration
from chromata.models.ab_bins import decode_distribution, normalised_entropy
from chromata.models.base import F32, ChromaPrediction, InferenceGraph, load_untrusted, pick_device
from chromata.models.postprocess import restrained, restraint_facts

log = logging.getLogger(__name__)

L_CENT, L_NORM, AB_NORM = 50.0, 100.0, 110.0


def _convs(
    cin: int, cout: int, n: int, *, stride_last: int = 1, dilation: int = 1, lead_relu: bool = False, norm: bool = True
) -> nn.Sequential:
    """[ReLU] + n × (Conv3×3, ReLU) [+ BatchNorm] — the authors' block layout (indices matter)."""
    layers: list[nn.Module] = [nn.ReLU(True)] if lead_relu else []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=True),
            nn.ReLU(True),
        ]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class ECCV16Net(nn.Module):
    """L (N, 1, H, W) in [0, 100] -> logits over 313 ab bins at (H/4, W/4)."""

    def __init__(self) -> None:
        super().__init__()
        self.model1 = _convs(1, 64, 2, stride_last=2)
        self.model2 = _convs(64, 128, 2, stride_last=2)
        self.model3 = _convs(128, 256, 3, stride_last=2)
        self.model4 = _convs(256, 512, 3)
        self.model5 = _convs(512, 512, 3, dilation=2)
        self.model6 = _convs(512, 512, 3, dilation=2)
        self.model7 = _convs(512, 512, 3)
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1, bias=True),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1, bias=True),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1, bias=True),
            nn.ReLU(True),
            nn.Conv2d(256, 313, 1, bias=True),
        )
        self.model_out = nn.Conv2d(313, 2, 1, bias=False)  # weights = ab bin centres / 110

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        x = (lightness - L_CENT) / L_NORM
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6, self.model7):
            x = block(x)
        return self.model8(x)  # type: ignore[no-any-return]

    def bin_centres(self) -> torch.Tensor:
        """(313, 2) ab values of the bins, read from the ``model_out`` weights."""
        return self.model_out.weight.detach()[:, :, 0, 0].t() * AB_NORM


class SIGGRAPH17Net(nn.Module):
    """L (N, 1, H, W) -> (ab (N, 2, H, W), class logits (N, 529, H/4, W/4)); H, W multiples of 8."""

    def __init__(self, classes: int = 529) -> None:
        super().__init__()
        self.model1 = _convs(4, 64, 2)
        self.model2 = _convs(64, 128, 2)
        self.model3 = _convs(128, 256, 3)
        self.model4 = _convs(256, 512, 3)
        self.model5 = _convs(512, 512, 3, dilation=2)
        self.model6 = _convs(512, 512, 3, dilation=2)
        self.model7 = _convs(512, 512, 3)
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1, bias=True))
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, padding=1, bias=True))
        self.model8 = _convs(256, 256, 2, lead_relu=True)
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1, bias=True))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1, bias=True))
        self.model9 = _convs(128, 128, 1, lead_relu=True)
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1, bias=True))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1, bias=True))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1, bias=True), nn.LeakyReLU(0.2))
        self.model_class = nn.Sequential(nn.Conv2d(256, classes, 1, bias=True))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1, bias=True), nn.Tanh())

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros_like(lightness)
        # no user hints: ab hints 0 and an all-zero hint mask, as the authors' automatic mode
        x = torch.cat([(lightness - L_CENT) / L_NORM, zeros, zeros, zeros], dim=1)
        conv1 = self.model1(x)
        conv2 = self.model2(conv1[:, :, ::2, ::2])
        conv3 = self.model3(conv2[:, :, ::2, ::2])
        y = self.model4(conv3[:, :, ::2, ::2])
        y = self.model7(self.model6(self.model5(y)))
        conv8 = self.model8(self.model8up(y) + self.model3short8(conv3))
        conv9 = self.model9(self.model9up(conv8) + self.model2short9(conv2))
        conv10 = self.model10(self.model10up(conv9) + self.model1short10(conv1))
        return self.model_out(conv10) * AB_NORM, self.model_class(conv8)


ARCHITECTURES: dict[str, type[nn.Module]] = {"eccv16": ECCV16Net, "siggraph17": SIGGRAPH17Net}


class ZhangColorizer:
    """ECCV16 (annealed-mean decoding of its 313-bin distribution) or SIGGRAPH17 (regression output);
    uncertainty is the normalised entropy of the respective class distribution."""

    def __init__(
        self,
        kind: str,
        net: nn.Module,
        weights_sha256: str,
        device: str = "cpu",
        temperature: float = 0.38,
        input_size: int = 256,
    ) -> None:
        if kind not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {kind!r}")
        self.kind = kind
        self.device = device
        self.net = net.to(device).eval()
        self.name = f"zhang-{kind}"
        self.weights_sha256 = weights_sha256
        self.input_size = input_size
        self.temperature = temperature
        self.calibration: Calibration | None = None
        self.restrain = False  # the authors' colours: restraint (judgement.assess) was measured on the built-in
        self.forward = InferenceGraph(self.net, input_size, device)

    @classmethod
    def load(cls, kind: str, path: Path, device: str = "cpu", temperature: float | None = None) -> ZhangColorizer:
        from chromata.archive.storage import sha256_file

        if kind not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {kind!r}: use {', '.join(ARCHITECTURES)}")
        state = load_untrusted(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        net = ARCHITECTURES[kind]()
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            first = (lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__)[:200]
            raise ValueError(f"{path} is not a {kind} state dict in the authors' format: {first}") from exc
        model = cls(kind, net, sha256_file(path), device=pick_device(device), temperature=temperature or 0.38)
        log.info("loaded %s (%s…) on %s", model.name, model.weights_sha256[:12], model.device)
        return model

    def predict_ab(self, lightness: F32) -> ChromaPrediction:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(lightness, dtype=np.float32)).unsqueeze(1).to(self.device)
            if isinstance(self.net, ECCV16Net):
                logits = self.forward(x).float()
                centres = self.net.bin_centres().to(logits)
                ab, unc = decode_distribution(logits, self.temperature, centres)
            else:
                ab, logits = self.forward(x)
                ab, unc = ab.float(), normalised_entropy(logits.float())
            out = ab.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        return ChromaPrediction(ab=restrained(self, lightness, out), uncertainty=unc.cpu().numpy().astype(np.float32))

    def describe(self) -> dict[str, object]:
        return {
            "model_name": self.name,
            "model_sha256": self.weights_sha256,
            "model_family": self.kind,
            "input_size": self.input_size,
            "temperature": self.temperature if self.kind == "eccv16" else None,
            "restraint": restraint_facts(self),
            "device": self.device,
        }


def save_reference_format(net: nn.Module, path: Path) -> None:
    """Write a network's plain ``state_dict`` as the authors publish theirs (for tests and benchmarks)."""
    torch.save(net.state_dict(), path)
