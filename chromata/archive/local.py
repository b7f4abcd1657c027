"""A local folder (or a mounted share) as a :class:`~chromata.archive.storage.Storage`: a walk that skips what it
cannot read, writes that appear whole (a temporary file, fsync, then an atomic rename or link)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from chromata.archive.storage import KeyRefused, ObjectInfo, safe_key
from chromata.errors import StorageError

log = logging.getLogger(__name__)


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


def _refuse_name(key: str, exc: OSError) -> None:
    """A name this file system cannot hold is a problem of that one object: raise KeyRefused."""
    if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
        raise KeyRefused(f"cannot store {key!r} here: {exc.strerror}") from exc
