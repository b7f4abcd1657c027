"""The review web app and its store, on SQLite and on the local PostgreSQL server: accounts, claims,
decisions, security, the JSON API, export back to the data, and re-running rejected images."""

import ast
import io
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from chromata.archive import open_storage
from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.errors import ConfigError
from chromata.media.imageio import is_image_key
from chromata.pipeline import ShardProcessor, make_shards
from chromata.record.manifest import write_fragment
from chromata.review.app import AppSettings, create_app
from chromata.review.export import export_decisions, latest_decisions
from chromata.review.store import ClaimError, Filters, ReviewQueue
from tests.conftest import write_collection

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def colorized(tmp_path_factory):
    """A real run's outputs: 4 colorized images (all sent to review), a manifest, heatmaps."""
    root = tmp_path_factory.mktemp("run")
    write_collection(root / "scans")
    cfg = build_config(source=str(root / "scans"), destination=str(root / "out"), review_threshold=1.0)
    objs = [o for o in LocalStorage(root / "scans").list() if is_image_key(o.key)]
    result = ShardProcessor(cfg).process(next(make_shards(objs, 100)), "run-test")
    write_fragment(LocalStorage(root / "out"), result.shard_id, result.records)
    return root / "out", [r for r in result.records if r.status == "ok"]


@pytest.fixture
def queue(db_url, colorized):
    q = ReviewQueue(db_url)
    q.enqueue(colorized[1], collection="plates")
    q.add_user("ada", PASSWORD, "curator")
    q.add_user("bob", PASSWORD, "curator")
    q.add_user("root", PASSWORD, "admin")
    yield q
    q.close()


# -- store ---------------------------------------------------------------------------------------------
def test_accounts_store_argon2_hashes_only(queue):
    assert queue.authenticate("ada", PASSWORD) == ("ada", "curator")
    assert queue.authenticate("ada", "wrong password!!") is None
    assert queue.authenticate("nobody", PASSWORD) is None
    with queue.engine.connect() as c:
        stored = c.exec_driver_sql("SELECT password_hash FROM review_users WHERE username = 'ada'").scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(ValueError, match="at least 12"):
        queue.add_user("eve", "short", "curator")
    with pytest.raises(ValueError, match="exists"):
        queue.add_user("ada", PASSWORD, "curator")


def test_claims_leases_and_decisions(queue):
    first = queue.claim_next("ada", lease_seconds=60)
    second = queue.claim_next("bob", lease_seconds=60)
    assert first and second and first.id != second.id
    assert first.confidence <= second.confidence  # least confident first
    with pytest.raises(ClaimError):
        queue.decide(first.id, "bob", "approve")  # not bob's claim
    with pytest.raises(ValueError, match="needs a note"):
        queue.decide(first.id, "ada", "recolour", "")
    queue.decide(first.id, "ada", "recolour", "sky should be overcast grey")
    with pytest.raises(ClaimError):
        queue.decide(first.id, "ada", "approve")  # already decided
    # an expired lease is reclaimed by someone else
    short = queue.claim_next("ada", lease_seconds=1.0)
    assert queue.claim_next("ada", lease_seconds=1.0).id == short.id  # your own claim comes back first
    assert not queue.claim(short.id, "root", 60)  # held by ada
    time.sleep(1.1)
    assert queue.claim(short.id, "root", 60)  # lease expired: reclaimed
    with pytest.raises(ClaimError):
        queue.decide(short.id, "ada", "approve")
    log = queue.decisions()
    assert [(d["curator"], d["decision"], d["note"]) for d in log] == [
        ("ada", "recolour", "sky should be overcast grey")
    ]
    assert queue.get(first.id).status == "needs_recolour"
    health = queue.health()
    assert health["decisions_per_curator_per_day"][0]["curator"] == "ada" and health["pending"] == 3


def test_migrations_adopt_a_queue_from_before_migrations(tmp_path, colorized):
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as c:  # the table chromata 0.1 created with create_all: no alembic_version
        c.exec_driver_sql(
            "CREATE TABLE review_items (id INTEGER PRIMARY KEY AUTOINCREMENT, item_key VARCHAR(64) UNIQUE, "
            "image_id VARCHAR(64), collection VARCHAR(255), run_id VARCHAR(64), shard_id VARCHAR(64), "
            "source_uri TEXT, output_uri TEXT, output_sha256 VARCHAR(64), confidence FLOAT, reasons_json TEXT, "
            "model_name VARCHAR(255), status VARCHAR(32), enqueued_at FLOAT)"
        )
    engine.dispose()
    q = ReviewQueue(url)
    assert q.enqueue(colorized[1]) == 4
    q.add_user("ada", PASSWORD)
    assert q.claim_next("ada") is not None
    q.close()
    assert ReviewQueue(url).count() == 4  # opening again is a no-op migration


