"""An image that kills its worker process every time (what the kernel's OOM killer or a crash inside a C
decoder does: SIGKILL, no exception, no cleanup) costs its own row, not its shard and not the run."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest

from tests.conftest import gradient_gray

pytestmark = [pytest.mark.slow, pytest.mark.ray]

POISON = b"chromata-test: this image kills its worker"


def _kill_on_poison_hook():  # type: ignore[no-untyped-def]
    """Run in every Ray worker as it starts: decoding an image that carries POISON SIGKILLs the process.
    A closure, so that Ray ships it by value (the workers need not import the tests)."""
    marker = POISON

    def hook() -> None:
        import os
        import signal

        import chromata.pipeline.still as pipeline  # where stills are decoded

        real = pipeline.decode

        def decode(data, *args, **kwargs):  # type: ignore[no-untyped-def]
            if marker in data:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(data, *args, **kwargs)

        pipeline.decode = decode

    return hook


def _poisoned_png(pixels: np.ndarray) -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", POISON.decode())
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_an_image_that_kills_its_worker_fails_alone_and_the_run_goes_on(tmp_path):
    ray = pytest.importorskip("ray")
    from chromata.actors.colorizer import ColorizerPool
    from chromata.archive.local import LocalStorage
    from chromata.config import build_config
    from chromata.pipeline import make_shards

    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        cv2.imwrite(str(src / f"s{i:02d}.png"), np.roll(gradient_gray(200, 260), 9 * i, axis=1))
    (src / "s04-poison.png").write_bytes(_poisoned_png(gradient_gray(200, 260)))
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=96 * 1024 * 1024,
        logging_level="WARNING",
        runtime_env={"worker_process_setup_hook": _kill_on_poison_hook()},
    )
    try:
        cfg = build_config(
            source=str(src), destination=str(tmp_path / "out"), workers=2, batch_size=2, review_budget=0.2
        )
        pool = ColorizerPool(cfg)
        try:
            shards = list(make_shards(LocalStorage(src).list(), 5))
            results = list(pool.run(iter(shards), "run-poison"))
        finally:
            pool.shutdown()
    finally:
        ray.shutdown()
    assert sorted(r.shard_id for r in results) == sorted(s.shard_id for s in shards)  # each shard once
    by_id = {s.shard_id: s for s in shards}
    for result in results:
        shard = by_id[result.shard_id]
        assert [r.source_key for r in result.records] == [o.key for o in shard.objects]  # in the shard's order
        assert all(r.shard_id == shard.shard_id for r in result.records)
        ok = [r for r in result.records if r.status == "ok"]  # the budget applies to the whole shard, split or not
        assert sum(r.needs_review for r in result.records) == math.ceil(0.2 * len(ok))
    rows = {r.source_key: r for result in results for r in result.records}
    assert len(rows) == 13
    poison = rows.pop("s04-poison.png")
    assert poison.status == "failed" and poison.error.startswith("worker_lost:"), poison.error
    assert poison.output_uri is None and poison.model_name  # a full row, recorded by another worker
    assert all(r.status == "ok" for r in rows.values()), [r.error for r in rows.values() if r.status != "ok"]
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png")
    assert written == sorted(rows)  # every other image colorized, nothing written for the poison
