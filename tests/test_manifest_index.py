"""The manifest index (latest row per source, decisions joined) and the decisions Parquet beside the
manifest: the one view of "which row is current" for the app, provenance, the CLI and IIIF."""

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from chromata.archive.local import LocalStorage
from chromata.errors import StorageError
from chromata.record.decisions import DECISIONS_PREFIX, latest_decisions, write_decisions
from chromata.record.manifest import write_fragment
from chromata.record.manifest_index import ManifestIndex
from tests.test_manifest import rec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dest(tmp_path):
    """Two runs: a.jpg colorized twice (the second time with other weights), b.jpg ok then failed."""
    storage = LocalStorage(tmp_path / "out")
    a, b = rec("a.jpg"), rec("b.jpg", output_sha256="bb" * 32)
    write_fragment(storage, "s1", [a, b])
    later = a.finished_at + 60
    a2 = replace(a, output_sha256="a2" * 32, model_sha256="11" * 32, run_id="r2", finished_at=later)
    b2 = replace(b, status="failed", output_uri=None, output_sha256=None, run_id="r2", finished_at=later)
    write_fragment(storage, "s2", [a2, b2])
    return storage, a, a2, b, b2


def test_latest_row_per_source_and_every_version(dest):
    storage, a, *_ = dest
    index = ManifestIndex.load(storage)
    assert len(index) == 4
    assert [(r["source_key"], r["run_id"], r["status"]) for r in index.latest()] == [
        ("a.jpg", "r2", "ok"),
        ("b.jpg", "r2", "failed"),
    ]
    # the newest *ok* version: a failed retry does not hide what was published
    assert [(r["source_key"], r["run_id"]) for r in index.latest(status="ok")] == [("a.jpg", "r2"), ("b.jpg", "r")]
    assert [r["run_id"] for r in index.versions(a.image_id)] == ["r", "r2"]
    assert index.version(a.image_id, a.output_sha256)["model_sha256"] == a.model_sha256
    assert index.version(a.image_id, "no such output") is None


def test_one_shards_fragment_and_an_absent_manifest(dest, tmp_path):
    storage, a, a2, *_ = dest
    one = ManifestIndex.load(storage, shard_ids=["s2"], with_decisions=False)
    assert len(one) == 2 and one.version(a.image_id, a2.output_sha256) is not None
    assert len(ManifestIndex.load(storage, shard_ids=["never-committed"])) == 0
    empty = ManifestIndex.load(LocalStorage(tmp_path / "nothing-yet"))
    assert len(empty) == 0 and empty.latest() == [] and empty.rows() == []


def test_a_corrupt_fragment_is_an_error_not_an_empty_manifest(dest):
    storage = dest[0]
    (storage.root / "_chromata" / "manifest" / "shard-s3.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(StorageError, match="cannot read the manifest"):
        ManifestIndex.load(storage)


def test_decisions_are_joined_to_the_exact_output(dest):
    storage, a, a2, b, _ = dest
    base = {"decision_id": 1, "item_id": 1, "curator": "ada", "note": "", "in_manifest": True}
    first = write_decisions(storage, [{**base, "image_id": a.image_id, "output_sha256": a.output_sha256,
                                       "decision": "reject", "decided_at": 10.0}])  # fmt: skip
    assert first.startswith(DECISIONS_PREFIX + "/") and storage.exists(first)
    write_decisions(storage, [{**base, "decision_id": 2, "image_id": a.image_id, "output_sha256": a2.output_sha256,
                               "decision": "approve", "decided_at": 20.0}])  # fmt: skip
    assert len(latest_decisions(storage)) == 2
    index = ManifestIndex.load(storage)
    assert index.decision(a.image_id, a.output_sha256)["decision"] == "reject"
    joined = {(r["output_sha256"], r["review_decision"]) for r in index.rows() if r["image_id"] == a.image_id}
    assert joined == {(a.output_sha256, "reject"), (a2.output_sha256, "approve")}
    assert all(r["review_decision"] is None for r in index.rows() if r["image_id"] == b.image_id)


def test_the_core_never_imports_review():
    """chromata's core (everything outside chromata/review and the CLI) imports nothing from chromata.review."""
    for path in (ROOT / "chromata").rglob("*.py"):
        rel = path.relative_to(ROOT / "chromata").parts
        if rel[0] in ("review", "cli") or rel[0] == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n.startswith("chromata.review") for n in names), f"{path} imports {names}"


def test_a_compacted_manifest_reads_the_same(dest):
    """After compaction the index (whole manifest, from the compaction) and one shard's lookup (from its
    fragment, which compaction keeps) give the same rows as before."""
    from chromata.record.compaction import compact

    storage, a, a2, *_ = dest
    before = ManifestIndex.load(storage)
    assert compact(storage, min_fragments=1).key is not None  # really compacted
    after = ManifestIndex.load(storage)
    assert after.rows() == before.rows() and after.latest() == before.latest()
    one = ManifestIndex.load(storage, shard_ids=["s2"])
    assert one.version(a.image_id, a2.output_sha256) == after.version(a.image_id, a2.output_sha256)
