"""Exceptions with messages meant for people (the CLI prints them as one line), and ``Failure``: why one
image has no output, as a value that travels from the engine to the manifest row unparsed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """Why one image failed (or was skipped): a stable machine-readable ``code`` (the manifest's
    ``error_code`` column, metrics labels, summaries) and a ``detail`` for people."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"

    def one_line(self, limit: int = 1000) -> str:
        """The manifest's ``error`` text: one line, whatever the library's message looked like."""
        return " ".join(str(self).split())[:limit]


class ChromataError(Exception):
    """Base class: an expected failure with a readable message (no traceback shown to users)."""


class ConfigError(ChromataError):
    """A run or model configuration is invalid."""


class StorageError(ChromataError):
    """A source or destination cannot be listed, read or written as a whole."""


class ImageError(ChromataError):
    """One image cannot be decoded, processed or encoded; becomes a failed manifest row."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.failure = Failure(code, detail)
