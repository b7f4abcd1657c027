"""Compacting the manifest: many shard fragments read as a few files, with history and commits kept.

A run commits one fragment per shard (``_chromata/manifest/shard-<id>.parquet``, written once), so a
collection of 10⁷ images has 20 000 of them, and every plan would read them all. A *compaction* is one
Parquet file under ``_chromata/manifest/compacted/`` holding the rows of many fragments; its footer
records which fragments those are and where each one's rows are (``chromata.record.compaction``: fragment key,
first row, row count), and which older compactions it replaces (``supersedes``).

What stays true:

* **Nothing is deleted.** Fragments stay where they are (they are the history, and the commit markers);
  a compaction is a copy that readers use instead of reading each fragment. Every row is read exactly
  once: from the first live compaction that lists its fragment, else from the fragment itself.
* **A shard is done iff its fragment exists** — or a live compaction lists it (the same thing while
  fragments are never deleted; planning asks :meth:`ManifestLayout.committed`). A commit retried after
  its shard was compacted still finds its fragment there and writes nothing (``create_once``).
* **Crash-safe at any point.** A compaction is written to a local temporary file and published with
  one atomic write (``write_file``: a rename locally, a PUT or completed multipart upload on S3) under a
  new name. Interrupted before that, nothing is visible; after it, the new file covers exactly the rows
  the files it supersedes covered, plus new fragments. Two concurrent compactions overlap at worst, and
  an overlapping fragment is still read once.
* Readers get the same table as without compaction: rows come out in fragment-key order, and a
  fragment's columns are completed to the current schema exactly as reading the fragment would.

Policy (:func:`compact`): fragments no compaction lists go into a new compaction once there are
``min_fragments`` of them; when that would make more than ``max_files`` live compactions, the new one
also absorbs all live ones (rows are streamed, a row group at a time), so planning reads at most
``max_files`` compacted files plus fewer than ``min_fragments`` fragments.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chromata.archive.storage import Storage
from chromata.record.manifest_schema import MANIFEST_PREFIX, MANIFEST_SCHEMA

log = logging.getLogger(__name__)

COMPACTED_PREFIX = f"{MANIFEST_PREFIX}/compacted"
META_KEY = b"chromata.record.compaction"
ROW_GROUP = 131_072  # rows per Parquet row group in a compaction (fragments are only ~500 rows each)


def is_fragment_key(key: str) -> bool:
    return key.endswith(".parquet") and "/shard-" in key and not key.startswith(COMPACTED_PREFIX + "/")


def is_compaction_key(key: str) -> bool:
    return key.startswith(COMPACTED_PREFIX + "/c-") and key.endswith(".parquet")


def _seq(key: str) -> int:
    """The sequence number in ``compacted/c-<seq>-<digest>.parquet`` (0 for a name that has none)."""
    part = key.rsplit("/", 1)[-1].split("-")
    return int(part[1]) if len(part) >= 3 and part[1].isdigit() else 0


@dataclass(frozen=True)
class Compaction:
    key: str
    fragments: tuple[tuple[str, int, int], ...]  # (fragment key, first row, rows), in file order
    supersedes: tuple[str, ...]
    path: Path  # a local copy (or the file itself, for a local destination)
    runs: tuple[tuple[int, int], ...] = ()  # (first row, rows) of each stretch sorted by source_key

    @property
    def rows(self) -> int:
        return sum(n for _, _, n in self.fragments)


@dataclass
class ManifestLayout:
    """Where each committed fragment's rows are read from: a live compaction, or the fragment itself."""

    fragments: list[str]  # shard fragment files present, sorted
    live: list[Compaction]  # compactions not superseded by another, newest first
    all_compactions: list[str]  # every compaction file present (live or superseded)
    covered: dict[str, tuple[Compaction, int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.live:
            for frag, first, rows in c.fragments:
                self.covered.setdefault(frag, (c, first, rows))

    @property
    def uncovered(self) -> list[str]:
        return [k for k in self.fragments if k not in self.covered]

    def committed(self) -> set[str]:
        """Keys of every committed fragment (present, or listed in a live compaction)."""
        return set(self.fragments) | set(self.covered)

    def files_to_read(self) -> int:
        return len(self.live) + len(self.uncovered)


Fetch = Callable[[str], Path]


@contextmanager
def local_files(storage: Storage) -> Iterator[Fetch]:
    """A function giving a local file for a key: the file itself for a local destination, else a copy
    downloaded (streamed) into a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chromata-compaction-") as tmp:

        def fetch(key: str) -> Path:
            local = storage.local_path(key) if hasattr(storage, "local_path") else None
            if local is not None:
                return local
            path = Path(tmp) / key.rsplit("/", 1)[-1]
            storage.download(key, path)
            return path

        yield fetch


def load_layout(storage: Storage, fetch: Fetch) -> ManifestLayout:
    """List the manifest folder and read the footers of the live compactions (newest first: a file that a
    newer live one supersedes is never opened)."""
    keys = [o.key for o in storage.list(MANIFEST_PREFIX)]
    fragments = sorted(k for k in keys if is_fragment_key(k))
    compactions = sorted((k for k in keys if is_compaction_key(k)), key=lambda k: (_seq(k), k), reverse=True)
    live: list[Compaction] = []
    superseded: set[str] = set()
    for key in compactions:
        if key in superseded:
            continue
        path = fetch(key)
        footer = pq.ParquetFile(path).metadata
        meta = json.loads((footer.metadata or {})[META_KEY])
        c = Compaction(
            key=key,
            fragments=tuple((str(f), int(a), int(n)) for f, a, n in meta["fragments"]),
            supersedes=tuple(meta.get("supersedes", ())),
            path=path,
            runs=tuple((int(a), int(n)) for a, n in meta.get("runs", [[0, footer.num_rows]])),
        )
        superseded.update(c.supersedes)
        live.append(c)
    return ManifestLayout(fragments, live, compactions)


def read_parts(storage: Storage, columns: list[str] | None = None, dictionary: Iterable[str] = ()) -> list[pa.Table]:
    """The manifest as tables in fragment-key order, each fragment's rows read once (see module doc)."""
    return read_parts_with_layout(storage, columns, dictionary)[0]


def read_parts_with_layout(
    storage: Storage, columns: list[str] | None = None, dictionary: Iterable[str] = ()
) -> tuple[list[pa.Table], ManifestLayout]:
    """``read_parts``, and the layout it read them by (which fragments are committed)."""
    dict_cols = list(dictionary)
    with local_files(storage) as fetch:
        layout = load_layout(storage, fetch)
        tables: dict[str, pa.Table] = {}
        for c in layout.live:
            if any(frag in layout.covered and layout.covered[frag][0] is c for frag, _, _ in c.fragments):
                tables[c.key] = pq.read_table(c.path, columns=columns, read_dictionary=dict_cols or None)
    parts: list[pa.Table] = []
    run: tuple[str, int, int] | None = None  # consecutive fragments of one compaction are one slice
    for frag in sorted(set(layout.fragments) | set(layout.covered)):
        where = layout.covered.get(frag)
        if where is not None:
            c, first, rows = where
            if run is not None and run[0] == c.key and run[2] == first:
                run = (run[0], run[1], first + rows)
                continue
            if run is not None:
                parts.append(tables[run[0]].slice(run[1], run[2] - run[1]))
            run = (c.key, first, first + rows)
            continue
        if run is not None:
            parts.append(tables[run[0]].slice(run[1], run[2] - run[1]))
            run = None
        parts.append(pq.read_table(io.BytesIO(storage.read(frag)), columns=columns, read_dictionary=dict_cols or None))
    if run is not None:
        parts.append(tables[run[0]].slice(run[1], run[2] - run[1]))
    return parts, layout


def history_runs(
    storage: Storage, columns: list[str], dictionary: Iterable[str] = ()
) -> tuple[list[pa.Table], ManifestLayout]:
    """Every committed row (each once, as ``read_parts`` reads them) as a few tables, each sorted by
    source key as far as compaction could make it: a compaction's sorted stretches, then the fragments
    no compaction lists, together (planning sorts what is not sorted)."""
    import numpy as np

    dict_cols = list(dictionary) or None
    runs: list[pa.Table] = []
    with local_files(storage) as fetch:
        layout = load_layout(storage, fetch)
        for c in layout.live:
            owned = [(first, rows) for frag, first, rows in c.fragments if layout.covered[frag][0] is c]
            if not owned:
                continue
            table = pq.read_table(c.path, columns=columns, read_dictionary=dict_cols)
            keep = None
            if sum(n for _, n in owned) != len(table):  # overlapping compactions: only the rows it owns
                keep = np.zeros(len(table), bool)
                for first, rows in owned:
                    keep[first : first + rows] = True
            for first, rows in c.runs:
                run = table.slice(first, rows)
                runs.append(run if keep is None else run.filter(pa.array(keep[first : first + rows])))
    loose = [
        pq.read_table(io.BytesIO(storage.read(frag)), columns=columns, read_dictionary=dict_cols)
        for frag in layout.uncovered
    ]
    if loose:
        runs.append(pa.concat_tables(loose, promote_options="default"))
    return runs, layout


def conform(table: pa.Table) -> pa.Table:
    """A fragment's table with every column of the current schema, in order (absent ones as nulls)."""
    n = len(table)
    arrays = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(n, f.type) for f in MANIFEST_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=MANIFEST_SCHEMA)


@dataclass(frozen=True)
class CompactionReport:
    key: str | None  # the compaction written (None: nothing to do)
    fragments: int  # fragments it lists
    rows: int
    superseded: tuple[str, ...]
    files_before: int  # files a reader of the manifest read before / reads now
    files_after: int
    skipped: tuple[str, ...] = ()  # fragments left as they are (columns this version does not know)


def compact(storage: Storage, *, min_fragments: int = 256, max_files: int = 8) -> CompactionReport:
    """Merge the fragments no compaction lists yet (and, past ``max_files``, all live compactions) into
    one new compaction; see the module docstring for what stays true."""
    with local_files(storage) as fetch, tempfile.TemporaryDirectory(prefix="chromata-compact-") as tmp:
        layout = load_layout(storage, fetch)
        before = layout.files_to_read()
        uncovered = layout.uncovered
        if len(uncovered) < max(1, min_fragments) and len(layout.live) <= max_files:
            return CompactionReport(None, 0, 0, (), before, before)
        absorb = layout.live if len(layout.live) + (1 if uncovered else 0) > max_files else []
        out = Path(tmp) / "compaction.parquet"
        listed: list[tuple[str, int, int]] = []
        skipped: list[str] = []
        runs: list[tuple[int, int]] = []
        with _CompactionWriter(out) as writer:
            seen: set[str] = set()
            for c in absorb:
                base = writer.rows
                writer.copy_file(c.path)
                runs += [(base + first, rows) for first, rows in c.runs]
                for frag, first, rows in c.fragments:
                    if frag not in seen:
                        seen.add(frag)
                        listed.append((frag, base + first, rows))
            start = writer.rows
            for frag, path in _by_first_key(fetch, uncovered):  # so that the new rows are one sorted stretch
                table = pq.read_table(path)
                unknown = set(table.column_names) - set(MANIFEST_SCHEMA.names)
                if unknown:  # written by a newer chromata: copying it would drop columns
                    log.warning("not compacting %s: columns %s are not in this schema", frag, sorted(unknown))
                    skipped.append(frag)
                    continue
                listed.append((frag, writer.rows, len(table)))
                writer.add(conform(table))
            if writer.rows > start:
                runs.append((start, writer.rows - start))
            supersedes = tuple(c.key for c in absorb)
            writer.metadata({"fragments": listed, "supersedes": list(supersedes), "runs": runs})
        if not listed:
            return CompactionReport(None, 0, 0, (), before, before, tuple(skipped))
        seq = max((_seq(k) for k in layout.all_compactions), default=0) + 1
        digest = hashlib.sha256("\n".join(f for f, _, _ in listed).encode()).hexdigest()[:16]
        key = f"{COMPACTED_PREFIX}/c-{seq:08d}-{digest}.parquet"
        storage.write_file(key, out, content_type="application/vnd.apache.parquet")  # the one atomic step
    rows = sum(n for _, _, n in listed)
    after = before - len(absorb) - (len(uncovered) - len(skipped)) + 1
    log.info(
        "compacted %d fragments (%d rows) into %s; readers open %d files instead of %d",
        len(listed),
        rows,
        key,
        after,
        before,
    )
    return CompactionReport(key, len(listed), rows, supersedes, before, after, tuple(skipped))


def _by_first_key(fetch: Fetch, fragments: list[str]) -> list[tuple[str, Path]]:
    """Fragments (fetched once, to local files) ordered by their smallest source key: a run's shards are
    consecutive stretches of the key-ordered listing, so their rows come out sorted."""
    import pyarrow.compute as pc

    firsts = []
    for frag in fragments:
        path = fetch(frag)
        first = pc.min(pq.read_table(path, columns=["source_key"])["source_key"]).as_py()
        firsts.append((first or "", frag, path))
    return [(frag, path) for _, frag, path in sorted(firsts)]


class _CompactionWriter:
    """Rows appended in order into one Parquet file, in row groups of ``ROW_GROUP`` rows."""

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(path, MANIFEST_SCHEMA, compression="zstd")
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0

    def __enter__(self) -> _CompactionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()
        self._writer.close()

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += len(table)
        self.rows += len(table)
        if self._pending_rows >= ROW_GROUP:
            self._flush()

    def copy_file(self, path: Path) -> None:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP):
            self.add(conform(pa.Table.from_batches([batch])))

    def metadata(self, meta: dict[str, object]) -> None:
        self._writer.add_key_value_metadata({META_KEY.decode(): json.dumps(meta, separators=(",", ":"))})

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP)
            self._pending, self._pending_rows = [], 0
