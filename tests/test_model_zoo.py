"""User-supplied models behind the one Colorizer interface: Zhang ECCV16/SIGGRAPH17 state dicts and ONNX.

The published weight files cannot be downloaded here, so each loader is tested with a randomly
initialised network saved in the authors' format (a plain state dict with their module names)."""

import numpy as np
import pytest
import torch

from chromata.archive.storage import sha256_file
from chromata.errors import ConfigError
from chromata.models import load_colorizer, weights_sha256
from chromata.models.zhang import ECCV16Net, SIGGRAPH17Net, save_reference_format

# Parameter names and shapes of the authors' releases (colorization_release_v2 / siggraph17-df00044c).
ECCV16_KEYS = {
    "model1.0.weight": (64, 1, 3, 3),
    "model1.2.weight": (64, 64, 3, 3),
    "model1.4.running_mean": (64,),
    "model3.4.weight": (256, 256, 3, 3),
    "model5.0.weight": (512, 512, 3, 3),
    "model8.0.weight": (512, 256, 4, 4),
    "model8.6.weight": (313, 256, 1, 1),
    "model_out.weight": (2, 313, 1, 1),
}
SIGGRAPH17_KEYS = {
    "model1.0.weight": (64, 4, 3, 3),
    "model8up.0.weight": (512, 256, 4, 4),
    "model3short8.0.weight": (256, 256, 3, 3),
    "model8.1.weight": (256, 256, 3, 3),
    "model8.5.running_var": (256,),
    "model9.1.weight": (128, 128, 3, 3),
    "model9.3.weight": (128,),
    "model10.1.weight": (128, 128, 3, 3),
    "model_class.0.weight": (529, 256, 1, 1),
    "model_out.0.weight": (2, 128, 1, 1),
}


def _lightness(n=1, h=64, w=96, seed=0):
    return np.random.default_rng(seed).uniform(0, 100, (n, h, w)).astype(np.float32)


@pytest.mark.parametrize(
    ("kind", "cls", "keys"), [("eccv16", ECCV16Net, ECCV16_KEYS), ("siggraph17", SIGGRAPH17Net, SIGGRAPH17_KEYS)]
)
def test_architectures_have_the_published_parameter_layout(kind, cls, keys):
    state = cls().state_dict()
    for name, shape in keys.items():
        assert tuple(state[name].shape) == shape, name


def _randomised(cls):
    torch.manual_seed(0)
    net = cls().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as trained weights have
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net


def test_eccv16_loader_reproduces_the_saved_network(tmp_path):
    net = _randomised(ECCV16Net)
    path = tmp_path / "colorization_release_v2.pth"
    save_reference_format(net, path)
    model = load_colorizer(f"eccv16:{path}", device="cpu", temperature=0.38)
    x = _lightness()
    pred = model.predict_ab(x)
    with torch.no_grad():  # the authors' decoding, computed here independently
        logits = net(torch.from_numpy(x)[:, None])
        probs = torch.softmax(logits / 0.38, dim=1)
        ab = net.model_out(probs) * 110.0
    assert pred.ab.shape == (1, 16, 24, 2) and pred.uncertainty.shape == (1, 16, 24)
    np.testing.assert_allclose(pred.ab, ab.permute(0, 2, 3, 1).numpy(), atol=1e-4)
    assert pred.uncertainty.min() >= 0.0 and pred.uncertainty.max() <= 1.0
    assert model.weights_sha256 == sha256_file(path) == weights_sha256(f"eccv16:{path}")
    assert model.describe()["model_name"] == "zhang-eccv16"


def test_siggraph17_loader_reproduces_the_saved_network(tmp_path):
    net = _randomised(SIGGRAPH17Net)
    path = tmp_path / "siggraph17.pth"
    save_reference_format(net, path)
    model = load_colorizer(f"siggraph17:{path}", device="cpu")
    x = _lightness()
    pred = model.predict_ab(x)
    with torch.no_grad():
        ab, _ = net(torch.from_numpy(x)[:, None])
    assert pred.ab.shape == (1, 64, 96, 2)  # regression output at full working resolution
    assert pred.uncertainty.shape == (1, 16, 24)  # from the 529-bin head at 1/4
    np.testing.assert_allclose(pred.ab, ab.permute(0, 2, 3, 1).numpy(), atol=1e-4)


