"""Planning from an S3 Inventory report instead of listing the bucket.

Listing 10⁷–10⁸ objects page by page takes hours; S3 Inventory writes the same facts (key, size, ETag,
last modified) daily or weekly as a report: a ``manifest.json`` and the data files it names, in the
inventory's destination bucket. This module reads such a report exactly as AWS writes it:

* ``manifest.json``: ``sourceBucket``, ``destinationBucket`` (an ARN), ``fileFormat`` (``CSV``,
  ``Parquet`` or ``ORC``; CSV and Parquet are read, ORC is refused with a sentence), ``fileSchema``
  (CSV: the column names, the files have no header; Parquet: the message schema, columns are read by
  name) and ``files[]`` (``key``, ``size``, ``MD5checksum``: every file is checked against it);
* CSV files are gzip-compressed and their keys URL-encoded (form encoding: ``+`` is a space); Parquet
  keys are plain;
* reports of versioned buckets (``IsLatest``, ``IsDeleteMarker``) give the current version of each key.

From S3 (``s3://dest-bucket/…/manifest.json``; the data files are fetched from the destination bucket
with the same client) or from a local copy (a folder holding ``manifest.json``; each file is looked
up at its key under the folder or one of its parents, then by name beside the manifest or in
``data/``).

**Order.** AWS does not promise that the files are sorted, or that they cover disjoint key ranges.
Planning needs ascending key order (shards are consecutive runs of keys), within a bounded memory.
Each data file is read alone (one file's four columns in memory), sorted if it is not, and spilled to a
temporary Arrow IPC file in chunks. If the sorted files cover disjoint ranges they are streamed one
after the other; otherwise they are k-way merged a chunk at a time: every row not above the smallest
"last key" of the chunks in hand can be emitted, so at most one chunk per file is held (chunks get
smaller as files get more numerous: about 10⁶ rows in all). A key listed twice is yielded once.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from chromata.archive.s3 import S3Storage
from chromata.archive.storage import ObjectInfo
from chromata.errors import StorageError

log = logging.getLogger(__name__)

# The columns chromata needs, by their CSV name (fileSchema) and their Parquet name.
CSV_COLUMNS = {
    "Key": "key",
    "Size": "size",
    "ETag": "etag",
    "LastModifiedDate": "mtime",
    "IsLatest": "is_latest",
    "IsDeleteMarker": "is_delete_marker",
}
PARQUET_COLUMNS = {
    "key": "key",
    "size": "size",
    "e_tag": "etag",
    "last_modified_date": "mtime",
    "is_latest": "is_latest",
    "is_delete_marker": "is_delete_marker",
}
OBJECT_SCHEMA = pa.schema([("key", pa.string()), ("size", pa.int64()), ("etag", pa.string()), ("mtime", pa.float64())])
MERGE_ROWS = 1 << 20  # rows held in chunks during a k-way merge, over all files
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class InventoryFile:
    key: str
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class InventoryManifest:
    source_bucket: str
    destination_bucket: str
    file_format: str  # CSV | Parquet
    file_schema: str
    files: tuple[InventoryFile, ...]

    @classmethod
    def parse(cls, text: str, where: str) -> InventoryManifest:
        try:
            doc = json.loads(text)
            fmt = str(doc["fileFormat"])
            files = tuple(InventoryFile(str(f["key"]), f.get("size"), f.get("MD5checksum")) for f in doc["files"])
            dest = str(doc.get("destinationBucket", ""))
            manifest = cls(
                str(doc["sourceBucket"]), dest.rsplit(":", 1)[-1], fmt, str(doc.get("fileSchema", "")), files
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"{where} is not an S3 Inventory manifest.json: {exc}") from exc
        if fmt.upper() == "ORC":
            raise StorageError(
                f"{where}: ORC inventory reports are not supported; configure the inventory as CSV or Parquet"
            )
        if fmt.upper() not in ("CSV", "PARQUET"):
            raise StorageError(f"{where}: unknown inventory fileFormat {fmt!r} (expected CSV or Parquet)")
        if fmt.upper() == "CSV" and "Key" not in manifest.csv_names:
            raise StorageError(f"{where}: the CSV fileSchema has no Key column: {manifest.file_schema!r}")
        return manifest

    @property
    def csv_names(self) -> list[str]:
        return [c.strip() for c in self.file_schema.split(",")]


class Inventory:
    """One S3 Inventory report, read as a key-ordered stream of the objects it lists."""

    def __init__(self, uri: str, endpoint_url: str | None = None) -> None:
        self.uri = uri
        self.endpoint_url = endpoint_url
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            path = parsed.path.lstrip("/")
            key = path if path.endswith("manifest.json") else f"{path.rstrip('/')}/manifest.json".lstrip("/")
            self._s3: S3Storage | None = S3Storage(parsed.netloc, endpoint_url=endpoint_url)
            self._manifest_key = key
            text = self._s3.read(key).decode("utf-8")
            self._local_dir: Path | None = None
        else:
            local = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
            local = local / "manifest.json" if local.is_dir() else local
            if not local.is_file():
                raise StorageError(f"inventory manifest not found: {local}")
            self._s3, self._manifest_key, self._local_dir = None, "", local.parent
            text = local.read_text(encoding="utf-8")
        self.manifest = InventoryManifest.parse(text, uri)

    # -- fetching data files -------------------------------------------------------------------------
    def _fetch(self, f: InventoryFile, tmp: Path) -> Path:
        if self._s3 is not None:
            dest = S3Storage(self.manifest.destination_bucket or self._s3.bucket, endpoint_url=self.endpoint_url)
            path = tmp / Path(f.key).name
            dest.download(f.key, path)
        else:
            assert self._local_dir is not None
            path = self._find_local(f.key)
        if f.md5 and _md5(path) != f.md5:
            raise StorageError(f"inventory file {f.key} does not match its MD5checksum in {self.uri} (truncated?)")
        return path

    def _find_local(self, key: str) -> Path:
        assert self._local_dir is not None
        candidates = [d / key for d in (self._local_dir, *self._local_dir.parents)]
        name = Path(key).name
        candidates += [self._local_dir / name, self._local_dir / "data" / name]
        for c in candidates:
            if c.is_file():
                return c
        raise StorageError(f"inventory file {key} named in {self.uri} was not found under {self._local_dir}")

    # -- reading one file ----------------------------------------------------------------------------
    def _read_file(self, path: Path, prefix: str) -> pa.Table:
        """One data file as (key, size, etag, mtime) of current, non-folder objects under ``prefix``
        (keys made relative to it), sorted by key."""
        if self.manifest.file_format.upper() == "CSV":
            names = self.manifest.csv_names
            wanted = [c for c in CSV_COLUMNS if c in names]
            types = {
                "Key": pa.string(),
                "Size": pa.int64(),
                "ETag": pa.string(),
                "LastModifiedDate": pa.timestamp("ms", tz="UTC"),
                "IsLatest": pa.bool_(),
                "IsDeleteMarker": pa.bool_(),
            }
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted, column_types={c: types[c] for c in wanted}, strings_can_be_null=False
                ),
            ).rename_columns([CSV_COLUMNS[c] for c in wanted])
            table = table.set_column(table.column_names.index("key"), "key", _url_decode(table["key"]))
        else:
            present = set(pq.read_schema(path).names)
            wanted = [c for c in PARQUET_COLUMNS if c in present]
            if "key" not in wanted:
                raise StorageError(f"inventory file {path.name} has no key column")
            table = pq.read_table(path, columns=wanted).rename_columns([PARQUET_COLUMNS[c] for c in wanted])
        return _normalise(table, prefix)

    # -- the stream ----------------------------------------------------------------------------------
    def batches(self, prefix: str = "") -> Iterator[pa.Table]:
        """Tables of (key, size, etag, mtime) in ascending key order, each key once; ``prefix``: only keys
        under it, relative to it (the source's prefix in the inventoried bucket)."""
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        files = self.manifest.files
        chunk = max(1024, min(BATCH_ROWS, MERGE_ROWS // max(1, len(files))))
        with tempfile.TemporaryDirectory(prefix="chromata-inventory-") as tmpdir:
            tmp = Path(tmpdir)
            runs: list[_Run] = []
            for i, f in enumerate(files):
                path = self._fetch(f, tmp)
                table = self._read_file(path, prefix)
                if self._s3 is not None:
                    path.unlink()
                if len(table):
                    runs.append(_Run.spill(table, tmp / f"run-{i:06d}.arrow", chunk))
            log.info(
                "inventory %s: %d files, %d objects under %r", self.uri, len(files), sum(r.rows for r in runs), prefix
            )
            last: str | None = None
            for table in _merge(runs):
                table, last = _drop_repeats(table, last)
                for start in range(0, len(table), BATCH_ROWS):
                    yield table.slice(start, BATCH_ROWS)

    def objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The same objects as ``S3Storage.list(prefix)`` would yield, from the report."""
        for table in self.batches(prefix):
            for key, size, etag, mtime in zip(*(table[c].to_pylist() for c in OBJECT_SCHEMA.names), strict=True):
                yield ObjectInfo(key, size, etag, mtime)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _url_decode(keys: pa.ChunkedArray) -> pa.ChunkedArray:
    """Form-decode CSV inventory keys (``+`` is a space, ``%xx`` a byte of UTF-8): spaces in one
    vectorised pass, and only keys with a ``%`` escape through Python's ``unquote``."""
    keys = pc.replace_substring(keys, "+", " ")
    flat = keys.combine_chunks()
    mask = pc.match_substring(flat, "%")
    if not pc.any(mask).as_py():
        return pa.chunked_array([flat])
    decoded = pa.array([unquote(k) for k in pc.filter(flat, mask).to_pylist()], pa.string())
    return pa.chunked_array([pc.replace_with_mask(flat, mask, decoded)])


def _normalise(table: pa.Table, prefix: str) -> pa.Table:
    keep = pc.invert(pc.ends_with(table["key"], "/"))
    if "is_latest" in table.column_names:
        keep = pc.and_(keep, pc.fill_null(table["is_latest"], True))
    if "is_delete_marker" in table.column_names:
        keep = pc.and_(keep, pc.invert(pc.fill_null(table["is_delete_marker"], False)))
    if prefix:
        keep = pc.and_(keep, pc.starts_with(table["key"], prefix))
    table = table.filter(keep)
    key = pc.utf8_slice_codeunits(table["key"], len(prefix)) if prefix else table["key"]
    cols = {
        "key": key,
        "size": table["size"].cast(pa.int64()) if "size" in table.column_names else pa.nulls(len(table), pa.int64()),
        "etag": pc.utf8_trim(table["etag"], '"') if "etag" in table.column_names else pa.nulls(len(table), pa.string()),
        "mtime": _seconds(table["mtime"]) if "mtime" in table.column_names else pa.nulls(len(table), pa.float64()),
    }
    out = pa.table(cols, schema=OBJECT_SCHEMA)
    out = pa.table(
        {c: pc.fill_null(out[c], v) for c, v in (("key", ""), ("size", 0), ("etag", ""), ("mtime", 0.0))},
        schema=OBJECT_SCHEMA,
    )
    if len(out) > 1 and not _is_sorted(out["key"]):
        out = out.take(pc.sort_indices(out, [("key", "ascending")]))
    return out


def _seconds(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Last-modified as UNIX seconds: a timestamp column, or Parquet's int64 milliseconds."""
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    return pc.divide(col.cast(pa.float64()), 1000.0)


def _is_sorted(keys: pa.ChunkedArray) -> bool:
    keys = keys.combine_chunks()
    return bool(pc.all(pc.less_equal(keys.slice(0, len(keys) - 1), keys.slice(1))).as_py())


@dataclass(frozen=True)
class _Run:
    """One data file, sorted, spilled to an Arrow IPC file in chunks."""

    path: Path
    rows: int
    first: str
    last: str

    @classmethod
    def spill(cls, table: pa.Table, path: Path, chunk: int) -> _Run:
        with ipc.new_file(path, OBJECT_SCHEMA) as writer:
            writer.write_table(table, max_chunksize=chunk)
        keys = table["key"]
        return cls(path, len(table), keys[0].as_py(), keys[len(keys) - 1].as_py())

    def tables(self) -> Iterator[pa.Table]:
        with pa.OSFile(str(self.path)) as source:  # read, not mapped: only the chunk in hand is resident
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(i)])


def _merge(runs: list[_Run]) -> Iterator[pa.Table]:
    """The rows of sorted runs in ascending key order (ties: the earlier run first)."""
    runs = sorted(runs, key=lambda r: r.first)
    if all(a.last < b.first for a, b in itertools.pairwise(runs)):
        for run in runs:  # disjoint ranges: one after the other
            yield from run.tables()
        return
    streams = [run.tables() for run in runs]
    held: dict[int, pa.Table] = {}
    for i, s in enumerate(streams):
        first = next(s, None)
        if first is not None:
            held[i] = first
    while held:
        bound = min(t["key"][len(t) - 1].as_py() for t in held.values())
        pieces = []
        for i in sorted(held):
            t = held[i]
            n = bisect.bisect_right(_Keys(t["key"]), bound)  # the chunk is sorted: O(log rows), not O(rows)
            if n:
                pieces.append(t.slice(0, n))
            if n == len(t):
                nxt = next(streams[i], None)
                if nxt is None:
                    del held[i]
                else:
                    held[i] = nxt
            else:
                held[i] = t.slice(n)
        merged = pa.concat_tables(pieces)
        yield merged.take(pc.sort_indices(merged, [("key", "ascending")]))


class _Keys:
    """Random access to a sorted key column, for ``bisect``."""

    def __init__(self, keys: pa.ChunkedArray) -> None:
        self.keys = keys.chunk(0) if keys.num_chunks == 1 else keys.combine_chunks()

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> str:
        return str(self.keys[i].as_py())


def _drop_repeats(table: pa.Table, last: str | None) -> tuple[pa.Table, str | None]:
    """``table`` (sorted) without a key equal to the one before it; returns it and its last key."""
    if not len(table):
        return table, last
    keys = table["key"].combine_chunks()
    prev = pa.concat_arrays([pa.array([last], pa.string()), keys.slice(0, len(keys) - 1)])
    keep = pc.fill_null(pc.not_equal(keys, prev), True)
    if not pc.all(keep).as_py():
        table = table.filter(keep)
    return table, keys[len(keys) - 1].as_py()
