"""A short real training run on tiny synthetic photos: the trainer, the weights format and the card."""

import json

import cv2
import numpy as np
import pytest

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
