"""The published families (DDColor, DeOldify) end to end: `chromata run` on the bundled sample with a checkpoint
in each family's published layout (weights by the family's deterministic recipe, written here, never committed):
every image a row naming the family, variant, licence and weights; labels embedded; the review budget routes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks._checkpoints import recipe_checkpoint
from chromata.archive.local import LocalStorage
from chromata.archive.storage import sha256_file
from chromata.cli import app
from tests.conftest import EXAMPLES, needs_tool

EXIFTOOL = "exiftool"
needs_exiftool = needs_tool("exiftool")
LICENCES = {"ddcolor": "Apache-2.0", "deoldify": "MIT"}
VARIANTS = {"ddcolor": "tiny", "deoldify": "artistic"}


def official_checkpoint(family: str, folder: Path) -> Path:
    """A checkpoint in the layout the family's authors publish (DDColor's BasicSR ``{'params': …}``, DeOldify's
    fastai ``{'model': …}``), recipe weights."""
    return recipe_checkpoint(family, VARIANTS[family], folder)


@needs_exiftool
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("family", ["ddcolor", "deoldify"])
def test_chromata_run_with_a_published_family(family, ray_local, prefect_harness, tmp_path):
    from chromata.record.manifest import read_manifest

    weights = official_checkpoint(family, tmp_path)
    out = tmp_path / "colorized"
    runner = CliRunner(env={"COLUMNS": "200"})
    args = ["run", str(EXAMPLES), "--out", str(out), "--model", f"{family}:{weights}", "--model-size", "64"]
    ran = runner.invoke(app, args)
    assert ran.exit_code == 0, ran.output

    rows = read_manifest(LocalStorage(out)).to_pylist()
    assert len(rows) == 10 and {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    for r in rows:
        assert r["model_name"] == f"{family}-{VARIANTS[family]}" and r["model_sha256"] == sha256_file(weights)
        params = json.loads(r["params_json"])
        assert params["model_family"] == family and params["model_variant"] == VARIANTS[family]
        assert params["model_licence"] == LICENCES[family] and params["model_size"] == 64
        assert params["score_calibrated"] is False and params["restraint"] is None  # the family's own colours
        assert params["input_size"] == 64
        # the confidence is the same estimator's for every family (score version 2, chromata.judgement.assess)
        assert params["score_version"] == "2" and params["confidence_estimator"] == "confidence-v2"

    # the 16-bit scan stays 16-bit, and its colour is the model's (not the grey input back)
    deep = cv2.imread(str(out / "kangaroo-16bit.tif"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.ndim == 3
    assert np.abs(deep[..., 0].astype(int) - deep[..., 2].astype(int)).mean() > 100  # B and R differ: colour

    # every output is labelled with the family, its variant and licence
    tags = json.loads(
        subprocess.run(
            [EXIFTOOL, "-j", "-G1", "-a", str(out / "cat.jpg"), str(out / "kangaroo-16bit.tif")],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    for t in tags:
        assert t["XMP-chromata:ModelFamily"] == family and t["XMP-chromata:ModelLicence"] == LICENCES[family]
        assert t["XMP-chromata:ModelVariant"] == VARIANTS[family]
        assert f"{family}, {VARIANTS[family]}, {LICENCES[family]}" in t["XMP-dc:Description"]

    # uncalibrated: the review budget routes (the least confident 15 %: 2 of 10), each with a reason in words
    listed = runner.invoke(app, ["review", "list", "--out", str(out)])
    assert listed.exit_code == 0 and "2 pending" in listed.output, listed.output


@pytest.mark.parametrize("family", ["ddcolor", "deoldify"])
def test_a_wrong_or_truncated_checkpoint_is_one_readable_line(family, tmp_path):
    """Through the CLI as a museum meets it: exit 2, one line on stderr naming the file, no traceback — checked
    before any engine starts (before, every actor failed to load it, each with a traceback, and the run
    retried the shards until it gave up)."""
    import sys

    weights = official_checkpoint(family, tmp_path)
    truncated = tmp_path / f"truncated-{family}.pth"
    truncated.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    other = tmp_path / f"other-{family}.pth"
    other_family = "deoldify" if family == "ddcolor" else "ddcolor"
    official_checkpoint(other_family, tmp_path).rename(other)
    for bad in (truncated, other):
        proc = subprocess.run(
            [sys.executable, "-m", "chromata.cli", "run", str(EXAMPLES), "--out", str(tmp_path / "out"),
             "--model", f"{family}:{bad}", "--model-size", "64"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert bad.name in lines[0] and "Traceback" not in proc.stderr
        assert not (tmp_path / "out" / "_chromata").exists()  # nothing started, nothing written


def test_model_size_is_checked_per_family_before_any_work():
    from chromata.config import build_config
    from chromata.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of 32"):
        build_config(source="a", destination="b", model="ddcolor:x.pth", model_size=500)
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_config(source="a", destination="b", model="deoldify:x.pth", model_size=500)
    with pytest.raises(ConfigError, match="own working size"):
        build_config(source="a", destination="b", model="builtin", model_size=512)
    assert build_config(source="a", destination="b", model="deoldify:x.pth", model_size=560).model_size == 560


def test_chromata_models_says_where_each_family_is_published_and_under_which_licence():
    listed = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["models"])
    assert listed.exit_code == 0, listed.output
    text = " ".join(listed.output.split())
    for words in ("piddnad/DDColor", "ddcolor_paper_tiny.pth", "jantic/DeOldify", "ColorizeArtistic_gen.pth",
                  "Apache-2.0", "MIT", "multiple of 32, default 512", "multiple of 16, default 560"):  # fmt: skip
        assert words in text, words


class _Payload:
    """What a malicious checkpoint carries: unpickling it would run code (here: write a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("family", ["ddcolor", "deoldify", "eccv16", "builtin"])
def test_a_checkpoint_that_would_run_code_is_refused_unread(family, tmp_path):
    import torch

    from chromata.errors import ConfigError
    from chromata.models import check_model

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"params": {"x": torch.zeros(1)}, "model": _Payload(marker)}, evil)
    with pytest.raises(ConfigError, match="holds Python objects, not only tensors") as err:
        check_model(f"{family}:{evil}")
    assert "\n" not in str(err.value) and not marker.exists()


