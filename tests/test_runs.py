from dataclasses import replace

from typer.testing import CliRunner

from chromata.archive.local import LocalStorage
from chromata.cli import app
from chromata.config import build_config
from chromata.monitoring.report import report_key
from chromata.pipeline.planning import plan_run
from chromata.record.manifest import params_json, write_fragment
from chromata.record.runs import estimate, run_history
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


def test_estimate_uses_the_latest_measured_run_and_is_unknown_without_one(collection, tmp_path):
    """No fallback rate: a reference measured once (on one machine and tree) went stale with the engine's next
    speed-up, so a destination without a measured run gets no time estimate rather than a wrong one."""
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"))
    p = plan_run(cfg)
    bytes_todo = sum(s.total_bytes for s in p.shards)
    unknown = estimate(p.images, bytes_todo, [], workers=2)
    assert unknown.bytes_per_second_per_worker is None and unknown.hours is None
    assert unknown.basis.startswith("unknown: no run on this destination yet")
    history = run_history(_history(tmp_path / "hist"))
    measured = estimate(p.images, bytes_todo, history, workers=4)
    assert "run-a" in measured.basis  # run-b has too few images to measure
    assert measured.hours == bytes_todo / (history[0].bytes_per_second_per_worker * 4) / 3600
    assert estimate(p.images, bytes_todo, history[1:], workers=4).hours is None  # run-b alone: too few images


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
    assert "unknown: no run on this destination yet" in planned.output  # no history: no made-up rate
    measured = runner.invoke(app, ["plan", str(collection), "--out", str(out), "--workers", "2"])
    assert measured.exit_code == 0, measured.output
    assert "measured in run run-a" in measured.output and " h (" in measured.output


def test_the_run_report_says_how_its_images_were_routed_and_whether_the_fit_was_adopted(tmp_path):
    from chromata.judgement import routing_fit
    from chromata.monitoring.report import ReportCollector, render_html
    from chromata.monitoring.summary import RunSummary
    from tests.test_routing_fit import _examples_the_current_score_ranks_perfectly

    st = LocalStorage(tmp_path / "out")
    worse = routing_fit.fit_routing(_examples_the_current_score_ranks_perfectly())
    routing_fit.save(st, worse)
    collector = ReportCollector()
    collector.add([rec("a.jpg"), rec("b.jpg", params_json=params_json({"routing_fit_sha256": worse.sha256}))])
    page = render_html(RunSummary("run-a", "src", "dst"), collector, st)
    assert "Routing to the curators" in page and "1 images: the fixed score (no adopted routing fit)" in page
    assert f"1 images: routing fit {worse.sha256[:12]}, NOT adopted (given explicitly)" in page
    assert "does not beat the current score out of sample" in page
