"""Smoke runs of the benchmark scripts at tiny size, so they do not rot (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

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
