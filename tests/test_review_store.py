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
        # a new colorization of the same image (different output) is a new entry to review
        assert q.enqueue([rec("a.jpg", confidence=0.3, needs_review=True, output_sha256="99" * 32)]) == 1
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
