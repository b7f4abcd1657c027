"""What travels through the engine: an ``Item`` (one listed object), what a media handler hands the output
path (``Colorized``), and the two outcomes that are not colour (``Skip``; failures are ``errors.Failure``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chromata.archive.storage import ObjectInfo
from chromata.media.formats import Format, MediaKind
from chromata.media.imageio import Probe

F32 = NDArray[np.float32]


@dataclass
class Item:
    """One listed object on its way through the engine. ``data`` is held only for the kinds colorized in
    memory (stills, pages, and a banded scan that was small on disk); films and large scans stay files."""

    obj: ObjectInfo
    started: float  # UNIX seconds, when the engine took it
    kind: MediaKind = "still"
    sha256: str | None = None
    data: bytes | None = field(default=None, repr=False)
    info: Probe | None = None


@dataclass(frozen=True)
class Skip:
    """Not colorized, on purpose: the source already has colour (a ``skipped`` row with the reason)."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Encoded:
    """An output ready to label-check, sign and write: bytes in memory or a file in scratch space."""

    data: bytes | Path
    sidecar: bytes | None = None  # the XMP for formats without a metadata slot


@dataclass
class Colorized:
    """What every media handler gives the one output path.

    ``uncertainty`` holds one per-pixel map per unit the confidence is taken over (a still: one; pages: one per
    page; a film: the mean over its frames); ``encode`` finishes the output once the XMP packet (which names
    the confidence) is known."""

    fmt: Format
    uncertainty: list[F32]
    reasons: list[str]
    width: int
    height: int
    bit_depth: int
    encode: Callable[[bytes], Encoded]
    frames: int | None = None  # pages or frames (stills: None)
    # the confidence estimator's assessment of each unit (chromata.models.postprocess.assessments; a film: of
    # frames spread over it); None: the version-1 score from the uncertainty (a package without the estimator)
    assessments: list[Any] | None = None
    # what this output's row says differently from the run's parameters (a film: decoded without restraint)
    params: dict[str, object] | None = None
