"""A short real training run on tiny synthetic photos: the trainer, the weights format and the card."""

import json

import cv2
import numpy as np
import pytest
import torch

from chromata.models import load_colorizer
from chromata.training import TrainConfig, split_photos, train


def _photos(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        img = np.zeros((96, 96, 3), np.uint8)
        img[:48] = (200, 120, 40)  # a blue "sky" (BGR)
        img[48:] = (40, 160, 60)  # green "grass"
        img = cv2.add(img, rng.integers(0, 30, img.shape, dtype=np.uint8))
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), img)
    return folder


def test_split_is_deterministic_and_disjoint(tmp_path):
    folder = _photos(tmp_path / "photos")
    a = split_photos(folder, 0.25)
    b = split_photos(folder, 0.25)
    assert a == b
    assert not set(a[0]) & set(a[1]) and len(a[0]) + len(a[1]) == 12


@pytest.mark.slow
def test_tiny_training_run_writes_loadable_weights_and_card(tmp_path):
    folder = _photos(tmp_path / "photos")
    cfg = TrainConfig(
        data=folder,
        out=tmp_path / "model",
        steps=6,
        batch_size=2,
        crop=64,
        log_every=2,
        val_fraction=0.25,
        init="scratch",
        temperatures=(0.38, 1.0),
        chroma_gammas=(0.0, 1.0),
        name="chromata-tiny",
    )
    card = train(cfg)
    weights = tmp_path / "model" / "tiny.pt"
    assert weights.is_file()
    saved = json.loads((tmp_path / "model" / "tiny.card.json").read_text())
    assert saved["weights_sha256"] == card["weights_sha256"]
    text = (tmp_path / "model" / "tiny.card.json").read_text()
    assert str(tmp_path) not in text and "/tmp" not in text  # the data set by its own name, no machine's paths
    assert saved["data"]["source"] == "photos/" and saved["training"]["data"] == "photos/"
    assert sorted(saved["data"]["train_files"] + saved["data"]["validation_files"]) == sorted(
        p.name for p in folder.iterdir() if p.suffix == ".jpg"
    )
    assert [p["step"] for p in saved["training"]["loss_curve"]] == [2, 4, 6]
    assert saved["validation"]["images"] == card["data"]["validation_images"]
    table = saved["validation"]["by_decoding"]
    assert len(table) == 4
    chosen = saved["validation"]["chosen_decoding"]
    fair = [r for r in table if r["ciede2000_vs_gray"] <= 1.0]
    # the rule: the most colourful decoding no worse than grey, else the lowest error
    best = max(fair, key=lambda r: r["colourfulness_ratio"]) if fair else min(table, key=lambda r: r["mean_ciede2000"])
    assert (chosen["temperature"], chosen["chroma_gamma"]) == (best["temperature"], best["chroma_gamma"])
    assert saved["decoding"]["temperature"] == chosen["temperature"]
    model = load_colorizer(f"builtin:{weights}", device="cpu")
    assert model.weights_sha256 == card["weights_sha256"]
    assert model.predict_ab(np.full((1, 256, 256), 50.0, np.float32)).ab.shape == (1, 64, 64, 2)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    from chromata.training import prepare_data
    from chromata.training.run import fit, resume_file

    folder = _photos(tmp_path / "photos")
    common = dict(data=folder, out=tmp_path / "model", batch_size=2, crop=64, log_every=1, val_fraction=0.25,
                  init="scratch", checkpoint_every=2)  # fmt: skip
    first = TrainConfig(**common, steps=3)  # a session that ends after 3 steps: its checkpoint is step 2
    data = prepare_data(first)
    _, stats = fit(first, data)
    saved = torch.load(resume_file(first), weights_only=True)
    assert stats["steps_done"] == 3 and saved["step"] == 2
    again = TrainConfig(**common, steps=6)
    net, stats = fit(again, data)
    assert stats["resumed_at_step"] == 2 and stats["steps_done"] == 6
    assert [p["step"] for p in stats["loss_curve"]] == [3, 4, 5, 6]  # it went on, it did not start over
    resumed = torch.load(resume_file(again), weights_only=True)
    assert resumed["step"] == 6
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, resumed["model"][name].cpu()), name


