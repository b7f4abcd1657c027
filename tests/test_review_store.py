import pytest

from chromata.review.store import ReviewQueue
from tests.test_manifest import rec


def _records():
    return [
        rec("a.jpg", confidence=0.2, needs_review=True, confidence_reasons=["high_chroma_uncertainty"]),
        rec("b.jpg", confidence=0.9, needs_review=False),
        rec("c.jpg", confidence=0.1, needs_review=True, output_sha256="ef" * 32),
        rec("d.jpg", status="failed", needs_review=False),
    ]


def _exercise(url: str) -> None:
    q = ReviewQueue(url)
    try:
        assert q.enqueue(_records(), collection="coll") == 2
        assert q.enqueue(_records(), collection="coll") == 0  # re-run: no duplicates
        entries = q.list()
        assert [e.source_uri for e in entries] == ["/src/c.jpg", "/src/a.jpg"]  # least confident first
        assert entries[1].reasons == ("high_chroma_uncertainty",)
        assert q.count() == 2 and q.count("approved") == 0
        assert q.list(collection="other") == []
        # a new colorization of the same image (other weights) is a new entry to review
        new = rec("a.jpg", confidence=0.3, needs_review=True, output_sha256="99" * 32, model_sha256="other")
        assert q.enqueue([new]) == 1
        assert q.count() == 3
    finally:
        q.close()
    reopened = ReviewQueue(url)  # the queue persists
    assert reopened.count() == 3
    reopened.close()


def test_review_queue_sqlite(tmp_path):
    _exercise(f"sqlite:///{tmp_path / 'sub' / 'review.sqlite'}")


@pytest.mark.postgres
def test_review_queue_postgres(pg_url):
    _exercise(pg_url)


def test_a_redone_version_is_one_entry_pointing_at_the_new_bytes(tmp_path):
    """A shard redone by a later run writes the same pixels with new bytes (the XMP names the run): still
    one queue entry, now pointing at the file on disk; other weights are a new version."""
    from dataclasses import replace

    from chromata.manifest import ImageRecord
    from chromata.review.store import ReviewQueue

    rec = ImageRecord(
        image_id="img1", source_uri="/s/a.jpg", source_key="a.jpg", source_etag="e", source_size=1,
        source_sha256="s" * 64, width=8, height=8, bit_depth=8, output_uri="/o/a.jpg", output_sha256="1" * 64,
        heatmap_uri=None, status="ok", error=None, confidence=0.1, needs_review=True, model_sha256="m1",
        run_id="run-1",
    )  # fmt: skip
    q = ReviewQueue(f"sqlite:///{tmp_path / 'q.sqlite'}")
    assert q.enqueue([rec]) == 1
    assert q.enqueue([replace(rec, output_sha256="2" * 64, run_id="run-2")]) == 0
    (entry,) = q.list()
    assert entry.output_sha256 == "2" * 64 and entry.run_id == "run-2"
    assert q.enqueue([replace(rec, model_sha256="m2", output_sha256="3" * 64)]) == 1
    assert q.count() == 2
