"""The one storage interface every backend implements, and what they share.

Keys are POSIX-style paths relative to the storage root; every key is checked (:func:`safe_key`) so that
nothing can be read or written outside that root. The backends: :mod:`chromata.archive.local` and
:mod:`chromata.archive.s3`; :func:`chromata.archive.open_storage` picks one for a URI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from chromata.errors import StorageError


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key relative to the storage root and what identifies its version."""

    key: str
    size: int
    etag: str
    mtime: float
    version_id: str | None = None


class KeyRefused(StorageError):
    """A key that cannot name an object here (escapes the root, aliases another key, too long): an error
    about one object, not about the storage, so a run records it against that image and goes on."""


def safe_key(key: str) -> str:
    """``key`` itself, if it is a relative POSIX path that stays inside the root and names exactly one
    object. Keys are taken literally (an S3 key is an opaque string: ``a/x/../b.jpg`` and ``a//b.jpg`` are
    objects distinct from ``a/b.jpg``), so any empty, ``.`` or ``..`` segment is refused rather than
    normalised: normalising would read or overwrite a different object."""
    if not key or "\x00" in key:
        raise KeyRefused(f"invalid object key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise KeyRefused(f"object key {key!r} has an empty, '.' or '..' segment (it could escape the root)")
    return key


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Storage(Protocol):
    root_uri: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stream every object under ``prefix`` in ascending key order."""
        ...

    def read(self, key: str) -> bytes: ...

    def local_path(self, key: str) -> Path | None:
        """The object's file when the storage is a local folder (read in place), else None."""
        ...

    def download(self, key: str, path: Path) -> None:
        """Stream the object into a local file, never holding it whole in memory."""
        ...

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write all of ``data`` or nothing: readers never see a partial object."""
        ...

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """``write_atomic`` from a local file, streamed (S3: multipart)."""
        ...

    def create_once(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """Atomically create ``key`` only if it does not exist (S3: conditional PUT ``If-None-Match: *``).

        Returns False, writing nothing, when the object already exists: for commit markers written by
        retried or concurrent attempts at the same work."""
        ...

    def exists(self, key: str) -> bool: ...

    def uri(self, key: str) -> str: ...

    def check_readable(self) -> None:
        """Raise StorageError with a clear message if the root cannot be listed."""
        ...

    def check_writable(self) -> None:
        """Raise StorageError with a clear message if the root cannot be written."""
        ...


class ReadOnlyStorage:
    """The source, as chromata holds it: listing and reading only. Every write raises, so no code path
    can modify, overwrite or delete a scan (the IAM policy in infra/terraform grants read only too)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.root_uri = inner.root_uri

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def read(self, key: str) -> bytes:
        return self.inner.read(key)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def download(self, key: str, path: Path) -> None:
        self.inner.download(key, path)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def uri(self, key: str) -> str:
        return self.inner.uri(key)

    def check_readable(self) -> None:
        self.inner.check_readable()

    def _refuse(self, what: str, key: str = "") -> StorageError:
        return StorageError(f"refusing to {what} {self.uri(key) if key else self.root_uri}: the source is read-only")

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        raise self._refuse("write", key)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        raise self._refuse("write", key)

    def create_once(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        raise self._refuse("create", key)

    def check_writable(self) -> None:
        raise self._refuse("write to")


def key_for_uri(storage: Storage, uri: str) -> str:
    """The key of ``uri`` inside ``storage``; a URI outside its root (or escaping it) is refused."""
    root = storage.uri("x")[:-1]  # the location's prefix, with its trailing separator
    if not uri.startswith(root):
        raise StorageError(f"{uri} is outside the location {root}")
    return safe_key(uri[len(root) :])
