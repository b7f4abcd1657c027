"""The curators' pages: the queue, the next item, one item with its images and provenance, a decision."""

from __future__ import annotations

import time
from html import escape
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chromata.monitoring.metrics import METRICS
from chromata.review.bulk import BULK_DECISIONS, decide_each, summary
from chromata.review.deps import Context, CurrentUser, QueryFilters
from chromata.review.schema import DECISIONS, ClaimError
from chromata.review.security import check_csrf

router = APIRouter(include_in_schema=False)
PER_PAGE = 50
BULK_PARAMS = ("bulk", "bulk_done", "bulk_held", "bulk_gone")  # the outcome of a bulk decision, for its message


def _count(params: Any, key: str) -> int:
    value = params.get(key, "")
    return int(value) if value.isdigit() else 0


def _bulk_message(params: Any) -> str:
    """'3 approved, 1 skipped: held by another curator' after a bulk decision (numbers only travel in the URL)."""
    if params.get("bulk") not in BULK_DECISIONS:
        return ""
    return summary(params["bulk"], *(_count(params, k) for k in BULK_PARAMS[1:]))


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request, ctx: Context, user: CurrentUser, f: QueryFilters, order: str = "asc", page: int = Query(1, ge=1)
) -> Response:
    q = ctx.queue
    items = q.list(filters=f, limit=PER_PAGE, offset=(page - 1) * PER_PAGE, descending=order == "desc")
    params = request.query_params
    query = urlencode([(k, v) for k, v in params.multi_items() if k != "page" and k not in BULK_PARAMS and v])
    return ctx.render(
        request,
        "queue.html",
        user,
        items=items,
        counts=q.counts(f),
        facets=q.facets(),
        f=f,
        order=order,
        page=page,
        per_page=PER_PAGE,
        query=query,
        here=urlencode([(k, v) for k, v in params.multi_items() if k not in BULK_PARAMS and v]),
        now=time.time(),
        message=_bulk_message(params),
    )


@router.post("/decisions")
def bulk_decide_form(
    request: Request,
    ctx: Context,
    user: CurrentUser,
    decision: Annotated[str, Form()],
    ids: Annotated[list[int] | None, Form()] = None,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject the selected cards: each item claimed and decided in turn, back to the same view
    with what happened ('3 approved, 1 skipped: held by another curator')."""
    check_csrf(user, csrf_token)
    try:
        out = decide_each(ctx.queue, ids or [], user.username, decision, ctx.settings.lease_seconds)
    except ValueError as exc:
        return HTMLResponse(f"<h1>400 Bad request</h1><p>{escape(str(exc))}</p><p><a href='/'>back</a></p>", 400)
    for _ in out.decided:
        METRICS.review_decisions.labels(user.username, decision).inc()
    view = [(k, v) for k, v in request.query_params.multi_items() if k not in BULK_PARAMS]
    counts = zip(BULK_PARAMS, (decision, len(out.decided), len(out.held), len(out.gone)), strict=True)
    return RedirectResponse(f"/?{urlencode(view + [(k, str(v)) for k, v in counts])}", status_code=303)


@router.get("/next")
def next_item(request: Request, ctx: Context, user: CurrentUser, f: QueryFilters) -> Response:
    entry = ctx.queue.claim_next(user.username, ctx.settings.lease_seconds, f)
    if entry is None:
        return RedirectResponse("/?done=1", status_code=303)
    return RedirectResponse(f"/items/{entry.id}?{request.url.query}", status_code=303)


@router.get("/items/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, item_id: int, ctx: Context, user: CurrentUser, f: QueryFilters) -> Response:
    entry = ctx.queue.get(item_id)
    if entry is None:
        raise HTTPException(404, "no such item")
    if entry.status == "pending":
        ctx.queue.claim(item_id, user.username, ctx.settings.lease_seconds)
        entry = ctx.queue.get(item_id) or entry
    prev_id, next_id = ctx.queue.neighbours(item_id, f)
    mine = entry.claimed_by == user.username
    return ctx.render(
        request,
        "item.html",
        user,
        item=entry,
        provenance=ctx.files.provenance(entry),
        prev_id=prev_id,
        next_id=next_id,
        query=request.url.query,
        mine=mine,
        can_decide=entry.status == "pending" and (mine or user.is_admin),
        now=time.time(),
        decisions=DECISIONS,
    )


@router.post("/items/{item_id}/decision")
def decide_form(
    request: Request,
    item_id: int,
    ctx: Context,
    user: CurrentUser,
    decision: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(user, csrf_token)
    try:
        ctx.queue.decide(item_id, user.username, decision, note, admin=user.is_admin, mode="item")
    except (ClaimError, ValueError) as exc:
        return HTMLResponse(f"<h1>409 Conflict</h1><p>{exc}</p><p><a href='/items/{item_id}'>back</a></p>", 409)
    METRICS.review_decisions.labels(user.username, decision).inc()
    return RedirectResponse(f"/next?{request.url.query}", status_code=303)
