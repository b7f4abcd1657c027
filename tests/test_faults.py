"""Faults injected for real, each followed by an exactly-once check: S3 errors and timeouts (a fault proxy in
front of moto's server), a destination that stops accepting writes mid-run, a Ray actor killed mid-shard."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from chromata.archive.s3 import S3_MAX_ATTEMPTS, S3Storage
from chromata.record.manifest import read_manifest
from tests.conftest import gradient_gray
from tests.faultproxy import FaultProxy

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module", autouse=True)
def short_s3_timeouts():
    """Set before the module's Ray starts, so its workers inherit it: a stalled request times out in 1 s."""
    old = os.environ.get("CHROMATA_S3_TIMEOUT")
    os.environ["CHROMATA_S3_TIMEOUT"] = "1"
    yield
    if old is None:
        os.environ.pop("CHROMATA_S3_TIMEOUT", None)
    else:
        os.environ["CHROMATA_S3_TIMEOUT"] = old


def _upload_scans(s3, bucket: str, prefix: str, n: int) -> list[str]:
    s3.create_bucket(Bucket=bucket)
    keys = []
    for i in range(n):
        img = np.roll(gradient_gray(72, 96), 7 * i, axis=1)
        key = f"{prefix}/scan-{i:03d}.jpg"
        s3.put_object(Bucket=bucket, Key=key, Body=cv2.imencode(".jpg", img)[1].tobytes())
        keys.append(key.split("/", 1)[1])
    return keys


def _rows(moto_endpoint: str, bucket: str, prefix: str):  # type: ignore[no-untyped-def]
    """The manifest as committed, read straight from moto (not through the proxy)."""
    return read_manifest(S3Storage(bucket, prefix, moto_endpoint)).to_pylist()


def _run(proxy_url: str, tmp_path, src: str, dst: str, *extra: str):  # type: ignore[no-untyped-def]
    from chromata.cli import app

    args = ["run", src, "--out", dst, "--endpoint-url", proxy_url, "--shard-size", "3"]
    args += ["--review-db", f"sqlite:///{tmp_path / 'q.sqlite'}", *extra]
    return CliRunner().invoke(app, args)


def test_s3_faults_are_retried_in_one_layer_and_a_dead_object_is_a_row(
    moto_endpoint, s3, tmp_path, ray_local, prefect_harness
):
    keys = _upload_scans(s3, "flaky-src", "coll", 14)
    s3.put_object(
        Bucket="flaky-src", Key="coll/unreadable.jpg", Body=cv2.imencode(".jpg", gradient_gray())[1].tobytes()
    )
    s3.create_bucket(Bucket="flaky-dst")
    with FaultProxy(moto_endpoint, fail_rate=0.06, seed=11, stall_seconds=2.5) as proxy:
        proxy.poisoned.add("/flaky-src/coll/unreadable.jpg")
        result = _run(proxy.url, tmp_path, "s3://flaky-src/coll/", "s3://flaky-dst/coll/")
    assert result.exit_code == 3, result.output  # completed; one image failed
    rows = _rows(moto_endpoint, "flaky-dst", "coll")
    count = Counter(r["source_key"] for r in rows)
    assert sorted(count) == sorted([*keys, "unreadable.jpg"]) and set(count.values()) == {1}  # exactly once
    by_key = {r["source_key"]: r for r in rows}
    assert all(by_key[k]["status"] == "ok" for k in keys)
    dead = by_key["unreadable.jpg"]
    assert dead["status"] == "failed" and dead["error"].startswith("read_error:") and "InternalError" in dead["error"]
    for k in keys:  # every output is really there
        s3.head_object(Bucket="flaky-dst", Key=f"coll/{k}")
    # faults of every kind were injected, and each request was retried by botocore alone
    assert sum(proxy.injected.values()) - proxy.injected["poisoned"] >= 5, proxy.injected
    assert {"500", "503"} & set(proxy.injected) and {"drop", "stall"} & set(proxy.injected), proxy.injected
    dead_gets = {req: n for req, n in proxy.requests.items() if "unreadable.jpg" in req}
    assert dead_gets == {"GET /flaky-src/coll/unreadable.jpg": S3_MAX_ATTEMPTS}, dead_gets  # not x Ray x Prefect
    assert max(n for req, n in proxy.requests.items() if "/scan-" in req) <= S3_MAX_ATTEMPTS


