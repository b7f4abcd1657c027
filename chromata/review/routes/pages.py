"""The curators' pages: the queue, the next item, one item with its images and provenance, a decision."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chromata.metrics import METRICS
from chromata.review.deps import Context, CurrentUser, QueryFilters
from chromata.review.schema import DECISIONS, ClaimError
from chromata.review.security import check_csrf

router = APIRouter(include_in_schema=False)
PER_PAGE = 50


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request, ctx: Context, user: CurrentUser, f: QueryFilters, order: str = "asc", page: int = Query(1, ge=1)
) -> Response:
    q = ctx.queue
    items = q.list(filters=f, limit=PER_PAGE, offset=(page - 1) * PER_PAGE, descending=order == "desc")
    query = urlencode({k: v for k, v in request.query_params.items() if k != "page" and v})
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
        now=time.time(),
    )


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
        ctx.queue.decide(item_id, user.username, decision, note, admin=user.is_admin)
    except (ClaimError, ValueError) as exc:
        return HTMLResponse(f"<h1>409 Conflict</h1><p>{exc}</p><p><a href='/items/{item_id}'>back</a></p>", 409)
    METRICS.review_decisions.labels(user.username, decision).inc()
    return RedirectResponse(f"/next?{request.url.query}", status_code=303)
