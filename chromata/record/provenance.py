"""`chromata provenance FILE`: from any output file back to its source, model, run and review.

The chain is read from the file itself (its embedded XMP, or the ``.xmp`` sidecar) and completed from
the run's manifest (found by walking up from the file to ``_chromata/manifest``): the manifest row whose
image id and output hash match this exact file, every other version of the same image, the curators'
exported decisions, and — when the source is a local file — whether it still has the recorded hash.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from chromata.media.labels import CHROMATA_NS

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "chromata": CHROMATA_NS,
}


def read_xmp(data: bytes) -> dict[str, str]:
    """chromata's and IPTC's properties from the first XMP packet in ``data`` ({} when there is none)."""
    start, end = data.find(b"<x:xmpmeta"), data.find(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        return {}
    root = ET.fromstring(data[start : end + len(b"</x:xmpmeta>")].decode("utf-8"))
    desc = root.find(".//rdf:Description", NS)
    if desc is None:
        return {}
    out = {el.tag.split("}", 1)[1]: (el.text or "") for el in desc if el.tag.startswith("{" + CHROMATA_NS)}
    dst = desc.find("Iptc4xmpExt:DigitalSourceType", NS)
    if dst is not None and dst.text:
        out["digitalSourceType"] = dst.text
    li = desc.find("dc:description/rdf:Alt/rdf:li", NS)
    if li is not None and li.text:
        out["description"] = li.text
    return out


def _destination_root(path: Path) -> Path | None:
    for parent in path.resolve().parents:
        if (parent / "_chromata" / "manifest").is_dir():
            return parent
    return None


def provenance_chain(path: Path) -> dict[str, Any]:
    from chromata.archive.local import LocalStorage
    from chromata.record.manifest_index import ManifestIndex

    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    xmp = read_xmp(data)
    sidecar = path.with_name(path.name + ".xmp")
    if not xmp and sidecar.is_file():
        xmp = read_xmp(sidecar.read_bytes())
    chain: dict[str, Any] = {
        "file": str(path),
        "sha256": sha,
        "ai_colorized": bool(xmp.get("digitalSourceType")),
        "embedded": xmp,
    }
    root = _destination_root(path)
    if root is None or not xmp.get("imageId"):
        chain["manifest"] = None
        return chain
    index = ManifestIndex.load(LocalStorage(root))
    this = index.version(xmp["imageId"], sha)
    chain["manifest"] = str(root / "_chromata" / "manifest")
    chain["row"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in (this or {}).items()}
    chain["file_matches_manifest"] = this is not None
    chain["other_versions"] = [
        {
            "run_id": r["run_id"],
            "model_name": r["model_name"],
            "status": r["status"],
            "output_sha256": r["output_sha256"],
        }
        for r in index.versions(xmp["imageId"])
        if r is not this
    ]
    decided = index.decision(xmp["imageId"], sha)
    chain["review"] = {k: decided[k] for k in ("curator", "decision", "note", "decided_at")} if decided else None
    source = Path(this["source_uri"]) if this and not str(this["source_uri"]).startswith("s3://") else None
    if source is not None and this is not None:
        chain["source_verified"] = (
            source.is_file() and hashlib.sha256(source.read_bytes()).hexdigest() == this["source_sha256"]
        )
    return chain
