"""Colorization models behind one interface (``Colorizer``), chosen by a spec string ``KIND[:ARG]``.

Each model family is one :class:`ModelFamily` entry in :data:`FAMILIES`: the spec forms it accepts, how its
weights are found and loaded, and what its confidence score means. Spec validation (``RunConfig``), the
loader, the CLI's ``--model`` help and ``chromata models`` all read this registry; adding a family is
adding an entry.

May import: :mod:`chromata.errors`, :mod:`chromata.colormath`, :mod:`chromata.archive` (weights from a
bucket) and :mod:`chromata.judgement` (a model carries its calibration and the harm estimator's restraint) —
never the engine, the record or the studies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chromata.errors import ConfigError
from chromata.judgement.calibration_map import Calibration
from chromata.models.base import ChromaPrediction, Colorizer

__all__ = [
    "FAMILIES",
    "ChromaPrediction",
    "Colorizer",
    "ModelFamily",
    "calibration_path",
    "check_model",
    "family",
    "load_colorizer",
    "model_facts",
    "model_path",
    "spec_forms",
    "validate_spec",
    "weights_sha256",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    device: str = "auto"
    temperature: float | None = None
    chroma_gamma: float | None = None
    input_size: int | None = None  # working size (--model-size) where the family takes one; None: its default
    precision: str = "auto"  # auto, fp32 or fp16 (families that allow it, on a GPU)


# A scan's L* is reduced to 1024 px on its long side before it is resampled to the working size
# (chromata.colormath.color.REDUCED_SIDE): a larger working size would only upsample, at a cost that grows steeply
# (DeOldify's self-attention with (size/8)^4)
MAX_MODEL_SIZE = 1024


@dataclass(frozen=True)
class ModelFamily:
    """One kind of model: ``kind`` is the part of a spec before the colon."""

    kind: str
    forms: tuple[str, ...]  # spec forms, as shown in help texts ("builtin:PATH")
    summary: str  # one line: what the family is
    confidence: str  # one line: what its confidence score is measured on, and whether it is calibrated
    load: Callable[[Path, LoadOptions], Colorizer]
    packaged: tuple[str, ...] = ()  # ARGs naming weights shipped in the package ("" = no ARG)
    exportable: bool = False  # export-onnx can export it
    loads_calibration: bool = False  # its loader finds the calibration itself (else load_colorizer does)
    size_step: int | None = None  # working sizes it accepts are multiples of this (None: its own size only)
    default_size: int | None = None  # working size when --model-size is not given
    licence: str = ""  # the licence of the published weights (and of the architecture's official code)
    published: str = ""  # where a museum downloads the official weights, and which files
    check: Callable[[Path], object] | None = None  # checks a weights file without building the network
    precisions: tuple[str, ...] = ("auto", "fp32")  # --precision values it runs at (fp16: on a GPU only)

    def check_precision(self, precision: str, device: str) -> None:
        """A one-line error if this family does not run at ``precision``, or fp16 is asked of a CPU."""
        if precision not in self.precisions:
            allowed = " or ".join(self.precisions)
            raise ConfigError(f"model {self.kind!r} runs at --precision {allowed}, not {precision}")
        if precision == "fp16" and device == "cpu":
            raise ConfigError("--precision fp16 needs a GPU (--device auto or cuda); on a CPU use auto or fp32")

    def check_size(self, size: int | None) -> None:
        """A one-line error if ``size`` is no working size for this family."""
        if size is None:
            return
        if self.size_step is None:
            raise ConfigError(f"model {self.kind!r} runs at its own working size: --model-size is not for it")
        if size % self.size_step or not self.size_step <= size <= MAX_MODEL_SIZE:
            raise ConfigError(
                f"--model-size {size} for {self.kind!r}: use a multiple of {self.size_step} "
                f"from {self.size_step} to {MAX_MODEL_SIZE} (default {self.default_size})"
            )

    def weights(self, arg: str) -> Path:
        """The weights file ``KIND:ARG`` names (not yet checked to exist)."""
        if arg in self.packaged:
            from chromata.models.builtin import packaged_weights

            return packaged_weights(arg)
        if not arg:
            raise ConfigError(f"model {self.kind!r} needs a weights file: {self.kind}:PATH")
        return Path(arg)


def _load_builtin(path: Path, o: LoadOptions) -> Colorizer:
    from chromata.models.builtin import BuiltinColorizer

    return BuiltinColorizer.load(
        path, device=o.device, temperature=o.temperature, chroma_gamma=o.chroma_gamma, precision=o.precision
    )


def _zhang(kind: str) -> Callable[[Path, LoadOptions], Colorizer]:
    def load(path: Path, o: LoadOptions) -> Colorizer:
        from chromata.models.zhang import ZhangColorizer

        return ZhangColorizer.load(kind, path, device=o.device, temperature=o.temperature)

    return load


def _load_ddcolor(path: Path, o: LoadOptions) -> Colorizer:
    from chromata.models.ddcolor import DDColorColorizer

    return DDColorColorizer.load(path, device=o.device, input_size=o.input_size, precision=o.precision)


def _load_deoldify(path: Path, o: LoadOptions) -> Colorizer:
    from chromata.models.deoldify import DeOldifyColorizer

    return DeOldifyColorizer.load(path, device=o.device, input_size=o.input_size, precision=o.precision)


def _check_ddcolor(path: Path) -> object:
    from chromata.models.ddcolor import check_file

    return check_file(path)


def _check_deoldify(path: Path) -> object:
    from chromata.models.deoldify import check_file

    return check_file(path)


def _load_onnx(path: Path, o: LoadOptions) -> Colorizer:
    from chromata.models.onnx import OnnxColorizer

    return OnnxColorizer(path, device=o.device)


_PROXY = (
    "no uncertainty of its own: a raw score from the model-agnostic proxy (chromata.judgement.harm) on grey and colours"
)
_BESIDE = "calibrated when a .calibration.json fitted for these weights lies beside them (chromata calibrate)"
FAMILIES: dict[str, ModelFamily] = {
    f.kind: f
    for f in (
        ModelFamily(
            "builtin",
            ("builtin", "builtin:v1", "builtin:PATH"),
            "chromata's ChromaNet: the shipped model, an earlier shipped one (v1), or weights from chromata train",
            "P(CIEDE2000 <= target) from the calibration shipped with the weights (model card); "
            "raw score for trained weights until calibrated",
            _load_builtin,
            packaged=("", "v1", "v2"),
            exportable=True,
            loads_calibration=True,
            precisions=("auto", "fp32", "fp16"),
            licence="Apache-2.0 (weights trained by chromata on photos under their own licences: the model card)",
        ),
        ModelFamily(
            "eccv16",
            ("eccv16:PATH",),
            "Zhang et al. (ECCV 2016): the authors' published PyTorch state dict",
            f"raw score from the entropy of its 313 ab bins; {_BESIDE}",
            _zhang("eccv16"),
            licence="BSD-2-Clause",
            published="github.com/richzhang/colorization: colorization_release_v2-9b330a0b.pth",
        ),
        ModelFamily(
            "siggraph17",
            ("siggraph17:PATH",),
            "Zhang et al. (SIGGRAPH 2017) without user hints: the authors' published PyTorch state dict",
            f"raw score from the entropy of its class output; {_BESIDE}",
            _zhang("siggraph17"),
            licence="BSD-2-Clause",
            published="github.com/richzhang/colorization: siggraph17-df00044c.pth",
        ),
        ModelFamily(
            "ddcolor",
            ("ddcolor:PATH",),
            "DDColor (Kang et al., ICCV 2023): the authors' published checkpoints, tiny or large, as downloaded",
            f"{_PROXY}; {_BESIDE}",
            _load_ddcolor,
            check=_check_ddcolor,
            precisions=("auto", "fp32", "fp16"),
            size_step=32,
            default_size=512,
            licence="Apache-2.0",
            published="github.com/piddnad/DDColor (MODEL_ZOO.md): ddcolor_paper_tiny.pth, ddcolor_paper.pth, "
            "ddcolor_modelscope.pth, ddcolor_artistic.pth; also on ModelScope (damo/cv_ddcolor_image-colorization)",
        ),
        ModelFamily(
            "deoldify",
            ("deoldify:PATH",),
            "DeOldify (Antic, 2018-2020): the published NoGAN generators (artistic, stable, video), as downloaded",
            f"{_PROXY}; {_BESIDE}",
            _load_deoldify,
            check=_check_deoldify,
            precisions=("auto", "fp32", "fp16"),
            size_step=16,
            default_size=560,
            licence="MIT",
            published="github.com/jantic/DeOldify (README, 'Pretrained Weights'): ColorizeArtistic_gen.pth, "
            "ColorizeStable_gen.pth, ColorizeVideo_gen.pth",
        ),
        ModelFamily(
            "onnx",
            ("onnx:PATH",),
            "an ONNX graph run by ONNX Runtime: chromata export-onnx's L -> ab, DDColor's export, DeOldify ONNX ports",
            f"raw score from the graph's 'uncertainty' output, else from the model-agnostic proxy; {_BESIDE}",
            _load_onnx,
        ),
    )
}


def model_facts(model: Colorizer) -> dict[str, str]:
    """Family, variant and licence of a loaded model, for provenance and labels (from its ``describe()`` and
    the registry)."""
    desc = model.describe()
    kind = str(desc.get("model_family") or "")
    licence = str(desc.get("model_licence") or (FAMILIES[kind].licence if kind in FAMILIES else ""))
    return {"family": kind, "variant": str(desc.get("model_variant") or ""), "licence": licence}


def spec_forms(exportable_only: bool = False) -> str:
    """The accepted spec forms as prose: 'builtin, builtin:v1, …, siggraph17:PATH or onnx:PATH'."""
    forms = [form for f in FAMILIES.values() if f.exportable or not exportable_only for form in f.forms]
    return f"{', '.join(forms[:-1])} or {forms[-1]}" if len(forms) > 1 else forms[0]


def family(spec: str) -> ModelFamily:
    """The family a spec names; a one-line error listing every accepted form if none does."""
    found = FAMILIES.get(spec.partition(":")[0])
    if found is None:
        raise ConfigError(f"unknown model {spec!r}: use {spec_forms()}")
    return found


def validate_spec(spec: str) -> str:
    """Check a spec's form without touching the file system (configuration is validated before files are
    reachable, e.g. on a scheduler): a known family, and a weights file where the family needs one."""
    kind, _, arg = spec.partition(":")
    fam = family(spec)
    if arg not in fam.packaged and not arg.strip():
        raise ConfigError(f"model {kind!r} needs a weights file: {kind}:PATH")
    return spec


def model_path(spec: str = "builtin") -> Path:
    """The weights file a model spec names (validated: known kind, existing file)."""
    path = family(spec).weights(spec.partition(":")[2])
    if not path.is_file():
        raise ConfigError(f"model weights not found: {path}")
    return path


def calibration_path(weights: Path) -> Path:
    """Where a model's confidence calibration lives: beside its weights (builtin-v2.calibration.json)."""
    return weights.with_name(f"{weights.stem}.calibration.json")


