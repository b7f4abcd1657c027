"""One validated, frozen run configuration, recorded in every manifest row for provenance."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chromata.errors import ConfigError
from chromata.models import spec_forms, validate_spec


def _location(uri: str) -> str:
    """Comparable form of a storage location: s3://bucket/prefix or an absolute local path."""
    if uri.startswith("s3://"):
        return uri.rstrip("/")
    return str(Path(uri.removeprefix("file://")).expanduser().absolute()).rstrip("/")


# The share of each run that goes to curators unless a collection sets its own budget or a threshold: what a
# museum can staff (a threshold on a score that is not yet calibrated for a collection floods the queue).
DEFAULT_REVIEW_BUDGET = 0.15


class RunConfig(BaseModel):
    """What to colorize, where to put it, and how. Validated before any work starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _routing(cls, data: Any) -> Any:
        """Routing is by a review budget (the default) or by a threshold, never both."""
        if not isinstance(data, dict):
            return data
        budget, threshold = data.get("review_budget"), data.get("review_threshold")
        if budget is not None and threshold is not None:
            raise ValueError("set review_budget or review_threshold, not both (one routing policy per run)")
        if budget is None and threshold is None:
            return {**data, "review_budget": DEFAULT_REVIEW_BUDGET}
        return data

    source: str = Field(description="local folder or s3://bucket/prefix holding the scans")
    destination: str = Field(description="local folder or s3://bucket/prefix for derivatives")
    endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, Ceph, moto …)")
    model: str = Field("builtin", description=f"model spec: {spec_forms()}")
    temperature: float | None = Field(None, gt=0.0, le=2.0, description="annealed-mean T override")
    chroma_gamma: float | None = Field(None, ge=0.0, le=4.0, description="certainty weighting override")
    model_size: int | None = Field(
        None,
        description="the model's working size in pixels (DDColor: multiple of 32, default 512; DeOldify: "
        "multiple of 16, default 560 = render factor 35)",
    )
    precision: str = Field("auto", description="auto (float32), fp32 or fp16 (on a GPU, families that allow it)")
    shard_size: int = Field(500, ge=1, le=100_000)
    batch_size: int = Field(8, ge=1, le=256)
    workers: int = Field(1, ge=1, le=1024, description="colorizer actors in the Ray pool")
    threads_per_worker: int | None = Field(None, ge=1, le=256)
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    review_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="instead of the review budget: queue every image less confident than this"
    )
    review_budget: float | None = Field(
        None, gt=0.0, le=1.0,
        description=f"share of each run sent to curators, least confident first (default {DEFAULT_REVIEW_BUDGET}"
        " unless review_threshold is set)",
    )  # fmt: skip
    review_db: str | None = Field(None, description="SQLAlchemy URL of the review queue")
    collection: str | None = None
    jpeg_quality: int = Field(92, ge=1, le=100)
    output_format: str = Field("same", description="same (as the source), jpeg, png, tiff, jp2 or webp")
    label: str = Field("none", description="visible 'AI-colorized' label: none, corner or border")
    video_smoothing: float = Field(
        0.3, gt=0.0, le=1.0, description="videos: weight of each new frame's chroma (1.0 = no temporal smoothing)"
    )
    c2pa_cert: str | None = Field(None, description="PEM certificate chain: sign every output with a C2PA manifest")
    c2pa_key: str | None = Field(None, description="PEM private key file of that certificate (read, never recorded)")
    digital_source_type: str = Field(
        "algorithmicallyEnhanced", description="IPTC Digital Source Type term written into every output's XMP"
    )
    max_pixels: int = Field(
        1_000_000_000, ge=1, description="refuse images declaring more pixels than this, before decoding them"
    )
    memory_budget_mb: int = Field(
        4096,
        ge=256,
        description="memory one worker may use for an image: bigger TIFFs are processed in tiles, other "
        "formats that would need more fail as too_large",
    )
    scratch_dir: str | None = Field(None, description="local folder for tiled processing of huge scans (TMPDIR)")
    ray_address: str | None = None
    review_url: str | None = Field(None, description="URL of the review web app, linked from run reports")
    iiif_base_url: str | None = Field(
        None, description="publish a IIIF Presentation 3 manifest; the HTTP address where the destination is served"
    )
    iiif_source_id: str | None = Field(
        None,
        description="public identifier of each source in the IIIF manifest: a template of {collection}, {key}, "
        "{name}, {stem}, {image_id}; none (default): no source is named",
    )

    @field_validator("iiif_source_id")
    @classmethod
    def _iiif_source_id(cls, v: str | None) -> str | None:
        from chromata.record.iiif import check_source_id

        return check_source_id(v)

    metrics_textfile: str | None = Field(
        None, description="write Prometheus metrics here at the end of a run (node-exporter textfile format)"
    )
    retry_failed: bool = False
    redo_rejected: bool = Field(
        False, description="colorize again the images curators rejected or sent back for re-colouring"
    )
    reprocess_if_model_changed: bool = False
    inventory: str | None = Field(
        None,
        description="plan from this S3 Inventory report (its manifest.json, s3:// or a local copy) instead of "
        "listing the source bucket",
    )

    routing_fit: str | None = Field(
        None,
        description="score by this routing fit (chromata calibrate --from-decisions): its JSON, or 'latest' (the "
        "destination's newest adopted fit, resolved when the run starts)",
    )

    @field_validator("routing_fit")
    @classmethod
    def _routing_fit(cls, v: str | None) -> str | None:
        if v is None or v == "latest":
            return v
        from chromata.judgement.routing_fit import RoutingFit

        return RoutingFit.from_json(v).to_json()  # canonical: its SHA-256 is the fit file's

    @field_validator("inventory")
    @classmethod
    def _inventory(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty (the URI of the inventory's manifest.json)")
        return v.strip() if v else None

    @model_validator(mode="after")
    def _inventory_of_s3(self) -> RunConfig:
        if self.inventory and not self.source.startswith("s3://"):
            raise ValueError("--inventory describes an S3 bucket: the source must be s3://bucket/prefix")
        return self

    @field_validator("source", "destination")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("model")
    @classmethod
    def _model_spec(cls, v: str) -> str:
        try:
            return validate_spec(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _model_size(self) -> RunConfig:
        from chromata.models import family

        try:
            family(self.model).check_size(self.model_size)
            family(self.model).check_precision(self.precision, self.device)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @field_validator("precision")
    @classmethod
    def _precision(cls, v: str) -> str:
        if v not in ("auto", "fp32", "fp16"):
            raise ValueError(f"unknown precision {v!r}: use auto, fp32 or fp16")
        return v

    @model_validator(mode="after")
    def _c2pa_pair(self) -> RunConfig:
        if bool(self.c2pa_cert) != bool(self.c2pa_key):
            raise ValueError("give both --c2pa-cert and --c2pa-key, or neither")
        for path in (self.c2pa_cert, self.c2pa_key):
            if path and not Path(path).is_file():
                raise ValueError(f"C2PA file not found: {path}")
        if self.c2pa_cert:
            try:
                import c2pa  # noqa: F401
            except ImportError as exc:
                raise ValueError("C2PA signing needs the c2pa-python package: pip install 'chromata[c2pa]'") from exc
        return self

    @field_validator("output_format")
    @classmethod
    def _format(cls, v: str) -> str:
        from chromata.media.imageio import OUTPUT_FORMATS

        if v != "same" and v not in OUTPUT_FORMATS:
            raise ValueError(f"unknown format {v!r}: use same, {', '.join(OUTPUT_FORMATS)}")
        return v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        if v not in ("none", "corner", "border"):
            raise ValueError(f"unknown label {v!r}: use none, corner or border")
        return v

    @field_validator("digital_source_type")
    @classmethod
    def _dst(cls, v: str) -> str:
        from chromata.media.labels import DIGITAL_SOURCE_TYPES

        if v not in DIGITAL_SOURCE_TYPES:
            raise ValueError(f"unknown IPTC digital source type {v!r}: use one of {', '.join(DIGITAL_SOURCE_TYPES)}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.match(r"^(auto|cpu|cuda(:\d+)?)$", v):
            raise ValueError(f"unknown device {v!r}: use auto, cpu, cuda or cuda:N")
        return v

    @field_validator("review_db", "endpoint_url", "ray_address", "review_url", "iiif_base_url")
    @classmethod
    def _no_secrets(cls, v: str | None) -> str | None:
        """Secrets come from the environment or a secret manager, never from the run config: the config is
        recorded (Prefect parameters, logs, run reports), so a password in a URL would be too."""
        if v and urlsplit(v).password:
            raise ValueError(
                "must not contain a password: give it in the environment (PGPASSWORD or ~/.pgpass for "
                "PostgreSQL, AWS_* variables or an instance role for S3) or a secret manager"
            )
        return v

    @model_validator(mode="after")
    def _distinct(self) -> RunConfig:
        src, dst = _location(self.source), _location(self.destination)
        if src == dst:
            raise ValueError("destination must differ from source (the source is never modified)")
        if dst.startswith(src + "/"):
            raise ValueError("destination must not be inside the source (outputs would be re-read as scans)")
        return self

    @property
    def collection_name(self) -> str:
        if self.collection:
            return self.collection
        return Path(self.source.rstrip("/")).name or self.source

    def metrics_textfile_path(self) -> Path | None:
        return Path(self.metrics_textfile) if self.metrics_textfile else None

    def review_db_url(self) -> str:
        """Explicit URL, else a SQLite file inside a local destination, else ~/.chromata."""
        if self.review_db:
            return self.review_db
        if not self.destination.startswith("s3://"):
            return f"sqlite:///{Path(self.destination).absolute() / '_chromata' / 'review.sqlite'}"
        return f"sqlite:///{Path.home() / '.chromata' / 'review.sqlite'}"

    def processing_params(self) -> dict[str, Any]:
        """The parameters that change pixels: recorded as params_json in each row."""
        return {
            "model": self.model,
            **({"model_size": self.model_size} if self.model_size else {}),
            **({"precision": self.precision} if self.precision != "auto" else {}),
            "temperature": self.temperature,
            "chroma_gamma": self.chroma_gamma,
            "jpeg_quality": self.jpeg_quality,
            "output_format": self.output_format,
            "label": self.label,
            "video_smoothing": self.video_smoothing,
            "digital_source_type": self.digital_source_type,
            "c2pa": bool(self.c2pa_cert),
            "review_threshold": self.review_threshold,
            "review_budget": self.review_budget,
            "workers": self.workers,
            **({"routing_fit_sha256": _sha256(self.routing_fit)} if self.routing_fit else {}),
            **({"routing_fit_adopted": _adopted(self.routing_fit)} if self.routing_fit else {}),
        }


def _adopted(routing_fit: str) -> bool | None:
    """Whether the fit a run scores by was adopted (beat the current score out of sample); None for 'latest',
    which only ever resolves to an adopted fit."""
    if routing_fit == "latest":
        return None
    from chromata.judgement.routing_fit import RoutingFit

    return RoutingFit.from_json(routing_fit).adopted


def _sha256(routing_fit: str) -> str:
    return routing_fit if routing_fit == "latest" else hashlib.sha256(routing_fit.encode()).hexdigest()


def build_config(**values: Any) -> RunConfig:
    """RunConfig from keyword values, with validation errors turned into one readable line."""
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid {where}: {msg}") from exc
