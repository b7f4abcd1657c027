"""Prometheus metrics: recorded from a real run, and every name the dashboards and alerts query exists."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from chromata.config import build_config
from chromata.media.imageio import is_image_key
from tests.conftest import needs_tool

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
RULES = sorted((ROOT / "dashboards" / "alerts").glob("*.yml"))
NAME = re.compile(r"\b(chromata_[a-z0-9_]+)\b")


def _queries() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        exprs += [v.get("query", "") for v in dash.get("templating", {}).get("list", []) if v.get("type") == "query"]
        out[path.name] = exprs
    for path in RULES:
        doc = yaml.safe_load(path.read_text())
        out[path.name] = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    return out


def test_dashboards_and_rules_are_well_formed():
    assert DASHBOARDS and RULES
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["panels"]
        assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
        assert all(p["targets"] and p["title"] for p in dash["panels"])
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"]
                assert rule["labels"]["severity"] in {"page", "ticket"}


@needs_tool("promtool")
def test_promtool_accepts_the_rules():
    for path in RULES:
        out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="module")
def engines(ray_local, prefect_harness):
    from chromata.flows.colorize_collection import colorize_collection

    return colorize_collection


@pytest.mark.ray
@pytest.mark.slow
def test_a_real_run_registers_every_metric_the_dashboards_use(engines, collection, tmp_path):
    from chromata.monitoring.metrics import METRICS

    textfile = tmp_path / "textfile" / "chromata.prom"
    cfg = build_config(
        source=str(collection),
        destination=str(tmp_path / "out"),
        shard_size=2,
        batch_size=2,
        review_threshold=1.0,
        collection="metrics-test",
        metrics_textfile=str(textfile),
    )
    summary = engines(cfg)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (4, 1, 1)

    registered = METRICS.names()
    for source, exprs in _queries().items():
        used = {m for e in exprs for m in NAME.findall(e)}
        assert used, source
        assert used <= registered, f"{source} queries metrics the code does not register: {used - registered}"

    text = textfile.read_text()  # what node-exporter's textfile collector (or a Pushgateway) receives
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }

    def value(name: str, **labels: str) -> float:
        want = {"collection": "metrics-test", **labels}
        hits = [
            v
            for k, v in samples.items()
            if k.split("{")[0] == name and all(f'{lk}="{lv}"' in k for lk, lv in want.items())
        ]
        assert hits, (name, labels)
        return sum(hits)

    assert value("chromata_images_total", status="ok") == 4
    assert value("chromata_images_total", status="failed", reason="decode_error") == 1
    assert value("chromata_images_total", status="skipped", reason="already_colour") == 1
    assert value("chromata_decode_seconds_count") == 6  # every object read, including the broken one
    assert value("chromata_encode_seconds_count") == 4
    assert value("chromata_confidence_count") == 4
    assert value("chromata_shards_total", outcome="done") == 3
    images = [p for p in collection.rglob("*") if p.is_file() and is_image_key(p.name)]
    assert value("chromata_bytes_read_total") == sum(p.stat().st_size for p in images)
    assert value("chromata_bytes_written_total") > 0
    assert value("chromata_run_failed") == 0 and value("chromata_run_last_success_timestamp_seconds") > 0
    assert value("chromata_objects_listed_total") == 6
    # threshold 1.0 queues every colorized image, and each says why (an item counts once per reason it has)
    assert value("chromata_review_queue_items", reason="below_threshold") == 4
    assert value("chromata_pool_queued_shards") == 0  # the pool drained


def test_review_queue_gauges_and_a_failed_run():
    from prometheus_client import CollectorRegistry

    from chromata.monitoring.metrics import Metrics

    m = Metrics(CollectorRegistry())
    m.observe_review_queue([("a", "low_contrast,heavy_noise", 100.0), ("a", "", 50.0)], ["a", "b"])
    assert m.review_items.labels("a", "low_contrast")._value.get() == 1
    assert m.review_items.labels("a", "none")._value.get() == 1
    assert m.review_oldest.labels("b")._value.get() == 0.0
    assert m.review_oldest.labels("a")._value.get() > 1e9  # seconds since 1970 + 50
    m.observe_run("a", 12.0, 0, failed=True)
    assert m.run_failed.labels("a")._value.get() == 1.0
    assert 'chromata_run_failed{collection="a"} 1.0' in m.text().decode()