def _calibration_for(weights: Path, weights_sha256: str) -> Calibration | None:
    path = calibration_path(weights)
    if not path.is_file():
        return None
    try:
        cal = Calibration.load(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"unreadable calibration {path}: {exc}") from exc
    if cal.model_sha256 != weights_sha256:
        log.warning("ignoring %s: it was fitted for other weights", path)
        return None
    return cal


def check_model(spec: str, input_size: int | None = None) -> None:
    """What ``chromata run`` checks before it starts any engine: the weights a spec names exist and are a model
    of that family (one-line :class:`ConfigError` otherwise), so a wrong download fails in one line instead of
    in every actor. Families with a ``check`` read the file without building the network (a DDColor-L
    checkpoint is 0.9 GB); the others are loaded once on the CPU; shipped weights are trusted."""
    fam = family(spec)
    fam.check_size(input_size)
    arg = spec.partition(":")[2]
    if arg in fam.packaged:
        return
    path = model_path(spec)
    if fam.check is None:
        load_colorizer(spec, device="cpu", input_size=input_size)
        return
    try:
        fam.check(path)
    except ImportError as exc:
        raise ConfigError(f"model {fam.kind!r} needs an optional package: {exc}") from exc
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def weights_sha256(spec: str = "builtin") -> str:
    """SHA-256 of the weights a model spec names, without loading the model."""
    from chromata.archive.storage import sha256_file

    return sha256_file(model_path(spec))


def load_colorizer(
    spec: str = "builtin",
    device: str = "auto",
    temperature: float | None = None,
    chroma_gamma: float | None = None,
    input_size: int | None = None,
    precision: str = "auto",
) -> Colorizer:
    """Load the model a spec names, with the calibration fitted for its weights; every failure is a one-line
    :class:`ConfigError`. ``input_size``: the working size, for families that take one (``--model-size``)."""
    path = model_path(spec)
    fam = family(spec)
    fam.check_size(input_size)
    fam.check_precision(precision, device)
    options = LoadOptions(device, temperature, chroma_gamma, input_size, precision)
    try:
        model = fam.load(path, options)
    except ImportError as exc:
        raise ConfigError(f"model {fam.kind!r} needs an optional package: {exc}") from exc
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if not fam.loads_calibration:
        model.calibration = _calibration_for(path, model.weights_sha256)
    return model
