"""FastAPI dependencies of the review app (as in the FastAPI full-stack template's ``api/deps.py``): the
app's context, the logged-in user, admins only, the queue filters of a request, and page rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from chromata.judgement.reasons import Reason, describe, reason
from chromata.review.images import ItemFiles
from chromata.review.schema import Filters
from chromata.review.security import SESSION_COOKIE, Forbidden, LoginRequired, RateLimiter, Sessions, User
from chromata.review.settings import AppSettings
from chromata.review.store import ReviewQueue

HERE = Path(__file__).parent


@dataclass
class ReviewContext:
    """Everything the routes share, made once by ``create_app`` and kept on ``app.state.review``."""

    settings: AppSettings
    queue: ReviewQueue
    files: ItemFiles
    sessions: Sessions
    limiter: RateLimiter
    templates: Jinja2Templates

    def render(self, request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(request, name, {"user": user, **ctx})


def reason_chips(codes: Any) -> list[Reason]:
    """The entries of an item's reason codes in the order ``describe`` gives their texts (risks first): what
    the pages show as chips (the text, the code in a title)."""
    codes = list(codes or ())
    order = describe(codes)
    return sorted((reason(c) for c in codes), key=lambda r: order.index(r.text))


def templates() -> Jinja2Templates:
    """The pages' templates, with the reason chips (``chips`` filter, ``reason`` function) available."""
    t = Jinja2Templates(directory=str(HERE / "templates"))
    t.env.filters["chips"] = reason_chips
    t.env.globals["reason"] = reason
    return t


def get_context(request: Request) -> ReviewContext:
    ctx: ReviewContext = request.app.state.review
    return ctx


Context = Annotated[ReviewContext, Depends(get_context)]


def session_user(request: Request, ctx: Context) -> User:
    username, csrf = ctx.sessions.read(request.cookies.get(SESSION_COOKIE))
    role = ctx.queue.user_role(username)
    if role is None:  # deleted or deactivated since login
        raise LoginRequired()
    return User(username, role, csrf)


CurrentUser = Annotated[User, Depends(session_user)]


def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


def _number(params: Any, key: str) -> float | None:
    try:
        return float(params[key]) if params.get(key) not in (None, "") else None
    except ValueError:
        return None


def query_filters(request: Request) -> Filters:
    """The queue filters in a request's query string (``status``, ``collection``, ``run``, ``reason``,
    ``min_confidence``, ``max_confidence``); a malformed number is no filter."""
    p = request.query_params
    return Filters(
        status=p.get("status") or "pending",
        collection=p.get("collection") or None,
        run_id=p.get("run") or None,
        reason=p.get("reason") or None,
        min_confidence=_number(p, "min_confidence"),
        max_confidence=_number(p, "max_confidence"),
    )


QueryFilters = Annotated[Filters, Depends(query_filters)]