def test_precision_is_checked_per_family_and_device_before_any_work():
    from chromata.config import build_config
    from chromata.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        build_config(source="a", destination="b", model="ddcolor:x.pth", precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match="'eccv16' runs at --precision auto or fp32, not fp16"):
        build_config(source="a", destination="b", model="eccv16:x.pth", precision="fp16")
    with pytest.raises(ConfigError, match="from 16 to 1024"):  # past the 1024 px reduction it would only upsample
        build_config(source="a", destination="b", model="deoldify:x.pth", model_size=2048)
    assert build_config(source="a", destination="b", model="builtin", precision="fp16").precision == "fp16"


def test_a_run_joining_a_cluster_may_name_weights_only_its_workers_have(tmp_path, caplog):
    """Checked here when the file is here; on a joined cluster a missing local file is a warning (the workers
    check it), a present but damaged one still an error."""
    from chromata.config import build_config
    from chromata.errors import ConfigError
    from chromata.pipeline.planning import preflight

    src = tmp_path / "scans"
    src.mkdir()
    remote = build_config(source=str(src), destination=str(tmp_path / "o"), model="ddcolor:/models/ddcolor.pth",
                          ray_address="ray://head:10001")  # fmt: skip
    preflight(remote)
    assert "the cluster's workers must have it" in caplog.text
    with pytest.raises(ConfigError, match="not found"):
        preflight(remote.model_copy(update={"ray_address": None}))
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable PyTorch checkpoint"):
        preflight(remote.model_copy(update={"model": f"ddcolor:{damaged}"}))
