import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from chromata.cli import app
from tests.conftest import upload_collection


def chromata(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chromata.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_is_fast_and_imports_no_engines():
    code = (
        "import sys; from typer.testing import CliRunner; from chromata.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'ray', 'prefect', 'cv2', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_source_is_one_line(tmp_path):
    _one_line_error(chromata("run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")), "source folder not found")


def test_bad_option_is_one_line(tmp_path):
    _one_line_error(chromata("run", str(tmp_path), "--out", str(tmp_path / "o"), "--shard-size", "0"), "shard_size")


def test_missing_bucket_is_one_line(moto_endpoint, tmp_path):
    _one_line_error(
        chromata("run", "s3://no-such-archive/x/", "--out", str(tmp_path / "o"), "--endpoint-url", moto_endpoint),
        "bucket not found: s3://no-such-archive",
    )


@pytest.mark.slow
@pytest.mark.ray
def test_cli_run_then_manifest_and_review(ray_local, prefect_harness, collection, tmp_path, moto_endpoint, s3):
    runner = CliRunner()
    out = tmp_path / "colorized"
    result = runner.invoke(app, ["run", str(collection), "--out", str(out), "--threshold", "1.0"])
    assert result.exit_code == 3, result.output  # completed, with one failed image
    assert "colorized" not in result.output or "ok" in result.output
    shown = runner.invoke(app, ["manifest", "show", str(out)])
    assert shown.exit_code == 0 and "6 rows: failed 1, ok 4, skipped 1" in shown.output
    listed = runner.invoke(app, ["review", "list", "--out", str(out)])
    assert listed.exit_code == 0 and "4 pending" in listed.output
    again = runner.invoke(app, ["run", str(collection), "--out", str(out)])
    assert again.exit_code == 0, again.output  # nothing left to do, nothing failed in this run

    upload_collection(s3, "cli-archive", "coll", collection)
    s3.create_bucket(Bucket="cli-derivatives")
    via_s3 = runner.invoke(
        app,
        [
            "run",
            "s3://cli-archive/coll/",
            "--out",
            "s3://cli-derivatives/coll/",
            "--endpoint-url",
            moto_endpoint,
            "--review-db",
            f"sqlite:///{tmp_path / 's3q.sqlite'}",
        ],
    )
    assert via_s3.exit_code == 3, via_s3.output
    shown = runner.invoke(app, ["manifest", "show", "s3://cli-derivatives/coll/", "--endpoint-url", moto_endpoint])
    assert "6 rows" in shown.output


def test_every_command_has_help():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in (
        "version", "run", "serve", "plan", "train", "eval", "export-onnx", "calibrate", "models", "provenance",
        "iiif", "review list", "review serve", "review add-user", "review export", "manifest show", "runs list",
        "runs show",
    ):  # fmt: skip
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (command, result.output)
        assert command.split()[0] in top.output


def test_cli_modules_stay_thin():
    from pathlib import Path

    import chromata.cli

    sizes = {p.name: len(p.read_text().splitlines()) for p in Path(chromata.cli.__file__).parent.glob("*.py")}
    assert len(sizes) > 3 and max(sizes.values()) <= 400, sizes


def test_training_errors_are_one_line(tmp_path):
    _one_line_error(chromata("train", "--data", str(tmp_path / "nope")), "training data folder not found")
    _one_line_error(chromata("train", "--data", str(tmp_path), "--crop", "100"), "--crop must be a multiple of 32")
    _one_line_error(chromata("eval", str(tmp_path), "--split", "x"), "--split must be val or all")
    _one_line_error(chromata("runs", "show", str(tmp_path), "r-1"), f"no run r-1 in {tmp_path}")


def test_iiif_command_offers_the_originals_where_they_are_served(tmp_path):
    import json
    from dataclasses import replace

    from chromata.archive.local import LocalStorage
    from chromata.record.iiif import IIIF_KEY
    from chromata.record.manifest import write_fragment
    from tests.test_manifest import rec

    out = tmp_path / "out"
    write_fragment(LocalStorage(out), "s1", [replace(rec("a.jpg"), output_uri=str(out / "a.jpg"))])
    args = ["iiif", str(out), "--base-url", "https://img.example/out/"]
    result = CliRunner().invoke(app, [*args, "--source-base-url", "https://img.example/src/"])
    assert result.exit_code == 0, result.output
    assert "IIIF manifest with 1 canvases" in result.output
    manifest = json.loads((out / IIIF_KEY).read_text())
    assert "https://img.example/src/a.jpg" in json.dumps(manifest)  # the original, beside the colorized one
    _one_line_error(chromata(*args, "--source-base-url", "ftp://x/"), "--source-base-url must be an http(s) address")


@pytest.mark.slow
@pytest.mark.ray
def test_the_default_run_queues_a_budget_with_readable_reasons_and_plan_says_so(ray_local, prefect_harness, tmp_path):
    """The demo as a new user meets it: `plan` says how many images will reach the curators, the run sends
    the least confident 15 % (2 of the 10 sample scans), and `review list` says why in words."""
    from tests.conftest import EXAMPLES

    runner = CliRunner(env={"COLUMNS": "200"})
    out = tmp_path / "colorized"
    planned = runner.invoke(app, ["plan", str(EXAMPLES), "--out", str(out)])
    assert planned.exit_code == 0 and "at most 2 of 10 images" in planned.output, planned.output
    ran = runner.invoke(app, ["run", str(EXAMPLES), "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    listed = runner.invoke(app, ["review", "list", "--out", str(out)])
    assert listed.exit_code == 0 and "2 pending" in listed.output, listed.output
    assert listed.output.count("among the least confident of its run") == 2
    assert "least_confident" not in listed.output  # words, not codes


def test_calibrate_out_is_the_calibration_file_and_the_destination_has_its_own_option(tmp_path):
    """``calibrate --out`` named the calibration file, and with --from-decisions the destination: now the
    destination is --destination, and the old spelling still works with a deprecation warning."""
    from tests.test_routing_fit import decided_destination

    decided_destination(tmp_path)
    dest = str(tmp_path / "out")
    old = chromata("calibrate", "--from-decisions", "--out", dest, "--try")
    assert old.returncode == 0, old.stderr
    assert "deprecated: use --destination DEST" in old.stderr and "would be adopted" in old.stdout
    _one_line_error(
        chromata("calibrate", "--from-decisions", "--out", dest, "--destination", dest), "--out is the calibration file"
    )
    _one_line_error(chromata("calibrate", "--destination", dest), "--destination and --try go with --from-decisions")
    help_text = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["calibrate", "--help"]).output
    assert "--destination" in help_text and "--try" in help_text and "--bulk-weight" in help_text


def test_iiif_command_names_sources_only_by_the_public_identifier_it_is_given(tmp_path):
    import json
    from dataclasses import replace

    from chromata.archive.local import LocalStorage
    from chromata.record.iiif import IIIF_KEY
    from chromata.record.manifest import write_fragment
    from tests.test_manifest import rec

    out = tmp_path / "out"
    row = replace(rec("a.jpg"), source_uri="/srv/masters/restricted/a.jpg", output_uri=str(out / "a.jpg"))
    write_fragment(LocalStorage(out), "s1", [row])
    args = ["iiif", str(out), "--base-url", "https://img.example/out/", "--collection", "plates"]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert "/srv/masters" not in (out / IIIF_KEY).read_text()
    assert CliRunner().invoke(app, [*args, "--source-id", "{collection}:{stem}"]).exit_code == 0
    manifest = json.loads((out / IIIF_KEY).read_text())
    assert {"label": {"en": ["Source"]}, "value": {"en": ["plates:a"]}} in manifest["items"][0]["metadata"]
    assert "/srv/masters" not in json.dumps(manifest)
    _one_line_error(chromata(*args, "--source-id", "{source_uri}"), "--source-id: bad source id template")
