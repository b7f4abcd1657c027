"""The shipped confidence (score version 2, chromata.judgement.assess): it reads grey + colour + the semantic
reading, so it runs the same for every model family; its numbers are probabilities; the regions it blames are
named by what they are, and that name reaches the manifest, the review queue and `chromata review list`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmarks._checkpoints import recipe_checkpoint
from chromata.colormath import color
from chromata.judgement import assess, harm
from chromata.judgement.reasons import REASONS, reason
from chromata.models import load_colorizer, semantics
from chromata.models.base import model_input
from chromata.models.postprocess import assessments
from tests.conftest import EXAMPLES

FAMILIES = ("builtin", "eccv16", "siggraph17", "onnx", "ddcolor", "deoldify")


def _grey(name: str) -> np.ndarray:
    bgr = cv2.imread(str(EXAMPLES / name), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(color.bgr_to_lab(color.to_unit_float(bgr))[..., 0])


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """A model of every family, loaded as chromata loads it (random or recipe weights for the published ones)."""
    from chromata.models.onnx import export_builtin

    folder = tmp_path_factory.mktemp("families")
    models = {"builtin": load_colorizer("builtin", device="cpu")}
    for fam in ("eccv16", "siggraph17"):
        models[fam] = load_colorizer(f"{fam}:{recipe_checkpoint(fam, '', folder)}", device="cpu")
    models["onnx"] = load_colorizer(f"onnx:{export_builtin(models['builtin'], folder / 'b.onnx')}", device="cpu")
    for fam, variant in (("ddcolor", "tiny"), ("deoldify", "artistic")):
        weights = recipe_checkpoint(fam, variant, folder)
        models[fam] = load_colorizer(f"{fam}:{weights}", device="cpu", input_size=64)
    return models


def test_the_package_ships_the_estimator_and_its_card_names_its_data_relatively():
    est = assess.shipped()
    assert est is not None, "the package ships confidence-v2.json"
    assert est.kinds == semantics.KINDS  # the reading it was fitted on is the one the runtime gives
    card = json.loads((assess.confidence_weights_path().parent / "confidence-v2.card.json").read_text())
    assert card["weights_sha256"] == est.sha256 and card["data"]["source"] == "photos/"
    assert card["data"]["views"] >= 1500  # the floor: real out-of-sample views
    assert set(assess.KIND_CODES) == set(semantics.KINDS) and set(assess.KIND_CODES.values()) <= set(REASONS)
    assert {reason(c).kind for c in assess.KIND_CODES.values()} == {"region"}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_the_estimator_assesses_every_family_the_same_way(family, families):
    model = families[family]
    work = np.stack([model_input(model, _grey(n)) for n in ("cat.jpg", "reims-cathedral.jpg")])
    ab = model.predict_ab(work).ab
    first, again = assessments(work, ab), assessments(work, ab)
    assert first is not None and len(first) == 2
    for a, b in zip(first, again, strict=True):
        assert 0.0 <= a.p_better <= 1.0 and a.p_better == b.p_better  # deterministic
        assert len(a.region_kinds) == harm.GRID**2 and set(a.region_kinds) <= set(semantics.KINDS)
        assert set(a.reasons) <= set(assess.KIND_CODES.values())


def test_restraint_damps_regions_where_harm_is_predicted_and_boosts_the_rest():
    ab = np.full((64, 64, 2), 20.0, np.float32)
    p = np.zeros((harm.GRID, harm.GRID), np.float32)
    p[:, harm.GRID // 2 :] = 0.9  # harm predicted on the right
    out = assess.Restraint(threshold=0.5, keep=0.5, gain=1.2).apply(ab, p)
    assert np.allclose(out[:, :24], 24.0, atol=1e-3)  # boosted where no harm is predicted
    assert np.allclose(out[:, 40:], 10.0, atol=1e-3)  # damped where it is
    row = out[0, :, 0]
    assert ((row > 10.5) & (row < 23.5)).sum() >= 4 and np.abs(np.diff(row)).max() < 3.0  # a ramp, not an edge
    identity = assess.Restraint()
    assert identity.is_identity and np.array_equal(identity.apply(ab, p), ab)


def _with_restraint(**restraint: float) -> assess.ConfidenceEstimator:
    shipped = assess.shipped()
    assert shipped is not None
    return assess.ConfidenceEstimator({**shipped.params, "restraint": restraint})


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_that_restrains_decodes_with_the_estimators_restraint(family, families, monkeypatch):
    """The built-in model and chromata's own ONNX graphs restrain by default; Zhang's, DDColor and DeOldify give
    their authors' colours unless asked (``restrain = True``). A restraining model's chroma is its raw chroma
    after the estimator's restraint — read from the same grey input — and its provenance says which."""
    model = families[family]
    work = np.stack([model_input(model, _grey(n)) for n in ("cat.jpg", "reims-cathedral.jpg")])
    assert model.restrain == (family in ("builtin", "onnx"))
    default = model.restrain
    est = _with_restraint(threshold=0.5, keep=0.0, gain=1.2)
    monkeypatch.setattr(assess, "shipped", lambda: est)
    try:
        model.restrain = False
        raw = model.predict_ab(work).ab
        assert model.describe()["restraint"] is None
        model.restrain = True
        out = model.predict_ab(work).ab
        region_est = harm.shipped()
        expected = [est.restrain(w, a, semantics.semantics_of(w), region_est) for w, a in zip(work, raw, strict=True)]
        np.testing.assert_allclose(out, np.stack(expected), atol=1e-4)
        assert float(np.abs(out - raw).max()) > 0.1 * float(np.abs(raw).max()), "the restraint changed nothing"
        assert model.describe()["restraint"] == est.restraint_facts()
    finally:
        model.restrain = default


