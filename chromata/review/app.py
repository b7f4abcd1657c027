"""The curators' review web app: FastAPI, server-rendered Jinja2 pages, a little vanilla JS.

Security model: every page, image and API route needs a login (argon2-hashed accounts, sessions in
signed cookies); every state-changing request carries a CSRF token (forms: a hidden field; the JSON
API: an ``X-CSRF-Token`` header); roles ``curator`` and ``admin``; failed logins are rate-limited;
responses carry CSP, frame and content-type headers; images are addressed by queue item id and kind
only, and their storage keys are checked to stay inside the outputs location. The original greyscale is
shown as the L* of the colorized output, which chromata keeps bit-identical to the source's luminance,
so the app needs read access to the derivatives only.
"""

import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from chromata import color
from chromata.errors import ConfigError, StorageError
from chromata.manifest import HEATMAP_PREFIX, read_manifest
from chromata.metrics import METRICS
from chromata.review.store import DECISIONS, ClaimError, Filters, QueueEntry, ReviewQueue
from chromata.storage import key_for_uri, open_storage

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
INSECURE_SECRETS = {"", "change-me", "secret", "dev", "local-development-only"}
SESSION_COOKIE = "chromata_session"
LOGIN_CSRF_COOKIE = "chromata_login_csrf"
KINDS = ("colour", "grey", "heatmap")


@dataclass(frozen=True)
class AppSettings:
    db_url: str
    outputs: str  # local folder or s3:// URI of the derivatives
    secret_key: str = "local-development-only"
    mode: str = "local"  # "local" (laptop, http) or "production" (https, strong secret required)
    endpoint_url: str | None = None
    lease_seconds: float = 900.0
    session_hours: float = 12.0
    preview_max: int = 2048
    metrics_token: str | None = None
    login_attempts: int = 5  # per (client, username) per window
    login_window_seconds: float = 300.0

    def validate(self) -> None:
        if self.mode not in ("local", "production"):
            raise ConfigError("mode must be local or production")
        if self.mode != "local" and (self.secret_key in INSECURE_SECRETS or len(self.secret_key) < 32):
            raise ConfigError(
                "refusing to start outside local mode with an insecure secret key: set CHROMATA_SECRET_KEY "
                "to at least 32 random characters (e.g. openssl rand -hex 32)"
            )


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


class Decision(BaseModel):
    decision: str
    note: str = ""