def test_destination_unwritable_mid_run_stops_cleanly_and_resumes(
    moto_endpoint, s3, tmp_path, ray_local, prefect_harness
):
    keys = _upload_scans(s3, "deny-src", "coll", 12)
    s3.create_bucket(Bucket="deny-dst")
    with FaultProxy(moto_endpoint, fail_rate=0.0) as proxy:
        proxy.deny_writes_after = "/coll/_chromata/manifest/"  # the bucket policy changes after the first commit
        first = _run(proxy.url, tmp_path, "s3://deny-src/coll/", "s3://deny-dst/coll/", "--batch-size", "1")
        assert proxy.deny_writes and proxy.injected["403"] >= 1
        assert first.exit_code != 0
        message = str(first.exception)
        assert "\n" not in message and "AccessDenied" in message and "run it again to resume" in message
        committed = _rows(moto_endpoint, "deny-dst", "coll")
        assert 0 < len(committed) < len(keys)  # stopped part-way, what was committed is kept

        proxy.deny_writes_after, proxy.deny_writes = None, False  # access restored
        second = _run(proxy.url, tmp_path, "s3://deny-src/coll/", "s3://deny-dst/coll/")
    assert second.exit_code == 0, second.output
    rows = _rows(moto_endpoint, "deny-dst", "coll")
    count = Counter(r["source_key"] for r in rows)
    assert sorted(count) == sorted(keys) and set(count.values()) == {1}
    assert all(r["status"] == "ok" for r in rows)
    assert {r["source_key"] for r in committed} <= set(count)  # the first run's rows were not redone


SHARD_SIZE = 6


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def actor_in_shard(candidates, shard_size, timeout=120.0):  # type: ignore[no-untyped-def]
    """The first of ``candidates`` caught inside a shard, and that shard's id: its ``progress()`` (answered
    while ``process`` runs) says it has made at least one of the shard's images and has at least half of
    them still to make, so the fault lands while the shard is in progress."""
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for actor in candidates:
            held = ray.get(actor.progress.remote(), timeout=30)
            for shard_id, made in held.items():
                if 1 <= made <= shard_size // 2:
                    return actor, shard_id
        time.sleep(0.02)
    raise AssertionError("no actor was ever caught inside a shard")


