"""Bulk decisions and the queue grid, over real HTTP (uvicorn + httpx) with a real queue on SQLite and on
the local PostgreSQL server: every bulk decision is its own row in the decision log with the curator's name,
an item another curator holds is skipped and said so, and a request without the CSRF token is refused."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import cv2
import httpx
import numpy as np
import pytest

from chromata.judgement.reasons import reason
from chromata.review.app import AppSettings, create_app
from chromata.review.images import THUMB_MAX
from chromata.review.store import ReviewQueue
from tests.conftest import free_port
from tests.test_review_app import PASSWORD, colorized, db_url  # noqa: F401 - the fixtures

REASONS = (["document_text", "least_confident"], ["sepia_toned", "low_contrast"], ["underexposed"], [])


def variants(records, n):  # type: ignore[no-untyped-def]
    """``n`` queue records from the run's outputs (distinct image versions, the same files), with reasons."""
    return [
        replace(r, image_id=f"{r.image_id}-{i}", output_sha256=f"{i:064x}", confidence_reasons=REASONS[i % 4])
        for i, r in zip(range(n), records * n, strict=False)
    ]


@contextmanager
def serving(url: str, outputs) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The review app on a free local port (a real uvicorn server), its base URL."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(AppSettings(db_url=url, outputs=str(outputs))), port=port,
                                        host="127.0.0.1", log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def login(base: str, user: str = "ada") -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    client.get("/login")
    r = client.post("/login", data={"username": user, "password": PASSWORD, "next": "/",
                                    "csrf_token": client.cookies["chromata_login_csrf"]})  # fmt: skip
    assert r.status_code == 303, r.text
    return client, client.get("/api/me").json()["csrf_token"]


@pytest.fixture
def app_at_work(db_url, colorized):  # noqa: F811
    """Six queued items, curators ada and bob, the app serving them: (queue, base URL)."""
    q = ReviewQueue(db_url)
    assert q.enqueue(variants(colorized[1], 6), collection="plates") == 6
    q.add_user("ada", PASSWORD, "curator")
    q.add_user("bob", PASSWORD, "curator")
    with serving(db_url, colorized[0]) as base:
        yield q, base
    q.close()


def test_bulk_approve_logs_one_decision_per_item_and_skips_a_held_one(app_at_work):
    queue, base = app_at_work
    ids = [e.id for e in queue.list(limit=100)]
    held = ids[2]
    assert queue.claim(held, "bob", 600)
    client, token = login(base)
    r = client.post("/decisions?collection=plates", data={"decision": "approve", "csrf_token": token,
                                                          "ids": [str(i) for i in ids[:4]]})  # fmt: skip
    assert r.status_code == 303
    assert r.headers["location"].startswith("/?collection=plates&")  # back to the same view
    page = client.get(r.headers["location"])
    assert "3 approved, 1 skipped: held by another curator" in page.text
    log = queue.decisions()
    assert sorted(d["item_id"] for d in log) == sorted(set(ids[:4]) - {held})  # one row per item
    assert {(d["curator"], d["decision"]) for d in log} == {("ada", "approve")} and len(log) == 3
    assert queue.get(held).status == "pending" and queue.get(held).claimed_by == "bob"  # untouched
    assert {queue.get(i).status for i in ids[4:]} == {"pending"}  # not selected: untouched
    # the decided items have left the pending grid; the held one is still there, marked
    grid = client.get("/").text
    assert grid.count('class="card') == 3 and "held by bob" in grid
    # deciding them again: skipped as already decided, nothing logged twice
    again = client.post("/decisions", data={"decision": "reject", "csrf_token": token, "ids": [str(ids[0])]})
    assert "0 rejected, 1 skipped: already decided" in client.get(again.headers["location"]).text
    assert len(queue.decisions()) == 3


