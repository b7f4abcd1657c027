import json
import os

import numpy as np
import pytest
import torch

from chromata.archive.storage import sha256_file
from chromata.errors import ConfigError
from chromata.models import load_colorizer
from chromata.models.ab_bins import (
    NUM_BINS,
    annealed_mean,
    bin_centers,
    normalised_entropy,
    rebalance_weights,
    soft_encode,
)
from chromata.models.builtin import builtin_card, builtin_weights_path
from tests.conftest import PHOTOS


def test_soft_encoding_sums_to_one_and_decodes_back():
    ab = torch.tensor([[[[12.3]], [[-47.0]]]])  # (1, 2, 1, 1)
    z = soft_encode(ab)
    assert z.shape == (1, NUM_BINS, 1, 1)
    assert float(z.sum()) == pytest.approx(1.0)
    decoded = torch.einsum("nqhw,qc->nchw", z, bin_centers())
    assert decoded.flatten().tolist() == pytest.approx([12.3, -47.0], abs=1e-4)


def test_annealed_mean_interpolates_between_mode_and_mean():
    logits = torch.full((1, NUM_BINS, 1, 1), -10.0)
    centers = bin_centers()
    i_mode = int(((centers - torch.tensor([50.0, 50.0])) ** 2).sum(1).argmin())
    i_other = int(((centers - torch.tensor([0.0, 0.0])) ** 2).sum(1).argmin())
    logits[0, i_mode] = 2.0
    logits[0, i_other] = 1.5
    vivid = annealed_mean(logits, 0.1).flatten()
    mean = annealed_mean(logits, 1.0).flatten()
    assert float(vivid[0]) > float(mean[0]) > 0  # lower T moves toward the mode (50, 50)
    assert float(vivid[0]) == pytest.approx(50.0, abs=0.5)


def test_entropy_bounds():
    assert float(normalised_entropy(torch.zeros(1, NUM_BINS, 1, 1))) == pytest.approx(1.0)
    peaked = torch.full((1, NUM_BINS, 1, 1), -50.0)
    peaked[0, 0] = 50.0
    assert float(normalised_entropy(peaked)) == pytest.approx(0.0, abs=1e-6)


def test_fused_decoding_equals_annealed_mean_and_entropy():
    from chromata.models.ab_bins import annealed_mean, decode_distribution, normalised_entropy

    logits = torch.randn(2, 529, 6, 5) * 4
    kept = logits.clone()
    ab, unc = decode_distribution(logits, 0.38)
    assert torch.equal(logits, kept)  # the caller's logits are not modified
    assert torch.allclose(ab, annealed_mean(logits, 0.38), atol=1e-3)
    assert torch.allclose(unc, normalised_entropy(logits), atol=1e-5)


def test_rebalancing_boosts_rare_colours():
    prior = torch.zeros(NUM_BINS)
    centre = NUM_BINS // 2  # ab = (0, 0): the common, grey-ish colours
    prior[centre] = 0.9
    prior[0] = 0.1
    w = rebalance_weights(prior)
    assert float(w[0]) > float(w[centre])
    assert torch.isfinite(w).all() and (w > 0).all()


def test_shipped_weights_and_model_card():
    path = builtin_weights_path()
    assert sum(p.stat().st_size for p in path.parent.iterdir()) <= 25 * 1024 * 1024  # every shipped model
    card = builtin_card()
    assert card["weights_sha256"] == sha256_file(path)
    t = card["training"]
    assert t["steps_done"] + t["adversarial_steps_done"] >= 1000, "shipped weights must be really trained"
    stages = card["lineage"]["stages"]  # v2 is a fine-tune of v1: every stage recorded
    assert stages[0]["init"].startswith("fine-tuned from chromata-builtin-v1")
    assert card["data"]["validation_images"] > 0
    v = card["validation"]
    assert {"mean_ciede2000", "mean_ciede2000_gray_baseline", "colourfulness_ratio"} <= set(v)
    assert len(card["training"]["loss_curve"]) >= 5
    json.dumps(card)


def test_load_colorizer_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_colorizer(f"builtin:{tmp_path / 'missing.pt'}")
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ConfigError, match="not a chromata"):
        load_colorizer(f"builtin:{bad}")
    with pytest.raises(ConfigError):
        load_colorizer("zhang:whatever")