def run_pool_under_fault(tmp_path, fault):  # type: ignore[no-untyped-def]
    """24 scans in shards of 6 through a 2-actor ColorizerPool while ``fault(actors)`` runs in a thread: given
    the pool's actors, each with its ``info()``, it takes out one it caught inside a shard (``actor_in_shard``)
    and returns that actor's process id and the shard it held.

    Asserts, first, that the fault hit work in progress: the pool lost that very shard with its actor and
    ran it again (its warning names the shard), and the shard's result came from another process than the
    one taken out. Then recovery: every shard and every image came back exactly once, all colorized, every
    output written. Returns the results and the ids of the shards run again."""
    from chromata.actors.colorizer import ColorizerPool
    from chromata.archive.local import LocalStorage
    from chromata.config import build_config
    from chromata.pipeline import make_shards

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(24):
        cv2.imwrite(str(src / f"s{i:02d}.png"), np.roll(gradient_gray(400, 520), 9 * i, axis=1))
    cfg = build_config(source=str(src), destination=str(out), workers=2, batch_size=2)
    shards = list(make_shards(LocalStorage(src).list(), SHARD_SIZE))
    records = _Records()
    pool_log = logging.getLogger("chromata.actors.colorizer")
    pool_log.addHandler(records)
    pool = ColorizerPool(cfg)
    victim: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def inject(actors) -> None:  # type: ignore[no-untyped-def]
        try:
            victim.append(fault(actors))
        except BaseException as exc:  # reported after the run, not lost in the thread
            errors.append(exc)

    try:
        actors = list(zip(pool.actors, pool.info(), strict=True))  # info(): every actor has loaded its model
        assert len({info["pid"] for _, info in actors}) == 2
        injector = threading.Thread(target=inject, args=(actors,))
        injector.start()
        results = list(pool.run(iter(shards), "run-fault"))
        injector.join()
    finally:
        pool.shutdown()
        pool_log.removeHandler(records)
    if errors:
        raise errors[0]
    assert victim, "the fault was not injected"
    pid, held = victim[0]
    lost = {s.shard_id for s in shards if any(s.shard_id in m and "lost" in m for m in records.messages)}
    assert held in lost, f"shard {held} was not lost and run again: the fault missed it ({records.messages})"
    by_shard = {r.shard_id: r for r in results}
    for shard_id in lost:  # re-run by the restarted (or a fresh) actor: another process
        assert not by_shard[shard_id].worker.endswith(f":{pid}"), (shard_id, by_shard[shard_id].worker)
    assert sorted(r.shard_id for r in results) == sorted(s.shard_id for s in shards)
    count = Counter(rec.source_key for r in results for rec in r.records)
    assert len(count) == 24 and set(count.values()) == {1}
    assert all(rec.status == "ok" for r in results for rec in r.records)
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == sorted(count)
    return results, lost


def test_actor_killed_mid_shard_is_retried_exactly_once(tmp_path, ray_local):
    """ray.kill a colorizer actor caught inside a shard: Ray restarts it (max_restarts), the pool runs the
    lost shard again (Ray's task retries are off); every image comes back exactly once, every output is
    written."""
    import ray

    def kill_a_busy_actor(actors) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        actor, shard_id = actor_in_shard([a for a, _ in actors], SHARD_SIZE)
        ray.kill(actor, no_restart=False)
        return next(info["pid"] for a, info in actors if a is actor), shard_id

    _, lost = run_pool_under_fault(tmp_path, kill_a_busy_actor)
    assert len(lost) == 1  # one actor held one shard


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB file system of its own (tmpfs), to fill up for real; skipped where mounting is not allowed."""
    import subprocess

    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_local_disk_full_mid_run_stops_cleanly_and_resumes(small_disk, tmp_path, ray_local, prefect_harness):
    """The destination disk fills up part-way (ENOSPC, for real): the run stops with one line; after
    space is freed (the file system grown), the next run finishes, every image exactly once."""
    import subprocess

    from chromata.archive.local import LocalStorage
    from chromata.cli import app

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # noisy scans: ~0.36 MB per PNG output, 4.3 MB in all, on a 3 MiB disk
        cv2.imwrite(str(src / f"s{i:02d}.png"), rng.integers(0, 256, (300, 400), dtype=np.uint8))
    out = small_disk / "out"
    args = ["run", str(src), "--out", str(out), "--shard-size", "3", "--review-db", f"sqlite:///{tmp_path / 'q.db'}"]
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("PREFECT_API_URL", None)  # the child uses its own Prefect, like a user's shell
    first = subprocess.run(
        [sys.executable, "-m", "chromata.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert first.returncode == 2, first.stderr[-2000:]
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "run it again to resume" in errors[0]
    assert "Traceback" not in first.stderr  # one readable line, not the engine's traceback
    done_before = {r["source_key"] for r in read_manifest(LocalStorage(out)).to_pylist()}
    assert 0 < len(done_before) < 12  # it really stopped part-way, keeping what was committed

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    rows = read_manifest(LocalStorage(out)).to_pylist()
    count = Counter(r["source_key"] for r in rows)
    assert sorted(count) == sorted(p.name for p in src.iterdir()) and set(count.values()) == {1}
    assert all(r["status"] == "ok" for r in rows)
    assert not list(out.rglob(".tmp-*"))  # no half-written file left behind
