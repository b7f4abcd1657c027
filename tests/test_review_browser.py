"""The review app in a real browser: Debian's chromium driven by Playwright. A curator logs in and reviews
three items with the keyboard; the decisions come out of `chromata review export`. On the queue grid a
curator sees thumbnails and reason chips, selects two cards and approves them at once."""

import io
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chromata.archive.local import LocalStorage
from chromata.review.app import AppSettings, create_app
from chromata.review.export import export_decisions
from chromata.review.store import ReviewQueue
from tests.conftest import free_port, needs_tool
from tests.test_review_app import PASSWORD, colorized  # noqa: F401 - the module fixture
from tests.test_review_bulk import serving, variants

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


@pytest.fixture
def grid_server(tmp_path, colorized):  # noqa: F811
    """Twelve queued items with reasons (one held by another curator), the app serving them."""
    out, records = colorized
    url = f"sqlite:///{tmp_path / 'grid.sqlite'}"
    queue = ReviewQueue(url)
    queue.enqueue(variants(records, 12), collection="glass-plates")
    queue.add_user("ada", PASSWORD, "curator")
    queue.add_user("bob", PASSWORD, "curator")
    queue.claim(queue.list(limit=100)[-1].id, "bob", 3600)
    with serving(url, out) as base:
        yield base, queue
    queue.close()


def test_queue_grid_bulk_approve(grid_server, page, tmp_path):
    base, queue = grid_server
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    cards = page.locator(".card")
    assert cards.count() == 12
    thumbs = ".card .thumbs img"
    page.wait_for_function(
        "(sel) => Array.from(document.querySelectorAll(sel)).every(i => i.complete && i.naturalWidth > 0)", arg=thumbs
    )
    assert page.eval_on_selector_all(thumbs, "els => els.length") == 36  # grey, colour, heatmap per card
    chip = page.locator(".card .chip").first
    assert chip.inner_text() and chip.inner_text() != chip.get_attribute("title")  # text, not the code
    chip_texts = set(page.locator(".card .chip").all_inner_texts())
    assert "text page: colour adds nothing and may mislead" in chip_texts
    assert page.is_disabled("#bulk-approve")  # nothing selected yet
    ids = [int(c.get_attribute("data-id")) for c in cards.all()[:2]]
    for item_id in ids:
        page.check(f".card[data-id='{item_id}'] input[name=ids]")
    assert page.inner_text("#selected-count") == "2 selected"
    _shot(page, "review-queue-grid-synthetic.png", tmp_path)  # docs/make_screenshots.py makes the README one
    page.click("#bulk-approve")
    page.wait_for_url("**bulk=approve**")
    assert "2 approved" in page.inner_text("#bulk-message")
    left = {int(c.get_attribute("data-id")) for c in page.locator(".card").all()}
    assert len(left) == 10 and not left & set(ids)  # they left the queue
    log = queue.decisions()
    assert sorted(d["item_id"] for d in log) == sorted(ids) and {d["curator"] for d in log} == {"ada"}
    # select all on this page: every card but the held one is decided, the held one is said to be skipped
    page.check("#select-all")
    assert page.inner_text("#selected-count") == "10 selected"
    page.click("#bulk-reject")
    page.wait_for_url("**bulk=reject**")
    assert "9 rejected, 1 skipped: held by another curator" in page.inner_text("#bulk-message")
    assert page.locator(".card").count() == 1 and "held by bob" in page.inner_text(".card")
