"""Where images come from and where derivatives go: local folders and S3-compatible buckets.

One small protocol (``Storage``) with two implementations. Keys are POSIX-style paths relative to the
storage root; every key is checked so that nothing can be read or written outside that root.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import logging
import os
import shutil
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


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root_uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / safe_key(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / safe_key(prefix.strip("/")) if prefix.strip("/") else self.root
        if not base.exists():
            return
        real_root = self.root.resolve()
        for path in self._walk(base):
            try:
                st = path.lstat() if self._outside(path, real_root) else path.stat()
            except OSError as exc:
                log.warning("skipping %s: %s", path, exc)
                continue
            key = path.relative_to(self.root).as_posix()
            yield ObjectInfo(key, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}", st.st_mtime)

    @classmethod
    def _walk(cls, folder: Path) -> Iterator[Path]:
        """Files under ``folder`` in ascending key order (a folder ``b`` sorts as ``b/``, as in S3 listings);
        symbolic links to folders are not descended into."""
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("skipping %s: %s", folder, exc)
            return
        for _, entry in sorted((e.name + ("/" if e.is_dir(follow_symlinks=False) else ""), e) for e in entries):
            if entry.is_dir(follow_symlinks=False):
                yield from cls._walk(Path(entry.path))
            else:
                yield Path(entry.path)

    @staticmethod
    def _outside(path: Path, real_root: Path) -> bool:
        return path.is_symlink() and not path.resolve().is_relative_to(real_root)

    def _inside(self, key: str) -> Path:
        """The file of ``key`` for reading; a symlink resolving outside the root is refused (it is listed,
        so that the run records it, but never followed)."""
        path = self._path(key)
        if self._outside(path, self.root.resolve()):
            raise KeyRefused(f"{key!r} is a symbolic link to a file outside the source folder")
        return path

    def read(self, key: str) -> bytes:
        return self._inside(key).read_bytes()

    def local_path(self, key: str) -> Path | None:
        return self._inside(key)

    def download(self, key: str, path: Path) -> None:
        shutil.copyfile(self._inside(key), path)

    def _durable_temp(self, key: str, data: bytes | Path) -> tuple[Path, Path]:
        """Write ``data`` (bytes, or a file's content) to a synced temporary file beside ``key``'s path;
        returns (temp, final)."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        except OSError as exc:
            _refuse_name(key, exc)
            raise
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, Path):
                    with open(data, "rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 20)
                else:
                    fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), path

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._replace(*self._durable_temp(key, data), key)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        self._replace(*self._durable_temp(key, path), key)

    @staticmethod
    def _replace(tmp: Path, path: Path, key: str) -> None:
        try:
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            _refuse_name(key, exc)
            raise
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
        return str(self.root / key)  # a name for the record: refused keys are named too, never opened

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


