from dataclasses import replace

from typer.testing import CliRunner

from chromata.cli import app
from chromata.config import build_config
from chromata.manifest import params_json, write_fragment
from chromata.planning import plan_run
from chromata.report import report_key
from chromata.runs import REFERENCE_BYTES_PER_SECOND_PER_WORKER, estimate, run_history
from chromata.storage import LocalStorage
from tests.test_manifest import rec


def _history(out):
    st = LocalStorage(out)
    t0 = 1_700_000_000.0
    rows = [
        replace(
            rec(f"{i}.jpg"),
            run_id="run-a",
            started_at=t0 + i,
            finished_at=t0 + i + 1,
            source_size=1_000_000,
            params_json=params_json({"workers": 2}),
        )
        for i in range(10)
    ]
    rows.append(
        replace(
            rec("x.jpg", status="failed"),
            run_id="run-a",
            started_at=t0,
            finished_at=t0 + 1,
            params_json=params_json({"workers": 2}),
        )
    )
    write_fragment(st, "s1", rows)
    later = [replace(rec("y.jpg"), run_id="run-b", started_at=t0 + 100, finished_at=t0 + 102) for _ in range(1)]
    write_fragment(st, "s2", later)
    st.write_atomic(report_key("run-a"), b"<html></html>")
    return st


def test_run_history(tmp_path):
    a, b = run_history(_history(tmp_path))
    assert (a.run_id, a.ok, a.failed, a.images, a.workers, a.seconds) == ("run-a", 10, 1, 11, 2, 10.0)
    assert a.bytes_per_second_per_worker == (10 * 1_000_000 + 10) / 10.0 / 2
    assert b.run_id == "run-b" and b.started > a.finished


def test_estimate_uses_latest_measured_run_or_reference(collection, tmp_path):
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"))
    p = plan_run(cfg)
    bytes_todo = sum(s.total_bytes for s in p.shards)
    ref = estimate(p.images, bytes_todo, [], workers=2)
    assert ref.bytes_per_second_per_worker == REFERENCE_BYTES_PER_SECOND_PER_WORKER and "reference" in ref.basis
    assert ref.hours == bytes_todo / (REFERENCE_BYTES_PER_SECOND_PER_WORKER * 2) / 3600
    measured = estimate(p.images, bytes_todo, run_history(_history(tmp_path / "hist")), workers=4)
    assert "run-a" in measured.basis  # run-b has too few images to measure


def test_runs_and_plan_commands(collection, tmp_path):
    out = tmp_path / "out"
    _history(out)
    runner = CliRunner(env={"COLUMNS": "200"})
    listed = runner.invoke(app, ["runs", "list", str(out)])
    assert listed.exit_code == 0 and "run-a" in listed.output and "run-b" in listed.output
    shown = runner.invoke(app, ["runs", "show", str(out), "run-a"])
    assert shown.exit_code == 0 and "decode_error" in shown.output and "run-a.html" in shown.output
    missing = runner.invoke(app, ["runs", "show", str(out), "nope"])
    assert missing.exit_code != 0
    planned = runner.invoke(app, ["plan", str(collection), "--out", str(tmp_path / "fresh"), "--workers", "2"])
    assert planned.exit_code == 0, planned.output
    assert "to colorize" in planned.output and "6" in planned.output and "expected processing time" in planned.output


def _scaling_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"
    spec = importlib.util.spec_from_file_location("scaling_benchmark", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_rate_is_the_scaling_benchmark_s_and_the_docs_quote_it():
    """The planner's reference comes from benchmarks/scaling.py (it rewrites the block in runs.py and the
    section in docs/benchmarks.md in the same run), so the two cannot disagree without a failing test."""
    import re
    from pathlib import Path

    scaling = _scaling_module()
    root = Path(__file__).resolve().parents[1]
    block = scaling.REFERENCE_BLOCK.search((root / "chromata" / "runs.py").read_text())
    assert block, "chromata/runs.py lost the block benchmarks/scaling.py writes"
    assert f"REFERENCE_BYTES_PER_SECOND_PER_WORKER = {REFERENCE_BYTES_PER_SECOND_PER_WORKER:.4g}" in block.group(0)
    section = (root / "docs" / "benchmarks.md").read_text().split("<!-- BEGIN scaling -->", 1)[1]
    section = section.split("<!-- END scaling -->", 1)[0]
    quoted = re.search(r"REFERENCE_BYTES_PER_SECOND_PER_WORKER = ([0-9.e+]+)", section)
    assert quoted and float(quoted.group(1)) == REFERENCE_BYTES_PER_SECOND_PER_WORKER


def test_scaling_benchmark_rewrites_only_the_reference_block(tmp_path):
    scaling = _scaling_module()
    runs_py = tmp_path / "runs.py"
    before = f"x = 1\n{scaling.reference_block(1.0e6, 'old')}y = 2\n"
    runs_py.write_text(before)
    scaling.write_reference(2.345e6, "measured", runs_py)
    text = runs_py.read_text()
    assert text.startswith("x = 1\n") and text.endswith("y = 2\n")
    assert "REFERENCE_BYTES_PER_SECOND_PER_WORKER = 2.345e+06" in text and "measured" in text and "old" not in text
