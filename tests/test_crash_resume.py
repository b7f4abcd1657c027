"""kill -9 the whole `chromata run` process group mid-run; the next run finishes the job with exactly
one output and one manifest row per image."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.record.manifest import fragment_keys, read_manifest
from tests.conftest import EXAMPLES

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _many_scans(root, copies=6):
    root.mkdir()
    scans = [p for p in EXAMPLES.iterdir() if p.suffix != ".csv"]
    for i in range(copies):
        for p in scans:
            shutil.copy(p, root / f"{i:02d}-{p.name}")
    return len(scans) * copies


def test_kill_minus_nine_then_resume(tmp_path, ray_local, prefect_harness):
    src = tmp_path / "scans"
    total = _many_scans(src)
    out = tmp_path / "out"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_ADDRESS": ""}
    env.pop("PREFECT_API_URL", None)  # the child uses its own ephemeral Prefect, like a user would
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chromata.cli",
            "run",
            str(src),
            "--out",
            str(out),
            "--shard-size",
            "4",
            "--batch-size",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "_chromata" / "manifest").is_dir() and len(fragment_keys(LocalStorage(out))) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be killed"
        committed_before = len(fragment_keys(LocalStorage(out)))
        assert committed_before >= 2
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Prefect server and its Ray processes
        proc.wait(timeout=30)
    assert len(read_manifest(LocalStorage(out))) < total  # really interrupted

    from chromata.flows.colorize_collection import colorize_collection

    cfg = build_config(source=str(src), destination=str(out), shard_size=4, batch_size=2)
    summary = colorize_collection(cfg)
    assert summary["already_done"] >= 4 * committed_before
    rows = read_manifest(LocalStorage(out)).to_pylist()
    per_key = Counter(r["source_key"] for r in rows)
    assert len(per_key) == total and set(per_key.values()) == {1}  # one row per image, none lost
    assert all(r["status"] == "ok" for r in rows)
    # a write cut by the kill can leave a .tmp- file (never a partial output under a real name)
    outputs = [
        p for p in out.rglob("*") if p.is_file() and "_chromata" not in p.parts and not p.name.startswith(".tmp-")
    ]
    assert sorted(p.name for p in outputs) == sorted(per_key)  # one output per image
