"""DeOldify's generators (chromata.models.deoldify) against DeOldify's own code, run as an oracle.

``tests/fixtures/deoldify_oracle.*`` were written by ``benchmarks/oracle_deoldify.py``: the official module tree
(jantic/DeOldify + fastai v1, unmodified, torchvision's own resnet.py for the body) built both generators,
loaded weights made by ``recipe_weights`` through fastai's ``Learner.load`` and recorded every key and shape,
the generators' outputs and DeOldify's whole still pipeline on one image. Here the same recipe is rebuilt,
written to files in fastai's layout and raw, loaded through chromata's loader and compared.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from chromata.colormath import color
from chromata.models import deoldify as d
from chromata.models.base import Colorizer

FIXTURES = Path(__file__).parent / "fixtures"
ORACLE = json.loads((FIXTURES / "deoldify_oracle.json").read_text())
ARRAYS = dict(np.load(FIXTURES / "deoldify_oracle.npz"))
# fastai v1's Learner.save: the optimiser's state and settings beside the weights, with its factory and numpy
# learning rates pickled as objects — what the published generators carry, and weights_only refuses by default
OPT = {
    "opt_state": {
        "state": {},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 1e-3, "params": [0]}],
    },
    "lr": [np.float64(1e-3)],
    "wd": [np.float64(1e-3)],
    "opt_func": functools.partial(torch.optim.Adam, betas=(0.9, 0.99)),
    "true_wd": True,
    "bn_wd": True,
}
TOLERANCE = 1e-5  # max abs difference at working size (ImageNet-normalised units); measured 4.8e-7 .. 9.5e-7


def model_input(grey: np.ndarray) -> torch.Tensor:
    """8-bit grey -> DeOldify's model input: grey / 255 as RGB, ImageNet-normalised (as the oracle fed it)."""
    x = torch.from_numpy(np.repeat(grey[None].astype(np.float32) / 255.0, 3, axis=0))
    mean = torch.tensor(d.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(d.IMAGENET_STD)[:, None, None]
    return ((x - mean) / std)[None]


def max_difference(net: torch.nn.Module, variant: str, inputs: tuple[str, ...] = ("scan64", "gradient32")) -> float:
    with torch.inference_mode():
        return max(
            float((net(model_input(ARRAYS[name]))[0] - torch.from_numpy(ARRAYS[f"{variant}_{name}_out"])).abs().max())
            for name in inputs
        )


def legacy_spectral_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The pre-1.0 spectral-norm layout: the normalised ``weight`` stored, ``weight_v`` not."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".weight_orig")]:
        p = key[: -len("weight_orig")]
        w = state[key]
        sigma = torch.dot(state[p + "weight_u"], w.reshape(w.shape[0], -1) @ state[p + "weight_v"])
        out[p + "weight"] = w / sigma
        del out[p + "weight_v"]
    return out


def one_line_error(exc: pytest.ExceptionInfo[BaseException], *parts: str) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, text
    return text


@pytest.fixture(scope="module")
def artistic_state() -> dict[str, torch.Tensor]:
    return d.recipe_weights("artistic")


@pytest.fixture(scope="module")
def artistic_file(tmp_path_factory: pytest.TempPathFactory, artistic_state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("deoldify") / "ColorizeArtistic_gen.pth"
    d.save_fastai_format(artistic_state, path, opt=OPT)
    return path


@pytest.fixture(scope="module")
def artistic(artistic_file: Path) -> d.DeOldifyColorizer:
    return d.DeOldifyColorizer.load(artistic_file, device="cpu", input_size=64)


@pytest.mark.parametrize("variant", d.VARIANTS)
def test_key_names_and_shapes_are_the_official_generators(variant: str) -> None:
    official = {k: tuple(s) for k, s in ORACLE["variants"][variant]["shapes"].items()}
    ours = d.official_shapes(variant)
    assert list(ours.items()) == list(official.items())  # names, shapes and PyTorch's order
    assert len(ours) == ORACLE["variants"][variant]["keys"]


def test_artistic_from_a_fastai_file_matches_the_official_generator(artistic: d.DeOldifyColorizer) -> None:
    assert (artistic.name, artistic.variant, artistic.family) == ("deoldify-artistic", "artistic", "deoldify")
    assert max_difference(artistic.net, "artistic") < TOLERANCE


def test_a_raw_state_dict_file_loads_the_same(tmp_path: Path, artistic_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "raw.pth"
    torch.save(artistic_state, path)
    model = d.DeOldifyColorizer.load(path, device="cpu", input_size=64)
    assert model.variant == "artistic"
    assert max_difference(model.net, "artistic", ("gradient32",)) < TOLERANCE


@pytest.fixture(scope="module")
def stable_state() -> dict[str, torch.Tensor]:
    return d.recipe_weights("stable")


def test_stable_matches_the_official_generator(stable_state: dict[str, torch.Tensor]) -> None:
    assert d.detect_variant(stable_state) == "stable"
    assert max_difference(d.load_net(stable_state), "stable") < TOLERANCE


@pytest.mark.slow  # writes, hashes and reads an 870 MB file: 5 s idle, up to 25 s on 2 busy cores
def test_stable_from_a_fastai_file(tmp_path: Path, stable_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "ColorizeStable_gen.pth"
    d.save_fastai_format(stable_state, path, opt=OPT)
    model = d.DeOldifyColorizer.load(path, device="cpu", input_size=32)
    assert (model.name, model.variant) == ("deoldify-stable", "stable")
    assert max_difference(model.net, "stable", ("gradient32",)) < TOLERANCE


def test_spectral_norm_without_weight_v_is_accepted(artistic_state: dict[str, torch.Tensor]) -> None:
    legacy = legacy_spectral_layout(artistic_state)
    assert not any(k.endswith(".weight_v") and v.ndim == 1 for k, v in legacy.items())
    assert max_difference(d.load_net(legacy), "artistic", ("gradient32",)) < TOLERANCE


def test_variant_detection(artistic_state: dict[str, torch.Tensor]) -> None:
    assert d.detect_variant(artistic_state) == "artistic"
    stable = {k: torch.zeros(s if k == "layers.0.0.weight" else (1,)) for k, s in d.official_shapes("stable").items()}
    assert d.detect_variant(stable) == "stable"
    with pytest.raises(ValueError) as exc:
        d.detect_variant({"model1.0.weight": torch.zeros(64, 1, 3, 3)})
    one_line_error(exc, "not a DeOldify generator", "layers.0.0.weight")
    resnet50_like = {
        k: v for k, v in stable.items() if not k.startswith("layers.0.6.") or k.startswith("layers.0.6.0.")
    }
    with pytest.raises(ValueError) as exc:
        d.detect_variant(resnet50_like)
    one_line_error(exc, "1 bottleneck blocks in layer3")


def test_deoldify_pipeline_and_chromata_lab_merge(artistic: d.DeOldifyColorizer) -> None:
    """DeOldify's still pipeline at render factor 4 on a 100 x 88 grey image, against chromata's.

    1. The raw colours: chromata's de-normalised, clamped RGB on DeOldify's own 64 px input, truncated to 8 bits
       and stretched back as DeOldify does, equal DeOldify's to one level.
    2. chromata's whole path (area reduction of L*, float grey RGB, DeOldify's YUV merge at the working size,
       its a*/b* merged with the full L*) against DeOldify's (PIL bilinear, 8-bit, YUV merge at full size):
       measured mean CIEDE2000 0.94 (p95 2.8). Taking the generator's raw a*/b* instead (no YUV merge at the
       working size) gave 1.23 (p95 3.2): what remains is chromata keeping the scan's L* where DeOldify keeps
       its BT.601 Y."""
    grey = ARRAYS["pipeline_in"]
    h, w = grey.shape
    size = 16 * ORACLE["pipeline"]["render_factor"]
    pil64 = Image.fromarray(grey).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    grey64 = np.asarray(pil64.convert("LA").convert("RGB"))[..., 0]
    rgb = artistic.rgb(color.grey_pixels_to_lightness(grey64)[None])[0]
    raw = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR))
    assert np.abs(raw.astype(int) - ARRAYS["pipeline_raw"].astype(int)).max() <= 1

    official = color.bgr_to_lab(np.ascontiguousarray(ARRAYS["pipeline_out"][..., ::-1].astype(np.float32) / 255))
    lightness = color.grey_pixels_to_lightness(grey)
    ab = artistic.predict_ab(color.working_lightness(lightness, size)[None]).ab[0]
    ours = color.bgr_to_lab(color.merge_chroma(lightness, ab))
    delta = color.ciede2000(official, ours)
    print(f"chromata vs DeOldify's pipeline: mean CIEDE2000 {delta.mean():.2f}, p95 {np.percentile(delta, 95):.2f}")
    assert delta.mean() < 1.0 and np.percentile(delta, 95) < 3.5
    kept = np.abs(ours[..., 0] - lightness)  # chromata keeps the scan's L* (DeOldify keeps its Y) ...
    assert np.median(kept) < 1e-3 and kept.mean() < 0.1  # ... but where a colour leaves sRGB and is clipped


def test_the_colorizer_interface(artistic: d.DeOldifyColorizer, artistic_file: Path) -> None:
    assert isinstance(artistic, Colorizer)
    assert (artistic.input_size, artistic.render_factor, artistic.precision) == (64, 4, "fp32")
    assert artistic.calibration is None and artistic.restrain is False
    small = d.DeOldifyColorizer("artistic", artistic.net, artistic.weights_sha256, input_size=32)
    light = np.stack([cv2.resize(color.grey_pixels_to_lightness(ARRAYS["scan64"]), (32, 32)), np.full((32, 32), 60.0)])
    pred = small.predict_ab(light.astype(np.float32))
    assert pred.ab.shape == (2, 32, 32, 2) and pred.ab.dtype == np.float32
    assert pred.uncertainty.shape == (2, 32, 32) and pred.uncertainty.dtype == np.float32
    assert float(np.abs(pred.ab).mean()) > 1.0  # colours, not grey
    facts = artistic.describe()
    assert facts["model_name"] == "deoldify-artistic" and facts["model_family"] == "deoldify"
    assert facts["model_variant"] == "artistic" and facts["model_licence"] == "MIT"
    assert facts["render_factor"] == 4 and facts["input_size"] == 64 and facts["precision"] == "fp32"
    assert facts["model_sha256"] == artistic.weights_sha256 and len(artistic.weights_sha256) == 64
    assert "chromata.judgement.harm" in str(facts["uncertainty"]) and facts["restraint"] is None

    default = d.DeOldifyColorizer("artistic", artistic.net, "0" * 64)
    assert (default.input_size, default.render_factor) == (560, 35)
    for bad in (50, 0, 8):
        with pytest.raises(ValueError) as exc:
            d.DeOldifyColorizer("artistic", artistic.net, "0" * 64, input_size=bad)
        one_line_error(exc, "multiple of 16")
    with pytest.raises(ValueError) as exc:
        d.DeOldifyColorizer.load(artistic_file, device="cpu", precision="fp16")
    one_line_error(exc, "fp16 needs a CUDA device")


def test_the_registry_spec(artistic_file: Path) -> None:
    from chromata.models import load_colorizer

    model = load_colorizer(f"deoldify:{artistic_file}", device="cpu", input_size=32)
    assert model.name == "deoldify-artistic" and model.input_size == 32


def test_one_instance_runs_concurrent_forwards(artistic: d.DeOldifyColorizer) -> None:
    inputs = [np.full((1, 32, 32), v, np.float32) + np.linspace(0, 30, 32, dtype=np.float32) for v in (20.0, 55.0)]
    alone = [artistic.predict_ab(x).ab for x in inputs]
    together: list[np.ndarray] = [np.empty(0)] * 2
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        together[i] = artistic.predict_ab(inputs[i]).ab

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_wrong_checkpoint_names_its_first_mismatch(tmp_path: Path, artistic_state: dict[str, torch.Tensor]) -> None:
    cases = {
        "missing": (
            {k: v for k, v in artistic_state.items() if k != "layers.5.conv2.3.gamma"},
            "missing key 'layers.5.conv2.3.gamma'",
        ),
        "shape": (
            {**artistic_state, "layers.11.0.bias": torch.zeros(2)},
            "'layers.11.0.bias' has shape (2,), expected (3,)",
        ),
        "unexpected": ({**artistic_state, "layers.13.weight": torch.zeros(1)}, "unexpected key 'layers.13.weight'"),
    }
    for name, (state, message) in cases.items():
        with pytest.raises(ValueError) as exc:
            d.load_net(state, source=f"{name}.pth")
        one_line_error(exc, f"{name}.pth is not a DeOldify artistic generator in the published layout: {message}")
    path = tmp_path / "missing.pth"  # the same through a file
    d.save_fastai_format(cases["missing"][0], path)
    with pytest.raises(ValueError) as exc:
        d.DeOldifyColorizer.load(path, device="cpu")
    one_line_error(exc, str(path), cases["missing"][1])
    path = tmp_path / "zhang.pth"
    torch.save({"model1.0.weight": torch.zeros(64, 1, 3, 3)}, path)
    with pytest.raises(ValueError) as exc:
        d.DeOldifyColorizer.load(path)
    one_line_error(exc, str(path), "not a DeOldify generator")


class NotAllowed:
    """A class weights_only loading refuses to build."""


@pytest.mark.parametrize("kind", ["truncated", "text", "refused", "a list", "not tensors", "empty file"])
def test_an_unreadable_file_is_one_readable_line(tmp_path: Path, artistic_file: Path, kind: str) -> None:
    path = tmp_path / "weights.pth"
    if kind == "truncated":
        path.write_bytes(artistic_file.read_bytes()[:100_000])
    elif kind == "text":
        path.write_text("<html>404 Not Found</html>\n")
    elif kind == "refused":
        torch.save({"model": NotAllowed()}, path)
    elif kind == "a list":
        torch.save([torch.zeros(1)], path)
    elif kind == "not tensors":
        torch.save({"model": {"layers.0.0.weight": [1.0, 2.0]}}, path)
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError) as exc:
        d.DeOldifyColorizer.load(path, device="cpu")
    one_line_error(exc, str(path))
    with pytest.raises(FileNotFoundError):
        d.DeOldifyColorizer.load(tmp_path / "absent.pth")


def test_fastai_extras_are_inert_and_any_other_object_is_still_refused(tmp_path: Path) -> None:
    """The optimiser factory in a fastai file is read as a placeholder (no code of it runs); an object the
    family's files do not carry — here os.system — is refused as before."""
    import os

    from chromata.models.base import Inert

    good = tmp_path / "fastai.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "opt": OPT}, good)
    blob = torch.load(good, weights_only=False)
    assert isinstance(blob["opt"]["opt_func"], functools.partial)  # what the file really holds
    assert set(d.read_checkpoint(good)) == {"w"}
    from chromata.models.base import load_untrusted

    assert isinstance(load_untrusted(good, inert=d.FASTAI_EXTRAS)["opt"]["opt_func"], Inert)
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "opt": {"opt_func": functools.partial(os.system, "true")}}, evil)
    with pytest.raises(ValueError, match="holds Python objects, not only tensors"):
        d.read_checkpoint(evil)
