"""The ``chromata`` command line. Heavy modules (torch, ray, prefect) are imported inside commands."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chromata import __version__
from chromata.errors import ChromataError

app = typer.Typer(
    help="Colorize photo archives responsibly: provenance, confidence, human review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)
runs_app = typer.Typer(help="History of runs into a destination.", no_args_is_help=True)
manifest_app = typer.Typer(help="Inspect run manifests.", no_args_is_help=True)
app.add_typer(review_app, name="review")
app.add_typer(manifest_app, name="manifest")
app.add_typer(runs_app, name="runs")

console = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_FAILURES = 3  # the run completed, but some images failed


def _quiet_engines(verbose: bool) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:  # an expected error is printed once, as one line, by main(): not as the engine's traceback
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).addFilter(_drop_expected_errors)


def _drop_expected_errors(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, ChromataError)


@app.command()
def version() -> None:
    """Print chromata's version."""
    console.print(__version__)


@app.command()
def run(
    source: Annotated[str, typer.Argument(help="local folder or s3://bucket/prefix of scans")],
    out: Annotated[str, typer.Option("--out", "-o", help="local folder or s3://bucket/prefix for outputs")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="S3 endpoint URL")] = None,
    model: Annotated[
        str, typer.Option(help="builtin, builtin:v1, builtin:PATH, eccv16:PATH, siggraph17:PATH or onnx:PATH")
    ] = "builtin",
    workers: Annotated[int, typer.Option(help="colorizer actors in the Ray pool")] = 1,
    shard_size: Annotated[int, typer.Option(help="images per shard")] = 500,
    batch_size: Annotated[int, typer.Option(help="images per model batch")] = 8,
    threshold: Annotated[float, typer.Option(help="confidence below which images go to review")] = 0.4,
    review_budget: Annotated[
        float | None, typer.Option(help="instead: send this fraction (e.g. 0.05), least confident first")
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show engine logs")] = False,
) -> None:
    """Colorize every grey image under SOURCE into --out, with a manifest and a review queue."""
    from chromata.config import build_config

    cfg = build_config(
        source=source,
        destination=out,
        endpoint_url=endpoint_url,
        model=model,
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
        retry_failed=retry_failed,
        redo_rejected=redo_rejected,
        reprocess_if_model_changed=reprocess_if_model_changed,
        metrics_textfile=metrics_textfile,
    )
    _quiet_engines(verbose)
    from chromata.planning import preflight

    preflight(cfg)  # fail fast, before starting engines: bad bucket, unreadable source, unwritable dest
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from chromata import progress
    from chromata.flows.colorize_collection import colorize_collection

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
            summary = colorize_collection(cfg)
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


