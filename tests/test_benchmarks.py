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
    """Each family in a process of its own, loaded from a checkpoint in its published layout."""
    out = tmp_path / "speed.json"
    configs = ["builtin:v2:256", "ddcolor:tiny:64", "deoldify:artistic:32", "eccv16::64"]
    proc = _run_benchmark(
        "model_speed.py", "--only", *configs, "--min-seconds", "0.1", "--no-write", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    rows = {(r["family"], r["size"]): r for r in json.loads(out.read_text())["rows"]}
    for key in (("builtin", 256), ("ddcolor", 64), ("deoldify", 32)):
        assert rows[key]["images_per_s"] > 0
    # the loaded weights are what each process holds beyond the built-in's (DDColor-T: 55 M float32 = 210 MiB;
    # the weights were written by the parent, so generating them is not counted)
    extra = rows[("ddcolor", 64)]["rss_after_load_mib"] - rows[("builtin", 256)]["rss_after_load_mib"]
    assert 150 < extra < 600
    assert rows[("ddcolor", 64)]["parameters_m"] > 10 * rows[("builtin", 256)]["parameters_m"]
    assert rows[("eccv16", 64)]["error"] == "eccv16 runs at its own working size, 256, not 64"


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
    proc = _run_benchmark("large_scans.py", "--megapixels", "4", "--budget-mb", "256", "--workdir", str(tmp_path),
                          "--json", str(out), "--c2pa", "--no-write")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["status"], r["side"], r["c2pa_signed"]) for r in rows] == [("ok", 2000, False), ("ok", 2000, True)]
    for r in rows:
        # separate readings: the memory after the model load (VmRSS) and the peak while the scan alone ran (the
        # high-water mark reset in between) — the scan costs something, and what it adds stays within the budget
        assert 0 < r["rss_after_model_mib"] < r["scan_peak_mib"] <= r["rss_after_model_mib"] + r["budget_mib"], r
        assert r["peak_rss_mib"] == max(r["loading_peak_mib"], r["scan_peak_mib"])


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