def test_wrong_or_missing_weights_are_one_line_config_errors(tmp_path):
    path = tmp_path / "eccv.pth"
    save_reference_format(ECCV16Net(), path)
    with pytest.raises(ConfigError, match="not a siggraph17 state dict"):
        load_colorizer(f"siggraph17:{path}", device="cpu")
    with pytest.raises(ConfigError, match="needs a weights file"):
        load_colorizer("eccv16", device="cpu")
    with pytest.raises(ConfigError, match="not found"):
        load_colorizer(f"onnx:{tmp_path / 'missing.onnx'}", device="cpu")
    with pytest.raises(ConfigError, match="unknown model"):
        load_colorizer("stylegan:x.pth")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from chromata.models.onnx import export_builtin

    torch_model = load_colorizer("builtin", device="cpu")
    path = export_builtin(torch_model, tmp_path_factory.mktemp("onnx") / "builtin.onnx")
    return torch_model, path


@pytest.mark.parametrize("shape", [(2, 256, 256), (1, 192, 320)])
def test_onnx_export_agrees_with_torch(exported, shape):
    torch_model, path = exported
    onnx_model = load_colorizer(f"onnx:{path}", device="cpu")
    x = np.random.default_rng(1).uniform(0, 100, shape).astype(np.float32)
    a, b = torch_model.predict_ab(x), onnx_model.predict_ab(x)
    assert a.ab.shape == b.ab.shape == (shape[0], shape[1] // 4, shape[2] // 4, 2)
    np.testing.assert_allclose(b.ab, a.ab, atol=1e-2)
    np.testing.assert_allclose(b.uncertainty, a.uncertainty, atol=1e-4)
    info = onnx_model.describe()
    assert info["model_name"] == torch_model.name
    assert info["exported_from_sha256"] == torch_model.weights_sha256
    assert info["uncertainty"] == "model output"


def test_foreign_onnx_with_rgb_input_and_no_uncertainty(tmp_path):
    """DDColor-style signature: grey image as RGB in 0..1 at a fixed size in, ab out."""

    class TinyRgbToAb(torch.nn.Module):
        def forward(self, rgb):
            grey = rgb.mean(dim=1, keepdim=True)
            return torch.cat([grey * 20.0, -grey * 10.0], dim=1)

    path = tmp_path / "ddcolor-like.onnx"
    torch.onnx.export(
        TinyRgbToAb(),
        (torch.zeros(1, 3, 128, 128),),
        str(path),
        input_names=["image"],
        output_names=["output"],
        dynamo=False,
    )
    model = load_colorizer(f"onnx:{path}", device="cpu")
    assert model.input_size == 128
    x = np.full((1, 128, 128), 100.0, np.float32)  # white
    pred = model.predict_ab(x)
    np.testing.assert_allclose(pred.ab[0, 0, 0], [20.0, -10.0], atol=0.1)
    assert pred.uncertainty.shape == (1, 128, 128)  # estimated (chromata.judgement.harm proxy; tests/test_harm.py)
    assert pred.uncertainty.min() >= 0.0 and pred.uncertainty.max() <= 1.0
    assert "not provided" in model.describe()["uncertainty"]


def test_run_pipeline_with_a_zhang_model(collection, tmp_path):
    from chromata.archive.local import LocalStorage
    from chromata.config import build_config
    from chromata.media.imageio import is_image_key
    from chromata.pipeline import ShardProcessor, make_shards

    path = tmp_path / "siggraph17.pth"
    save_reference_format(_randomised(SIGGRAPH17Net), path)
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), model=f"siggraph17:{path}")
    proc = ShardProcessor(cfg)
    objs = [o for o in LocalStorage(collection).list() if is_image_key(o.key)]
    result = proc.process(next(make_shards(objs, 100)), "run-z")
    ok = [r for r in result.records if r.status == "ok"]
    assert ok and all(r.model_name == "zhang-siggraph17" and r.model_sha256 == sha256_file(path) for r in ok)


