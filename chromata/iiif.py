"""IIIF Presentation 3 manifest of a run's colorized derivatives, labelled "AI colorized".

Museums publish with IIIF: one Manifest per collection, one Canvas per colorized image, painted with a
``Choice`` of the derivative as it is served from ``base_url`` (the destination published over HTTP, or an
image server that maps the same keys) and the original, so that a viewer toggles between the two. Every
canvas names its source, model and confidence; the manifest's summary says the colours are a machine estimate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chromata.imageio import CONTENT_TYPES
from chromata.manifest_index import ManifestIndex
from chromata.storage import Storage, key_for_uri

IIIF_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
IIIF_KEY = "_chromata/iiif/manifest.json"
NOTICE = "Colours added by chromata (AI colorization) are a machine estimate, not a historical record."


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


def _original_url(row: dict[str, Any], source_base_url: str | None) -> str:
    """Where a viewer fetches the original: under ``source_base_url`` when the sources are published
    there, else the source's own address (an http(s) URL as is, a local path as a file: URI)."""
    if source_base_url:
        return source_base_url.rstrip("/") + "/" + quote(row["source_key"])
    uri = str(row["source_uri"])
    return uri if "://" in uri else Path(uri).as_uri()


def _canvas(storage: Storage, base: str, row: dict[str, Any], source_base_url: str | None) -> dict[str, Any]:
    """One canvas painted with a Choice: the colorized derivative (shown first) or the original."""
    key = _output_key(storage, row)
    canvas_id = f"{base}_chromata/iiif/canvas/{row['image_id']}"
    colorized = _image(base + quote(key), key, row, "AI colorized")
    original = _image(_original_url(row, source_base_url), row["source_key"], row, "Original")
    confidence = "unknown" if row["confidence"] is None else f"{row['confidence']:.2f}"
    version = f"AI colorized by chromata {row['chromata_version']} with {row['model_name']}"
    return {
        "id": canvas_id,
        "type": "Canvas",
        "label": _lang(f"{row['source_key']} (AI colorized)"),
        "height": row["height"],
        "width": row["width"],
        "metadata": [
            _meta("Source", row["source_uri"]),
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
                        "body": {"type": "Choice", "items": [colorized, original]},
                    }
                ],
            }
        ],
    }


def build_manifest(
    storage: Storage, base_url: str, collection: str, source_base_url: str | None = None
) -> dict[str, Any]:
    """The manifest of the newest colorized version of every image (videos are left out). Each canvas
    offers the colorized derivative and the original as a IIIF ``Choice``, so viewers (Mirador, Universal
    Viewer) toggle between them; ``source_base_url`` is where the originals are published over HTTP."""
    base = base_url.rstrip("/") + "/"
    rows = [r for r in ManifestIndex.load(storage, with_decisions=False).latest(status="ok") if r["output_uri"]]
    canvases = [_canvas(storage, base, r, source_base_url) for r in rows if not r["frames"]]
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
    storage: Storage, base_url: str, collection: str, source_base_url: str | None = None
) -> tuple[str, int]:
    manifest = build_manifest(storage, base_url, collection, source_base_url)
    storage.write_atomic(IIIF_KEY, json.dumps(manifest, indent=2).encode(), content_type="application/ld+json")
    return IIIF_KEY, len(manifest["items"])
