"""Logging in and out (rate-limited, CSRF-protected even before there is a session), and the health probe."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chromata.review.deps import Context, CurrentUser
from chromata.review.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, check_csrf

router = APIRouter(include_in_schema=False)


def _local(target: str) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Context, next: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    resp = ctx.render(request, "login.html", None, csrf=token, next=_local(next), error="")
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ctx.settings.secure_cookies)
    return resp


@router.post("/login")
def login(
    request: Request,
    ctx: Context,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return HTMLResponse("<h1>403 Forbidden</h1><p>missing or wrong CSRF token</p>", status_code=403)
    key = (request.client.host if request.client else "?", username.lower())
    wait = ctx.limiter.blocked(key)
    if wait > 0:
        return HTMLResponse(
            "<h1>429 Too many attempts</h1><p>Wait a few minutes and try again.</p>",
            status_code=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    who = ctx.queue.authenticate(username, password)
    if who is None:
        ctx.limiter.fail(key)
        failed = ctx.render(request, "login.html", None, csrf=cookie, next=next, error="Wrong user name or password.")
        failed.status_code = 401
        return failed
    ctx.limiter.reset(key)
    resp = RedirectResponse(_local(next), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        ctx.sessions.issue(who[0]),
        httponly=True,
        samesite="lax",
        secure=ctx.settings.secure_cookies,
        max_age=ctx.sessions.max_age,
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE)
    return resp


@router.post("/logout")
def logout(user: CurrentUser, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(user, csrf_token)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp
