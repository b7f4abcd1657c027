"""An item's images: addressed by queue item id and kind only, read from the destination by the keys the
item (or its manifest row) records, never by a path from the request."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from chromata.errors import StorageError
from chromata.review.deps import Context, CurrentUser
from chromata.review.images import KINDS

router = APIRouter(include_in_schema=False)


@router.get("/items/{item_id}/image/{kind}")
def image(item_id: int, kind: str, ctx: Context, user: CurrentUser) -> Response:
    return _serve(item_id, kind, ctx, thumbnail=False)


@router.get("/items/{item_id}/thumb/{kind}")
def thumbnail(item_id: int, kind: str, ctx: Context, user: CurrentUser) -> Response:
    """The queue grid's small previews (the same kinds and the same checks as the full previews)."""
    return _serve(item_id, kind, ctx, thumbnail=True)


def _serve(item_id: int, kind: str, ctx: Context, thumbnail: bool) -> Response:
    if kind not in KINDS:
        raise HTTPException(404, "no such image kind")
    entry = ctx.queue.get(item_id)
    if entry is None:
        raise HTTPException(404, "no such item")
    try:
        data, media = ctx.files.thumbnail(entry, kind) if thumbnail else ctx.files.preview(entry, kind)
    except (StorageError, OSError) as exc:
        raise HTTPException(404, f"image unavailable: {exc}") from exc
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=300"})
