"""What every command module shares: the consoles, exit codes, engine logging, finding the review queue."""

from __future__ import annotations

import logging
import os

from rich.console import Console

from chromata.errors import ChromataError, ConfigError

console = Console()
err = Console(stderr=True, soft_wrap=True)

EXIT_FAILURES = 3  # the run completed, but some images failed


def quiet_engines(verbose: bool) -> None:
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


def review_url(db: str | None, out: str | None) -> str:
    """The review queue's URL: --db, else the one a run into --out uses."""
    from chromata.config import build_config

    if db:
        return db
    if out:
        return build_config(source="-", destination=out).review_db_url()
    raise ConfigError("give --db URL or --out DESTINATION to find the review queue")


def model_help(exportable_only: bool = False) -> str:
    """The --model help, from the model registry (light: no model is imported)."""
    from chromata.models import spec_forms

    return spec_forms(exportable_only)
