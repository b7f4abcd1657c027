"""``chromata train``, ``eval``, ``calibrate``, ``export-onnx`` and ``models``: the models themselves."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from chromata.cli._common import console, model_help

commands = typer.Typer()


@commands.command()
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
    checkpoint_every: Annotated[
        int, typer.Option(help="steps between resumable checkpoints in OUT/resume.pt (0: none); run again to resume")
    ] = 0,
    name: Annotated[str, typer.Option(help="model name written into the weights and card")] = "chromata-builtin-v2",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train (or fine-tune) the built-in model on colour photos, colour removed on the fly; evaluate it."""
    from chromata.errors import ConfigError
    from chromata.training import train as run_training
    from chromata.training.config import build_train_config

    cfg = build_train_config(
        workers=workers,
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
        checkpoint_every=checkpoint_every,
        name=name,
        seed=seed,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
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


@commands.command("eval")
def evaluate_cmd(
    data: Annotated[Path, typer.Argument(help="folder of colour photographs")],
    model: Annotated[
        list[str] | None, typer.Option(help=f"model spec ({model_help()}); repeat to compare models")
    ] = None,
    out: Annotated[Path, typer.Option(help="report folder: eval.parquet, eval.md, contact-sheet.html")] = Path(
        "eval-report"
    ),
    split: Annotated[str, typer.Option(help="val (the shipped model card's held-out photos) or all")] = "val",
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N photos")] = None,
    temperature: Annotated[float | None, typer.Option(help="annealed-mean temperature override")] = None,
    model_size: Annotated[
        int | None, typer.Option(help="working size for the families that take one (ddcolor, deoldify)")
    ] = None,
    doc: Annotated[
        Path | None, typer.Option(help="also write the table into this Markdown file's `eval` section")
    ] = None,
) -> None:
    """Colour photos → remove colour → colorize → PSNR, SSIM, CIEDE2000, colourfulness vs the truth and baselines,
    for each --model side by side (a contact sheet included), so a curator can choose."""
    from chromata.errors import ConfigError
    from chromata.models import load_colorizer
    from chromata.models.evaluation import load_images, select_photos
    from chromata.studies.quality import evaluate_models

    files = select_photos(data, split)
    from chromata.models import family

    def size_for(spec: str) -> int | None:
        return model_size if family(spec).size_step else None

    specs = model or ["builtin"]
    if model_size is not None and not any(family(spec).size_step for spec in specs):
        raise ConfigError(f"--model-size: none of {', '.join(specs)} takes a working size (ddcolor and deoldify do)")
    models = [(spec, load_colorizer(spec, temperature=temperature, input_size=size_for(spec))) for spec in specs]
    images = load_images(files[:limit] if limit else files)
    if not images:
        raise ConfigError(f"no readable colour photos to evaluate in {data} (split {split})")
    report = evaluate_models(images, models)
    paths = report.write(out)
    typer.echo(report.markdown())
    if doc is not None:
        from chromata.studies.crossfit import write_doc_section

        table = report.markdown().split("\n", 2)[2].rstrip("\n")  # without its title
        opts = [*(f"--model {m}" for m in specs), *([f"--split {split}"] if split != "val" else []),
                *([f"--limit {limit}"] if limit else []), *([f"--temperature {temperature}"] if temperature else []),
                *([f"--model-size {model_size}"] if model_size else [])]  # fmt: skip
        write_doc_section(doc, "eval", f"`chromata eval {data.name}/ {' '.join(opts)}`: {table}")
    console.print(f"report: {paths['markdown']}, {paths['parquet']}, {paths['html']}")


@commands.command("export-onnx")
def export_onnx(
    out: Annotated[Path, typer.Option(help="ONNX file to write")] = Path("chromata-builtin.onnx"),
    model: Annotated[str, typer.Option(help=model_help(exportable_only=True))] = "builtin",
    check: Annotated[bool, typer.Option(help="run both and report the largest difference")] = True,
) -> None:
    """Export the built-in model (network + decoding) to ONNX, for ONNX Runtime or other engines."""
    import numpy as np

    from chromata.errors import ConfigError
    from chromata.models import family, load_colorizer
    from chromata.models.onnx import OnnxColorizer, export_builtin

    if not family(model).exportable:
        raise ConfigError(f"only these models can be exported: --model {model_help(exportable_only=True)}")
    colorizer = load_colorizer(model, device="cpu")
    export_builtin(colorizer, out)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) from {colorizer.name}")
    if check:
        size = colorizer.input_size
        x = np.random.default_rng(0).uniform(0, 100, (2, size, size)).astype(np.float32)
        a, b = colorizer.predict_ab(x), OnnxColorizer(out, device="cpu").predict_ab(x)
        console.print(f"torch vs ONNX Runtime: max |Δab| {np.abs(a.ab - b.ab).max():.2e}")


