"""How each decision was made — reviewed on its own (the item's page, or alone through the API) or in bulk
from the queue grid — recorded in the log (migration 0004) on SQLite and PostgreSQL, exported beside the
manifest, and read by the routing refit, which weighs bulk approvals less. The admin page says how many days
its history covers."""

import io

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from chromata.archive.local import LocalStorage
from chromata.judgement import routing_fit
from chromata.record.decisions import latest_decisions, write_decisions
from chromata.record.manifest import write_fragment
from chromata.review.bulk import decide_each
from chromata.review.export import export_decisions
from chromata.review.statistics import HEALTH_DAYS
from chromata.review.store import ReviewQueue
from tests.test_manifest import rec
from tests.test_review_app import PASSWORD, _app, _csrf, _login, db_url  # noqa: F401 - db_url is a fixture


def _queued(storage: LocalStorage, n: int = 24):  # type: ignore[no-untyped-def]
    """``n`` colorized rows in the manifest (plain fixed scores, no heatmap), all queued for review."""
    records = [
        rec(f"{i:02d}.jpg", confidence=round(0.1 + 0.8 * i / n, 4), confidence_reasons=[], needs_review=True,
            output_sha256=f"{i:064x}", heatmap_key=None)
        for i in range(n)
    ]  # fmt: skip
    write_fragment(storage, "s1", records)
    return records


def test_each_decision_records_how_it_was_made_and_the_refit_reads_the_export(db_url, tmp_path):  # noqa: F811
    storage = LocalStorage(tmp_path / "out")
    records = _queued(storage)
    q = ReviewQueue(db_url)
    try:
        assert q.enqueue(records, collection="plates") == len(records)
        q.add_user("ada", PASSWORD)
        ids = [e.id for e in q.list(limit=100)]  # least confident first
        for item_id in ids[:6]:  # reviewed one by one: the least confident rejected, then approved
            assert q.claim(item_id, "ada")
            q.decide(item_id, "ada", "reject" if item_id in ids[:3] else "approve")
        q.claim(ids[6], "ada")
        q.decide(ids[6], "ada", "recolour", "too green")
        assert decide_each(q, ids[7:10], "ada", "reject", 600).decided == ids[7:10]
        assert decide_each(q, ids[10:], "ada", "approve", 600).decided == ids[10:]
        with pytest.raises(ValueError, match="unknown decision mode"):
            q.decide(ids[0], "ada", "approve", mode="glance")
        log = {d["item_id"]: d["mode"] for d in q.decisions()}
        assert [log[i] for i in ids] == ["item"] * 7 + ["bulk"] * (len(ids) - 7)
        key, rows = export_decisions(q, storage)
    finally:
        q.close()
    table = pq.read_table(io.BytesIO(storage.read(key)))
    assert rows == len(records) and "mode" in table.column_names
    # the export carries the log's verbs (approve, reject, recolour); the refit reads them as good and bad
    examples, left_out = routing_fit.examples_from(storage)
    assert left_out == 0 and len(examples) == len(records)
    by_image = {e.image_id: e for e in examples}
    modes = {r.image_id: ("item" if i < 7 else "bulk") for i, r in enumerate(records)}
    assert {i: e.mode for i, e in by_image.items()} == modes
    assert sum(not e.good for e in examples) == 3 + 1 + 3
    bulk_approvals = [e for e in examples if e.mode == "bulk" and e.good]
    assert len(bulk_approvals) == len(records) - 10
    assert {routing_fit.weight_of(e) for e in bulk_approvals} == {routing_fit.BULK_WEIGHT}
    assert {routing_fit.weight_of(e) for e in examples if e not in bulk_approvals} == {1.0}
    fit = routing_fit.fit_routing(examples)
    assert fit.report["decisions_by_mode"] == {"item": 7, "bulk": len(records) - 7, "unknown": 0}
    assert fit.report["effective_decisions"] == pytest.approx(10 + routing_fit.BULK_WEIGHT * len(bulk_approvals))


