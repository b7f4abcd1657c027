"""The one output path every media kind goes through: confidence over all units (pages, frames), provenance,
encode + AI label, C2PA signature, write output, sidecar and heatmap, then the manifest row.

Handlers only know how to get L* in and colour pixels out (``Colorized``); everything an output must be —
labelled, signed, hashed, recorded — is decided here, once.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from pathlib import Path

import chromata
from chromata.archive.storage import KeyRefused, Storage, safe_key, sha256_file
from chromata.config import RunConfig
from chromata.errors import ImageError, StorageError
from chromata.judgement import confidence, routing_fit
from chromata.media import c2pa_label, labels
from chromata.media.formats import BY_NAME, SAME_FORMAT_FALLBACK, Format, extension_of, output_format_for
from chromata.models import Colorizer, model_facts
from chromata.pipeline.records import RecordBuilder
from chromata.pipeline.shards import ShardStats
from chromata.pipeline.work import Colorized, Item
from chromata.record.manifest import HEATMAP_PREFIX, ImageRecord, image_id_for


def output_key(source_key: str, output_format: str = "same") -> str:
    """Deterministic derivative key: the source's relative path; the extension follows ``output_format``."""
    key = safe_key(source_key)
    stem, ext = posixpath.splitext(key)
    if output_format == "same":
        return stem + SAME_FORMAT_FALLBACK[ext.lower()] if ext.lower() in SAME_FORMAT_FALLBACK else key
    return stem + BY_NAME[output_format].extension


def heatmap_key(source_key: str) -> str:
    """Where an output's per-region confidence heatmap goes (under _chromata/, not among the images); a
    file name too long to take the suffix is replaced by its digest."""
    key = safe_key(source_key)
    head, name = posixpath.split(key)
    if len(name.encode()) > 200:
        name = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"{HEATMAP_PREFIX}/{posixpath.join(head, name)}.png"


def format_for(item: Item, cfg: RunConfig) -> Format:
    """The output format of ``item`` under ``--format``; a choice that cannot hold its kind of media fails the
    image with the formats that would (a banded scan: ``too_large``, as only TIFF is written in bands)."""
    try:
        return output_format_for(item.obj.key, cfg.output_format, item.kind)
    except ValueError as exc:
        raise ImageError("too_large" if item.kind == "banded" else "unsupported_format", str(exc)) from None


def local_copy(item: Item, source: Storage, scratch: Path, stats: ShardStats) -> Path:
    """A local file of the source for the kinds processed from files: its bytes if routing read them, the
    source's own file when it is local, else a streamed download into ``scratch``; hashed as it is."""
    scratch_copy = scratch / f"source{extension_of(item.obj.key)}"
    if item.data is not None:
        path = scratch_copy
        path.write_bytes(item.data)
    elif (local := source.local_path(item.obj.key)) is not None:
        path = local
    else:
        path = scratch_copy
        source.download(item.obj.key, path)
    if item.sha256 is None:
        item.sha256 = sha256_file(path)
        stats.read_sizes.append(path.stat().st_size)
    return path


class OutputPath:
    def __init__(self, cfg: RunConfig, model: Colorizer, source: Storage, dest: Storage) -> None:
        self.cfg, self.model, self.source, self.dest = cfg, model, source, dest
        cert, key = cfg.c2pa_cert, cfg.c2pa_key
        self.signer = c2pa_label.C2paSigner.from_files(cert, key) if cert and key else None
        self.routing = routing_fit.for_run(cfg.routing_fit, dest)  # None: the fixed penalties
        self.facts = model_facts(model)  # family, variant, licence: in every output's label

    def finish(self, item: Item, out: Colorized, rows: RecordBuilder, stats: ShardStats) -> ImageRecord:
        """Score, label, sign and write ``out``; the row of the image colorized."""
        assert item.sha256 is not None  # every kind has hashed its source by now
        worst = max(out.uncertainty, key=lambda u: float(u.mean()))  # the least confident page / the film's mean
        judged = min(out.assessments, key=lambda a: a.p_better) if out.assessments else None  # likewise
        report = confidence.score(worst, out.reasons, self.model.calibration, judged)
        if self.routing is not None:  # the curators' decisions re-rank the queue (chromata.judgement.routing_fit)
            report = routing_fit.rescore(self.routing, report, self.cfg.collection_name)
        prov = self.provenance(item, report.score, rows.run_id)
        key = output_key(item.obj.key, self.cfg.output_format)
        encoded = out.encode(labels.xmp_packet(prov))
        data = self._signed(encoded.data, out.fmt, prov, key)
        self.write(key, data, out.fmt.mime)
        if encoded.sidecar is not None:  # formats without a metadata slot get the XMP beside them
            self.write(key + ".xmp", encoded.sidecar, "application/rdf+xml")
        hkey = heatmap_key(key)
        heatmap = confidence.heatmap_png(worst, out.width, out.height)
        self.write(hkey, heatmap, "image/png")
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        stats.written_sizes.append(size + len(heatmap))
        digest = sha256_file(data) if isinstance(data, Path) else hashlib.sha256(data).hexdigest()
        return rows.ok(item, out, report, (key, digest), hkey)

    def provenance(self, item: Item, score: float | None, run_id: str) -> labels.Provenance:
        """What the output file will say about itself (embedded XMP, C2PA)."""
        source_uri = self.source.uri(item.obj.key)
        return labels.Provenance(
            source_uri=source_uri,
            source_sha256=item.sha256 or "",
            image_id=image_id_for(source_uri),
            run_id=run_id,
            model_name=self.model.name,
            model_sha256=self.model.weights_sha256,
            chromata_version=chromata.__version__,
            confidence=score,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            digital_source_type=self.cfg.digital_source_type,
            model_family=self.facts["family"],
            model_variant=self.facts["variant"],
            model_licence=self.facts["licence"],
        )

    def _signed(self, data: bytes | Path, fmt: Format, prov: labels.Provenance, key: str) -> bytes | Path:
        """The output C2PA-signed when the run signs (formats the SDK does not cover stay as they are). The
        SDK holds about the whole file while it signs, so a file over half the worker's memory budget fails
        the image (nothing unsigned is written) with the budget that would do."""
        if self.signer is None or fmt.c2pa_mime is None:
            return data
        if isinstance(data, bytes):
            return self.signer.sign(data, fmt.extension, prov, key)
        size, limit = data.stat().st_size, self.cfg.memory_budget_mb * 2**20 // 2
        if size > limit:
            raise ImageError(
                "too_large",
                f"the colorized {fmt.name.upper()} ({size / 2**20:.0f} MiB) is too large to C2PA-sign within "
                f"memory_budget_mb={self.cfg.memory_budget_mb} (signing holds the whole file): "
                f"set memory_budget_mb to at least {2 * size // 2**20 + 1} on workers that have the memory",
            )
        signed = data.with_name("signed" + fmt.extension)
        self.signer.sign_file(data, signed, prov, key, mime=fmt.c2pa_mime)
        return signed

    def write(self, key: str, data: bytes | Path, content_type: str) -> None:
        """Write one output; a destination that refuses it fails the shard (StorageError), except for a
        name it cannot hold, which is that image's problem (KeyRefused)."""
        try:
            if isinstance(data, Path):
                self.dest.write_file(key, data, content_type=content_type)
            else:
                self.dest.write_atomic(key, data, content_type=content_type)
        except KeyRefused:
            raise
        except Exception as exc:
            raise StorageError(f"cannot write {self.dest.uri(key)}: {exc}") from exc