# Multipart above 16 MiB; boto3's own retry policy is the ONE retry layer for S3 I/O: 500, 503 SlowDown,
# throttling, dropped connections and timeouts are retried here with backoff, by no other layer (a Ray task
# is retried only when its actor dies; a Prefect task only for the manifest commit).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
S3_MAX_ATTEMPTS = 6


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

            timeout = float(os.environ.get("CHROMATA_S3_TIMEOUT", "60"))  # seconds to connect, and per read
            cfg = Config(
                retries={"total_max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},  # first try included
                max_pool_connections=32,
                connect_timeout=timeout,
                read_timeout=timeout,
            )
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
        sub = prefix.strip("/")  # a listing prefix, not a key: "a/" lists under a/
        full_prefix = self._full(sub) + "/" if sub else (self.prefix + "/" if self.prefix else "")
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

    def list_parallel(self, prefix: str = "", workers: int = 8, fan_out: int = 32) -> Iterator[ObjectInfo]:
        """``list(prefix)`` for large prefixes: the "folders" (common prefixes, ``Delimiter="/"``) under
        ``prefix`` are listed on ``workers`` threads and their objects yielded in ascending key order.

        Folders are opened level by level until there are at least ``fan_out`` of them (or no deeper
        level). Each folder's keys all start with its name, and a key directly at the level compares to
        a folder's keys as it compares to the folder's name, so yielding the level's entries in sorted
        order, a folder's whole listing at its place, is the same order as one flat listing. At most
        ``workers`` folders are listed ahead of the one being yielded (each one is held as a list)."""
        from concurrent.futures import Future, ThreadPoolExecutor

        if workers <= 1:
            yield from self.list(prefix)
            return
        entries = self._fan_out(prefix.strip("/"), fan_out)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-list") as pool:
            pending: builtins.list[tuple[ObjectInfo | str, Future[builtins.list[ObjectInfo]] | None]] = []
            it = iter(entries)
            try:
                while True:
                    while len([f for _, f in pending if f is not None]) < workers:
                        entry = next(it, None)
                        if entry is None:
                            break
                        job = pool.submit(lambda p: list(self.list(p)), entry) if isinstance(entry, str) else None
                        pending.append((entry, job))
                    if not pending:
                        return
                    entry, job = pending.pop(0)
                    if job is None:
                        assert isinstance(entry, ObjectInfo)
                        yield entry
                    else:
                        yield from job.result()
            finally:
                for _, job in pending:
                    if job is not None:
                        job.cancel()

    def _fan_out(self, sub: str, fan_out: int, max_depth: int = 4) -> builtins.list[ObjectInfo | str]:
        """The entries of ``sub`` in key order: objects directly there, and folders (sub-prefixes relative
        to the root, to be listed whole), opened level by level while there are fewer than ``fan_out``."""
        entries: builtins.list[ObjectInfo | str] = [sub + "/" if sub else ""]
        for _ in range(max_depth):
            folders = sum(1 for e in entries if isinstance(e, str))
            if folders == 0 or folders >= fan_out:
                break
            opened: builtins.list[ObjectInfo | str] = []
            for e in entries:
                opened.extend(self._level(e) if isinstance(e, str) else [e])
            entries = opened
        return entries

    def _level(self, folder: str) -> builtins.list[ObjectInfo | str]:
        """One ``Delimiter="/"`` listing of ``folder`` (relative to the root, "" or ending in "/")."""
        full = f"{self.prefix}/{folder}" if self.prefix else folder
        cut = len(self.prefix) + 1 if self.prefix else 0
        out: builtins.list[tuple[str, ObjectInfo | str]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/"):
                        info = ObjectInfo(
                            key=obj["Key"][cut:],
                            size=int(obj["Size"]),
                            etag=str(obj.get("ETag", "")).strip('"'),
                            mtime=obj["LastModified"].timestamp(),
                        )
                        out.append((obj["Key"], info))
                for cp in page.get("CommonPrefixes", []):
                    out.append((cp["Prefix"], cp["Prefix"][cut:]))
        except self.client.exceptions.NoSuchBucket as exc:
            raise StorageError(f"bucket not found: s3://{self.bucket}") from exc
        out.sort(key=lambda kv: kv[0])
        return [entry for _, entry in out]

    def read(self, key: str) -> bytes:
        resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        body = resp["Body"]
        buf = io.BytesIO()
        for chunk in body.iter_chunks(1 << 20):
            buf.write(chunk)
        return buf.getvalue()

    def local_path(self, key: str) -> Path | None:
        return None

    def download(self, key: str, path: Path) -> None:
        resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        with open(path, "wb") as fh:
            for chunk in resp["Body"].iter_chunks(1 << 20):
                fh.write(chunk)

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        # A PUT (or a completed multipart upload) is atomic on S3: readers see the old object or the new.
        self._upload(io.BytesIO(data), key, content_type)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        with open(path, "rb") as fh:
            self._upload(fh, key, content_type)

    def _upload(self, fh: Any, key: str, content_type: str | None) -> None:
        from boto3.s3.transfer import TransferConfig

        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_fileobj(
            fh,
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
        return f"s3://{self.bucket}/{self.prefix}/{key}" if self.prefix else f"s3://{self.bucket}/{key}"

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


def _refuse_name(key: str, exc: OSError) -> None:
    """A name this file system cannot hold is a problem of that one object: raise KeyRefused."""
    if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
        raise KeyRefused(f"cannot store {key!r} here: {exc.strerror}") from exc


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


def list_objects(storage: Storage, prefix: str = "", workers: int = 8) -> Iterator[ObjectInfo]:
    """Every object under ``prefix`` in key order; S3 prefixes are listed folder by folder on ``workers``
    threads (:meth:`S3Storage.list_parallel`), anything else as ``storage.list`` lists it."""
    inner = storage.inner if isinstance(storage, ReadOnlyStorage) else storage
    if isinstance(inner, S3Storage) and workers > 1:
        return inner.list_parallel(prefix, workers=workers)
    return storage.list(prefix)


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
