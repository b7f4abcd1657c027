"""Checks that cannot pass by accident: in CI a test whose external program is missing fails, and so does
the CI script itself, instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOOLS, in_ci, needs_tool, tool_problem

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_tool_skips_on_a_developer_machine_and_fails_in_ci(tmp_path):
    empty = str(tmp_path)  # a PATH with no programs on it
    for name in ("exiftool", "promtool"):
        assert tool_problem(name, ci=False, path=empty) == ("skip", f"{name} ({TOOLS[name][1]}) is not installed")
        outcome, reason = tool_problem(name, ci=True, path=empty) or ("", "")
        assert outcome == "fail" and "CI is set" in reason
    assert in_ci({"CI": "true"}) and in_ci({"CI": "1"}) and not in_ci({}) and not in_ci({"CI": "false"})
    with pytest.raises(ValueError, match="unknown tool"):
        needs_tool("gimp")


def test_the_conftest_hook_turns_the_skip_into_a_failure_under_ci(tmp_path):
    """A real pytest session: a test marked needs_tool("promtool") with promtool off the PATH."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "tests" / "test_tool.py").write_text(
        "from tests.conftest import needs_tool\n\n\n@needs_tool('promtool')\ndef test_uses_promtool():\n    pass\n"
    )
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}

    def session(ci: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_tool.py"]
        return subprocess.run(cmd, cwd=tmp_path, env={**env, "CI": ci}, capture_output=True, text=True, timeout=120)

    dev, ci = session(""), session("true")
    assert dev.returncode == 0 and "1 skipped" in dev.stdout, dev.stdout
    assert ci.returncode == 1 and "1 error" in ci.stdout and "CI is set" in ci.stdout, ci.stdout


def test_ci_script_fails_when_a_tool_cannot_be_installed(tmp_path):
    script = ROOT / ".ci" / "run"
    bare = {"PATH": str(tmp_path), "CHROMIUM": str(tmp_path / "chromium")}  # no apt-get, no tools
    failed = subprocess.run(["/bin/bash", str(script), "--tools-only"], env=bare, capture_output=True, text=True)
    assert failed.returncode == 1 and "could not install chromium prometheus libimage-exiftool-perl" in failed.stderr
    if all(tool_problem(name, ci=True) is None for name in TOOLS):  # this machine has them: the check passes
        ok = subprocess.run(["/bin/bash", str(script), "--tools-only"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
