"""Every benchmark writes its own section of docs/benchmarks.md, so no figure there is copied by hand.

A section is the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; ``write_section`` replaces
it (or appends it at the end of the file the first time) and leaves everything else as it is.
"""

from __future__ import annotations

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
    import json

    print(body)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    if write:
        write_section(name, body)


def main_for(
    name: str,
    doc: str | None,
    add_arguments: Any,
    measure: Any,
    markdown: Any,
    check: Any = None,
) -> dict[str, Any]:
    """The command line of a benchmark that ends with ``publish``: its own options (``add_arguments(parser)``),
    then ``--json`` and ``--no-write``; ``check(parser, args)`` may refuse a combination; ``measure(args)``
    gives the figures and ``markdown(result, args, machine)`` its section of docs/benchmarks.md."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    if check is not None:
        check(ap, args)
    result: dict[str, Any] = measure(args)
    publish(name, markdown(result, args, machine()), result, args.json, write=not args.no_write)
    return result