@app.command()
def serve(
    collections: Annotated[Path, typer.Option(help="TOML file listing collections and their schedules")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show engine logs")] = False,
) -> None:
    """Run every collection on its cron schedule from this process (Prefect serve; Ctrl-C stops)."""
    from chromata.collections_config import load_collections

    found = load_collections(collections)  # validate before starting anything
    _quiet_engines(verbose)
    from chromata.flows.nightly import serve as serve_nightly

    for c in found:
        console.print(f"{c.name}: {c.schedule} ({c.timezone})  {c.config.source} -> {c.config.destination}")
    serve_nightly(collections)


@app.command()
def train(
    data: Annotated[str, typer.Option(help="folder or s3://bucket/prefix/ of colour photographs")],
    out: Annotated[Path, typer.Option(help="where to write weights and model card")] = Path("trained-model"),
    steps: Annotated[int, typer.Option(help="optimiser steps of the cross-entropy stage")] = 4000,
    batch_size: Annotated[int, typer.Option(help="crops per step (per worker)")] = 12,
    crop: Annotated[int, typer.Option(help="training crop size (multiple of 32)")] = 160,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 3e-4,
    init: Annotated[str, typer.Option(help="imagenet, scratch, builtin (fine-tune the shipped model) or PATH")] = (
        "imagenet"
    ),
    augment: Annotated[bool, typer.Option(help="archive augmentations: grain, blur, dust, tone, toned prints")] = True,
    adversarial: Annotated[bool, typer.Option(help="add a PatchGAN adversarial fine-tune stage")] = False,
    adversarial_steps: Annotated[int, typer.Option(help="steps of the adversarial stage")] = 1000,
    workers: Annotated[int, typer.Option(help="data-parallel workers through Ray Train (1 = this process)")] = 1,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster for --workers > 1 (default: local)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint for s3:// data")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="time budget; the LR schedule ends with it")] = None,
    name: Annotated[str, typer.Option(help="model name written into the weights and card")] = "chromata-builtin-v2",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train (or fine-tune) the built-in model on colour photos, colour removed on the fly; evaluate it."""
    from chromata.errors import ConfigError
    from chromata.training import INITS, TrainConfig
    from chromata.training import train as run_training

    if not data.startswith("s3://") and not Path(data).is_dir():
        raise ConfigError(f"training data folder not found: {data}")
    if crop % 32:
        raise ConfigError("--crop must be a multiple of 32")
    if init not in INITS and not Path(init).is_file():
        raise ConfigError(f"--init must be one of {', '.join(INITS)} or an existing weights file: {init}")
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig(
        data=data,
        out=out,
        steps=steps,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        init=init,
        augment=augment,
        adversarial=adversarial,
        adversarial_steps=adversarial_steps,
        device=device,
        endpoint_url=endpoint_url,
        max_minutes=max_minutes,
        name=name,
        seed=seed,
    )
    try:
        if workers > 1:
            from chromata.actors.training import train_distributed

            card = train_distributed(cfg, workers, address=ray_address)
        else:
            card = run_training(cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    console.print_json(json.dumps({k: v for k, v in card["validation"].items() if k != "by_decoding"}))
    console.print(f"weights and model card written to {out}")


@app.command("eval")
def evaluate_cmd(
    data: Annotated[Path, typer.Argument(help="folder of colour photographs")],
    model: Annotated[list[str] | None, typer.Option(help="model spec; repeat to compare models")] = None,
    out: Annotated[Path, typer.Option(help="report folder: eval.parquet, eval.md, contact-sheet.html")] = Path(
        "eval-report"
    ),
    split: Annotated[str, typer.Option(help="val (the shipped model card's held-out photos) or all")] = "val",
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N photos")] = None,
    temperature: Annotated[float | None, typer.Option(help="annealed-mean temperature override")] = None,
) -> None:
    """Colour photos → remove colour → colorize → PSNR, SSIM, CIEDE2000, colourfulness vs the truth and baselines."""
    from chromata.errors import ConfigError
    from chromata.evaluation import load_images
    from chromata.models import load_colorizer
    from chromata.models.builtin import builtin_card
    from chromata.quality import evaluate_models

    if not data.is_dir():
        raise ConfigError(f"evaluation data folder not found: {data}")
    specs = model or ["builtin"]
    models = [(spec, load_colorizer(spec, temperature=temperature)) for spec in specs]
    if split == "val":
        names = builtin_card()["data"]["validation_files"]
        files = [data / n for n in names if (data / n).is_file()]
    elif split == "all":
        files = sorted(p for p in data.iterdir() if p.is_file())
    else:
        raise ConfigError("--split must be val or all")
    images = load_images(files[:limit] if limit else files)
    if not images:
        raise ConfigError(f"no readable colour photos to evaluate in {data} (split {split})")
    report = evaluate_models(images, models)
    paths = report.write(out)
    typer.echo(report.markdown())
    console.print(f"report: {paths['markdown']}, {paths['parquet']}, {paths['html']}")


@app.command("export-onnx")
def export_onnx(
    out: Annotated[Path, typer.Option(help="ONNX file to write")] = Path("chromata-builtin.onnx"),
    model: Annotated[str, typer.Option(help="builtin, builtin:v1 or builtin:PATH")] = "builtin",
    check: Annotated[bool, typer.Option(help="run both and report the largest difference")] = True,
) -> None:
    """Export the built-in model (network + decoding) to ONNX, for ONNX Runtime or other engines."""
    import numpy as np

    from chromata.errors import ConfigError
    from chromata.models import load_colorizer
    from chromata.models.onnx import OnnxColorizer, export_builtin

    if not model.startswith("builtin"):
        raise ConfigError("only the built-in model can be exported: --model builtin[:PATH]")
    colorizer = load_colorizer(model, device="cpu")
    export_builtin(colorizer, out)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {colorizer.name}")
    if check:
        size = colorizer.input_size
        x = np.random.default_rng(0).uniform(0, 100, (2, size, size)).astype(np.float32)
        a, b = colorizer.predict_ab(x), OnnxColorizer(out, device="cpu").predict_ab(x)
        console.print(f"torch vs ONNX Runtime: max |Δab| {np.abs(a.ab - b.ab).max():.2e}")


@app.command()
def calibrate(
    data: Annotated[Path, typer.Option(help="folder of colour photographs the model was not trained on")],
    model: Annotated[str, typer.Option(help="builtin or builtin:PATH")] = "builtin",
    files: Annotated[str, typer.Option(help="val (the model card's held-out photos) or all")] = "val",
    crops: Annotated[int, typer.Option(help="random crops per photo, besides the whole photo")] = 4,
    target: Annotated[float | None, typer.Option(help="CIEDE2000 that counts as good (default: median)")] = None,
    out: Annotated[Path | None, typer.Option(help="calibration JSON (default: beside the weights)")] = None,
    report_dir: Annotated[Path | None, typer.Option(help="write reliability.png and calibration.json here")] = None,
) -> None:
    """Fit the map from raw confidence to P(CIEDE2000 <= target) on photos with their colour removed.

    Photos are split by a hash of their name: one half fits the map, the other half measures it
    (AUROC, reliability diagram), so no photo is used for both."""
    import hashlib
    from collections import Counter

    from chromata import calibration as cal
    from chromata.errors import ConfigError
    from chromata.evaluation import load_images
    from chromata.models import load_colorizer
    from chromata.models.builtin import builtin_card, builtin_weights_path, calibration_path

    if not data.is_dir():
        raise ConfigError(f"calibration data folder not found: {data}")
    colorizer = load_colorizer(model)
    colorizer.calibration = None  # fit on the raw score
    if files == "val":
        paths = [data / n for n in builtin_card()["data"]["validation_files"] if (data / n).is_file()]
    elif files == "all":
        paths = sorted(p for p in data.iterdir() if p.is_file())
    else:
        raise ConfigError("--files must be val or all")
    images = load_images(paths)
    if len(images) < 6:
        raise ConfigError(f"need at least 6 photos to calibrate, found {len(images)} in {data}")
    samples = cal.collect_samples(images, colorizer, crops_per_photo=crops)
    # SHA-256, not the SHA-1 that picked the validation photos (which would put them all in one half)
    half = {name: int(hashlib.sha256(name.encode()).hexdigest(), 16) % 2 for name, _ in images}
    fit_set = [s for s in samples if half[s.photo] == 0]
    test_set = [s for s in samples if half[s.photo] == 1]
    fitted = cal.fit(
        [s.raw for s in fit_set],
        [s.delta_e for s in fit_set],
        colorizer.weights_sha256,
        photos=sum(1 for v in half.values() if v == 0),
        target=target,
    )
    good = [s.delta_e <= fitted.target_ciede2000 for s in test_set]
    probs = [fitted.apply(s.raw) for s in test_set]
    auroc_cal = round(cal.auroc(probs, good), 4)
    summary = {
        "model_sha256": colorizer.weights_sha256,
        "target_ciede2000": fitted.target_ciede2000,
        "fit": {"photos": fitted.photos, "samples": len(fit_set)},
        "test": {
            "photos": len({s.photo for s in test_set}),
            "samples": len(test_set),
            "auroc_raw_score": round(cal.auroc([s.raw for s in test_set], good), 4),
            "auroc_calibrated": auroc_cal,
            "brier": round(float(sum((p - g) ** 2 for p, g in zip(probs, good, strict=True)) / len(good)), 4),
        },
        "reasons": dict(Counter(r for s in samples for r in s.reasons).most_common()),
        "samples_with_no_reason": sum(1 for s in samples if not s.reasons),
    }
    weights = Path(model.partition(":")[2]) if ":" in model else builtin_weights_path()
    target_path = out or calibration_path(weights)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    target_path.write_text(fitted.to_json(), encoding="utf-8")
    if report_dir:
        report_dir.mkdir(parents=True, exist_ok=True)
        title = f"held-out test photos: AUROC {auroc_cal}, n={len(test_set)}"
        (report_dir / "reliability.png").write_bytes(cal.reliability_diagram_png(probs, good, title))
        (report_dir / "calibration.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    console.print_json(json.dumps(summary))
    console.print(f"calibration written to {target_path}")


def _review_url(db: str | None, out: str | None) -> str:
    from chromata.config import build_config

    if db:
        return db
    if out:
        return build_config(source="-", destination=out).review_db_url()
    from chromata.errors import ConfigError

    raise ConfigError("give --db URL or --out DESTINATION to find the review queue")


@review_app.command("list")
def review_list(
    db: Annotated[str | None, typer.Option(envvar="CHROMATA_REVIEW_DB", help="review database URL")] = None,
    out: Annotated[str | None, typer.Option("--out", help="run destination (uses its SQLite queue)")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all")] = "pending",
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Show images waiting for a curator, least confident first."""
    from chromata.review.store import ReviewQueue

    queue = ReviewQueue(_review_url(db, out))
    entries = queue.list(status=None if status == "all" else status, limit=limit)
    table = Table(title=f"review queue: {queue.count(None if status == 'all' else status)} {status}")
    for col in ("id", "confidence", "reasons", "source", "output", "status"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            str(e.id), f"{e.confidence:.3f}", ", ".join(e.reasons) or "-", e.source_uri, e.output_uri, e.status
        )
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
        db_url=_review_url(db, outputs),
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
    import sys

    from chromata.errors import ConfigError
    from chromata.review.store import ReviewQueue

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    queue = ReviewQueue(_review_url(db, out))
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
    from chromata.review.export import export_decisions
    from chromata.review.store import ReviewQueue
    from chromata.storage import open_storage

    queue = ReviewQueue(_review_url(db, out))
    try:
        key, rows = export_decisions(queue, open_storage(out, endpoint_url))
    finally:
        queue.close()
    console.print(f"{rows} decisions written to {key}")


@app.command()
def provenance(
    file: Annotated[Path, typer.Argument(help="an output file written by chromata")],
    as_json: Annotated[bool, typer.Option("--json", help="print the chain as JSON")] = False,
) -> None:
    """Print the provenance chain of an output: source, model, run, parameters, review decision."""
    from chromata.errors import ConfigError
    from chromata.provenance import provenance_chain

    if not file.is_file():
        raise ConfigError(f"file not found: {file}")
    chain = provenance_chain(file)
    if as_json:
        console.print_json(json.dumps(chain, default=str))
        return
    x, row = chain["embedded"], chain.get("row") or {}
    t = Table(title=f"provenance of {file.name}", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("file sha256", chain["sha256"])
    t.add_row("AI-colorized", f"yes — {x.get('digitalSourceType')}" if chain["ai_colorized"] else "no chromata label")
    t.add_row("source", f"{x.get('sourceUri', '-')} (sha256 {x.get('sourceSha256', '-')[:16]}…)")
    if "source_verified" in chain:
        t.add_row("source still matches", "yes" if chain["source_verified"] else "NO (changed or missing)")
    t.add_row("model", f"{x.get('modelName', '-')} (weights {x.get('modelSha256', '-')[:16]}…)")
    t.add_row("run", x.get("runId", "-"))
    t.add_row("confidence", x.get("confidence", "-"))
    if chain.get("manifest"):
        t.add_row("manifest", chain["manifest"])
        t.add_row(
            "matches manifest row", "yes" if chain["file_matches_manifest"] else "NO (file changed since the run)"
        )
        if row:
            t.add_row("chromata version", str(row.get("chromata_version")))
            t.add_row("parameters", str(row.get("params_json")))
            t.add_row("processed", f"{row.get('started_at')} → {row.get('finished_at')}")
            t.add_row("reasons", ", ".join(row.get("confidence_reasons") or []) or "-")
        review = chain.get("review")
        t.add_row("review", f"{review['decision']} by {review['curator']}" if review else "no exported decision")
        t.add_row("other versions", str(len(chain["other_versions"])))
    console.print(t)


@app.command()
def iiif(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    base_url: Annotated[str, typer.Option(help="public HTTP(S) address where DESTINATION's files are served")],
    collection: Annotated[str | None, typer.Option(help="collection name for the manifest label")] = None,
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
) -> None:
    """Write a IIIF Presentation 3 manifest of the colorized images, labelled "AI colorized"."""
    from chromata.errors import ConfigError
    from chromata.iiif import write_manifest
    from chromata.storage import open_storage

    if not base_url.startswith(("http://", "https://")):
        raise ConfigError("--base-url must be an http(s) address")
    storage = open_storage(destination, endpoint_url)
    key, canvases = write_manifest(storage, base_url, collection or destination.rstrip("/").rsplit("/", 1)[-1])
    console.print(f"IIIF manifest with {canvases} canvases: {storage.uri(key)}")


@manifest_app.command("show")
def manifest_show(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
    status: Annotated[str | None, typer.Option(help="only rows with this status")] = None,
    limit: Annotated[int, typer.Option()] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print rows as JSON lines")] = False,
) -> None:
    """Summarise the manifest under DESTINATION and print its rows."""
    from collections import Counter

    from chromata.manifest import read_manifest
    from chromata.review.export import latest_decisions
    from chromata.storage import open_storage

    storage = open_storage(destination, endpoint_url)
    table_ = read_manifest(storage)
    rows = table_.to_pylist()
    decided = latest_decisions(storage)  # exported curator decisions (chromata review export)
    for r in rows:
        d = decided.get((r["image_id"], r["output_sha256"]))
        r["review_decision"] = d["decision"] if d else None
        r["review_curator"] = d["curator"] if d else None
    counts = Counter(r["status"] for r in rows)
    console.print(f"{len(rows)} rows: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    reviewed = Counter(r["review_decision"] for r in rows if r["review_decision"])
    if reviewed:
        console.print("curator decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(reviewed.items())))
    if status:
        rows = [r for r in rows if r["status"] == status]
    rows = rows[:limit]
    if as_json:
        for r in rows:
            console.print_json(json.dumps(r, default=str))
        return
    t = Table()
    for col in ("source_key", "status", "confidence", "reasons", "needs_review", "review", "error"):
        t.add_column(col)
    for r in rows:
        conf = "-" if r["confidence"] is None else f"{r['confidence']:.3f}"
        t.add_row(
            r["source_key"],
            r["status"],
            conf,
            ", ".join(r["confidence_reasons"] or []),
            str(r["needs_review"]),
            f"{r['review_decision']} ({r['review_curator']})" if r["review_decision"] else "",
            r["error"] or "",
        )
    console.print(t)


@runs_app.command("list")
def runs_list(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
) -> None:
    """Every run that committed rows to DESTINATION, oldest first."""
    from chromata.runs import run_history
    from chromata.storage import open_storage

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
    from collections import Counter

    import pyarrow.compute as pc

    from chromata.errors import ConfigError
    from chromata.manifest import read_manifest
    from chromata.report import report_key
    from chromata.runs import run_history
    from chromata.storage import open_storage

    storage = open_storage(destination, endpoint_url)
    match = [r for r in run_history(storage) if r.run_id == run_id]
    if not match:
        raise ConfigError(f"no run {run_id} in {destination}")
    r = match[0]
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
    table_ = read_manifest(storage, columns=["run_id", "error"])
    errors = table_.filter(pc.equal(table_["run_id"], run_id))["error"].to_pylist()
    for reason, n in Counter(e.split(":", 1)[0] for e in errors if e).most_common():
        t.add_row(f"failed: {reason}", str(n))
    console.print(t)


@app.command()
def plan(
    source: Annotated[str, typer.Argument(help="local folder or s3://bucket/prefix of scans")],
    out: Annotated[str, typer.Option("--out", "-o", help="the destination a run would use")],
    workers: Annotated[int, typer.Option(help="colorizer actors the run would use")] = 1,
    shard_size: Annotated[int, typer.Option(help="images per shard")] = 500,
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="S3 endpoint URL")] = None,
) -> None:
    """What a run would do: objects, bytes, shards and expected hours — no image is processed."""
    from chromata.config import build_config
    from chromata.planning import Planner
    from chromata.runs import estimate, run_history
    from chromata.storage import open_storage

    cfg = build_config(
        source=source, destination=out, workers=workers, shard_size=shard_size, endpoint_url=endpoint_url
    )
    p = Planner(cfg)
    for _ in p.shards():  # stream the listing; nothing is kept but counts
        pass
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
        ("throughput per worker", f"{est.bytes_per_second_per_worker / 1e6:.2f} MB/s ({est.basis})"),
        ("expected processing time", f"{est.hours:.2f} h ({est.hours * 60:.0f} min)"),
    ):
        t.add_row(k, v)
    console.print(t)


def main() -> None:
    """Entry point: expected errors become one line on stderr, never a traceback."""
    try:
        app()
    except ChromataError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CHROMATA_DEBUG"):
            raise
        err.print(
            f"[red]error:[/red] unexpected {type(exc).__name__}: {exc} (CHROMATA_DEBUG=1 shows a traceback)",
            highlight=False,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
