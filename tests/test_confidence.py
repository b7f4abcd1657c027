import numpy as np
import pytest

from chromata import confidence

RNG = np.random.default_rng(1)


def normal_l() -> np.ndarray:
    return (RNG.random((64, 64)) * 80 + 10).astype(np.float32)


def test_normal_photo_has_no_input_reasons():
    assert confidence.input_reasons(normal_l(), 640, 480) == []


@pytest.mark.parametrize(
    ("lightness", "size", "reason"),
    [
        (np.full((64, 64), 50, np.float32) + RNG.random((64, 64)).astype(np.float32), (640, 480), "low_contrast"),
        ((RNG.random((64, 64)) * 20).astype(np.float32), (640, 480), "underexposed"),
        ((RNG.random((64, 64)) * 10 + 90).astype(np.float32), (640, 480), "overexposed"),
        (None, (40, 30), "tiny_image"),
    ],
)
def test_each_input_check_fires(lightness, size, reason):
    lightness = normal_l() if lightness is None else lightness
    assert reason in confidence.input_reasons(lightness, *size)


def test_score_definition():
    mid = (confidence.U_CERTAIN + confidence.U_UNSURE) / 2
    certain = np.full((8, 8), 0.2, np.float32)
    middling = np.full((8, 8), mid, np.float32)
    unsure = np.full((8, 8), 0.8, np.float32)
    assert confidence.score(certain, normal_l(), 640, 480).score == pytest.approx(1.0)
    m = confidence.score(middling, normal_l(), 640, 480)
    assert m.score == pytest.approx(0.5, abs=1e-3) and m.reasons == ()
    b = confidence.score(unsure, normal_l(), 640, 480)
    assert b.score == 0.0 and "high_chroma_uncertainty" in b.reasons
    flat = confidence.score(middling, np.full((8, 8), 50, np.float32), 640, 480)
    assert flat.score == pytest.approx(0.5 * confidence.INPUT_PENALTY, abs=1e-3)
    assert 0.0 <= flat.score <= 1.0
