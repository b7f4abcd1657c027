"""The JSON API (the same session and CSRF token as the pages: ``X-CSRF-Token``) and the Prometheus
metrics (behind their own bearer token)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, Field

from chromata.monitoring.metrics import METRICS
from chromata.review.bulk import BULK_MAX, decide_each
from chromata.review.deps import AdminUser, Context, CurrentUser, QueryFilters
from chromata.review.schema import ClaimError
from chromata.review.security import check_csrf

router = APIRouter(tags=["api"])
CsrfHeader = Annotated[str | None, Header()]


class Decision(BaseModel):
    decision: str
    note: str = ""


class BulkDecision(BaseModel):
    item_ids: list[int] = Field(max_length=BULK_MAX)
    decision: str  # approve or reject
    note: str = ""


@router.get("/api/openapi.json", include_in_schema=False)
def openapi(request: Request, user: CurrentUser) -> dict[str, Any]:
    app = request.app
    return get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)


@router.get("/api/me")
def api_me(user: CurrentUser) -> dict[str, str]:
    return {"username": user.username, "role": user.role, "csrf_token": user.csrf}


@router.get("/api/items")
def api_items(
    ctx: Context,
    user: CurrentUser,
    f: QueryFilters,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    items = ctx.queue.list(filters=f, limit=limit, offset=offset)
    return {"items": [i.__dict__ for i in items], "counts": ctx.queue.counts(f)}


@router.get("/api/items/{item_id}")
def api_item(item_id: int, ctx: Context, user: CurrentUser) -> dict[str, Any]:
    entry = ctx.queue.get(item_id)
    if entry is None:
        raise HTTPException(404, "no such item")
    return {**entry.__dict__, "provenance": ctx.files.provenance(entry)}


@router.post("/api/claim")
def api_claim(ctx: Context, user: CurrentUser, f: QueryFilters, x_csrf_token: CsrfHeader = None) -> dict[str, Any]:
    check_csrf(user, x_csrf_token)
    entry = ctx.queue.claim_next(user.username, ctx.settings.lease_seconds, f)
    if entry is None:
        raise HTTPException(404, "nothing to review")
    return entry.__dict__


@router.post("/api/items/{item_id}/decision")
def api_decide(
    item_id: int, body: Decision, ctx: Context, user: CurrentUser, x_csrf_token: CsrfHeader = None
) -> dict[str, Any]:
    check_csrf(user, x_csrf_token)
    try:
        ctx.queue.decide(item_id, user.username, body.decision, body.note, admin=user.is_admin, mode="item")
    except ClaimError as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    METRICS.review_decisions.labels(user.username, body.decision).inc()
    entry = ctx.queue.get(item_id)
    return entry.__dict__ if entry else {}


@router.post("/api/decisions")
def api_decide_many(
    body: BulkDecision, ctx: Context, user: CurrentUser, x_csrf_token: CsrfHeader = None
) -> dict[str, Any]:
    """Approve or reject many items: each claimed and decided in turn (one log row each); an item another
    curator holds, or one no longer pending, is skipped and listed."""
    check_csrf(user, x_csrf_token)
    try:
        out = decide_each(ctx.queue, body.item_ids, user.username, body.decision, ctx.settings.lease_seconds, body.note)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    for _ in out.decided:
        METRICS.review_decisions.labels(user.username, body.decision).inc()
    return {
        "decision": body.decision,
        "decided": out.decided,
        "skipped_held": out.held,
        "skipped_not_pending": out.gone,
        "message": out.summary(),
    }


@router.get("/api/health")
def api_health(ctx: Context, user: AdminUser) -> dict[str, Any]:
    return ctx.queue.health()


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: Context, authorization: Annotated[str | None, Header()] = None) -> Response:
    token = ctx.settings.metrics_token
    if not token:
        raise HTTPException(404)
    if not authorization or not hmac.compare_digest(authorization, f"Bearer {token}"):
        return Response("unauthorised", status_code=401)
    METRICS.observe_review_counts(*ctx.queue.pending_stats(), ctx.queue.facets()["collections"])
    return Response(METRICS.text(), media_type="text/plain; version=0.0.4")