def test_a_calibration_beside_any_family_s_weights_is_used_for_those_weights_only(tmp_path):
    from chromata.judgement import calibration as cal
    from chromata.models import calibration_path

    path = tmp_path / "colorization_release_v2.pth"
    save_reference_format(_randomised(ECCV16Net), path)
    assert load_colorizer(f"eccv16:{path}", device="cpu").calibration is None
    calibration_path(path).write_text(cal.fit([0.1, 0.9], [12.0, 4.0], "other-weights", 1).to_json())
    assert load_colorizer(f"eccv16:{path}", device="cpu").calibration is None
    own = cal.fit([0.1, 0.5, 0.9], [12.0, 8.0, 4.0], sha256_file(path), 1)
    calibration_path(path).write_text(own.to_json())
    assert load_colorizer(f"eccv16:{path}", device="cpu").calibration == own
    calibration_path(path).write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable calibration"):
        load_colorizer(f"eccv16:{path}", device="cpu")


class _GreyToColour255(torch.nn.Module):
    """A DeOldify-port-like graph: grey RGB in 0..255 in, a colour RGB image in 0..255 out (here: the grey
    tinted a fixed orange, so the chroma chromata must read back is known)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("tint", torch.tensor([1.0, 0.6, 0.2]).view(1, 3, 1, 1))

    def forward(self, rgb):
        grey = rgb.mean(dim=1, keepdim=True) / 255.0
        return (grey * self.tint * 255.0).clamp(0.0, 255.0)


def _export(module, path, size=64):
    torch.onnx.export(
        module,
        (torch.zeros(1, 3, size, size),),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamo=False,
    )
    return path


def test_foreign_onnx_rgb_to_rgb_reads_the_deoldify_port_convention(tmp_path):
    from chromata.colormath import color

    path = _export(_GreyToColour255(), tmp_path / "deoldify-port.onnx")
    model = load_colorizer(f"onnx:{path}", device="cpu")
    assert model.convention.input == "rgb" and model.convention.output == "rgb"
    assert model.convention.input_range == 255.0 and not model.restrain  # a foreign graph's own colours
    pred = model.predict_ab(np.full((1, 64, 64), 100.0, np.float32))  # white in -> orange out
    # merged as DeOldify merges: the orange's U, V with white's Y: Y(1, 0.6, 0.2) = 0.6744, so each channel
    # gains 0.3256 -> (1.3256 clipped to 1, 0.9256, 0.5256)
    want = color.bgr_to_lab(np.array([[[0.5256, 0.9256, 1.0]]], np.float32))[0, 0, 1:]
    np.testing.assert_allclose(pred.ab[0, 10, 10], want, atol=0.5)
    assert pred.ab[0, 10, 10, 1] > 30  # a strong yellow b*, not grey
    assert model.describe()["convention"]["source"] == "recognised from the graph"


def test_onnx_card_overrides_the_recognised_convention_and_bad_cards_are_one_line(tmp_path):
    import json

    path = _export(_GreyToColour255(), tmp_path / "port.onnx")
    card = tmp_path / "port.onnx.json"
    # the same graph described as reading 0..1 input: white then arrives as 1/255, almost black, so almost no chroma
    card.write_text(json.dumps({"input": "rgb", "output": "rgb", "input_range": 1.0, "output_range": 255.0}))
    model = load_colorizer(f"onnx:{path}", device="cpu")
    assert model.convention.source == "port.onnx.json"
    assert np.abs(model.predict_ab(np.full((1, 64, 64), 100.0, np.float32)).ab).max() < 2.0
    for bad, words in (
        ("{not json", "unreadable ONNX card"),
        (json.dumps({"input": "rgb"}), "expected keys"),
        (json.dumps({"input": "rgb", "output": "ab"}), "says (3, 2) channels"),
        (json.dumps({"input": "hsv", "output": "rgb"}), "input must be lightness or rgb"),
        (json.dumps({"input": "rgb", "output": "rgb", "input_range": "255"}), "input_range has the wrong type (str)"),
    ):
        card.write_text(bad)
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
            load_colorizer(f"onnx:{path}", device="cpu")
        assert "\n" not in str(err.value)