def test_the_restraint_and_the_assessment_read_each_grey_input_once(families, monkeypatch):
    """The semantic reading is most of the judgement's cost: decoding (restraint) and scoring (assessment)
    share it."""
    from chromata.models import postprocess

    calls = []
    real = semantics.semantics_of

    def counted(lightness, net=None):
        calls.append(1)
        return real(lightness, net)

    est = _with_restraint(threshold=0.5, keep=0.5, gain=1.2)
    monkeypatch.setattr(semantics, "semantics_of", counted)
    monkeypatch.setattr(assess, "shipped", lambda: est)
    postprocess._READINGS.clear()
    model = families["builtin"]
    work = np.stack([model_input(model, _grey(n)) for n in ("cat.jpg", "reims-cathedral.jpg")])
    judged = assessments(work, model.predict_ab(work).ab)
    assert judged is not None and len(judged) == 2
    assert len(calls) == 2  # one reading per image, not one for the restraint and one for the score


def test_strong_wrong_colour_on_a_cathedral_is_blamed_on_the_building():
    est, region_est = assess.shipped(), harm.shipped()
    assert est is not None and region_est is not None
    work = color.working_lightness(_grey("reims-cathedral.jpg"), 256)
    reading = semantics.semantics_of(work)
    grey = est.assess(work, np.zeros((64, 64, 2), np.float32), reading, region_est)
    painted = est.assess(work, np.dstack([np.full((64, 64), 45.0, np.float32), np.full((64, 64), 50.0, np.float32)]),
                         reading, region_est)  # fmt: skip
    assert grey.reasons == ()  # no colour, nothing to doubt
    assert painted.reasons == ("doubtful_colour_building",)
    assert painted.p_better < grey.p_better
    text = reason("doubtful_colour_building").text
    assert "usually neutral" in text and "building" in text


@pytest.mark.slow
@pytest.mark.ray
def test_a_queued_items_reason_names_the_regions_kind_in_the_manifest_and_review_list(
    ray_local, prefect_harness, tmp_path
):
    import shutil

    from typer.testing import CliRunner

    from chromata.archive.local import LocalStorage
    from chromata.cli import app
    from chromata.record.manifest import read_manifest

    src = tmp_path / "scans"
    src.mkdir()
    for name in ("calf.jpg", "duck.jpg", "summer-night.jpg"):  # the blotchy sunset sky is doubted
        shutil.copy(EXAMPLES / name, src / name)
    out = tmp_path / "colorized"
    runner = CliRunner(env={"COLUMNS": "250"})
    ran = runner.invoke(app, ["run", str(src), "--out", str(out), "--review-budget", "1.0"])
    assert ran.exit_code == 0, ran.output
    rows = read_manifest(LocalStorage(out)).to_pylist()
    assert len(rows) == 3 and all(r["needs_review"] for r in rows)
    for r in rows:
        params = json.loads(r["params_json"])
        assert params["score_version"] == "2" and params["confidence_estimator"] == "confidence-v2"
        assert params["confidence_estimator_sha256"] == assess.shipped().sha256  # type: ignore[union-attr]
    regional = [c for r in rows for c in r["confidence_reasons"] if reason(c).kind == "region"]
    assert regional, "no queued item named a region's kind"
    listed = runner.invoke(app, ["review", "list", "--out", str(out)])
    assert listed.exit_code == 0, listed.output
    shown = " ".join(listed.output.split())  # the table wraps long texts
    for code in regional:
        words = reason(code).text.split()
        assert all(w in shown for w in words), (code, listed.output)