@pytest.mark.slow
def test_outputs_unchanged_benchmark_runs(tmp_path):
    out = tmp_path / "outputs.json"
    proc = _run_benchmark("outputs_unchanged.py", "--before", "HEAD", "--limit", "2", "--no-write", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    run = result["run"]  # this tree against its own commit: the same outputs, once run ids and times are set aside
    assert run["outputs_compared"] == 10 and run["heatmaps_compared"] == 10 and run["files_differing"] == []
    assert run["manifest_rows_equal"] and run["queue_rows_equal"] and run["queue_rows"] > 0
    assert result["eval"]["photos"] == 2 and result["eval"]["ciede2000"]["photos_differing_at_4_decimals"] == 0


def test_outputs_unchanged_sets_aside_run_ids_and_times_and_nothing_else():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from outputs_unchanged import _normalised

    from chromata.media.imageio import EncodeOptions, encode
    from chromata.media.labels import Provenance, embed_png, xmp_packet

    pixels = np.full((8, 8, 3), 120, np.uint8)

    def labelled(px: np.ndarray, run_id: str, when: str) -> bytes:
        p = Provenance("a.png", "0" * 64, "i", run_id, "m", "1" * 64, "0.1.0", 0.5, when)
        return embed_png(encode(px, ".png", EncodeOptions()), xmp_packet(p), [])

    a = labelled(pixels, "20261205T113916Z-994c1fed", "2026-12-05T11:39:17.359882+00:00")
    b = labelled(pixels, "20261205T120001Z-0badf00d", "2026-12-05T12:00:02.000001+00:00")
    assert a != b and _normalised(a, {"20261205T113916Z-994c1fed"}) == _normalised(b, {"20261205T120001Z-0badf00d"})
    changed = pixels.copy()
    changed[3, 3, 1] += 1
    c = labelled(changed, "20261205T120001Z-0badf00d", "2026-12-05T12:00:02.000001+00:00")
    assert _normalised(a, {"20261205T113916Z-994c1fed"}) != _normalised(c, {"20261205T120001Z-0badf00d"})


@pytest.mark.slow
def test_semantic_features_benchmark_runs(tmp_path):
    out = tmp_path / "semantics.json"
    proc = _run_benchmark("semantic_features.py", "--rounds", "1", "--images", "3", "--no-write", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["images"] == 3 and result["semantics_ms_per_image"] > 0 and result["colorizer_ms_per_image"] > 0
    assert result["assessment_ms_per_image"] > result["semantics_ms_per_image"] * 0.5
    assert 4 < result["parameters_m"] < 6  # EfficientNet-Lite0 with its 1000-class head


def test_render_writes_the_machine_date_and_options_the_figures_were_measured_with(tmp_path):
    """``--render`` writes a section again from an earlier run's --json: with that run's machine line, date,
    cores and options, never this machine's or today's; a JSON without that record is refused."""
    then = "16 CPU cores (Some Other CPU), 1 GiB memory; 2001-02-03"
    run = {"workers": 1, "command_seconds": 10.0, "processing_seconds": 5.0, "images": 20, "ok": 20,
           "source_bytes": 5_000_000, "images_per_second": 4.0, "bytes_per_second_per_worker": 1.0e6,
           "load_before": 0.1, "load_after": 0.2, "tries": [5.0]}  # fmt: skip
    saved = {"source_bytes": 5_000_000, "runs": [run], "machine": then, "date": "2001-02-03", "cores": 16,
             "args": {"images": 20, "workers": [1], "shard_size": 5, "batch_size": 4, "repeats": 1}}  # fmt: skip
    path = tmp_path / "scaling.json"
    path.write_text(json.dumps(saved))
    proc = _run_benchmark("scaling.py", "--render", str(path), "--no-write")
    assert proc.returncode == 0, proc.stderr
    assert then in proc.stdout and "--images 20" in proc.stdout and "(16 cores;" in proc.stdout
    path.write_text(json.dumps({k: v for k, v in saved.items() if k not in ("machine", "date", "cores")}))
    refused = _run_benchmark("scaling.py", "--render", str(path), "--no-write")
    assert refused.returncode == 2 and "does not record the machine" in refused.stderr
    rows = [{"variant": "fp32, frozen TorchScript (shipped)", "images_per_s": 10.0, "mean_ciede2000": 12.0,
             "ciede2000_vs_gray": 0.95, "colourfulness_ratio": 0.7, "p99_levels": 0, "max_levels": 0}]  # fmt: skip
    figures = {"photos": 3, "calibration_photos": 2, "threads": 7, "cpu_flags": "avx2", "rows": rows,
               "machine": then, "options": {"data": "/elsewhere/photos", "batch": 5, "threads": 7}}  # fmt: skip
    path.write_text(json.dumps(figures))
    proc = _run_benchmark("cpu_precision.py", "--render", str(path), "--no-write")
    assert proc.returncode == 0, proc.stderr
    assert then in proc.stdout and "CPU extensions: avx2." in proc.stdout and "batch 5" in proc.stdout
    path.write_text(json.dumps({k: v for k, v in figures.items() if k != "machine"}))
    refused = _run_benchmark("cpu_precision.py", "--render", str(path), "--no-write")
    assert refused.returncode == 2 and "does not record the machine" in refused.stderr


@pytest.mark.slow
def test_allocator_benchmark_runs(tmp_path):
    out = tmp_path / "allocator.json"
    proc = _run_benchmark("allocator.py", "--images", "8", "--rounds", "1", "--repeats", "1", "--no-write",
                          "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result["medians"]) == [
        "glibc defaults", "chromata's settings", "thresholds, arenas as glibc's", "as glibc 2.26–2.34 takes them"
    ]  # fmt: skip
    assert result["tunables"]["glibc defaults"] is None
    for figures in result["medians"].values():
        assert len(figures) == 5 and all(v > 0 for v in figures.values())
