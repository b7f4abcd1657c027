"""``chromata runs …``: the history of runs into a destination."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chromata.cli._common import console

runs_app = typer.Typer(help="History of runs into a destination.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
) -> None:
    """Every run that committed rows to DESTINATION, oldest first."""
    from chromata.archive import open_storage
    from chromata.record.runs import run_history

    t = Table(title=f"runs into {destination}")
    for col in ("run id", "started (UTC)", "wall", "ok", "failed", "skipped", "review", "images/s"):
        t.add_column(col)
    for r in run_history(open_storage(destination, endpoint_url)):
        t.add_row(
            r.run_id,
            f"{r.started:%Y-%m-%d %H:%M:%S}",
            f"{r.seconds:.1f} s",
            str(r.ok),
            str(r.failed),
            str(r.skipped),
            str(r.needs_review),
            f"{r.images_per_second:.2f}",
        )
    console.print(t)


@runs_app.command("show")
def runs_show(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    run_id: Annotated[str, typer.Argument(help="a run id from `chromata runs list`")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
) -> None:
    """One run: counts, throughput, failures and where its report is."""
    from chromata.archive import open_storage
    from chromata.errors import ConfigError
    from chromata.monitoring.report import report_key
    from chromata.record.runs import failure_counts, find_run

    storage = open_storage(destination, endpoint_url)
    r = find_run(storage, run_id)
    if r is None:
        raise ConfigError(f"no run {run_id} in {destination}")
    t = Table(title=f"run {run_id}", show_header=False)
    for k, v in (
        ("started (UTC)", f"{r.started:%Y-%m-%d %H:%M:%S}"),
        ("finished (UTC)", f"{r.finished:%H:%M:%S}"),
        ("images", str(r.images)),
        ("ok", str(r.ok)),
        ("failed", str(r.failed)),
        ("skipped", str(r.skipped)),
        ("sent to review", str(r.needs_review)),
        ("throughput", f"{r.images_per_second:.2f} images/s"),
        ("workers", str(r.workers)),
        ("report", storage.uri(report_key(run_id)) if storage.exists(report_key(run_id)) else "-"),
    ):
        t.add_row(k, v)
    for reason, n in failure_counts(storage, run_id):
        t.add_row(f"failed: {reason}", str(n))
    console.print(t)
