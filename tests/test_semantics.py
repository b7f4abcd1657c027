"""The semantic signal for judgement (chromata.models.semantics): EfficientNet-Lite0's ImageNet classifier from the
wheel already installed, read on the grey input only."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from chromata.colormath import color
from chromata.models import semantics

SCANS = Path(__file__).resolve().parents[1] / "examples" / "scans"


def _lightness(name: str) -> np.ndarray:
    return color.lightness_of(cv2.imread(str(SCANS / name), cv2.IMREAD_GRAYSCALE))


def test_every_imagenet_class_has_a_kind_and_every_kind_has_classes():
    assert semantics.KIND_OF_CLASS.shape == (1000,)
    assert set(np.unique(semantics.KIND_OF_CLASS)) == set(range(len(semantics.KINDS)))
    assert semantics.KINDS[semantics.KIND_OF_CLASS[825]] == "building or stone"  # stone wall
    assert semantics.KINDS[semantics.KIND_OF_CLASS[834]] == "person or clothing"  # suit
    assert set(semantics.KINDS) >= semantics.NEUTRAL_KINDS


def test_features_are_deterministic_and_shaped():
    lightness = _lightness("summer-night.jpg")
    a, b = semantics.semantics_of(lightness), semantics.semantics_of(lightness.copy())
    for x, y in ((a.probs, b.probs), (a.features, b.features), (a.region_kinds, b.region_kinds)):
        np.testing.assert_array_equal(x, y)
    assert a.probs.shape == (1000,) and a.features.shape == (1280,) and a.region_kinds.shape == (7, 7)
    assert abs(float(a.probs.sum()) - 1) < 1e-4 and abs(float(a.kind_probs.sum()) - 1) < 1e-4
    assert ((a.region_kind_prob > 0) & (a.region_kind_prob <= 1)).all()


@pytest.mark.parametrize(
    ("scan", "kind"),
    [("cat.jpg", "animal"), ("duck.jpg", "animal"), ("calf.jpg", "animal"), ("yellow-flower.jpg", "plant"),
     ("reims-cathedral.jpg", "building or stone")],
)  # fmt: skip
def test_it_sees_what_a_grey_scan_shows(scan, kind):
    """Only the published ImageNet weights do this: an untrained or mis-loaded network ranks kinds at chance."""
    found = semantics.semantics_of(_lightness(scan))
    assert semantics.KINDS[int(found.kind_probs.argmax())] == kind, found.top_classes()
    assert float(found.kind_probs.max()) > 0.5
    # the regions agree where the subject is: the centre of the frame
    assert found.kind_at(0.55, 0.6) == kind


def test_the_checkpoint_is_read_as_untrusted_input(tmp_path):
    state = torch.load(semantics.weights_path(), map_location="cpu", weights_only=True)
    state.pop("_fc.bias")
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(ValueError, match=r"short\.pth: not EfficientNet-Lite0 ImageNet weights") as err:
        semantics.load_classifier(tmp_path / "short.pth")
    assert "\n" not in str(err.value)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth: not a state dict"):
        semantics.load_classifier(tmp_path / "list.pth")
