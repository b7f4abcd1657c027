"""`chromata eval`: metrics, baselines and the report files, on real photos at small scale."""

import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from chromata.models import load_colorizer
from chromata.models.builtin import builtin_card
from chromata.models.evaluation import load_images, score_image
from chromata.studies.quality import GRAY, MEAN_CHROMA, evaluate_models, psnr, ssim
from tests.conftest import PHOTOS
from tests.test_cli import chromata


def test_psnr_and_ssim_reference_values():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert psnr(img, img) == float("inf")
    assert ssim(img, img) == pytest.approx(1.0)
    off_by_one = np.clip(img.astype(int) + 1, 0, 255).astype(np.uint8)
    mse = np.mean((off_by_one.astype(float) - img) ** 2)
    assert psnr(img, off_by_one) == pytest.approx(10 * np.log10(255**2 / mse))
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(img, noisy) < 0.97  # ≈ 2σ²/(2σ² + 25²) for this high-variance image
    noisier = np.clip(img + rng.normal(0, 60, img.shape), 0, 255).astype(np.uint8)
    assert ssim(img, noisier) < ssim(img, noisy)


@pytest.fixture(scope="module")
def three_photos():
    names = builtin_card()["data"]["validation_files"][:3]
    return load_images([PHOTOS / n for n in names])


def test_report_scores_models_and_both_baselines(three_photos, tmp_path):
    model = load_colorizer("builtin", device="cpu")
    report = evaluate_models(three_photos, [("builtin", model)])
    assert report.methods == ["builtin", GRAY, MEAN_CHROMA]
    assert len(report.rows) == 9
    by = {(r.image, r.method): r for r in report.rows}
    name, bgr = three_photos[0]
    same = score_image(name, bgr, model)  # the training-time scorer agrees with the report
    assert by[(name, "builtin")].ciede2000 == pytest.approx(same.delta_e, rel=1e-4)
    assert by[(name, GRAY)].ciede2000 == pytest.approx(same.delta_e_gray, rel=1e-4)
    summary = {s["method"]: s for s in report.summary()}
    assert summary[GRAY]["ciede2000_vs_gray"] == 1.0 and summary[GRAY]["colourfulness_ratio"] < 0.01
    assert summary[MEAN_CHROMA]["colourfulness_ratio"] < 0.2
    assert summary["builtin"]["colourfulness_ratio"] > 0.3
    paths = report.write(tmp_path / "report")
    table = pq.read_table(paths["parquet"]).to_pylist()
    assert {(r["image"], r["method"]) for r in table} == set(by)
    md = paths["markdown"].read_text()
    assert md.count("\n| ") == 1 + 3  # header + one row per method
    sheet = paths["html"].read_text()
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', sheet)) == 3 * 4  # input, truth, builtin, mean
    assert "not historical record" in sheet


@pytest.mark.slow
def test_eval_command_on_three_photos_compares_two_models(tmp_path):
    out, doc = tmp_path / "eval", tmp_path / "quality.md"
    doc.write_text("# Quality\n<!-- BEGIN eval -->\nTABLE-BEFORE-THE-RUN\n<!-- END eval -->\nafter\n")
    proc = chromata("eval", str(PHOTOS), "--model", "builtin", "--model", "builtin:v1", "--limit", "3",
                    "--out", str(out), "--doc", str(doc))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| builtin:v1 | 3 |" in proc.stdout and f"| {GRAY} | 3 |" in proc.stdout
    written = doc.read_text()
    assert (
        "TABLE-BEFORE-THE-RUN" not in written and "| builtin:v1 | 3 |" in written and written.endswith("-->\nafter\n")
    )
    assert "--model builtin --model builtin:v1" in written  # the command that made it
    assert {p.name for p in out.iterdir()} == {
        "eval.parquet",
        "eval.md",
        "contact-sheet.html",
        "contact-sheet.jpg",
        "summary.json",
    }


def test_eval_command_errors_are_one_line(tmp_path):
    proc = chromata("eval", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "evaluation data folder not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tradeoff_plot_marks_the_shipped_decoding():
    import cv2
    import numpy as np

    from chromata.studies.quality import tradeoff_png

    points = [
        {"label": "g0.5", "ciede2000_vs_grey": 0.98, "colourfulness_ratio": 0.76},
        {"label": "g1", "ciede2000_vs_grey": 0.94, "colourfulness_ratio": 0.54},
        {"label": "g0 r4", "ciede2000_vs_grey": 1.02, "colourfulness_ratio": 0.93},
    ]
    img = cv2.imdecode(np.frombuffer(tradeoff_png(points, "test", shipped="g0.5"), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (460, 640, 3)
    red = (img[..., 2] > 180) & (img[..., 0] < 80) & (img[..., 1] < 80)
    assert red.sum() > 50  # the shipped point and its label
    none = cv2.imdecode(np.frombuffer(tradeoff_png(points, "test"), np.uint8), cv2.IMREAD_COLOR)
    assert ((none[..., 2] > 180) & (none[..., 0] < 80) & (none[..., 1] < 80)).sum() == 0