@commands.command()
def calibrate(
    data: Annotated[Path | None, typer.Option(help="folder of colour photographs the model was not trained on")] = None,
    model: Annotated[str, typer.Option(help=model_help())] = "builtin",
    files: Annotated[str, typer.Option(help="val (the model card's held-out photos) or all")] = "val",
    crops: Annotated[int, typer.Option(help="random crops per photo, besides the whole photo")] = 4,
    target: Annotated[float | None, typer.Option(help="CIEDE2000 that counts as good (default: median)")] = None,
    out: Annotated[
        str | None, typer.Option(help="where to write the calibration JSON (default: beside the weights)")
    ] = None,
    report_dir: Annotated[Path | None, typer.Option(help="write reliability.png and calibration.json here")] = None,
    from_decisions: Annotated[
        bool, typer.Option(help="refit the review routing of --destination from its curators' exported decisions")
    ] = False,
    destination: Annotated[
        str | None,
        typer.Option("--destination", "--dest", help="--from-decisions: the run destination whose decisions to use"),
    ] = None,
    trial: Annotated[
        bool,
        typer.Option("--try", "--dry-run", help="--from-decisions: print the report and the verdict, write nothing"),
    ] = False,
    budget: Annotated[float, typer.Option(help="--from-decisions: the review budget the report uses")] = 0.15,
    bulk_weight: Annotated[
        float, typer.Option(help="--from-decisions: weight of a bulk approval against a reviewed decision")
    ] = 0.5,
) -> None:
    """Fit the map from raw confidence to P(CIEDE2000 <= target) on photos with their colour removed.

    Photos are split by a hash of their name: one half fits the map, the other half measures it
    (AUROC, reliability diagram), so no photo is used for both. With --from-decisions: refit the review
    routing from the curators' decisions, adopted only if it beats the current score out of sample."""
    from chromata.errors import ConfigError

    if from_decisions:
        if out is not None and destination is not None:
            raise ConfigError("--out is the calibration file: give the destination once, as --destination")
        if out is not None:  # the old spelling: --from-decisions --out DEST
            typer.echo("warning: --from-decisions --out DEST is deprecated: use --destination DEST", err=True)
        _calibrate_from_decisions(destination or out, budget, bulk_weight, trial)
        return
    if destination is not None or trial:
        raise ConfigError("--destination and --try go with --from-decisions")
    if data is None:
        raise ConfigError("--data is required (or --from-decisions --destination DEST)")
    from chromata.studies.calibration import calibrate_model

    result, written = calibrate_model(data, model, files, crops, target, Path(out) if out else None, report_dir)
    console.print_json(json.dumps(result.summary))
    console.print(f"calibration written to {written}")


def _calibrate_from_decisions(dest: str | None, budget: float, bulk_weight: float, trial: bool) -> None:
    from chromata.archive import open_storage
    from chromata.errors import ConfigError
    from chromata.judgement import routing_fit

    if not dest:
        raise ConfigError("--from-decisions needs --destination DEST: the destination whose decisions to learn from")
    try:
        fit, key, skipped = routing_fit.from_decisions(
            open_storage(dest), write=not trial, budget=budget, bulk_weight=bulk_weight
        )
    except routing_fit.RoutingFitError as exc:
        raise ConfigError(str(exc)) from None
    table = Table(title=f"routing refit from curators' decisions (sha256 {fit.sha256[:12]})")
    table.add_column("")
    table.add_column("")
    for what, value in routing_fit.report_rows(fit, skipped):
        table.add_row(what, value)
    console.print(table)
    if trial:
        verdict = "would be adopted" if fit.adopted else "would not be adopted"
        console.print(f"trial: the fit {verdict}; nothing written under {dest}")
    elif fit.adopted:
        console.print(f"adopted: written to {key} under {dest}; runs with routing_fit 'latest' (nightly) use it")
    else:
        console.print(
            f"not adopted: written for the record to {key} under {dest}; runs with routing_fit 'latest' "
            "(nightly) keep the newest adopted fit, or the fixed score"
        )


@commands.command("models")
def list_models() -> None:
    """The model families --model accepts: spec forms, what each one's confidence score means, and where the
    official weights of the families chromata does not ship are published, under which licence."""
    from chromata.models import FAMILIES

    table = Table(title="model families (--model KIND[:ARG])")
    for col in ("spec", "model", "confidence", "weights: where published, licence"):
        table.add_column(col)
    for fam in FAMILIES.values():
        size = f"\n--model-size: multiple of {fam.size_step}, default {fam.default_size}" if fam.size_step else ""
        where = f"{fam.published or 'shipped with chromata'} ({fam.licence})" if fam.licence else "-"
        table.add_row("\n".join(fam.forms), fam.summary + size, fam.confidence, where)
    console.print(table)
    console.print(
        "Downloaded weights are untrusted input: chromata reads them with torch's weights_only loader and "
        "records their SHA-256 in every manifest row; docs/model.md says how to verify each file."
    )
