"""``chromata review …``: the human review queue and the curators' web app."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from chromata.cli._common import console, err, review_url

review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)


@review_app.command("list")
def review_list(
    db: Annotated[str | None, typer.Option(envvar="CHROMATA_REVIEW_DB", help="review database URL")] = None,
    out: Annotated[str | None, typer.Option("--out", help="run destination (uses its SQLite queue)")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all")] = "pending",
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Show images waiting for a curator, least confident first."""
    from chromata.judgement.reasons import describe
    from chromata.review.store import ReviewQueue

    queue = ReviewQueue(review_url(db, out))
    entries = queue.list(status=None if status == "all" else status, limit=limit)
    table = Table(title=f"review queue: {queue.count(None if status == 'all' else status)} {status}")
    for col in ("id", "confidence", "why a curator should look", "image", "heatmap", "status"):
        table.add_column(col, overflow="fold")
    for e in entries:
        image = e.output_key or e.output_uri.rsplit("/", 1)[-1]
        why = "; ".join(describe(e.reasons)) or "-"
        table.add_row(str(e.id), f"{e.confidence:.3f}", why, image, e.heatmap_key or "-", e.status)
    console.print(table)
    queue.close()


@review_app.command("serve")
def review_serve(
    db: Annotated[str | None, typer.Option(envvar="CHROMATA_REVIEW_DB", help="review database URL")] = None,
    outputs: Annotated[
        str | None, typer.Option(envvar="CHROMATA_OUTPUTS", help="the run destination whose images are reviewed")
    ] = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    mode: Annotated[str, typer.Option(envvar="CHROMATA_MODE", help="local (http, laptop) or production")] = "local",
    secret_key: Annotated[
        str | None, typer.Option(envvar="CHROMATA_SECRET_KEY", help="session signing key (required in production)")
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
    metrics_token: Annotated[
        str | None, typer.Option(envvar="CHROMATA_METRICS_TOKEN", help="bearer token enabling /metrics")
    ] = None,
) -> None:
    """Start the curators' web app (FastAPI + uvicorn)."""
    import uvicorn

    from chromata.errors import ConfigError
    from chromata.review.app import AppSettings, create_app

    if not outputs:
        raise ConfigError("give --outputs (the run destination whose images are reviewed)")
    settings = AppSettings(
        db_url=review_url(db, outputs),
        outputs=outputs,
        secret_key=secret_key or "local-development-only",
        mode=mode,
        endpoint_url=endpoint_url,
        metrics_token=metrics_token,
    )
    app_ = create_app(settings)  # validates settings and migrates the database before listening
    if mode == "local" and not secret_key:
        err.print("[yellow]local mode with the development secret: sessions do not survive a restart elsewhere[/]")
    err.print(f"review app on http://{host}:{port}/ (queue: {settings.db_url})")
    uvicorn.run(app_, host=host, port=port, log_level="warning", proxy_headers=mode == "production")


@review_app.command("add-user")
def review_add_user(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option(help="curator or admin")] = "curator",
    db: Annotated[str | None, typer.Option(envvar="CHROMATA_REVIEW_DB", help="review database URL")] = None,
    out: Annotated[str | None, typer.Option("--out", help="run destination (uses its SQLite queue)")] = None,
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
) -> None:
    """Create a curator (or admin) account; the password is prompted for, or read from stdin."""
    from chromata.errors import ConfigError
    from chromata.review.store import ReviewQueue

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    queue = ReviewQueue(review_url(db, out))
    try:
        queue.add_user(username, password, role)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    finally:
        queue.close()
    console.print(f"added {role} {username}")


@review_app.command("export")
def review_export(
    out: Annotated[str, typer.Option("--out", help="run destination: decisions go to its _chromata/decisions/")],
    db: Annotated[str | None, typer.Option(envvar="CHROMATA_REVIEW_DB", help="review database URL")] = None,
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
) -> None:
    """Write the curators' decisions, joined to the manifest, as Parquet beside the manifest."""
    from chromata.archive import open_storage
    from chromata.review.export import export_decisions
    from chromata.review.store import ReviewQueue

    queue = ReviewQueue(review_url(db, out))
    try:
        key, rows = export_decisions(queue, open_storage(out, endpoint_url))
    finally:
        queue.close()
    console.print(f"{rows} decisions written to {key}")
