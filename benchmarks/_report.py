"""Every benchmark writes its own section of docs/benchmarks.md, so no figure there is copied by hand.

A section is the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; ``write_section`` replaces
it (or appends it at the end of the file the first time) and leaves everything else as it is.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """One line naming the machine a figure was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB memory; {time.strftime('%Y-%m-%d')}"


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace the section ``name`` of ``doc`` with ``body`` (appended when the section is new)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)


def publish(name: str, body: str, result: object, json_path: Path | None, write: bool = True) -> None:
    """A benchmark's ending: print its section, save its figures as JSON when asked, and write the section
    ``name`` of docs/benchmarks.md unless told not to."""
    print(body)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    if write:
        write_section(name, body)


OWN_OPTIONS = ("json", "no_write", "render")  # main_for's options: not the measurement's


def recorded_options(args: Any) -> dict[str, Any]:
    """The options a measurement ran with, as JSON values (paths as strings), for ``--render``."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in OWN_OPTIONS}


def rendered(path: Path, ap: Any, args: Any) -> dict[str, Any]:
    """An earlier run's figures (its ``--json``) with the machine, date and options they were measured with;
    ``args`` gets those options back. A file without that record is refused: rendering it would stamp this
    machine and today's date on figures measured elsewhere, earlier."""
    saved: dict[str, Any] = json.loads(path.read_text())
    if "machine" not in saved or "options" not in saved:
        ap.error(f"{path} does not record the machine and options it was measured with: measure again")
    for key, value in saved["options"].items():
        setattr(args, key, value)
    return saved


def main_for(
    name: str,
    doc: str | None,
    add_arguments: Any,
    measure: Any,
    markdown: Any,
    check: Any = None,
) -> dict[str, Any]:
    """The command line of a benchmark that ends with ``publish``: its own options (``add_arguments(parser)``),
    then ``--json``, ``--no-write`` and ``--render``; ``check(parser, args)`` may refuse a combination;
    ``measure(args)`` gives the figures and ``markdown(result, args, machine)`` its section of
    docs/benchmarks.md. The figures are saved with the machine line and the options, so that ``--render``
    writes the section again exactly as measured."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--render", type=Path, help="write the section again from an earlier run's --json")
    args = ap.parse_args()
    if args.render:
        result = rendered(args.render, ap, args)
    else:
        if check is not None:
            check(ap, args)
        result = {**measure(args), "machine": machine(), "options": recorded_options(args)}
    publish(name, markdown(result, args, result["machine"]), result, args.json, write=not args.no_write)
    return result
