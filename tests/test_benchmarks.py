"""Smoke runs of the benchmark scripts at tiny size, so they do not rot (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pipeline_efficiency_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "pipeline_efficiency.py"),
            "--images",
            "3",
            "--megapixels",
            "0.2",
            "0.3",
            "--batch-size",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["images"] == 3
    assert result["pipeline_images_per_s"] > 0 and result["model_only_images_per_s"] > 0


@pytest.mark.slow
def test_listing_benchmark_runs(tmp_path):
    out = tmp_path / "listing.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "listing.py"), "--counts", "60", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    assert row["objects"] == 60 and row["incremental_plan_s"] > 0


def _run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_model_speed_benchmark_runs(tmp_path):
    out = tmp_path / "speed.json"
    proc = _run_benchmark(
        "model_speed.py", "--sizes", "64", "--batches", "1", "--min-seconds", "0.1", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert {(r["model"], r["runtime"]) for r in result["rows"]} == {
        (m, rt) for m in ("builtin", "eccv16") for rt in ("torch", "onnxruntime")
    }
    assert result["parameters"]["eccv16"] > 5 * result["parameters"]["builtin"]


@pytest.mark.slow
def test_adversarial_experiment_runs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(photos / f"p{i:02d}.jpg"), rng.integers(0, 255, (80, 80, 3), dtype=np.uint8))
    proc = _run_benchmark(
        "adversarial_experiment.py", "--data", str(photos), "--out", str(tmp_path / "exp"), "--init", "scratch",
        "--base-minutes", "0.02", "--stage-minutes", "0.02", "--batch-size", "2", "--crop", "64", "--max-steps", "2",
        "--temperatures", "0.38", "--gammas", "0.5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert result["adversarial"]["adversarial_steps"] >= 1 and result["control"]["adversarial_steps"] == 0


@pytest.mark.slow
def test_large_scans_benchmark_runs(tmp_path):
    out = tmp_path / "large.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "large_scans.py"), "--megapixels", "4", "--budget-mb", "256",
         "--workdir", str(tmp_path), "--json", str(out), "--c2pa"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "ok" and result["side"] == 2000 and result["c2pa_signed"]
    # the loaded model's figure includes its warm-up (building the inference graph), which a 4 MP scan's banded
    # processing need not exceed
    assert result["peak_rss_mib"] >= result["rss_after_model_mib"] > 0


@pytest.mark.slow
def test_throughput_benchmark_runs(tmp_path):
    out = tmp_path / "throughput.json"
    proc = _run_benchmark(
        "throughput.py", "--images", "3", "--small", "1", "--repeats", "1", "--warm", "--no-write", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result["runs"]) == ["this tree", "this tree, joining running engines"]
    for run in result["runs"].values():
        assert len(run["walls"]["all"]) == len(run["walls"]["small"]) == 1
    assert result["bare_images_per_s"] > 0
    assert len(result["startup_pieces_s"]) == 5


@pytest.mark.slow
def test_cpu_precision_benchmark_runs(tmp_path):
    out = tmp_path / "precision.json"
    args = ["--photos", "2", "--calibration-photos", "2", "--batch", "2", "--seconds", "0.1", "--no-write"]
    proc = _run_benchmark("cpu_precision.py", *args, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 5 and rows[0]["p99_levels"] == 0 == rows[0]["max_levels"]  # the shipped one against itself
    assert all(r["images_per_s"] > 0 for r in rows if "images_per_s" in r)


@pytest.mark.slow
def test_pixel_steps_benchmark_runs(tmp_path):
    out = tmp_path / "steps.json"
    proc = _run_benchmark("pixel_steps.py", "--images", "8", "--rounds", "1", "--before", "HEAD", "--no-write",
                          "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result["ms_per_image"]) == ["before (HEAD)", "this tree"]
    for steps in result["ms_per_image"].values():
        assert len(steps) == 10 and all(ms > 0 for ms in steps.values())


@pytest.mark.slow
def test_quality_unchanged_benchmark_runs(tmp_path):
    out = tmp_path / "quality.json"
    proc = _run_benchmark("quality_unchanged.py", "--before", "HEAD", "--limit", "2", "--no-write", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["photos"] == 2
    ciede = result["metrics"]["ciede2000"]
    assert ciede["before"] > 0 and abs(ciede["relative_change"]) < 0.01  # this tree against its own commit
    assert result["levels_8bit"]["max"] <= 1  # the 8-bit outputs of the same code: equal (to a level)
