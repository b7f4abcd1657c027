"""Where images come from and where derivatives go: local folders and S3-compatible buckets.

One small protocol (``Storage``) with two implementations. Keys are POSIX-style paths relative to the
storage root; every key is checked so that nothing can be read or written outside that root.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from chromata.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key relative to the storage root and what identifies its version."""

    key: str
    size: int
    etag: str
    mtime: float
    version_id: str | None = None


def safe_key(key: str) -> str:
    """Normalise ``key`` to a relative POSIX path; refuse anything that would leave the root."""
    if not key or "\x00" in key:
        raise StorageError(f"invalid object key {key!r}")
    norm = posixpath.normpath(key.replace("\\", "/")).lstrip("/")
    if norm in ("", ".") or norm == ".." or norm.startswith("../"):
        raise StorageError(f"object key {key!r} escapes the storage root")
    return norm


class Storage(Protocol):
    root_uri: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stream every object under ``prefix`` in ascending key order."""
        ...

    def read(self, key: str) -> bytes: ...

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write all of ``data`` or nothing: readers never see a partial object."""
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


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root_uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / safe_key(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / safe_key(prefix) if prefix else self.root
        if not base.exists():
            return
        real_root = self.root.resolve()
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                try:
                    if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                        log.warning("skipping %s: symlink points outside the source", path)
                        continue
                    st = path.stat()
                except OSError as exc:
                    log.warning("skipping %s: %s", path, exc)
                    continue
                key = path.relative_to(self.root).as_posix()
                yield ObjectInfo(key, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}", st.st_mtime)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def _durable_temp(self, key: str, data: bytes) -> tuple[Path, Path]:
        """Write ``data`` to a synced temporary file beside ``key``'s path; returns (temp, final)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), path

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        tmp, path = self._durable_temp(key, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def create_once(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        tmp, path = self._durable_temp(key, data)
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def check_readable(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"source folder not found: {self.root}")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StorageError(f"source folder is not readable: {self.root}")

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create destination {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"destination is not writable: {self.root}")


# Multipart above 16 MiB; boto3's own retry policy is the ONE retry layer for S3 I/O.
MULTIPART_THRESHOLD = 16 * 1024 * 1024


class S3Storage:
    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client: S3Client | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.root_uri = f"s3://{bucket}/{self.prefix + '/' if self.prefix else ''}"
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg = Config(retries={"max_attempts": 6, "mode": "standard"}, max_pool_connections=32)
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url, config=cfg)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # boto3 clients do not pickle; each process makes its own
        return state

    def _full(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = self._full(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue
                    yield ObjectInfo(
                        key=key[cut:],
                        size=int(obj["Size"]),
                        etag=str(obj.get("ETag", "")).strip('"'),
                        mtime=obj["LastModified"].timestamp(),
                    )
        except self.client.exceptions.NoSuchBucket as exc:
            raise StorageError(f"bucket not found: s3://{self.bucket}") from exc

    def read(self, key: str) -> bytes:
        resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        body = resp["Body"]
        buf = io.BytesIO()
        for chunk in body.iter_chunks(1 << 20):
            buf.write(chunk)
        return buf.getvalue()

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        # A PUT (or a completed multipart upload) is atomic on S3: readers see the old object or the new.
        from boto3.s3.transfer import TransferConfig

        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_fileobj(
            io.BytesIO(data),
            self.bucket,
            self._full(key),
            ExtraArgs=extra,
            Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD),
        )

    def create_once(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                IfNoneMatch="*",
                ContentType=content_type or "application/octet-stream",
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def _check_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"bucket not found: s3://{self.bucket}") from exc
            if code in ("403", "AccessDenied"):
                raise StorageError(f"access denied to bucket s3://{self.bucket}") from exc
            raise StorageError(f"cannot access s3://{self.bucket}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach S3 for s3://{self.bucket}: {exc}") from exc

    def check_readable(self) -> None:
        self._check_bucket()

    def check_writable(self) -> None:
        self._check_bucket()


def key_for_uri(storage: Storage, uri: str) -> str:
    """The key of ``uri`` inside ``storage``; a URI outside its root (or escaping it) is refused."""
    root = storage.uri("x")[:-1]  # the location's prefix, with its trailing separator
    if not uri.startswith(root):
        raise StorageError(f"{uri} is outside the location {root}")
    return safe_key(uri[len(root) :])


def open_storage(uri: str, endpoint_url: str | None = None) -> Storage:
    """``s3://bucket/prefix`` -> S3Storage; anything else is a local folder path."""
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
