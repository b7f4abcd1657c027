"""The review app in a real browser: Debian's chromium driven by Playwright. A curator logs in and reviews
three items with the keyboard; the decisions come out of `chromata review export`."""

import io
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chromata.review.app import AppSettings, create_app
from chromata.review.export import export_decisions
from chromata.review.store import ReviewQueue
from chromata.storage import LocalStorage
from tests.conftest import free_port, needs_tool
from tests.test_review_app import PASSWORD, colorized  # noqa: F401 - the module fixture

CHROMIUM = "/usr/bin/chromium"
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
pytestmark = [
    pytest.mark.slow,
    needs_tool("chromium"),
]


@pytest.fixture
def server(tmp_path, colorized):  # noqa: F811
    import uvicorn

    out, records = colorized
    url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    queue = ReviewQueue(url)
    queue.enqueue(records, collection="glass-plates")
    queue.add_user("ada", PASSWORD, "curator")
    port = free_port()
    app = create_app(AppSettings(db_url=url, outputs=str(out)))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", queue, out
    srv.should_exit = True
    thread.join(timeout=10)
    queue.close()


@pytest.fixture
def page():
    pw = pytest.importorskip("playwright.sync_api")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        yield context.new_page()
        browser.close()


def _shot(page, name, tmp_path):
    target = DOCS_IMG if os.environ.get("CHROMATA_DOCS_SCREENSHOTS") else tmp_path
    page.screenshot(path=str(target / name), full_page=False)


def test_curator_reviews_three_items_with_the_keyboard(server, page, tmp_path):
    base, queue, out = server
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login")  # no page without a login
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert "pending: 4" in page.inner_text("#counts").replace("\n", " ")
    _shot(page, "review-queue.png", tmp_path)

    page.goto(f"{base}/next")
    page.wait_for_url(f"{base}/items/*")
    first = page.url
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    # synchronised zoom: a wheel over one pane transforms all three alike
    page.mouse.move(300, 450)
    page.mouse.wheel(0, -300)
    transforms = page.eval_on_selector_all(".view img", "els => els.map(e => e.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1.2" in transforms[0]
    page.keyboard.press("0")
    _shot(page, "review-item.png", tmp_path)

    page.keyboard.press("a")  # approve → the next item
    page.wait_for_url(lambda u: u != first and "/items/" in u)
    second = page.url
    page.keyboard.press("r")  # reject
    page.wait_for_url(lambda u: u != second and "/items/" in u)
    third = page.url
    page.keyboard.press("n")  # needs re-colour: the note field takes the focus
    page.keyboard.type("the uniform was field grey, not green")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda u: u != third)

    key, rows = export_decisions(queue, LocalStorage(out))
    table = pq.read_table(io.BytesIO(LocalStorage(out).read(key))).to_pylist()
    assert rows == 3
    assert [r["decision"] for r in table] == ["approve", "reject", "recolour"]
    assert table[2]["note"] == "the uniform was field grey, not green"
    assert {r["curator"] for r in table} == {"ada"} and all(r["in_manifest"] for r in table)


def test_j_and_k_walk_the_queue(server, page):
    base, queue, _ = server
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    ids = [e.id for e in queue.list(limit=10)]
    page.goto(f"{base}/items/{ids[0]}")
    page.keyboard.press("j")
    page.wait_for_url(f"{base}/items/{ids[1]}*")
    page.keyboard.press("k")
    page.wait_for_url(f"{base}/items/{ids[0]}*")
