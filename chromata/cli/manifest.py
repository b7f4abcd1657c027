"""``chromata manifest show``, ``provenance`` and ``iiif``: what a destination's manifest records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from chromata.cli._common import console

commands = typer.Typer()
manifest_app = typer.Typer(help="Inspect run manifests.", no_args_is_help=True)


@commands.command()
def provenance(
    file: Annotated[Path, typer.Argument(help="an output file written by chromata")],
    as_json: Annotated[bool, typer.Option("--json", help="print the chain as JSON")] = False,
) -> None:
    """Print the provenance chain of an output: source, model, run, parameters, review decision."""
    from chromata.errors import ConfigError
    from chromata.record.provenance import provenance_chain

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


@commands.command()
def iiif(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    base_url: Annotated[str, typer.Option(help="public HTTP(S) address where DESTINATION's files are served")],
    collection: Annotated[str | None, typer.Option(help="collection name for the manifest label")] = None,
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
    source_base_url: Annotated[
        str | None, typer.Option(help="HTTP(S) address where the originals are served (each canvas offers both)")
    ] = None,
    source_id: Annotated[
        str | None,
        typer.Option(
            help="public identifier of each source, e.g. '{collection}/{key}' ({collection}, {key}, {name}, {stem}, "
            "{image_id}); default: no source named (never the source's internal path)"
        ),
    ] = None,
) -> None:
    """Write a IIIF Presentation 3 manifest of the colorized images, labelled "AI colorized"."""
    from chromata.archive import open_storage
    from chromata.errors import ConfigError
    from chromata.record.iiif import check_source_id, write_manifest

    for option, url in (("--base-url", base_url), ("--source-base-url", source_base_url)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{option} must be an http(s) address")
    try:
        check_source_id(source_id)
    except ValueError as exc:
        raise ConfigError(f"--source-id: {exc}") from None
    storage = open_storage(destination, endpoint_url)
    name = collection or destination.rstrip("/").rsplit("/", 1)[-1]
    key, canvases = write_manifest(storage, base_url, name, source_base_url, source_id)
    console.print(f"IIIF manifest with {canvases} canvases: {storage.uri(key)}")


@manifest_app.command("compact")
def manifest_compact(
    destination: Annotated[str, typer.Argument(help="run destination (local folder or s3://…)")],
    endpoint_url: Annotated[str | None, typer.Option(envvar="AWS_ENDPOINT_URL")] = None,
    min_fragments: Annotated[int, typer.Option(help="compact once this many fragments are not compacted")] = 1,
    max_files: Annotated[int, typer.Option(help="past this many compactions, merge them into one")] = 8,
) -> None:
    """Merge the manifest's shard fragments into a few files so that planning reads few (nothing is deleted)."""
    from chromata.archive import open_storage
    from chromata.record.compaction import compact

    r = compact(open_storage(destination, endpoint_url), min_fragments=min_fragments, max_files=max_files)
    if r.key is None:
        console.print(f"nothing to compact: readers open {r.files_before} files")
        return
    console.print(
        f"compacted {r.fragments} fragments ({r.rows} rows) into {r.key}; readers open {r.files_after} files "
        f"instead of {r.files_before}"
    )


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

    from chromata.archive import open_storage
    from chromata.record.manifest_index import ManifestIndex

    # every row, with the exported curator decisions (chromata review export) joined
    rows = ManifestIndex.load(open_storage(destination, endpoint_url)).rows()
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