def test_builtin_predicts_plausible_colour_shapes():
    model = load_colorizer("builtin", device="cpu")
    lightness = np.linspace(0, 100, model.input_size**2, dtype=np.float32).reshape(1, model.input_size, -1)
    pred = model.predict_ab(np.repeat(lightness, 2, axis=0))
    assert pred.ab.shape == (2, model.input_size // 4, model.input_size // 4, 2)
    assert pred.uncertainty.shape == (2, model.input_size // 4, model.input_size // 4)
    assert np.isfinite(pred.ab).all() and (pred.uncertainty >= 0).all() and (pred.uncertainty <= 1).all()


@pytest.mark.slow
@pytest.mark.skipif(not PHOTOS.is_dir(), reason="needs ../shared/data/photos")
def test_builtin_model_adds_real_colour_on_held_out_photos():
    """On photos it never saw, the shipped model must give colour (not sepia, not grey) at an error
    close to the grey baseline: the figures the model card reports, measured again."""
    from chromata.models.evaluation import evaluate, load_images

    names = builtin_card()["data"]["validation_files"][:12]
    summary = evaluate(load_images([PHOTOS / n for n in names]), load_colorizer("builtin", device="cpu"))
    assert summary.colourfulness_ratio > 0.35
    assert summary.delta_e < 1.25 * summary.delta_e_gray
    hues = [s.colourfulness for s in summary.per_image]
    assert max(hues) > 15  # at least some images are clearly coloured


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_prediction_matches_cpu():
    x = np.linspace(0, 100, 2 * 256 * 256, dtype=np.float32).reshape(2, 256, 256)
    cpu = load_colorizer("builtin", device="cpu").predict_ab(x)
    gpu = load_colorizer("builtin", device="cuda").predict_ab(x)
    assert np.abs(cpu.ab - gpu.ab).max() < 1.0
    assert np.abs(cpu.uncertainty - gpu.uncertainty).max() < 0.01


def test_cpu_inference_graph_equals_eager_for_any_batch():
    """The frozen TorchScript graph used on CPUs gives the eager network's predictions, at every batch size."""
    from chromata.models import load_colorizer

    model = load_colorizer("builtin", device="cpu")
    rng = np.random.default_rng(0)
    for batch in (1, 3, 8):
        light = rng.uniform(0, 100, (batch, model.input_size, model.input_size)).astype(np.float32)
        fast = model.predict_ab(light)
        assert model.forward.graph is not None and model.forward.graph is not model.net
        os.environ["CHROMATA_EAGER"] = "1"
        try:
            eager = model.predict_ab(light)
        finally:
            del os.environ["CHROMATA_EAGER"]
        assert np.abs(fast.ab - eager.ab).max() < 1e-2
        assert np.abs(fast.uncertainty - eager.uncertainty).max() < 1e-4


def test_every_registered_family_is_accepted_by_the_config_and_named_in_its_errors(tmp_path):
    from chromata.config import build_config
    from chromata.models import FAMILIES, spec_forms

    for fam in FAMILIES.values():
        for form in fam.forms:
            spec = form.replace("PATH", str(tmp_path / "w.bin"))
            assert build_config(source=str(tmp_path / "s"), destination=str(tmp_path / "d"), model=spec).model == spec
    forms = [form for fam in FAMILIES.values() for form in fam.forms]
    assert "builtin:v1" in forms and "onnx:PATH" in forms
    with pytest.raises(ConfigError) as from_config:
        build_config(source=str(tmp_path / "s"), destination=str(tmp_path / "d"), model="zhang:x")
    with pytest.raises(ConfigError) as from_loader:
        load_colorizer("zhang:x")
    for exc in (from_config, from_loader):  # one message, from the registry, naming every form
        assert f"unknown model 'zhang:x': use {spec_forms()}" in str(exc.value)
        assert all(form in str(exc.value) for form in forms)
    with pytest.raises(ConfigError, match="needs a weights file: eccv16:PATH"):
        build_config(source=str(tmp_path / "s"), destination=str(tmp_path / "d"), model="eccv16")


def test_cli_help_and_readme_list_the_registered_families():
    from pathlib import Path

    from typer.testing import CliRunner

    from chromata.cli import app
    from chromata.models import FAMILIES

    listed = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    run_help = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "400"})
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- model families:", 1)[1].split("<!-- end of model families -->", 1)[0]
    documented = [line for line in section.splitlines() if line.startswith("- ")]
    assert len(documented) == len(FAMILIES)
    for fam, line in zip(FAMILIES.values(), documented, strict=True):
        assert line == "- " + ", ".join(f"`{form}`" for form in fam.forms) + f": {fam.summary}"
        assert fam.kind in listed.output
        for form in fam.forms:
            assert form in run_help.output


def test_spec_names_the_packaged_weights_and_their_calibration():
    from chromata.models import calibration_path, model_path
    from chromata.models.builtin import packaged_weights

    assert model_path("builtin") == builtin_weights_path()
    assert model_path("builtin:v1") == packaged_weights("v1")
    assert calibration_path(model_path("builtin:v1")).is_file()  # where `chromata calibrate --model builtin:v1` writes