def test_the_pages_and_the_api_log_item_and_bulk_decisions(tmp_path):
    storage = LocalStorage(tmp_path / "out")
    records = _queued(storage, 6)
    q = ReviewQueue(f"sqlite:///{tmp_path / 'q.sqlite'}")
    q.enqueue(records, collection="plates")
    q.add_user("ada", PASSWORD)
    ids = [e.id for e in q.list(limit=100)]
    client = TestClient(_app(q, tmp_path / "out"), follow_redirects=False)
    _login(client)
    token = _csrf(client)
    assert q.claim(ids[0], "ada")
    page = client.post(f"/items/{ids[0]}/decision", data={"decision": "approve", "csrf_token": token})
    assert page.status_code == 303
    assert q.claim(ids[1], "ada")
    api = client.post(f"/api/items/{ids[1]}/decision", json={"decision": "reject"}, headers={"X-CSRF-Token": token})
    assert api.status_code == 200, api.text
    grid = client.post("/decisions", data={"decision": "approve", "csrf_token": token, "ids": [str(ids[2])]})
    assert grid.status_code == 303
    many = client.post("/api/decisions", json={"decision": "reject", "item_ids": ids[3:5]},
                       headers={"X-CSRF-Token": token})  # fmt: skip
    assert many.status_code == 200, many.text
    log = {d["item_id"]: d["mode"] for d in q.decisions()}
    assert log == {ids[0]: "item", ids[1]: "item", ids[2]: "bulk", ids[3]: "bulk", ids[4]: "bulk"}
    q.close()


def test_migration_0004_keeps_the_old_decisions_without_a_mode(db_url, tmp_path):  # noqa: F811
    """A log from before 0004: its decisions stay as they were (mode not recorded), are exported with a null
    mode and count in the refit as "unknown" with full weight; decisions after it have their mode."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import MetaData, Table, create_engine, insert

    from chromata.review.database import MIGRATIONS

    engine = create_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    md = MetaData()
    items, users, decisions = (Table(t, md, autoload_with=engine) for t in
                               ("review_items", "review_users", "review_decisions"))  # fmt: skip
    assert "mode" not in decisions.c  # really the old schema
    with engine.begin() as conn:
        conn.execute(insert(users).values(username="ada", password_hash="x", role="curator", active=True,
                                          created_at=1.0))  # fmt: skip
        conn.execute(insert(items).values(
            id=1, item_key="k1", image_id="i1", collection="plates", run_id="r0", shard_id="s0", source_uri="/s/1",
            output_uri="/o/1", output_sha256="0" * 64, confidence=0.1, reasons_json="[]", model_name="m",
            status="approved", enqueued_at=1.0, decided_at=2.0))  # fmt: skip
        conn.execute(insert(decisions).values(item_id=1, image_id="i1", username="ada", decision="approve",
                                              note="", decided_at=2.0))  # fmt: skip
    engine.dispose()
    q = ReviewQueue(db_url)
    try:
        (old,) = q.decisions()
        assert old["decision"] == "approve" and old["mode"] is None
        storage = LocalStorage(tmp_path / "out")
        export_decisions(q, storage)
    finally:
        q.close()
    (exported,) = latest_decisions(storage).values()
    assert exported["mode"] is None
    # an export written before the column existed reads back the same way
    write_decisions(storage, [{"image_id": "i2", "output_sha256": "1" * 64, "decision": "reject", "decided_at": 3.0}])
    assert latest_decisions(storage)[("i2", "1" * 64)]["mode"] is None


def test_the_admin_page_says_how_many_days_its_history_covers(tmp_path):
    q = ReviewQueue(f"sqlite:///{tmp_path / 'q.sqlite'}")
    q.add_user("root", PASSWORD, "admin")
    client = TestClient(_app(q, tmp_path), follow_redirects=False)
    _login(client, "root")
    page = client.get("/admin")
    assert page.status_code == 200
    assert f"last {HEALTH_DAYS} days" in page.text and "chromata review export" in page.text
    assert client.get("/api/health").json()["days"] == HEALTH_DAYS == 90
    q.close()
