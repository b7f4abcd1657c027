"""IIIF Presentation 3 manifest of a run's colorized derivatives, labelled "AI colorized".

Museums publish with IIIF: one Manifest per collection, one Canvas per colorized image, painted with the
derivative as it is served from ``base_url`` (the destination published over HTTP, or an image server that maps
the same keys) and, where the originals are published too (``source_base_url``), a ``Choice`` of the derivative
and the original, so that a viewer toggles between the two. Every canvas names its model and confidence; the
manifest's summary says the colours are a machine estimate.

A manifest is public, so it never carries where the sources live inside the institution (a server folder, a
private bucket): no canvas names its ``source_uri``. A canvas names its source only by a public identifier made
from ``source_id``, a template of ``{collection}``, ``{key}`` (the source's key under the collection),
``{name}`` (the key's last part), ``{stem}`` (that without its extension) and ``{image_id}`` — e.g.
``{collection}/{key}``, or an accession-number scheme; without one (the default) no source is named.
"""

from __future__ import annotations

import json
import string
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from chromata.archive.storage import Storage, key_for_uri
from chromata.media.imageio import CONTENT_TYPES
from chromata.record.manifest_index import ManifestIndex

IIIF_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
IIIF_KEY = "_chromata/iiif/manifest.json"
NOTICE = "Colours added by chromata (AI colorization) are a machine estimate, not a historical record."
SOURCE_ID_FIELDS = ("collection", "key", "name", "stem", "image_id")


def check_source_id(template: str | None) -> str | None:
    """``template`` if it is a usable public-identifier template (only ``SOURCE_ID_FIELDS``, by name), else
    ValueError in one line."""
    if template is None:
        return None
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad source id template {template!r}: {exc}") from None
    fields = [f for _, f, spec, conv in parsed if f is not None or spec or conv]
    # plain fields only: no format spec or conversion (a spec may hold fields of its own: "{key:{key.__class__}}")
    unknown = [f for f in fields if f not in SOURCE_ID_FIELDS] + [s for _, _, s, c in parsed if s or c]
    if unknown or not template.strip():
        allowed = ", ".join("{" + f + "}" for f in SOURCE_ID_FIELDS)
        raise ValueError(f"bad source id template {template!r}: use text and {allowed}")
    return template


def source_id(template: str | None, row: dict[str, Any], collection: str) -> str | None:
    """The public identifier of a row's source from ``template`` (None: the source is not named)."""
    if template is None:
        return None
    key = str(row["source_key"])
    path = PurePosixPath(key)
    values = {"collection": collection, "key": key, "name": path.name, "stem": path.stem, "image_id": row["image_id"]}
    return template.format_map(values)


def _lang(text: str) -> dict[str, list[str]]:
    return {"en": [text]}


def _meta(label: str, value: str) -> dict[str, Any]:
    return {"label": _lang(label), "value": _lang(value)}


def _output_key(storage: Storage, row: dict[str, Any]) -> str:
    return str(row.get("output_key") or key_for_uri(storage, row["output_uri"]))


def _image(url: str, key: str, row: dict[str, Any], label: str) -> dict[str, Any]:
    ext = "." + key.rsplit(".", 1)[-1].lower()
    return {
        "id": url,
        "type": "Image",
        "format": CONTENT_TYPES.get(ext, "image/jpeg"),
        "height": row["height"],
        "width": row["width"],
        "label": _lang(label),
    }


def _canvas(
    storage: Storage, base: str, row: dict[str, Any], source_base_url: str | None, public_id: str | None
) -> dict[str, Any]:
    """One canvas painted with the colorized derivative, or with a Choice of it (shown first) and the original
    where the originals are published (``source_base_url``); never the source's internal address."""
    key = _output_key(storage, row)
    canvas_id = f"{base}_chromata/iiif/canvas/{row['image_id']}"
    colorized = _image(base + quote(key), key, row, "AI colorized")
    body: dict[str, Any] = colorized
    if source_base_url:
        original_url = source_base_url.rstrip("/") + "/" + quote(row["source_key"])
        body = {"type": "Choice", "items": [colorized, _image(original_url, row["source_key"], row, "Original")]}
    confidence = "unknown" if row["confidence"] is None else f"{row['confidence']:.2f}"
    version = f"AI colorized by chromata {row['chromata_version']} with {row['model_name']}"
    source = [_meta("Source", public_id)] if public_id is not None else []
    return {
        "id": canvas_id,
        "type": "Canvas",
        # the key under the collection, which the derivative's own address (base_url + key) shows anyway
        "label": _lang(f"{public_id or key} (AI colorized)"),
        "height": row["height"],
        "width": row["width"],
        "metadata": [
            *source,
            _meta("Colorization", version),
            _meta("Model weights (SHA-256)", row["model_sha256"]),
            _meta("Confidence", confidence),
        ],
        "items": [
            {
                "id": f"{canvas_id}/page",
                "type": "AnnotationPage",
                "items": [
                    {
                        "id": f"{canvas_id}/page/painting",
                        "type": "Annotation",
                        "motivation": "painting",
                        "target": canvas_id,
                        "body": body,
                    }
                ],
            }
        ],
    }


def build_manifest(
    storage: Storage,
    base_url: str,
    collection: str,
    source_base_url: str | None = None,
    source_id_template: str | None = None,
) -> dict[str, Any]:
    """The manifest of the newest colorized version of every image (videos are left out). With
    ``source_base_url`` (where the originals are published over HTTP) each canvas offers the colorized
    derivative and the original as a IIIF ``Choice``, so viewers (Mirador, Universal Viewer) toggle between
    them; without it, the derivative alone. ``source_id_template`` names each source publicly (module doc)."""
    check_source_id(source_id_template)
    base = base_url.rstrip("/") + "/"
    rows = [r for r in ManifestIndex.load(storage, with_decisions=False).latest(status="ok") if r["output_uri"]]
    canvases = [
        _canvas(storage, base, r, source_base_url, source_id(source_id_template, r, collection))
        for r in rows
        if not r["frames"]
    ]
    return {
        "@context": IIIF_CONTEXT,
        "id": base + IIIF_KEY,
        "type": "Manifest",
        "label": _lang(f"{collection} (AI colorized)"),
        "summary": _lang(NOTICE),
        "metadata": [_meta("Colorization", "AI colorized: " + NOTICE)],
        "requiredStatement": _meta("Attention", "AI colorized"),
        "items": canvases,
    }


def write_manifest(
    storage: Storage,
    base_url: str,
    collection: str,
    source_base_url: str | None = None,
    source_id_template: str | None = None,
) -> tuple[str, int]:
    manifest = build_manifest(storage, base_url, collection, source_base_url, source_id_template)
    storage.write_atomic(IIIF_KEY, json.dumps(manifest, indent=2).encode(), content_type="application/ld+json")
    return IIIF_KEY, len(manifest["items"])
