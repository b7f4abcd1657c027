"""The collections a museum runs nightly, from one TOML file, validated up front.

```toml
[defaults]            # applied to every collection, overridable per collection
workers = 2
review_budget = 0.15      # share of each run sent to curators (or review_threshold = 0.4; one or the other)
schedule = "0 2 * * *"    # cron, in the timezone below
timezone = "Europe/Amsterdam"

[[collections]]
name = "glass-plates"
source = "s3://archive/glass-plates/"
destination = "s3://derivatives/glass-plates/"
review_budget = 0.05
```
Every key other than ``name``, ``schedule`` and ``timezone`` is a ``RunConfig`` field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chromata.config import RunConfig, build_config
from chromata.errors import ConfigError

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
CRON = re.compile(r"^\S+(\s+\S+){4}$")  # five fields; Prefect validates the values when it schedules


@dataclass(frozen=True)
class Collection:
    name: str
    schedule: str
    timezone: str
    config: RunConfig


def load_collections(path: Path) -> list[Collection]:
    """Parse and validate every collection; one readable error names the file, entry and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"collections file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    defaults: dict[str, Any] = dict(data.get("defaults", {}))
    entries = data.get("collections", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[collections]] entries")
    out: list[Collection] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        merged = {**defaults, **entry}
        for policy, other in (("review_budget", "review_threshold"), ("review_threshold", "review_budget")):
            if policy in entry and other not in entry:  # a collection's own routing replaces the default one
                merged.pop(other, None)
        name = str(merged.pop("name", ""))
        where = f"{path}: collection {name or f'#{i + 1}'}"
        if not NAME.match(name):
            raise ConfigError(f"{where}: name must be lower-case letters, digits, '.', '_' or '-'")
        if name in seen:
            raise ConfigError(f"{where}: duplicate name")
        seen.add(name)
        schedule = str(merged.pop("schedule", "0 2 * * *"))
        if not CRON.match(schedule):
            raise ConfigError(f"{where}: schedule {schedule!r} is not a five-field cron expression")
        timezone = str(merged.pop("timezone", "UTC"))
        merged.setdefault("collection", name)
        try:
            cfg = build_config(**merged)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        out.append(Collection(name, schedule, timezone, cfg))
    return out
