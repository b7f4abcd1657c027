import cv2
import numpy as np
import pytest

from chromata.judgement import confidence


def test_score_definition():
    mid = (confidence.U_CERTAIN + confidence.U_UNSURE) / 2
    certain = np.full((8, 8), 0.2, np.float32)
    middling = np.full((8, 8), mid, np.float32)
    unsure = np.full((8, 8), 0.8, np.float32)
    assert confidence.score(certain).score == pytest.approx(1.0)
    m = confidence.score(middling)
    assert m.score == pytest.approx(0.5, abs=1e-3) and m.reasons == ()
    b = confidence.score(unsure)
    assert b.score == 0.0 and "high_chroma_uncertainty" in b.reasons
    flat = confidence.score(middling, ["low_contrast", "heavy_noise"])
    assert flat.score == pytest.approx(0.5 * confidence.INPUT_PENALTY**2, abs=1e-3)
    assert flat.reasons == ("low_contrast", "heavy_noise")
    sepia = confidence.score(middling, ["sepia_toned"])  # recorded, not penalised
    assert sepia.score == pytest.approx(0.5, abs=1e-3) and sepia.reasons == ("sepia_toned",)


def test_heatmap_png_has_the_image_aspect():
    png = confidence.heatmap_png(np.zeros((64, 64), np.float32), 1200, 600)
    heat = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert heat.shape == (128, 256, 3)


def test_version_2_takes_the_estimators_certainty_its_region_reasons_and_the_same_penalties():
    from chromata.judgement.assess import Assessment

    judged = Assessment(0.8, np.zeros((8, 8), np.float32), ("building or stone",) * 64, ("doubtful_colour_building",))
    unsure = np.full((8, 8), 0.8, np.float32)  # the model's entropy no longer sets the score …
    r = confidence.score(unsure, ["low_contrast"], assessment=judged)
    assert r.version == "2" and r.certainty == 0.8
    assert r.score == pytest.approx(0.8 * confidence.INPUT_PENALTY, abs=1e-4)  # … the input checks still penalise
    # the model's own unsureness is still said; the region reason is added, not penalised
    assert r.reasons == ("low_contrast", "high_chroma_uncertainty", "doubtful_colour_building")
    v1 = confidence.score(unsure, ["low_contrast"])
    assert v1.version == "1" and v1.certainty == 0.0 and v1.score == 0.0
