"""The cross-fit study end to end on tiny synthetic photos: folds, a model per fold, each fold's photos
colorized only by the model that never saw them, and the judgement table."""

import json

import cv2
import numpy as np
import pytest

from chromata.judgement import assess, harm
from chromata.models import semantics
from chromata.studies import confidence_fit, crossfit


def _photos(folder, n=8):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.zeros((96, 96, 3), np.uint8)
        img[:48] = (200, 120, 40) if i % 2 else (60, 60, 60)  # a blue sky, or a grey wall
        img[48:] = (40, 160, 60)
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), cv2.add(img, rng.integers(0, 30, img.shape, dtype=np.uint8)))
    (folder / "MANIFEST.csv").write_text("file,licence\n")
    return folder


@pytest.mark.slow
def test_every_photo_is_colorized_by_a_model_that_never_saw_it(tmp_path):
    data, cache = _photos(tmp_path / "photos"), tmp_path / "cache"
    assert crossfit.make_folds(data, cache, 2) == {"data": "photos/", "folds": 2, "photos": 8}
    fold_of = json.loads((cache / "folds.json").read_text())["fold_of"]
    assert sorted(fold_of) == [f"p{i:02d}.jpg" for i in range(8)] and set(fold_of.values()) == {0, 1}
    for k in (0, 1):
        done = crossfit.train_fold(
            data, cache, k, minutes=1, steps=2, crop=64, batch_size=2, init="scratch", val_fraction=0.5
        )
        assert done["train_photos"] == sum(f != k for f in fold_of.values())
        trained_on = {p.name for p in (cache / f"fold-{k}" / "photos").iterdir()}
        assert trained_on == {n for n, f in fold_of.items() if f != k}  # its own fold's photos never
        assert crossfit.train_fold(data, cache, k, minutes=1, steps=2)["done_before"]  # resumes past done folds
    for k in (0, 1):
        out = crossfit.fold_outputs(data, cache, k)
        assert out["views"] == out["photos"] * (1 + crossfit.VIEWS_CROPS)
    views = crossfit.load_views(cache)
    for photo, fold in zip(views["photo"], views["fold"], strict=True):
        assert fold_of[str(photo)] == fold
    assert views["semantic"].shape == (32, 3 * len(semantics.KINDS) + 1)
    assert views["region_feats"].shape == (32, harm.GRID**2, len(harm.FEATURE_NAMES))
    assert views["region_kind"].shape == views["region_de"].shape == (32, harm.GRID**2)
    assert views["ab64"].shape == (32, harm.AB_SIDE, harm.AB_SIDE, 2)
    # the confidence fitted on those views: compared by photo groups, fitted, read back and run; restraint measured
    report = tmp_path / "report"
    compared = confidence_fit.compare(cache, report)
    assert compared["views"] == 32 and compared["photos"] == 8
    signals = [r["signal"] for r in compared["rows"]]
    assert signals == ["the model's entropy (score v1)", "the model-agnostic proxy", "harm-v1 (as shipped)",
                       *confidence_fit.CANDIDATES]  # fmt: skip
    assert all(0 <= r["worse"] <= 1 for r in compared["rows"])
    assert json.loads((report / "confidence-compare.json").read_text()) == compared
    doc = tmp_path / "confidence.md"
    doc.write_text("before\n<!-- BEGIN confidence-v2 -->\nold table\n<!-- END confidence-v2 -->\nafter\n")
    crossfit.write_doc_section(doc, "confidence-v2", confidence_fit.compare_markdown(compared, "python -m …"))
    text = doc.read_text()
    assert "old table" not in text and text.startswith("before\n") and text.endswith("-->\nafter\n")
    assert "| AUROC worse half ≥ 0.9 |" in text and "| harm-v1 (as shipped) |" in text
    assert compared["chosen"] in confidence_fit.CANDIDATES and len(compared["chosen_reliability"]) == 10
    fitted = confidence_fit.fit(cache, tmp_path / "weights", report)
    est = assess.ConfidenceEstimator.load(tmp_path / "weights" / assess.CONFIDENCE_WEIGHTS)
    assert est.sha256 == fitted["sha256"] and list(est.columns) == fitted["columns"]
    card = json.loads((tmp_path / "weights" / "confidence-v2.card.json").read_text())
    assert card["data"]["source"] == "photos/" and card["weights_sha256"] == est.sha256
    lab = cv2.cvtColor(cv2.imread(str(data / "p01.jpg")).astype(np.float32) / 255, cv2.COLOR_BGR2Lab)
    grey = np.ascontiguousarray(cv2.resize(lab[..., 0], (64, 64)))
    a = est.assess(
        grey, np.dstack([np.full((64, 64), 30.0, np.float32)] * 2), semantics.semantics_of(grey), harm.shipped()
    )
    assert 0 <= a.p_better <= 1 and len(a.region_kinds) == harm.GRID**2
    trade = confidence_fit.restraint(cache, report, report)
    assert [p["label"] for p in trade["everywhere"]][2] == "x1.00 everywhere"
    assert (report / "restraint-tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an estimator that never saw two photos; the cross-fit's choice checked on the shipped model with it
    confidence_fit.fit(cache, tmp_path / "without", report, frozenset({"p01.jpg", "p02.jpg", "not-there.jpg"}))
    card = json.loads((tmp_path / "without" / "confidence-v2.card.json").read_text())
    assert card["data"]["photos"] == 6 and card["data"]["left_out"] == ["p01.jpg", "p02.jpg"]
    assert card["data"]["views"] == 24 and card["restraint"] == "the identity"
    picked = confidence_fit.WHERE[1]
    (report / "restraint.json").write_text(json.dumps({**trade, "chosen": confidence_fit._label(picked)}))
    checked = confidence_fit.confirm(data, report, tmp_path / "without" / assess.CONFIDENCE_WEIGHTS, crops=1,
                                     split="all")  # fmt: skip
    assert checked["views"] == 16 and checked["chosen"] == confidence_fit._label(picked)
    left_out = assess.ConfidenceEstimator.load(tmp_path / "without" / assess.CONFIDENCE_WEIGHTS)
    assert checked["estimator_sha256"] == left_out.sha256 != est.sha256  # judged by the one that never saw them
    row = next(p for p in checked["where_harm_predicted"] if p["label"] == checked["chosen"])
    assert checked["confirmed"] == (row["moves_frontier_by"] > 0)
    assert checked["adopt"] == (picked.to_dict() if checked["confirmed"] else None)
    shipped = confidence_fit.fit(cache, tmp_path / "adopted", report, restraint=picked)
    adopted = assess.ConfidenceEstimator.load(tmp_path / "adopted" / assess.CONFIDENCE_WEIGHTS)
    assert adopted.restraint == picked and adopted.sha256 == shipped["sha256"]
