"""The admin page: curator accounts and the queue's health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chromata.review.deps import AdminUser, Context
from chromata.review.security import User, check_csrf

router = APIRouter(include_in_schema=False)


def _page(request: Request, ctx: Context, user: User, error: str = "") -> HTMLResponse:
    return ctx.render(request, "admin.html", user, users=ctx.queue.users(), health=ctx.queue.health(), error=error)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, ctx: Context, user: AdminUser) -> Response:
    return _page(request, ctx, user)


@router.post("/admin/users")
def admin_add_user(
    request: Request,
    ctx: Context,
    user: AdminUser,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    role: Annotated[str, Form()] = "curator",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(user, csrf_token)
    try:
        ctx.queue.add_user(username, password, role)
    except ValueError as exc:
        resp = _page(request, ctx, user, str(exc))
        resp.status_code = 400
        return resp
    return RedirectResponse("/admin", status_code=303)
