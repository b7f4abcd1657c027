"""IIIF Presentation 3 manifest of a run's colorized derivatives, labelled "AI colorized".

Museums publish with IIIF: one Manifest per collection, one Canvas per colorized image, painted with the
derivative as it is served from ``base_url`` (the destination published over HTTP, or an image server
that maps the same keys). Every canvas names its source, model and confidence; the manifest's summary
says the colours are a machine estimate.
"""

from __future__ import annotations

import json
from typing import Any

from chromata.imageio import CONTENT_TYPES
from chromata.manifest import read_manifest
from chromata.storage import Storage, key_for_uri

IIIF_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
IIIF_KEY = "_chromata/iiif/manifest.json"
NOTICE = "Colours added by chromata (AI colorization) are a machine estimate, not a historical record."


def _lang(text: str) -> dict[str, list[str]]:
    return {"en": [text]}


def _meta(label: str, value: str) -> dict[str, Any]:
    return {"label": _lang(label), "value": _lang(value)}


def build_manifest(storage: Storage, base_url: str, collection: str) -> dict[str, Any]:
    base = base_url.rstrip("/") + "/"
    rows = [
        r for r in read_manifest(storage).to_pylist() if r["status"] == "ok" and r["output_uri"] and not r["frames"]
    ]
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:  # the newest version of each image
        if r["image_id"] not in latest or r["finished_at"] > latest[r["image_id"]]["finished_at"]:
            latest[r["image_id"]] = r
    canvases = []
    for r in sorted(latest.values(), key=lambda r: r["source_key"]):
        key = key_for_uri(storage, r["output_uri"])
        canvas_id = f"{base}_chromata/iiif/canvas/{r['image_id']}"
        ext = "." + key.rsplit(".", 1)[-1].lower()
        canvases.append(
            {
                "id": canvas_id,
                "type": "Canvas",
                "label": _lang(f"{r['source_key']} (AI colorized)"),
                "height": r["height"],
                "width": r["width"],
                "metadata": [
                    _meta("Source", r["source_uri"]),
                    _meta("Colorization", f"AI colorized by chromata {r['chromata_version']} with {r['model_name']}"),
                    _meta("Model weights (SHA-256)", r["model_sha256"]),
                    _meta("Confidence", "unknown" if r["confidence"] is None else f"{r['confidence']:.2f}"),
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
                                "body": {
                                    "id": base + key,
                                    "type": "Image",
                                    "format": CONTENT_TYPES.get(ext, "image/jpeg"),
                                    "height": r["height"],
                                    "width": r["width"],
                                },
                            }
                        ],
                    }
                ],
            }
        )
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


def write_manifest(storage: Storage, base_url: str, collection: str) -> tuple[str, int]:
    manifest = build_manifest(storage, base_url, collection)
    storage.write_atomic(IIIF_KEY, json.dumps(manifest, indent=2).encode(), content_type="application/ld+json")
    return IIIF_KEY, len(manifest["items"])
