"""The curators' review web app: FastAPI, server-rendered Jinja2 pages, a little vanilla JS.

Laid out as the FastAPI full-stack template lays out an app: settings (``settings``), security
(``security``: sessions, CSRF, rate limit, headers), dependencies (``deps``), and routers (``routes``:
login, pages, admin, images, API). ``create_app`` only assembles them.

Security model: every page, image and API route needs a login (argon2-hashed accounts, sessions in
signed cookies); every state-changing request carries a CSRF token (forms: a hidden field; the JSON
API: an ``X-CSRF-Token`` header); roles ``curator`` and ``admin``; failed logins are rate-limited;
responses carry CSP, frame and content-type headers; images are addressed by queue item id and kind
only, and their keys are checked to stay inside the outputs location (see ``images``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from chromata.archive import open_storage
from chromata.review import security
from chromata.review.deps import HERE, ReviewContext, templates
from chromata.review.images import KINDS, ItemFiles
from chromata.review.routes import admin, api, auth, images, pages
from chromata.review.security import RateLimiter, Sessions
from chromata.review.settings import AppSettings
from chromata.review.store import ReviewQueue

__all__ = ["KINDS", "AppSettings", "create_app"]


def create_app(settings: AppSettings) -> FastAPI:
    settings.validate()
    app = FastAPI(
        title="chromata review",
        version="1",
        description="Curators review AI colorizations. All routes need a session (log in at /login); "
        "state-changing requests need the X-CSRF-Token header (GET /api/me returns it).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    queue = ReviewQueue(settings.db_url)
    app.state.queue = queue
    app.state.review = ReviewContext(
        settings=settings,
        queue=queue,
        files=ItemFiles(open_storage(settings.outputs, settings.endpoint_url), settings.preview_max),
        sessions=Sessions(settings.secret_key, settings.session_hours),
        limiter=RateLimiter(settings.login_attempts, settings.login_window_seconds),
        templates=templates(),
    )
    security.install(app, settings.secure_cookies)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (auth.router, pages.router, images.router, admin.router, api.router):
        app.include_router(router)
    return app
