"""Screenshots of the review app for the README, from a real run on the bundled sample.

    chromata run examples/scans --out /tmp/demo-out --review-budget 0.6 --collection sample-scans
    python docs/make_screenshots.py /tmp/demo-out

Serves the app on a free port, logs in as a throw-away curator in Debian's chromium (Playwright) and
writes docs/img/review-queue-grid.png (the queue as a curator meets it, two cards selected for a bulk
decision) and docs/img/review-item.png (the least confident item under review). A budget of 0.6 queues six
of the ten sample photographs, so the grid shows more than the default two.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from chromata.review.app import AppSettings, create_app
from chromata.review.store import ReviewQueue

IMG = Path(__file__).resolve().parent / "img"


def _images_loaded(page) -> None:  # type: ignore[no-untyped-def]
    # a function, not an expression: the app's CSP forbids evaluating strings
    page.wait_for_function(
        "(sel) => Array.from(document.querySelectorAll(sel)).every(i => i.complete && i.naturalWidth > 0)", arg="img"
    )


def main(out: str) -> None:
    url = f"sqlite:///{Path(out) / '_chromata' / 'review.sqlite'}"
    user, password = f"curator-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    ReviewQueue(url).add_user(user, password, "curator")
    server = uvicorn.Server(
        uvicorn.Config(create_app(AppSettings(db_url=url, outputs=out)), port=8765, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        page.goto("http://127.0.0.1:8765/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url("http://127.0.0.1:8765/")
        _images_loaded(page)
        for box in page.locator(".card input[name=ids]").all()[:2]:
            box.check()
        page.screenshot(path=str(IMG / "review-queue-grid.png"))
        page.goto("http://127.0.0.1:8765/next")
        _images_loaded(page)
        page.screenshot(path=str(IMG / "review-item.png"))
        browser.close()
    server.should_exit = True


if __name__ == "__main__":
    main(sys.argv[1])