class _Previews:
    """A small LRU of rendered previews (item, kind) -> JPEG/PNG bytes."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[tuple[int, str, str], bytes] = OrderedDict()

    def get(self, key: tuple[int, str, str]) -> bytes | None:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: tuple[int, str, str], data: bytes) -> None:
        self.items[key] = data
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def _preview(data: bytes, kind: str, max_side: int) -> tuple[bytes, str]:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise StorageError("not a readable image")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    unit = color.to_unit_float(img)
    if kind == "grey" and unit.ndim == 3:  # the output's L* (= the source's luminance) as neutral grey
        lab = color.bgr_to_lab(unit)
        lab[..., 1:] = 0.0
        unit = color.lab_to_bgr(lab)
    out = color.from_unit_float(unit, np.uint8)
    if kind == "heatmap":
        ok, buf = cv2.imencode(".png", out)
        return buf.tobytes(), "image/png"
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise StorageError("cannot encode preview")
    return buf.tobytes(), "image/jpeg"


def create_app(settings: AppSettings) -> FastAPI:
    settings.validate()
    queue = ReviewQueue(settings.db_url)
    storage = open_storage(settings.outputs, settings.endpoint_url)
    signer = URLSafeTimedSerializer(settings.secret_key, salt="chromata-review-session")
    limiter = RateLimiter(settings.login_attempts, settings.login_window_seconds)
    previews = _Previews()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    secure_cookies = settings.mode == "production"
    manifest_cache: dict[str, Any] = {"at": 0.0, "rows": {}}

    app = FastAPI(
        title="chromata review",
        version="1",
        description="Curators review AI colorizations. All routes need a session (log in at /login); "
        "state-changing requests need the X-CSRF-Token header (GET /api/me returns it).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.queue = queue
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # -- middleware: security headers and request metrics --------------------------------------------
    @app.middleware("http")
    async def headers_and_metrics(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if secure_cookies:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        route = request.scope.get("route")
        METRICS.http_latency.labels(
            getattr(route, "path", "unmatched"), request.method, str(response.status_code)
        ).observe(time.perf_counter() - t0)
        return response

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "login required"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> Response:
        """The database went away and a fresh connection failed too (pool_pre_ping already replaced the
        stale one): nothing was saved. Say so, so the curator retries, rather than a bare 500."""
        log.warning("review database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        message = "The review database is unavailable; your decision was NOT saved. Please try again in a moment."
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": "5"})
        return HTMLResponse(f"<h1>Temporarily unavailable</h1><p>{message}</p>", 503, headers={"Retry-After": "5"})

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc) or "forbidden"}, status_code=403)
        return HTMLResponse(f"<h1>403 Forbidden</h1><p>{exc}</p>", status_code=403)

    # -- sessions ------------------------------------------------------------------------------------
    def session_user(request: Request) -> User:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            raise LoginRequired()
        try:
            data = signer.loads(raw, max_age=int(settings.session_hours * 3600))
        except BadSignature:
            raise LoginRequired() from None
        role = queue.user_role(str(data.get("u", "")))
        if role is None:  # deleted or deactivated since login
            raise LoginRequired()
        return User(str(data["u"]), role, str(data["csrf"]))

    def admin_user(user: Annotated[User, Depends(session_user)]) -> User:
        if not user.is_admin:
            raise Forbidden("admins only")
        return user

    def check_csrf(user: User, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, user.csrf):
            raise Forbidden("missing or wrong CSRF token")

    CurrentUser = Annotated[User, Depends(session_user)]
    AdminUser = Annotated[User, Depends(admin_user)]

    def render(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"user": user, **ctx})

    def filters_from(params: dict[str, Any]) -> Filters:
        def num(key: str) -> float | None:
            try:
                return float(params[key]) if params.get(key) not in (None, "") else None
            except ValueError:
                return None

        return Filters(
            status=params.get("status") or "pending",
            collection=params.get("collection") or None,
            run_id=params.get("run") or None,
            reason=params.get("reason") or None,
            min_confidence=num("min_confidence"),
            max_confidence=num("max_confidence"),
        )

    def provenance(entry: QueueEntry) -> dict[str, Any]:
        now = time.monotonic()
        if now - manifest_cache["at"] > 60:
            try:
                table = read_manifest(storage)
                manifest_cache["rows"] = {(r["image_id"], r["output_sha256"]): r for r in table.to_pylist()}
            except Exception as exc:  # a missing or unreadable manifest must not hide the item
                log.warning("manifest unavailable: %s", exc)
                manifest_cache["rows"] = {}
            manifest_cache["at"] = now
        row = dict(manifest_cache["rows"].get((entry.image_id, entry.output_sha256), {}))
        return {k: v for k, v in row.items() if v not in (None, "", [])}

    # -- public: login, logout, health -----------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> Response:
        token = secrets.token_urlsafe(24)
        resp = render(request, "login.html", None, csrf=token, next=next if next.startswith("/") else "/", error="")
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
        return resp

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        csrf_token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, csrf_token):
            return HTMLResponse("<h1>403 Forbidden</h1><p>missing or wrong CSRF token</p>", status_code=403)
        key = (request.client.host if request.client else "?", username.lower())
        wait = limiter.blocked(key)
        if wait > 0:
            return HTMLResponse(
                "<h1>429 Too many attempts</h1><p>Wait a few minutes and try again.</p>",
                status_code=429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        who = queue.authenticate(username, password)
        if who is None:
            limiter.fail(key)
            failed = render(request, "login.html", None, csrf=cookie, next=next, error="Wrong user name or password.")
            failed.status_code = 401
            return failed
        limiter.reset(key)
        token = signer.dumps({"u": who[0], "csrf": secrets.token_urlsafe(24)})
        resp = RedirectResponse(next if next.startswith("/") and not next.startswith("//") else "/", status_code=303)
        resp.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=secure_cookies,
            max_age=int(settings.session_hours * 3600),
        )
        resp.delete_cookie(LOGIN_CSRF_COOKIE)
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(user: CurrentUser, csrf_token: Annotated[str, Form()] = "") -> Response:
        check_csrf(user, csrf_token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    # -- pages -----------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def queue_page(request: Request, user: CurrentUser, order: str = "asc", page: int = Query(1, ge=1)) -> Response:
        params = dict(request.query_params)
        f = filters_from(params)
        per_page = 50
        items = queue.list(filters=f, limit=per_page, offset=(page - 1) * per_page, descending=order == "desc")
        query = urlencode({k: v for k, v in params.items() if k not in ("page",) and v})
        return render(
            request,
            "queue.html",
            user,
            items=items,
            counts=queue.counts(f),
            facets=queue.facets(),
            f=f,
            order=order,
            page=page,
            per_page=per_page,
            query=query,
            now=time.time(),
        )

    @app.get("/next", include_in_schema=False)
    def next_item(request: Request, user: CurrentUser) -> Response:
        entry = queue.claim_next(user.username, settings.lease_seconds, filters_from(dict(request.query_params)))
        if entry is None:
            return RedirectResponse("/?done=1", status_code=303)
        return RedirectResponse(f"/items/{entry.id}?{request.url.query}", status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse, include_in_schema=False)
    def item_page(request: Request, item_id: int, user: CurrentUser) -> Response:
        entry = queue.get(item_id)
        if entry is None:
            raise HTTPException(404, "no such item")
        if entry.status == "pending":
            queue.claim(item_id, user.username, settings.lease_seconds)
            entry = queue.get(item_id) or entry
        f = filters_from(dict(request.query_params))
        prev_id, next_id = queue.neighbours(item_id, f)
        mine = entry.claimed_by == user.username
        return render(
            request,
            "item.html",
            user,
            item=entry,
            provenance=provenance(entry),
            prev_id=prev_id,
            next_id=next_id,
            query=request.url.query,
            mine=mine,
            can_decide=entry.status == "pending" and (mine or user.is_admin),
            now=time.time(),
            decisions=DECISIONS,
        )

    @app.post("/items/{item_id}/decision", include_in_schema=False)
    def decide_form(
        request: Request,
        item_id: int,
        user: CurrentUser,
        decision: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(user, csrf_token)
        try:
            queue.decide(item_id, user.username, decision, note, admin=user.is_admin)
        except (ClaimError, ValueError) as exc:
            return HTMLResponse(f"<h1>409 Conflict</h1><p>{exc}</p><p><a href='/items/{item_id}'>back</a></p>", 409)
        METRICS.review_decisions.labels(user.username, decision).inc()
        return RedirectResponse(f"/next?{request.url.query}", status_code=303)

    @app.get("/items/{item_id}/image/{kind}", include_in_schema=False)
    def image(item_id: int, kind: str, user: CurrentUser) -> Response:
        if kind not in KINDS:
            raise HTTPException(404, "no such image kind")
        entry = queue.get(item_id)
        if entry is None:
            raise HTTPException(404, "no such item")
        cache_key = (item_id, kind, entry.output_sha256)
        cached = previews.get(cache_key)
        media = "image/png" if kind == "heatmap" else "image/jpeg"
        if cached is None:
            try:
                key = key_for_uri(storage, entry.output_uri)
                if kind == "heatmap":
                    key = f"{HEATMAP_PREFIX}/{key}.png"
                cached, media = _preview(storage.read(key), kind, settings.preview_max)
            except StorageError as exc:
                raise HTTPException(404, f"image unavailable: {exc}") from exc
            previews.put(cache_key, cached)
        return Response(cached, media_type=media, headers={"Cache-Control": "private, max-age=300"})

    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    def admin_page(request: Request, user: AdminUser) -> Response:
        return render(request, "admin.html", user, users=queue.users(), health=queue.health(), error="")

    @app.post("/admin/users", include_in_schema=False)
    def admin_add_user(
        request: Request,
        user: AdminUser,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        role: Annotated[str, Form()] = "curator",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(user, csrf_token)
        try:
            queue.add_user(username, password, role)
        except ValueError as exc:
            resp = render(request, "admin.html", user, users=queue.users(), health=queue.health(), error=str(exc))
            resp.status_code = 400
            return resp
        return RedirectResponse("/admin", status_code=303)

    # -- JSON API --------------------------------------------------------------------------------------
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: CurrentUser) -> dict[str, Any]:
        return get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)

    @app.get("/api/me", tags=["api"])
    def api_me(user: CurrentUser) -> dict[str, str]:
        return {"username": user.username, "role": user.role, "csrf_token": user.csrf}

    @app.get("/api/items", tags=["api"])
    def api_items(
        request: Request, user: CurrentUser, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
    ) -> dict[str, Any]:
        f = filters_from(dict(request.query_params))
        items = queue.list(filters=f, limit=limit, offset=offset)
        return {"items": [i.__dict__ for i in items], "counts": queue.counts(f)}

    @app.get("/api/items/{item_id}", tags=["api"])
    def api_item(item_id: int, user: CurrentUser) -> dict[str, Any]:
        entry = queue.get(item_id)
        if entry is None:
            raise HTTPException(404, "no such item")
        return {**entry.__dict__, "provenance": provenance(entry)}

    @app.post("/api/claim", tags=["api"])
    def api_claim(
        request: Request, user: CurrentUser, x_csrf_token: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        check_csrf(user, x_csrf_token)
        entry = queue.claim_next(user.username, settings.lease_seconds, filters_from(dict(request.query_params)))
        if entry is None:
            raise HTTPException(404, "nothing to review")
        return entry.__dict__

    @app.post("/api/items/{item_id}/decision", tags=["api"])
    def api_decide(
        item_id: int, body: Decision, user: CurrentUser, x_csrf_token: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        check_csrf(user, x_csrf_token)
        try:
            queue.decide(item_id, user.username, body.decision, body.note, admin=user.is_admin)
        except ClaimError as exc:
            raise HTTPException(409, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        METRICS.review_decisions.labels(user.username, body.decision).inc()
        entry = queue.get(item_id)
        return entry.__dict__ if entry else {}

    @app.get("/api/health", tags=["api"])
    def api_health(user: AdminUser) -> dict[str, Any]:
        return queue.health()

    @app.get("/metrics", include_in_schema=False)
    def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        if not settings.metrics_token:
            raise HTTPException(404)
        if not authorization or not hmac.compare_digest(authorization, f"Bearer {settings.metrics_token}"):
            return Response("unauthorised", status_code=401)
        METRICS.observe_review_queue(queue.pending_summary(), queue.facets()["collections"])
        return Response(METRICS.text(), media_type="text/plain; version=0.0.4")

    return app