@pytest.mark.postgres
def test_twenty_parallel_claimers_never_get_the_same_item(pg_url, colorized):
    q = ReviewQueue(pg_url)
    records = colorized[1]
    from dataclasses import replace

    many = [replace(r, image_id=f"{r.image_id}-{i}", output_sha256=f"{i:064x}") for i in range(10) for r in records]
    assert q.enqueue(many) == 40
    for i in range(20):
        q.add_user(f"curator{i}", PASSWORD)
    got: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def claimer(i: int) -> None:
        mine = ReviewQueue(pg_url)
        start.wait()
        while (entry := mine.claim_next(f"curator{i}", lease_seconds=600)) is not None:
            with lock:
                got.append(entry.id)
            if len(got) > 40:
                break
            mine.decide(entry.id, f"curator{i}", "approve")  # raises if another curator held it
        mine.close()

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(claimer, range(20)))
    assert len(got) == 40 and len(set(got)) == 40  # every item handed out exactly once
    assert len(q.decisions()) == 40 and q.count("pending") == 0
    q.close()


# -- the app -------------------------------------------------------------------------------------------
def _app(queue, outputs, **kw):
    return create_app(AppSettings(db_url=queue.url, outputs=str(outputs), **kw))


def _login(client, user="ada", password=PASSWORD):
    page = client.get("/login")
    token = page.cookies.get("chromata_login_csrf") or client.cookies.get("chromata_login_csrf")
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token, "next": "/"})


def _csrf(client):
    return client.get("/api/me").json()["csrf_token"]


PROTECTED = ["/", "/next", "/items/1", "/items/1/image/colour", "/items/1/thumb/grey", "/admin", "/api/items",
             "/api/items/1", "/api/me",
             "/api/openapi.json", "/api/health"]  # fmt: skip


def test_every_route_needs_a_session(queue, colorized):
    client = TestClient(_app(queue, colorized[0]), follow_redirects=False)
    for path in PROTECTED:
        r = client.get(path)
        if path.startswith("/api/"):
            assert r.status_code == 401, path
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    for path in ["/logout", "/items/1/decision", "/decisions", "/admin/users", "/api/claim", "/api/items/1/decision",
                 "/api/decisions"]:  # fmt: skip
        assert client.post(path, data={}).status_code in (401, 303), path
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 404  # off unless a token is configured


