"""``chromata run``, ``serve`` and ``plan``: colorizing a collection, on demand or on a schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from chromata.cli._common import EXIT_FAILURES, console, err, model_help, quiet_engines
from chromata.config import DEFAULT_REVIEW_BUDGET as BUDGET

commands = typer.Typer()


@commands.command()
def run(
    source: Annotated[str, typer.Argument(help="local folder or s3://bucket/prefix of scans")],
    out: Annotated[str, typer.Option("--out", "-o", help="local folder or s3://bucket/prefix for outputs")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="S3 endpoint URL")] = None,
    model: Annotated[str, typer.Option(help=f"model spec: {model_help()} (chromata models lists them)")] = "builtin",
    model_size: Annotated[
        int | None,
        typer.Option(help="the model's working size, px (DDColor: a multiple of 32, default 512; DeOldify: 16, 560)"),
    ] = None,
    precision: Annotated[str, typer.Option(help="auto (float32), fp32 or fp16 (GPU, families that allow it)")] = "auto",
    workers: Annotated[int, typer.Option(help="colorizer actors in the Ray pool")] = 1,
    shard_size: Annotated[int, typer.Option(help="images per shard")] = 500,
    batch_size: Annotated[int, typer.Option(help="images per model batch")] = 8,
    threshold: Annotated[
        float | None, typer.Option(help="instead of the budget: send every image less confident than this")
    ] = None,
    review_budget: Annotated[
        float | None,
        typer.Option(help=f"share of the run sent to curators, least confident first [default: {BUDGET}]"),
    ] = None,
    review_db: Annotated[
        str | None, typer.Option(envvar="CHROMATA_REVIEW_DB", help="SQLAlchemy URL of the review queue")
    ] = None,
    collection: Annotated[str | None, typer.Option(help="collection name (default: source folder)")] = None,
    ray_address: Annotated[
        str | None, typer.Option(envvar="RAY_ADDRESS", help="existing Ray cluster (default: start a local one)")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    jpeg_quality: Annotated[int, typer.Option(help="JPEG output quality")] = 92,
    output_format: Annotated[
        str, typer.Option("--format", help="output format: same (as each source), jpeg, png, tiff, jp2, webp")
    ] = "same",
    label: Annotated[str, typer.Option(help="visible 'AI-colorized' label: none, corner or border")] = "none",
    c2pa_cert: Annotated[str | None, typer.Option(help="PEM certificate chain: C2PA-sign every output")] = None,
    c2pa_key: Annotated[str | None, typer.Option(help="PEM private key of --c2pa-cert")] = None,
    iiif_base_url: Annotated[
        str | None, typer.Option(help="also write a IIIF manifest; where the destination is served over HTTP")
    ] = None,
    iiif_source_id: Annotated[
        str | None,
        typer.Option(help="IIIF: public identifier of each source, e.g. '{collection}/{key}' (default: none named)"),
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="process again images that failed before")] = False,
    redo_rejected: Annotated[
        bool, typer.Option(help="colorize again images curators rejected (e.g. with another --model)")
    ] = False,
    reprocess_if_model_changed: Annotated[
        bool, typer.Option(help="process again images recorded with other model weights")
    ] = False,
    metrics_textfile: Annotated[
        str | None, typer.Option(help="write Prometheus metrics here at the end (node-exporter textfile)")
    ] = None,
    inventory: Annotated[
        str | None,
        typer.Option(help="plan from this S3 Inventory report (its manifest.json, s3:// or local) instead of listing"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show engine logs")] = False,
) -> None:
    """Colorize every grey image under SOURCE into --out, with a manifest and a review queue."""
    from chromata.config import build_config

    cfg = build_config(
        source=source,
        destination=out,
        endpoint_url=endpoint_url,
        model=model,
        model_size=model_size,
        precision=precision,
        workers=workers,
        shard_size=shard_size,
        batch_size=batch_size,
        review_threshold=threshold,
        review_budget=review_budget,
        review_db=review_db,
        collection=collection,
        ray_address=ray_address,
        device=device,
        jpeg_quality=jpeg_quality,
        output_format=output_format,
        label=label,
        c2pa_cert=c2pa_cert,
        c2pa_key=c2pa_key,
        iiif_base_url=iiif_base_url,
        iiif_source_id=iiif_source_id,
        retry_failed=retry_failed,
        redo_rejected=redo_rejected,
        reprocess_if_model_changed=reprocess_if_model_changed,
        metrics_textfile=metrics_textfile,
        inventory=inventory,
    )
    quiet_engines(verbose)
    from chromata.pipeline.planning import preflight

    preflight(cfg)  # fail fast, before starting engines: bad bucket, unreadable source, unwritable dest
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from chromata.flows.colorize_collection import run as run_with_engines
    from chromata.monitoring import progress

    with Progress(
        TextColumn("[bold]colorizing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:
        task_id = bar.add_task("run", total=None, rate="")

        class _Listener:
            def planned(self, images: int) -> None:
                bar.update(task_id, total=images)

            def advance(self, images: int) -> None:
                bar.advance(task_id, images)
                t = bar.tasks[0]
                if t.elapsed:
                    bar.update(task_id, rate=f"{t.completed / t.elapsed:.2f} images/s")

        with progress.listening(_Listener()):
            summary = run_with_engines(cfg)
    _print_summary(summary, cfg)
    if summary["failed"]:
        err.print(f"completed with {summary['failed']} failures (see the manifest's error column)")
        raise typer.Exit(EXIT_FAILURES)


def _print_summary(summary: dict[str, Any], cfg: Any) -> None:
    table = Table(title=f"chromata run {summary['run_id']}", show_header=False)
    for k in ("listed", "already_done", "deleted", "ok", "failed", "skipped", "needs_review", "queued", "shards"):
        table.add_row(k.replace("_", " "), str(summary[k]))
    secs = float(summary["seconds"])
    done = int(summary["ok"]) + int(summary["failed"]) + int(summary["skipped"])
    table.add_row("wall time", f"{secs:.1f} s")
    table.add_row("throughput", f"{done / secs:.2f} images/s" if secs else "-")
    table.add_row("outputs", cfg.destination)
    table.add_row("review queue", cfg.review_db_url())
    if summary.get("report_uri"):
        table.add_row("report", str(summary["report_uri"]))
    for reason, n in dict(summary.get("failures", {})).items():
        table.add_row(f"failed: {reason}", str(n))
    console.print(table)


@commands.command()
def serve(
    collections: Annotated[Path, typer.Option(help="TOML file listing collections and their schedules")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show engine logs")] = False,
) -> None:
    """Run every collection on its cron schedule from this process (Prefect serve; Ctrl-C stops)."""
    from chromata.collections_config import load_collections

    found = load_collections(collections)  # validate before starting anything
    quiet_engines(verbose)
    from chromata.flows.nightly import serve as serve_nightly

    for c in found:
        console.print(f"{c.name}: {c.schedule} ({c.timezone})  {c.config.source} -> {c.config.destination}")
    serve_nightly(collections)


@commands.command()
def plan(
    source: Annotated[str, typer.Argument(help="local folder or s3://bucket/prefix of scans")],
    out: Annotated[str, typer.Option("--out", "-o", help="the destination a run would use")],
    workers: Annotated[int, typer.Option(help="colorizer actors the run would use")] = 1,
    shard_size: Annotated[int, typer.Option(help="images per shard")] = 500,
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="S3 endpoint URL")] = None,
    inventory: Annotated[
        str | None,
        typer.Option(help="plan from this S3 Inventory report (its manifest.json, s3:// or local) instead of listing"),
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="the run's threshold routing, if it uses one")] = None,
    review_budget: Annotated[float | None, typer.Option(help=f"the run's review budget [default: {BUDGET}]")] = None,
) -> None:
    """What a run would do: objects, bytes, shards, expected hours and review items — no image is processed."""
    from chromata.archive import open_storage
    from chromata.config import build_config
    from chromata.pipeline.planning import Planner
    from chromata.pipeline.shards import review_items
    from chromata.record.runs import estimate, run_history

    cfg = build_config(
        source=source,
        destination=out,
        workers=workers,
        shard_size=shard_size,
        endpoint_url=endpoint_url,
        inventory=inventory,
        review_threshold=threshold,
        review_budget=review_budget,
    )
    p = Planner(cfg)
    queued = 0
    for shard in p.shards():  # stream the listing; nothing is kept but counts
        queued += review_items(cfg, len(shard.objects))
    est = estimate(p.images, p.bytes, run_history(open_storage(out, endpoint_url)), workers)
    t = Table(title=f"plan: {source} → {out}", show_header=False)
    for k, v in (
        ("images listed", str(p.listed)),
        ("already done", str(p.already_done)),
        ("gone from the source", str(p.deleted)),
        ("non-image files ignored", str(p.ignored)),
        ("to colorize", str(p.images)),
        ("bytes to read", f"{est.bytes / 1e6:,.1f} MB"),
        ("shards", str(p.shard_count)),
        ("workers", str(workers)),
        ("throughput per worker", _rate_line(est.bytes_per_second_per_worker, est.basis)),
        (
            "expected processing time",
            "unknown" if est.hours is None else f"{est.hours:.2f} h ({est.hours * 60:.0f} min)",
        ),
        ("to the review queue", _queue_line(cfg, queued, p.images)),
    ):
        t.add_row(k, v)
    console.print(t)


def _rate_line(rate: float | None, basis: str) -> str:
    return basis if rate is None else f"{rate / 1e6:.2f} MB/s ({basis})"


def _queue_line(cfg: Any, queued: int, images: int) -> str:
    if cfg.review_budget is None:
        return f"every image less confident than {cfg.review_threshold} (threshold routing: known only once scored)"
    share = f"{cfg.review_budget:.0%} of each shard's colorized images"
    return f"at most {queued} of {images} images ({share}; fewer if some fail or are skipped)"