def test_torch_lab_matches_the_numpy_conversion():
    import torch

    from chromata.colormath import color
    from chromata.colormath.torchcolor import bgr_u8_to_lab, lightness_to_grey

    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    ours = bgr_u8_to_lab(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    ref = np.stack([color.bgr_to_lab(color.to_unit_float(i)) for i in x])
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    light = torch.linspace(0, 100, 11)
    grey = lightness_to_grey(light).numpy()
    np.testing.assert_allclose(color.gray_to_lightness(grey.astype(np.float32)), light.numpy(), atol=1e-3)


def test_archive_augmentations_do_what_they_say():
    import torch

    from chromata.training.augment import TONES, AugmentConfig, augment_lightness, dust, gaussian_blur, grain, tone

    torch.manual_seed(0)
    flat = torch.full((4, 1, 32, 32), 50.0)
    noisy = grain(flat, torch.full((4, 1, 1, 1), 5.0))
    assert 2.0 < float(noisy.std()) < 8.0
    assert float(gaussian_blur(noisy, torch.full((4, 1, 1, 1), 1.5)).std()) < 0.6 * float(noisy.std())
    specks = dust(flat, 20)
    assert bool(((specks == 97.0) | (specks == 4.0)).any()) and float((specks == 50.0).float().mean()) > 0.7
    sepia = tone(flat, TONES["sepia"], torch.ones(4, 1, 1, 1))
    assert float(sepia.mean()) < 50.0  # a brown print is darker than a neutral one of the same silver
    assert float(tone(flat, TONES["sepia"], torch.zeros(4, 1, 1, 1)).sub(50.0).abs().max()) < 1e-3
    everything = AugmentConfig(p_tone=1.0, p_curve=1.0, p_blur=1.0, p_grain=1.0, p_dust=1.0)
    out = augment_lightness(torch.rand(8, 1, 32, 32) * 100, everything)
    assert out.shape == (8, 1, 32, 32) and float(out.min()) >= 0.0 and float(out.max()) <= 100.0
    off = AugmentConfig(p_tone=0, p_curve=0, p_blur=0, p_grain=0, p_dust=0)
    assert torch.equal(augment_lightness(flat, off), flat)


def _tiny(tmp_path, folder, **kw):
    base = dict(
        data=folder,
        out=tmp_path / "model",
        steps=2,
        batch_size=2,
        crop=64,
        log_every=1,
        val_fraction=0.25,
        temperatures=(0.38,),
        chroma_gammas=(0.5,),
        name="chromata-tiny",
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_adversarial_stage_runs_and_is_recorded(tmp_path):
    folder = _photos(tmp_path / "photos")
    card = train(_tiny(tmp_path, folder, init="scratch", adversarial=True, adversarial_steps=3))
    curve = card["training"]["loss_curve"]
    assert [p["stage"] for p in curve] == ["main", "main", "adversarial", "adversarial", "adversarial"]
    assert {"ce", "g_adv", "d"} <= set(curve[-1])
    assert card["training"]["adversarial_steps_done"] == 3
    assert "PatchGAN" in card["architecture"]


@pytest.mark.slow
def test_fine_tune_the_builtin_model_on_a_collection_in_s3(tmp_path, s3, moto_endpoint):
    from tests.conftest import upload_collection

    folder = _photos(tmp_path / "photos")
    upload_collection(s3, "holdings", "colour", folder)
    cfg = _tiny(tmp_path, "s3://holdings/colour/", init="builtin", endpoint_url=moto_endpoint)
    card = train(cfg)
    assert card["encoder_init"].startswith("fine-tuned from chromata-builtin-v2")
    assert card["data"]["train_images"] + card["data"]["validation_images"] == 12
    model = load_colorizer(f"builtin:{tmp_path / 'model' / 'tiny.pt'}", device="cpu")
    assert model.weights_sha256 == card["weights_sha256"]


@pytest.mark.slow
@pytest.mark.ray
def test_distributed_training_with_two_ray_train_workers(tmp_path, ray_local):
    from chromata.actors.training import train_distributed

    folder = _photos(tmp_path / "photos")
    card = train_distributed(_tiny(tmp_path, folder, init="scratch", steps=3, device="cpu"), workers=2)
    assert card["training"]["workers"] == 2
    assert card["training"]["steps_done"] == 3
    assert card["training"]["epochs"] > 0
    model = load_colorizer(f"builtin:{tmp_path / 'model' / 'tiny.pt'}", device="cpu")
    assert model.predict_ab(np.full((1, 64, 64), 50.0, np.float32)).ab.shape == (1, 16, 16, 2)