def test_login_csrf_rate_limit_and_headers(queue, colorized):
    client = TestClient(_app(queue, colorized[0], login_attempts=3), follow_redirects=False)
    client.get("/login")
    assert client.post("/login", data={"username": "ada", "password": PASSWORD}).status_code == 403  # no token
    assert _login(client, password="not the password").status_code == 401
    for _ in range(2):
        _login(client, password="not the password")
    blocked = _login(client)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    other = TestClient(_app(queue, colorized[0]), follow_redirects=False)
    r = _login(other)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    page = other.get("/")
    for h in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
        assert h in page.headers, h
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_forms_without_csrf_are_forbidden_and_curators_are_not_admins(queue, colorized):
    client = TestClient(_app(queue, colorized[0]), follow_redirects=False)
    _login(client)
    item = queue.claim_next("ada")
    assert client.post(f"/items/{item.id}/decision", data={"decision": "approve"}).status_code == 403
    assert (
        client.post(f"/items/{item.id}/decision", data={"decision": "approve", "csrf_token": "forged"}).status_code
        == 403
    )
    assert client.post("/api/items/1/decision", json={"decision": "approve"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/admin").status_code == 403
    assert client.get("/api/health").status_code == 403
    assert (
        client.post(
            "/admin/users", data={"username": "x", "password": PASSWORD, "csrf_token": _csrf(client)}
        ).status_code
        == 403
    )
    assert queue.get(item.id).status == "pending"


def test_images_are_only_served_from_inside_the_outputs(queue, colorized, tmp_path):
    client = TestClient(_app(queue, colorized[0]), follow_redirects=False)
    _login(client)
    item = queue.list(limit=1)[0]
    for kind, mime in (("colour", "image/jpeg"), ("grey", "image/jpeg"), ("heatmap", "image/png")):
        r = client.get(f"/items/{item.id}/image/{kind}")
        assert r.status_code == 200 and r.headers["content-type"] == mime, kind
    assert client.get(f"/items/{item.id}/image/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get(f"/items/{item.id}/image/original").status_code == 404
    # a queue row pointing outside the outputs (tampered database) is refused, not served: by its URI (an
    # item queued before relative keys were stored) or by a key that climbs out of the destination
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((colorized[0] / "a.jpg").read_bytes())
    from dataclasses import replace

    for name, key, why in (("evil", None, "outside the location"), ("evil2", "../secret.jpg", "'..' segment")):
        rec = replace(colorized[1][0], image_id=name, output_uri=str(secret), output_key=key, output_sha256="f" * 64)
        queue.enqueue([rec])
        evil = next(e for e in queue.list(limit=100) if e.image_id == name)
        assert evil.output_key == key
        r = client.get(f"/items/{evil.id}/image/colour")
        assert r.status_code == 404 and why in r.text, (name, r.text)


def test_review_flow_api_export_and_manifest(queue, colorized):
    out = colorized[0]
    client = TestClient(_app(queue, out), follow_redirects=False)
    _login(client)
    r = client.get("/next")
    assert r.status_code == 303 and r.headers["location"].startswith("/items/")
    item_id = int(r.headers["location"].split("/")[2].split("?")[0])
    page = client.get(f"/items/{item_id}")
    assert page.status_code == 200
    assert page.text.count(f"/items/{item_id}/image/") == 3 and "Provenance" in page.text
    assert "model_sha256" in page.text  # the manifest row is shown
    token = _csrf(client)
    done = client.post(f"/items/{item_id}/decision", data={"decision": "approve", "csrf_token": token})
    assert done.status_code == 303 and done.headers["location"].startswith("/next")
    # the JSON API: claim and reject
    claimed = client.post("/api/claim", headers={"X-CSRF-Token": token}).json()
    decided = client.post(
        f"/api/items/{claimed['id']}/decision", json={"decision": "reject", "note": "wrong"},
        headers={"X-CSRF-Token": token},
    )  # fmt: skip
    assert decided.status_code == 200 and decided.json()["status"] == "rejected"
    listing = client.get("/api/items", params={"status": "pending"}).json()
    assert listing["counts"] == {"pending": 2, "approved": 1, "rejected": 1}
    schema = client.get("/api/openapi.json").json()
    assert "/api/items/{item_id}/decision" in schema["paths"]
    # admin page
    admin = TestClient(_app(queue, out), follow_redirects=False)
    _login(admin, "root")
    page = admin.get("/admin")
    assert page.status_code == 200 and "ada" in page.text
    assert (
        admin.post(
            "/admin/users", data={"username": "cyd", "password": PASSWORD, "csrf_token": _csrf(admin)}
        ).status_code
        == 303
    )
    assert queue.authenticate("cyd", PASSWORD) == ("cyd", "curator")
    # decisions flow back: Parquet beside the manifest, joined by image id
    key, rows = export_decisions(queue, LocalStorage(out))
    assert rows == 2 and key.startswith("_chromata/decisions/")
    table = pq.read_table(io.BytesIO(LocalStorage(out).read(key))).to_pylist()
    assert {r["decision"] for r in table} == {"approve", "reject"} and all(r["in_manifest"] for r in table)
    latest = latest_decisions(open_storage(str(out)))
    assert sorted(d["decision"] for d in latest.values()) == ["approve", "reject"]


def test_manifest_show_and_redo_rejected(queue, colorized, tmp_path):
    from typer.testing import CliRunner

    from chromata.cli import app
    from chromata.pipeline.planning import Planner

    out = colorized[0]
    item = queue.claim_next("ada")
    queue.decide(item.id, "ada", "reject", "the dress was dark blue")
    export_decisions(queue, LocalStorage(out))
    shown = CliRunner().invoke(app, ["manifest", "show", str(out), "--json", "--limit", "100"])
    assert shown.exit_code == 0, shown.output
    assert '"review_decision": "reject"' in shown.output and "curator decisions: reject" in shown.output
    scans = out.parent / "scans"
    cfg = build_config(source=str(scans), destination=str(out), review_db=queue.url)
    assert [o.key for s in Planner(cfg).shards() for o in s.objects] == []  # everything is done
    redo = build_config(source=str(scans), destination=str(out), review_db=queue.url, redo_rejected=True)
    rejected_key = next(r.source_key for r in colorized[1] if r.image_id == item.image_id)
    rerun = queue.rerun_source_uris()  # what the flow's open_plan hands the planner
    assert [o.key for s in Planner(redo, rerun_uris=rerun).shards() for o in s.objects] == [rejected_key]


def test_production_mode_refuses_an_insecure_secret(queue, colorized):
    with pytest.raises(ConfigError, match="insecure secret"):
        _app(queue, colorized[0], mode="production")
    with pytest.raises(ConfigError, match="insecure secret"):
        _app(queue, colorized[0], mode="production", secret_key="short-secret")
    client = TestClient(
        _app(queue, colorized[0], mode="production", secret_key="x" * 40),
        base_url="https://review.example",
        follow_redirects=False,
    )
    r = _login(client)
    assert r.status_code == 303
    assert "secure" in r.headers["set-cookie"].lower() and "strict-transport-security" in client.get("/healthz").headers


def test_no_sql_is_built_from_strings():
    """Every query goes through SQLAlchemy expressions: no f-strings, %-formatting or concatenation passed
    to text() or execute()."""
    for path in (ROOT / "chromata" / "review").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
                "text",
                "execute",
                "exec_driver_sql",
            }:
                for arg in node.args[:1]:
                    assert not isinstance(arg, ast.JoinedStr | ast.BinOp), f"{path.name}:{node.lineno} builds SQL"
                    if isinstance(arg, ast.Call) and getattr(arg.func, "attr", "") == "format":
                        pytest.fail(f"{path.name}:{node.lineno} builds SQL with str.format")


def test_filters_narrow_the_queue(queue):
    all_pending = queue.list(limit=100)
    low = queue.list(filters=Filters(max_confidence=all_pending[1].confidence), limit=100)
    assert 1 <= len(low) < len(all_pending) or len(low) == len(all_pending)
    assert queue.list(filters=Filters(collection="nope"), limit=100) == []
    assert queue.facets()["collections"] == ["plates"]


def test_cli_add_user_and_serve_refusals(tmp_path, colorized):
    from tests.test_cli import _one_line_error, chromata

    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    proc = subprocess.run(
        [sys.executable, "-m", "chromata.cli", "review", "add-user", "ada", "--role", "admin", "--db", db,
         "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ReviewQueue(db).authenticate("ada", PASSWORD) == ("ada", "admin")
    _one_line_error(
        chromata("review", "serve", "--db", db, "--outputs", str(colorized[0]), "--mode", "production"),
        "insecure secret",
    )
    _one_line_error(chromata("review", "add-user", "bob", "--db", db, "--password-stdin"), "at least 12")


def test_metrics_endpoint_needs_its_token_and_counts_decisions(queue, colorized):
    client = TestClient(_app(queue, colorized[0], metrics_token="t0ken-for-prometheus"), follow_redirects=False)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    _login(client)
    item = queue.claim_next("ada")
    client.post(f"/items/{item.id}/decision", data={"decision": "approve", "csrf_token": _csrf(client)})
    text = client.get("/metrics", headers={"Authorization": "Bearer t0ken-for-prometheus"}).text
    assert 'chromata_review_decisions_total{curator="ada",decision="approve"}' in text
    assert 'chromata_http_request_seconds_count{method="POST",route="/items/{item_id}/decision",status="303"}' in text
    assert 'chromata_review_queue_items{collection="plates"' in text


def _pg_admin(sql: str, *params: object) -> list[tuple]:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
        cur = admin.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _drop_connections(name: str) -> int:
    """What a PostgreSQL restart or failover does to the app's pooled connections: every one is cut."""
    sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    return len(_pg_admin(sql, name))


def _curator_at_work(url: str, colorized):  # type: ignore[no-untyped-def]
    """A queue on ``url`` with the run's images, and curator ada logged in: (queue, client, CSRF token)."""
    q = ReviewQueue(url)
    q.enqueue(colorized[1], collection="plates")
    q.add_user("ada", PASSWORD, "curator")
    client = TestClient(_app(q, colorized[0]), follow_redirects=False)
    _login(client)
    return q, client, _csrf(client)


def _next_item(client) -> int:  # type: ignore[no-untyped-def]
    """Claim the next item as a curator's browser does (GET /next redirects to /items/<id>)."""
    return int(client.get("/next").headers["location"].split("/")[2].split("?")[0])


def test_postgres_connection_drop_loses_no_decision(pg_url, colorized):
    """Connections cut between a curator's page load and their decision: the pool replaces the dead
    connection (pre-ping) and the decision is recorded. While the server refuses connections (as during
    a restart) the curator gets a 503 saying nothing was saved, and the retry afterwards is recorded."""
    name = pg_url.rsplit("/", 1)[1]
    q, client, token = _curator_at_work(pg_url, colorized)
    first = _next_item(client)
    assert _drop_connections(name) >= 1  # the app's pooled connections are gone
    done = client.post(f"/items/{first}/decision", data={"decision": "approve", "csrf_token": token})
    assert done.status_code == 303

    second = _next_item(client)
    _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        _drop_connections(name)
        down = client.post(f"/items/{second}/decision", data={"decision": "reject", "csrf_token": token})
        assert down.status_code == 503 and "NOT saved" in down.text and down.headers["retry-after"] == "5"
        api = client.post(f"/api/items/{second}/decision", json={"decision": "reject"}, headers={"X-CSRF-Token": token})
        assert api.status_code == 503 and "NOT saved" in api.json()["detail"]
    finally:
        _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    again = client.post(f"/items/{second}/decision", data={"decision": "reject", "csrf_token": token})
    assert again.status_code == 303
    log = [(d["item_id"], d["decision"]) for d in q.decisions()]
    assert log == [(first, "approve"), (second, "reject")]  # each decision once: none lost, none doubled
    q.close()


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own (initdb into a temporary folder, run as the postgres user on a
    free port), so that it can really be restarted and stopped without touching the shared server.
    Yields (SQLAlchemy URL, pg_ctl action runner)."""
    import os
    import shutil
    import socket
    import tempfile

    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    runuser = shutil.which("runuser")
    if not bindirs or runuser is None or os.geteuid() != 0:
        pytest.skip("needs root, runuser and the PostgreSQL server binaries to run a server of its own")
    pg_ctl = bindirs[-1]
    home = Path(tempfile.mkdtemp(prefix="chromata-pg-"))  # not under pytest's root-only tmp folder
    shutil.chown(home, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_postgres(*args: str) -> None:
        subprocess.run([runuser, "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    as_postgres(str(pg_ctl.with_name("initdb")), "-D", f"{home}/data", "-U", "postgres", "-A", "trust", "--no-sync")
    opts = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"

    def ctl(action: str) -> None:  # start | stop | restart, waiting until it is done
        mode = ["-m", "fast"] if action != "start" else []
        as_postgres(str(pg_ctl), "-D", f"{home}/data", "-o", opts, "-l", f"{home}/log", "-w", *mode, action)

    ctl("start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", ctl
    finally:
        subprocess.run([runuser, "-u", "postgres", "--", str(pg_ctl), "-D", f"{home}/data", "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_restart_and_outage_lose_no_decision(own_postgres, colorized):
    """The server itself restarts between a curator's page load and their decision (pg_ctl restart): the
    decision is recorded on a fresh connection. While it is stopped, the curator gets a 503 saying nothing
    was saved; once it is back, the retry is recorded. Each decision is in the log once."""
    url, ctl = own_postgres
    q, client, token = _curator_at_work(url, colorized)
    first = _next_item(client)
    ctl("restart")
    assert client.post(f"/items/{first}/decision", data={"decision": "approve", "csrf_token": token}).status_code == 303

    second = _next_item(client)
    ctl("stop")
    try:
        down = client.post(f"/items/{second}/decision", data={"decision": "reject", "csrf_token": token})
        assert down.status_code == 503 and "NOT saved" in down.text and down.headers["retry-after"] == "5"
    finally:
        ctl("start")
    again = client.post(f"/items/{second}/decision", data={"decision": "reject", "csrf_token": token})
    assert again.status_code == 303
    log = [(d["item_id"], d["decision"]) for d in q.decisions()]
    assert log == [(first, "approve"), (second, "reject")]
    q.close()
