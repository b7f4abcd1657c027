"""The archive: where images come from and where derivatives go.

* :mod:`~chromata.archive.storage` — the one :class:`~chromata.archive.storage.Storage` interface (list,
  read, write, never overwrite a source) and what every backend shares (safe keys, hashing, read-only
  wrapping, listing);
* :mod:`~chromata.archive.local` — a local folder; :mod:`~chromata.archive.s3` — an S3-compatible bucket;
* :mod:`~chromata.archive.inventory` — planning from an S3 Inventory report instead of a listing;
* :func:`open_storage` — a URI (``s3://bucket/prefix`` or a path) to its backend.

May import: :mod:`chromata.errors` only. Adding a backend: a module here implementing ``Storage`` and a
branch in :func:`open_storage`.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

from chromata.archive.local import LocalStorage
from chromata.archive.s3 import S3Storage
from chromata.archive.storage import ObjectInfo, ReadOnlyStorage, Storage
from chromata.errors import StorageError

__all__ = ["list_objects", "open_storage"]


def open_storage(uri: str, endpoint_url: str | None = None) -> Storage:
    """The backend for ``uri``: ``s3://bucket[/prefix]`` (any S3-compatible endpoint) or a local folder."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"S3 URI needs a bucket: {uri}")
        return S3Storage(parsed.netloc, parsed.path, endpoint_url=endpoint_url)
    if parsed.scheme == "file":
        return LocalStorage(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise StorageError(f"unsupported storage URI scheme {parsed.scheme!r} in {uri}")
    return LocalStorage(uri)


def list_objects(storage: Storage, prefix: str = "", workers: int = 8) -> Iterator[ObjectInfo]:
    """Every object under ``prefix`` in key order; S3 prefixes are listed folder by folder on ``workers``
    threads (:meth:`S3Storage.list_parallel`), anything else as ``storage.list`` lists it."""
    inner = storage.inner if isinstance(storage, ReadOnlyStorage) else storage
    if isinstance(inner, S3Storage) and workers > 1:
        return inner.list_parallel(prefix, workers=workers)
    return storage.list(prefix)
