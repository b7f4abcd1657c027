"""The signed label: a C2PA manifest (c2pa-python) with the institution's certificate chain, and reading one
back (with validation against the institution's root)."""

from __future__ import annotations

import os
from typing import Any

from chromata.media.formats import FORMATS
from chromata.media.labels import IPTC_DST, Provenance

C2PA_MIME = {ext: f.c2pa_mime for f in FORMATS if f.c2pa_mime for ext in f.extensions}  # chromata.media.formats


class C2paSigner:
    """Signs outputs with a C2PA manifest (c2pa-python) using the institution's certificate chain.

    The manifest records a ``c2pa.created`` action with the IPTC digital source type and chromata as the
    software agent, a ``c2pa.color_adjustments`` action describing the AI colorization, and an
    ``org.chromata.provenance`` assertion (source, model, run, confidence). The key is read from a file
    and kept in memory only; manifests and logs record the certificate's subject, never the key."""

    def __init__(self, cert_chain_pem: bytes, private_key_pem: bytes, alg: str = "es256") -> None:
        import c2pa

        self._c2pa = c2pa
        info = c2pa.C2paSignerInfo(alg=alg.encode(), sign_cert=cert_chain_pem, private_key=private_key_pem, ta_url=None)
        self.signer = c2pa.Signer.from_info(info)

    @classmethod
    def from_files(cls, cert: str, key: str) -> C2paSigner:
        from pathlib import Path

        return cls(Path(cert).read_bytes(), Path(key).read_bytes())

    def sign(self, data: bytes, ext: str, p: Provenance, title: str) -> bytes:
        """The signed file, or the input unchanged for a format C2PA does not cover (JPEG 2000, Matroska)."""
        import io

        mime = C2PA_MIME.get(ext.lower())
        if mime is None:
            return data
        out = io.BytesIO()
        self._builder(p, title).sign(self.signer, mime, io.BytesIO(data), out)
        return out.getvalue()

    def sign_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], p: Provenance, title: str,
        mime: str = "image/tiff",
    ) -> None:  # fmt: skip
        """Sign a file on disk into ``dst`` (a banded TIFF, a streamed film: file to file, the pixels are not
        held by Python; the C2PA SDK itself buffers about the file's size, which the caller budgets for)."""
        with open(src, "rb") as source, open(dst, "w+b") as dest:
            self._builder(p, title).sign(self.signer, mime, source, dest)

    def _builder(self, p: Provenance, title: str) -> Any:
        import json

        dst = IPTC_DST + p.digital_source_type
        manifest = {
            "claim_generator_info": [{"name": "chromata", "version": p.chromata_version}],
            "title": title,
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {
                        "actions": [
                            {"action": "c2pa.created", "digitalSourceType": dst,
                             "softwareAgent": {"name": "chromata", "version": p.chromata_version}},
                            {"action": "c2pa.color_adjustments", "digitalSourceType": dst,
                             "description": f"AI colorization with {p.model_name} ({p.model_sha256}); "
                             "colours are a machine estimate, not historical record"},
                        ]
                    },
                },
                {
                    "label": "org.chromata.provenance",
                    "data": {
                        "source_uri": p.source_uri, "source_sha256": p.source_sha256, "image_id": p.image_id,
                        "run_id": p.run_id, "model_name": p.model_name, "model_sha256": p.model_sha256,
                        "model_family": p.model_family, "model_variant": p.model_variant,
                        "model_licence": p.model_licence,
                        "confidence": p.confidence,
                    },
                },
            ],
        }  # fmt: skip
        return self._c2pa.Builder(json.dumps(manifest))


def read_c2pa(data: bytes, mime: str, trust_anchors_pem: bytes | None = None) -> dict[str, Any]:
    """The C2PA manifest store of a file as JSON (validation results included)."""
    import io
    import json

    import c2pa

    context = None
    if trust_anchors_pem is not None:  # the institution's root: validate the chain against it
        settings = c2pa.Settings.from_dict({"trust": {"trust_anchors": trust_anchors_pem.decode()}})
        context = c2pa.Context(settings)
    return dict(json.loads(c2pa.Reader(mime, io.BytesIO(data), context=context).json()))
