"""One engine for every media kind: the same input checks and reasons, `--format`, limits and colour check for
stills, multi-page TIFFs, banded scans and films; typed failures; progress per image."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.models import load_colorizer
from chromata.pipeline import ShardProcessor, make_shards


@pytest.fixture(scope="module")
def model():
    return load_colorizer("builtin")


def flat(h: int = 160, w: int = 200) -> np.ndarray:
    """A flat mid-grey picture: the input checks call it low contrast and low dynamic range."""
    return np.full((h, w), 120, np.uint8)


def write_film(path: Path, frame: np.ndarray, frames: int = 12, fourcc: str = "mp4v", colour: bool = False) -> Path:
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 12.0, (w, h))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(frame if colour else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def run(src: Path, out: Path, model, **cfg_kw):  # type: ignore[no-untyped-def]
    cfg = build_config(source=str(src), destination=str(out), **cfg_kw)
    proc = ShardProcessor(cfg, model=model)
    objects = sorted(LocalStorage(src).list(""), key=lambda o: o.key)
    seen = []
    (shard,) = make_shards(objects, 100)
    result = proc.process(shard, "run-1", on_image=seen.append)
    return {r.source_key: r for r in result.records}, seen


def test_a_flat_picture_gets_the_same_reasons_as_a_still_a_3_page_tiff_and_a_film(tmp_path, model):
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "still.png"), flat())
    tifffile.imwrite(src / "pages.tif", np.stack([flat()] * 3), photometric="minisblack")
    write_film(src / "reel.avi", flat(), fourcc="MJPG")
    rows, seen = run(src, tmp_path / "out", model)
    assert {k: r.status for k, r in rows.items()} == {"still.png": "ok", "pages.tif": "ok", "reel.avi": "ok"}
    assert rows["pages.tif"].frames == 3 and rows["reel.avi"].frames == 12 and rows["still.png"].frames is None
    expected = ["low_contrast", "low_dynamic_range"]
    for key, row in rows.items():
        inputs = [r for r in row.confidence_reasons if r not in ("high_chroma_uncertainty", "least_confident")]
        assert inputs == expected, (key, row.confidence_reasons)
        assert row.heatmap_key and (tmp_path / "out" / row.heatmap_key).is_file(), key  # films too now
        assert row.output_key and (tmp_path / "out" / row.output_key).is_file(), key
    # the same picture gets the same confidence whatever carries it (a film: through its codec, near)
    assert rows["pages.tif"].confidence == pytest.approx(rows["still.png"].confidence, abs=1e-3)
    assert rows["reel.avi"].confidence == pytest.approx(rows["still.png"].confidence, abs=0.05)
    # every row was reported as it was made, once each (progress per image)
    assert sorted(r.source_key for r in seen) == sorted(rows)


def test_format_is_honoured_for_pages_and_films_and_an_impossible_one_is_a_typed_failure(tmp_path, model):
    src = tmp_path / "src"
    src.mkdir()
    grad = np.tile(np.linspace(20, 230, 200, dtype=np.uint8), (160, 1))
    cv2.imwrite(str(src / "still.png"), grad)
    tifffile.imwrite(src / "pages.tif", np.stack([grad] * 3), photometric="minisblack")
    write_film(src / "reel.avi", grad, fourcc="MJPG")
    rows, _ = run(src, tmp_path / "tiff", model, output_format="tiff")
    assert rows["still.png"].output_key == "still.tif"
    assert rows["pages.tif"].output_key == "pages.tif"
    assert len(tifffile.TiffFile(tmp_path / "tiff" / "pages.tif").pages) == 3
    film = rows["reel.avi"]  # a film cannot be a TIFF: it fails, typed, with the formats that would do
    assert film.status == "failed" and film.error_code == "unsupported_format"
    assert "mp4" in film.error and "tiff" not in film.error.split("use")[1]
    rows, _ = run(src, tmp_path / "mp4", model, output_format="mp4")
    assert rows["reel.avi"].status == "ok" and rows["reel.avi"].output_key == "reel.mp4"
    cap = cv2.VideoCapture(str(tmp_path / "mp4" / "reel.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert (tmp_path / "mp4" / "reel.mp4.xmp").read_bytes().startswith(b"<?xpacket")  # the AI label
    for key in ("still.png", "pages.tif"):
        assert rows[key].status == "failed" and rows[key].error_code == "unsupported_format"
        assert rows[key].error.startswith("unsupported_format: --format mp4 cannot hold")


def test_a_film_obeys_the_pixel_limit_memory_budget_and_colour_check(tmp_path, model):
    src = tmp_path / "src"
    src.mkdir()
    write_film(src / "big.avi", np.full((400, 600), 90, np.uint8), frames=3, fourcc="MJPG")
    colour = np.zeros((160, 200, 3), np.uint8)
    colour[:, :100] = (200, 40, 30)
    colour[:, 100:] = (30, 160, 40)
    write_film(src / "colour.avi", colour, frames=6, fourcc="MJPG", colour=True)
    rows, _ = run(src, tmp_path / "out", model, max_pixels=100_000)
    assert rows["big.avi"].error_code == "too_large" and "pixel limit" in rows["big.avi"].error
    assert rows["colour.avi"].status == "skipped" and rows["colour.avi"].confidence_reasons == ["already_colour"]
    assert not (tmp_path / "out" / "colour.avi").exists()  # the source is never rewritten, nothing written


def test_a_film_is_streamed_in_chunks_sized_by_the_memory_budget(tmp_path, model):
    from chromata.pipeline.film import film_chunk
    from chromata.pipeline.routing import in_memory_pixels

    cfg = build_config(source=str(tmp_path / "s"), destination=str(tmp_path / "o"), memory_budget_mb=256, batch_size=8)
    assert film_chunk(cfg, 320, 240) == 8  # small frames: a whole batch
    per_frame = 1920 * 1080
    assert film_chunk(cfg, 1920, 1080) == in_memory_pixels(cfg) // per_frame < 8  # large ones: what fits
    from chromata.errors import ImageError

    with pytest.raises(ImageError, match=r"too_large.*does not fit memory_budget_mb=256"):
        film_chunk(build_config(source=str(tmp_path / "s"), destination=str(tmp_path / "o"), memory_budget_mb=256,
                                max_pixels=10**9), 8000, 8000)  # fmt: skip


def test_failures_are_typed_end_to_end(tmp_path, model):
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    rows, _ = run(src, tmp_path / "out", model)
    for row in rows.values():
        assert row.status == "failed" and row.error_code and row.error.startswith(row.error_code + ": ")
    from chromata.record.manifest import read_manifest, write_fragment

    dest = LocalStorage(tmp_path / "out")
    write_fragment(dest, "s", list(rows.values()))
    assert sorted(read_manifest(dest).column("error_code").to_pylist()) == sorted(r.error_code for r in rows.values())


def test_a_processor_ends_its_threads_when_closed(tmp_path, model):
    """The reader, writer and large-item threads live as long as the processor, and end with ``close`` (or its
    ``with`` block): a process that makes processors one after another does not collect idle threads."""
    import threading

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), flat())

    def ours() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith(("decode", "encode", "large"))}

    before = ours()
    with ShardProcessor(build_config(source=str(src), destination=str(tmp_path / "o")), model=model) as proc:
        (shard,) = make_shards(LocalStorage(src).list(""), 100)
        assert proc.process(shard, "run-1").records[0].status == "ok"
        assert ours() - before  # its threads ran the shard
    assert not {t for t in ours() - before if t.is_alive()}


@pytest.mark.parametrize("profiled_runs", [None, 2], ids=["executor defaults", "2 profiled runs"])
def test_a_workers_first_batch_goes_through_the_same_graph_as_its_later_ones(tmp_path, profiled_runs):
    """TorchScript's profiling executor runs a graph's first calls as profiling runs and then an optimised plan,
    whose outputs can differ from them by a level (benchmarks/cpu_precision.py). A worker warms its model up
    with the batch it will run until the executor has optimised, so that its first batch of a shard runs the plan
    every later one runs and gives the same colours — whatever the executor's number of profiled runs."""
    import torch

    if profiled_runs is not None:
        saved = torch._C._jit_get_num_profiled_runs()
        torch._C._jit_set_num_profiled_runs(profiled_runs)
    try:
        cfg = build_config(source=str(tmp_path / "s"), destination=str(tmp_path / "o"), batch_size=4, device="cpu")
        proc = ShardProcessor(cfg)  # loads and warms up its own model, as a worker does
        try:
            rng = np.random.default_rng(0)
            batch = np.stack([cv2.resize(rng.uniform(10, 95, (4, 4)).astype(np.float32), (256, 256)) for _ in range(4)])
            first = proc.model.predict_ab(batch).ab
            first_plan = str(torch.jit.last_executed_optimized_graph())
            later = [proc.model.predict_ab(batch).ab for _ in range(3)]
            assert "prim::profile" not in first_plan, "the first batch was a profiling run"
            assert first_plan == str(torch.jit.last_executed_optimized_graph())
            for out in later:
                np.testing.assert_array_equal(first, out)
        finally:
            proc.close()
    finally:
        if profiled_runs is not None:
            torch._C._jit_set_num_profiled_runs(saved)
