import itertools
import json

import cv2
import numpy as np
import pytest

from chromata.judgement import calibration as cal
from chromata.models.builtin import BuiltinColorizer, builtin_weights_path, calibration_path


def test_pav_is_monotone_least_squares():
    xs, ys = cal.pav([1, 2, 3, 4, 5], [0, 1, 0, 1, 1])
    assert ys == [0.0, 0.5, 1.0, 1.0] and xs == [1.0, 2.5, 4.0, 5.0]
    rng = np.random.default_rng(0)
    x = rng.random(200)
    y = (rng.random(200) < x).astype(float)
    _, fitted = cal.pav(x, y)
    assert all(a <= b for a, b in itertools.pairwise(fitted))


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(1)
    s = np.round(rng.random(60), 1)  # with ties
    pos = rng.random(60) < 0.4
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in s[pos] for b in s[~pos]])
    assert cal.auroc(s, pos) == pytest.approx(brute)
    with pytest.raises(ValueError):
        cal.auroc([0.1, 0.2], [True, True])


def test_fit_apply_and_json_round_trip(tmp_path):
    raw = [0.1, 0.2, 0.3, 0.6, 0.7, 0.9]
    delta_e = [15.0, 14.0, 9.0, 11.0, 6.0, 5.0]
    c = cal.fit(raw, delta_e, "abc", photos=3)
    assert c.target_ciede2000 == pytest.approx(10.0)
    assert c.apply(0.0) == 0.0 and c.apply(1.0) == 1.0
    assert 0.0 <= c.apply(0.5) <= 1.0
    path = tmp_path / "c.json"
    path.write_text(c.to_json())
    loaded = cal.Calibration.load(path)
    assert loaded == c and loaded.sha256 == c.sha256


def test_calibration_is_used_only_for_its_own_weights(tmp_path):
    weights = tmp_path / "m.pt"
    weights.write_bytes(builtin_weights_path().read_bytes())
    model = BuiltinColorizer.load(weights, device="cpu")
    assert model.calibration is None
    calibration_path(weights).write_text(cal.fit([0.1, 0.9], [12.0, 4.0], "someone-else", 1).to_json())
    assert BuiltinColorizer.load(weights, device="cpu").calibration is None
    own = cal.fit([0.1, 0.5, 0.9], [12.0, 8.0, 4.0], model.weights_sha256, 1)
    calibration_path(weights).write_text(own.to_json())
    loaded = BuiltinColorizer.load(weights, device="cpu")
    assert loaded.calibration == own
    assert loaded.describe()["calibration_sha256"] == own.sha256


def test_shipped_calibration_belongs_to_shipped_weights():
    model = BuiltinColorizer.load(device="cpu")
    assert model.calibration is not None, "the built-in model ships with its calibration"
    assert model.calibration.samples >= 30


def test_reliability_diagram_is_a_png():
    png = cal.reliability_diagram_png([0.1, 0.4, 0.8, 0.9], [False, True, True, True], "t")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[0] > 400 and img.shape[1] > 400


@pytest.mark.slow
def test_calibrate_command(tmp_path):
    from typer.testing import CliRunner

    from chromata.cli import app
    from tests.test_training import _photos

    folder = _photos(tmp_path / "photos")
    out = tmp_path / "not-yet" / "cal.json"  # a folder that does not exist yet is made
    result = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--data",
            str(folder),
            "--files",
            "all",
            "--crops",
            "2",
            "--out",
            str(out),
            "--report-dir",
            str(tmp_path / "rep"),
        ],
    )
    assert result.exit_code == 0, result.output
    fitted = cal.Calibration.load(out)
    assert fitted.samples > 0 and len(fitted.x) == len(fitted.y)
    summary = json.loads((tmp_path / "rep" / "calibration.json").read_text())
    assert summary["fit"]["photos"] + summary["test"]["photos"] == 12
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 1000
