"""An S3-compatible bucket (AWS, MinIO, Ceph, …) as a :class:`~chromata.archive.storage.Storage`: boto3's own
retries as the one retry layer, parallel listing folder by folder, multipart uploads, create-once writes."""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chromata.archive.storage import ObjectInfo, safe_key
from chromata.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


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
