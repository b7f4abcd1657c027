"""The review app's security: signed session cookies, CSRF tokens, the login rate limit, response headers,
and the answers to "not logged in", "not allowed" and "database down"."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import OperationalError

from chromata.monitoring.metrics import METRICS

log = logging.getLogger(__name__)
SESSION_COOKIE = "chromata_session"
LOGIN_CSRF_COOKIE = "chromata_login_csrf"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    pass


@dataclass
class User:
    username: str
    role: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Sessions:
    """Session cookies signed with the secret key: the user name and that session's CSRF token."""

    def __init__(self, secret_key: str, hours: float) -> None:
        self.signer = URLSafeTimedSerializer(secret_key, salt="chromata-review-session")
        self.max_age = int(hours * 3600)

    def issue(self, username: str) -> str:
        return self.signer.dumps({"u": username, "csrf": secrets.token_urlsafe(24)})

    def read(self, raw: str | None) -> tuple[str, str]:
        """(username, CSRF token) of a valid cookie; LoginRequired otherwise."""
        if not raw:
            raise LoginRequired()
        try:
            data = self.signer.loads(raw, max_age=self.max_age)
        except BadSignature:
            raise LoginRequired() from None
        return str(data.get("u", "")), str(data.get("csrf", ""))


def check_csrf(user: User, token: str | None) -> None:
    if not token or not hmac.compare_digest(token, user.csrf):
        raise Forbidden("missing or wrong CSRF token")


@dataclass
class RateLimiter:
    attempts: int
    window: float
    failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def blocked(self, key: tuple[str, str]) -> float:
        """Seconds until the next attempt is allowed (0 = allowed)."""
        now = time.monotonic()
        q = self.failures.get(key)
        if not q:
            return 0.0
        while q and now - q[0] > self.window:
            q.popleft()
        return self.window - (now - q[0]) if len(q) >= self.attempts else 0.0

    def fail(self, key: tuple[str, str]) -> None:
        self.failures.setdefault(key, deque()).append(time.monotonic())

    def reset(self, key: tuple[str, str]) -> None:
        self.failures.pop(key, None)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _login_required(request: Request, _: Exception) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": "login required"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": str(exc) or "forbidden"}, status_code=403)
    return HTMLResponse(f"<h1>403 Forbidden</h1><p>{exc}</p>", status_code=403)


async def _database_down(request: Request, exc: Exception) -> Response:
    """The database went away and a fresh connection failed too (pool_pre_ping already replaced the
    stale one): nothing was saved. Say so, so the curator retries, rather than a bare 500."""
    log.warning("review database unavailable on %s %s: %s", request.method, request.url.path, getattr(exc, "orig", exc))
    message = "The review database is unavailable; your decision was NOT saved. Please try again in a moment."
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": "5"})
    return HTMLResponse(f"<h1>Temporarily unavailable</h1><p>{message}</p>", 503, headers={"Retry-After": "5"})


def install(app: FastAPI, secure: bool) -> None:
    """Security headers and request metrics on every response, and the error answers."""

    @app.middleware("http")
    async def headers_and_metrics(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        response.headers.update(HEADERS)
        if secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        route = request.scope.get("route")
        METRICS.http_latency.labels(
            getattr(route, "path", "unmatched"), request.method, str(response.status_code)
        ).observe(time.perf_counter() - t0)
        return response

    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(OperationalError, _database_down)
