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
    for name in ("calf.jpg", "duck.jpg", "reims-cathedral.jpg"):
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