def test_bulk_decisions_need_the_csrf_token_a_login_and_a_bulk_decision(app_at_work):
    queue, base = app_at_work
    ids = [str(e.id) for e in queue.list(limit=2)]
    anonymous = httpx.Client(base_url=base, follow_redirects=False)
    assert anonymous.post("/decisions", data={"decision": "approve", "ids": ids}).status_code == 303  # → login
    assert anonymous.post("/api/decisions", json={"decision": "approve", "item_ids": [1]}).status_code == 401
    client, token = login(base)
    assert client.post("/decisions", data={"decision": "approve", "ids": ids}).status_code == 403
    forged = client.post("/decisions", data={"decision": "approve", "ids": ids, "csrf_token": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    api = client.post("/api/decisions", json={"decision": "approve", "item_ids": [int(i) for i in ids]})
    assert api.status_code == 403
    recolour = client.post("/decisions", data={"decision": "recolour", "ids": ids, "csrf_token": token})
    assert recolour.status_code == 400 and "approve or reject" in recolour.text
    assert queue.decisions() == [] and queue.count("pending") == 6


def test_api_bulk_decisions(app_at_work):
    queue, base = app_at_work
    ids = [e.id for e in queue.list(limit=100)]
    assert queue.claim(ids[0], "bob", 600)
    client, token = login(base)
    headers = {"X-CSRF-Token": token}
    r = client.post("/api/decisions", json={"decision": "reject", "item_ids": ids[:3], "note": "too green"},
                    headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decided"] == ids[1:3] and body["skipped_held"] == [ids[0]] and body["skipped_not_pending"] == []
    assert body["message"] == "2 rejected, 1 skipped: held by another curator"
    log = queue.decisions()
    assert [(d["item_id"], d["curator"], d["decision"], d["note"]) for d in log] == [
        (i, "ada", "reject", "too green") for i in ids[1:3]
    ]
    bad = client.post("/api/decisions", json={"decision": "recolour", "item_ids": ids[3:]}, headers=headers)
    assert bad.status_code == 422
    gone = client.post("/api/decisions", json={"decision": "approve", "item_ids": [ids[1], 999999]}, headers=headers)
    assert gone.json()["skipped_not_pending"] == [ids[1], 999999] and len(queue.decisions()) == 2
    assert "/api/decisions" in client.get("/api/openapi.json").json()["paths"]


def test_queue_grid_shows_thumbnails_and_reason_chips(app_at_work):
    queue, base = app_at_work
    client, _ = login(base)
    page = client.get("/").text
    items = queue.list(limit=100)
    for e in items:
        for kind in ("grey", "colour", "heatmap"):
            assert f"/items/{e.id}/thumb/{kind}" in page
    for code in ("document_text", "sepia_toned", "low_contrast", "underexposed", "least_confident"):
        assert f'title="{code}">{reason(code).text}</li>' in page  # the chip: the text, the code in its title
    # the reason filter offers the texts, filters by the code, and the chips stay
    assert f'<option value="document_text" title="document_text" >{reason("document_text").text}</option>' in page
    narrowed = client.get("/", params={"reason": "document_text"}).text
    assert narrowed.count('class="card') == sum("document_text" in e.reasons for e in items) == 2
    # thumbnails: small images, the grey one neutral (rendered from the output's L*)
    for kind, media in (("grey", "image/jpeg"), ("colour", "image/jpeg"), ("heatmap", "image/png")):
        r = client.get(f"/items/{items[0].id}/thumb/{kind}")
        assert r.status_code == 200 and r.headers["content-type"] == media
        img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert img is not None and max(img.shape[:2]) <= THUMB_MAX
        if kind == "grey":
            bgr = img.astype(np.int16)
            assert np.abs(bgr[..., 0] - bgr[..., 2]).max() <= 3  # neutral
    assert client.get(f"/items/{items[0].id}/thumb/original").status_code == 404
    # the item page shows the same chips
    doc = next(e for e in items if "document_text" in e.reasons)
    item_page = client.get(f"/items/{doc.id}").text
    assert f'title="document_text">{reason("document_text").text}</li>' in item_page
    # pagination keeps the filters
    assert client.get("/", params={"collection": "plates", "page": 2}).status_code == 200
