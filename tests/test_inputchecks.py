"""Each input check fires on a synthetic case built for it, and none fires on a normal photograph."""

import cv2
import numpy as np
import pytest

from chromata.colormath import color
from chromata.judgement import inputchecks
from tests.conftest import EXAMPLES, colour_patches

RNG = np.random.default_rng(7)


def photo_lightness(name: str = "calf.jpg") -> np.ndarray:
    grey = cv2.imread(str(EXAMPLES / name), cv2.IMREAD_GRAYSCALE)
    return color.gray_to_lightness(color.to_unit_float(grey))


def toned(a_amp: float, b_amp: float) -> np.ndarray:
    """A grey photo printed with one toning hue whose strength follows lightness (like a real toner)."""
    lightness = photo_lightness()
    strength = np.sin(np.clip(lightness / 100.0, 0, 1) * np.pi)
    lab = np.stack([lightness, a_amp * strength, b_amp * strength], axis=-1).astype(np.float32)
    return color.from_unit_float(color.lab_to_bgr(lab), np.uint8)


def text_page() -> np.ndarray:
    page = np.full((1100, 850), 238, np.uint8)
    for i in range(18):
        cv2.putText(
            page,
            f"Inventory no. {1890 + i}: glass plate, cabinet {i}",
            (60, 90 + i * 52),
            cv2.FONT_HERSHEY_COMPLEX,
            0.8,
            35,
            1,
        )
    return color.gray_to_lightness(color.to_unit_float(page))


@pytest.mark.parametrize("name", ["calf.jpg", "moose.jpg", "reims-cathedral.jpg", "driveway.jpg"])
def test_no_check_fires_on_normal_photos(name):
    lightness = photo_lightness(name)
    assert inputchecks.input_reasons(lightness, lightness.shape[1], lightness.shape[0]) == []


def _reasons(lightness: np.ndarray, width: int | None = None, height: int | None = None) -> list[str]:
    return inputchecks.input_reasons(lightness, width or lightness.shape[1], height or lightness.shape[0])


def test_tiny_image():
    small = cv2.resize(photo_lightness(), (48, 32), interpolation=cv2.INTER_AREA)
    assert "tiny_image" in _reasons(small)


def test_low_contrast_and_dynamic_range():
    flat = 50.0 + (photo_lightness() - 50.0) * 0.08
    reasons = _reasons(flat.astype(np.float32))
    assert "low_contrast" in reasons and "low_dynamic_range" in reasons


def test_underexposed():
    assert "underexposed" in _reasons((photo_lightness() * 0.15).astype(np.float32))


def test_overexposed():
    assert "overexposed" in _reasons((94.0 + photo_lightness() * 0.06).astype(np.float32))


def test_heavy_noise():
    grey = cv2.imread(str(EXAMPLES / "calf.jpg"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    noisy = np.clip(grey + RNG.normal(0, 14, grey.shape), 0, 255).astype(np.uint8)
    lightness = color.gray_to_lightness(color.to_unit_float(noisy))
    assert "heavy_noise" in _reasons(lightness)
    assert inputchecks.noise_sigma(lightness) > 2 * inputchecks.noise_sigma(photo_lightness())


def test_document_text():
    assert "document_text" in _reasons(text_page())


@pytest.mark.parametrize(
    ("a", "b", "kind"), [(6.0, 22.0, "sepia_toned"), (-3.0, -24.0, "cyanotype"), (18.0, -12.0, "toned_monochrome")]
)
def test_toned_prints_are_recognised(a, b, kind):
    tone = inputchecks.classify_tone(toned(a, b))
    assert tone.kind == kind
    lightness = photo_lightness()
    assert kind in inputchecks.input_reasons(lightness, 10_000, 10_000, tone)


def test_colour_and_grey_are_not_toned():
    assert inputchecks.classify_tone(colour_patches()).kind == "colour"
    grey3 = cv2.cvtColor(cv2.imread(str(EXAMPLES / "calf.jpg"), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)
    assert inputchecks.classify_tone(grey3).kind == "grey"
    # a colour photo dominated by one hue (brown cattle on green grass) is still colour
    lightness = photo_lightness()
    lab = np.stack([lightness, np.where(lightness > 50, 15.0, -20.0), np.full_like(lightness, 25.0)], -1)
    assert (
        inputchecks.classify_tone(color.from_unit_float(color.lab_to_bgr(lab.astype(np.float32)), np.uint8)).kind
        == "colour"
    )
