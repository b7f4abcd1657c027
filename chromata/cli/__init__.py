"""The ``chromata`` command line: one module per command group, each a thin Typer layer over core functions.
Heavy modules (torch, ray, prefect) are imported inside commands, so ``chromata --help`` stays fast.

May import: anything in chromata — the CLI is the top of the stack; nothing imports it.
"""

from __future__ import annotations

import os
import sys

import typer

from chromata import __version__
from chromata.cli import manifest, model, review, run, runs
from chromata.cli._common import console, err
from chromata.errors import ChromataError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Colorize photo archives responsibly: provenance, confidence, human review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print chromata's version."""
    console.print(__version__)


app.add_typer(run.commands)  # run, serve, plan
app.add_typer(model.commands)  # train, eval, export-onnx, calibrate, models
app.add_typer(manifest.commands)  # provenance, iiif
app.add_typer(review.review_app, name="review")
app.add_typer(manifest.manifest_app, name="manifest")
app.add_typer(runs.runs_app, name="runs")


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
