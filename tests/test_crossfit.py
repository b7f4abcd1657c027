"""The cross-fit study end to end on tiny synthetic photos: folds, a model per fold, each fold's photos
colorized only by the model that never saw them, and the judgement table."""

import json

import cv2
import numpy as np
import pytest

from chromata.studies import crossfit


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
    assert views["semantic"].shape == (32, crossfit.KIND_COLUMNS + 1)
    summary = crossfit.measure(cache, tmp_path / "report")
    assert summary["views"] == 32 and summary["photos"] == 8
    signals = [r["signal"] for r in summary["rows"]]
    assert signals[:3] == ["the model's entropy (shipped score)", "the model-agnostic proxy",
                           "the shipped harm estimator (harm-v1)"]  # fmt: skip
    assert len(signals) == 6 and all(0 <= r["worse"] <= 1 for r in summary["rows"])
    assert json.loads((tmp_path / "report" / "crossfit-judgement.json").read_text()) == summary
    doc = tmp_path / "confidence.md"
    doc.write_text("before\n<!-- BEGIN crossfit -->\nold table\n<!-- END crossfit -->\nafter\n")
    crossfit.write_doc_section(doc, "crossfit", crossfit.markdown(summary, "python -m chromata.studies.crossfit"))
    text = doc.read_text()
    assert "old table" not in text and text.startswith("before\n") and text.endswith("<!-- END crossfit -->\nafter\n")
    assert "| AUROC worse half ≥ 0.9 |" in text and "| the shipped harm estimator (harm-v1) |" in text
