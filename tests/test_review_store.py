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

    from chromata.record.manifest import ImageRecord
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


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.sqlite'}"
    return request.getfixturevalue("pg_url")


def test_a_database_at_revision_0002_migrates_with_its_reasons(db_url):
    """Migration 0003 on a queue made by the previous release: its items keep working (no stored keys),
    and their reasons, parsed once from reasons_json, become indexed rows that filters and facets use."""
    import json

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, insert

    from chromata.review.database import MIGRATIONS
    from chromata.review.schema import Filters
    from chromata.review.statistics import PendingStats

    engine = create_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    from sqlalchemy import MetaData, Table

    items = Table("review_items", MetaData(), autoload_with=engine)
    assert "output_key" not in items.c  # really the old schema
    old = {"collection": "plates", "run_id": "r0", "shard_id": "s0", "output_sha256": "0" * 64,
           "model_name": "m", "status": "pending", "enqueued_at": 1.0}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            insert(items),
            [
                {**old, "item_key": "k1", "image_id": "i1", "source_uri": "/s/1.jpg", "output_uri": "/o/1.jpg",
                 "confidence": 0.1, "reasons_json": json.dumps(["low_contrast", "high_chroma_uncertainty"])},
                {**old, "item_key": "k2", "image_id": "i2", "source_uri": "/s/2.jpg", "output_uri": "/o/2.jpg",
                 "confidence": 0.2, "reasons_json": "[]"},
            ],
        )  # fmt: skip
    engine.dispose()
    q = ReviewQueue(db_url)
    try:
        assert q.facets()["reasons"] == ["high_chroma_uncertainty", "low_contrast"]
        (hit,) = q.list(filters=Filters(reason="low_contrast"))
        assert hit.image_id == "i1" and hit.reasons == ("low_contrast", "high_chroma_uncertainty")
        assert hit.output_key is None and hit.output_uri == "/o/1.jpg"
        assert q.pending_stats() == PendingStats(
            {("plates", "low_contrast"): 1, ("plates", "high_chroma_uncertainty"): 1, ("plates", "none"): 1},
            {"plates": 1.0},
        )
        from dataclasses import replace

        new = [replace(r, output_key=r.source_key, heatmap_key=f"h/{r.source_key}.png") for r in _records()]
        assert q.enqueue(new, collection="coll") == 2  # new items next to the old ones
        assert {(e.output_key, e.heatmap_key) for e in q.list(collection="coll")} == {
            ("c.jpg", "h/c.jpg.png"),
            ("a.jpg", "h/a.jpg.png"),
        }
    finally:
        q.close()


def test_statistics_are_the_aggregates_of_the_items(db_url):
    """health(), facets() and pending_stats() are SQL aggregates: they agree with the per-item
    computation (the metrics' own, over pending_summary) on SQLite and PostgreSQL alike."""
    import time

    from sqlalchemy import update

    from chromata.monitoring.metrics import Tally
    from chromata.review.schema import ReviewDecision

    records = [
        rec(f"{i}.jpg", confidence=i / 10, needs_review=True, confidence_reasons=reasons)
        for i, reasons in enumerate([["low_contrast"], [], ["low_contrast", "high_chroma_uncertainty"], ["x"]])
    ]
    q = ReviewQueue(db_url)
    try:
        q.enqueue(records[:3], collection="plates")
        q.enqueue(records[3:], collection="maps")
        q.add_user("ada", "correct horse battery")
        q.add_user("bob", "correct horse battery")
        for who in ("ada", "bob", "ada"):
            item = q.claim_next(who)
            q.decide(item.id, who, "approve")
        day = 86400
        now = time.time()
        with q.engine.begin() as c:  # ada's first decision two days ago
            c.execute(update(ReviewDecision).where(ReviewDecision.id == 1).values(decided_at=now - 2 * day))
        health = q.health(now=now)
        today, before = (time.strftime("%Y-%m-%d", time.gmtime(now - d * day)) for d in (0, 2))
        assert health["decisions_per_curator_per_day"] == [
            {"curator": "ada", "day": today, "decisions": 1},
            {"curator": "bob", "day": today, "decisions": 1},
            {"curator": "ada", "day": before, "decisions": 1},
        ]
        assert health["pending"] == 1 == q.count()
        assert q.facets()["reasons"] == ["high_chroma_uncertainty", "low_contrast", "x"]
        assert q.facets()["collections"] == ["maps", "plates"]
        expected: Tally[tuple[str, str]] = Tally()
        for coll, reasons, _ in q.pending_summary():
            for reason in (reasons or "none").split(","):
                expected[(coll, reason)] += 1
        assert q.pending_stats().counts == dict(expected) == {("maps", "x"): 1}
    finally:
        q.close()
