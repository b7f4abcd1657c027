"""Scans beyond the worker's memory budget: TIFFs colorized in bands (chromata.pipeline.tiled), equal to the
in-memory result; other formats refused as too_large; a real MemoryError becomes a too_large row."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from chromata.archive.local import LocalStorage
from chromata.archive.s3 import S3Storage
from chromata.config import build_config
from chromata.models import load_colorizer
from chromata.pipeline import ShardProcessor, make_shards, tiled
from chromata.record.manifest import ImageRecord


@pytest.fixture(scope="module")
def model():
    return load_colorizer("builtin", device="cpu")


def big_scan(h: int, w: int, dtype: type = np.uint16) -> np.ndarray:
    """A smooth grey scan with some structure (compresses well, so tests stay small on disk)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.2 + 0.5 * xx / w + 0.25 * (((yy - h / 2) ** 2 + (xx - w / 3) ** 2) < (min(h, w) / 4) ** 2)
    top = np.iinfo(dtype).max
    return (np.clip(img, 0, 1) * top).astype(dtype)


def run_one(cfg_kwargs: dict, root: Path, model) -> ImageRecord:  # type: ignore[no-untyped-def]
    cfg = build_config(**cfg_kwargs)
    objs = list(LocalStorage(root).list()) if not cfg.source.startswith("s3://") else None
    if objs is None:
        bucket, prefix = cfg.source.removeprefix("s3://").split("/", 1)
        objs = list(S3Storage(bucket, prefix.rstrip("/"), cfg.endpoint_url).list())
    result = ShardProcessor(cfg, model=model).process(next(make_shards(objs, 10)), "run-tiled")
    return result.records[0]


@pytest.mark.parametrize(
    "layout",
    [
        {"tile": (256, 256), "compression": "zlib"},
        {"rowsperstrip": 64, "compression": "lzw"},
        {},  # uncompressed, one contiguous block: read band by band with seeks
    ],
)
def test_tiled_output_equals_in_memory_output(tmp_path, model, layout):
    src = tmp_path / "src"
    src.mkdir()
    tifffile.imwrite(src / "scan.tif", big_scan(1700, 2000), **layout)  # 3.4 MP > 256 MiB budget's 3.1 MP
    in_memory = run_one({"source": str(src), "destination": str(tmp_path / "mem")}, src, model)
    banded = run_one({"source": str(src), "destination": str(tmp_path / "tiled"), "memory_budget_mb": 256}, src, model)
    assert in_memory.status == banded.status == "ok", (in_memory.error, banded.error)
    a = cv2.imread(in_memory.output_uri, cv2.IMREAD_UNCHANGED)
    b = cv2.imread(banded.output_uri, cv2.IMREAD_UNCHANGED)
    assert a.dtype == b.dtype == np.uint16 and a.shape == b.shape == (1700, 2000, 3)
    assert np.abs(a.astype(np.int32) - b.astype(np.int32)).max() <= 2 * 257  # within 2 levels of 8-bit
    assert (banded.width, banded.height, banded.bit_depth) == (2000, 1700, 16)
    assert abs(banded.confidence - in_memory.confidence) < 0.02
    page = tifffile.TiffFile(banded.output_uri).pages[0]
    assert page.tags[700].value and b"AI" in bytes(page.tags[700].value)
    assert banded.source_sha256.encode() in bytes(page.tags[700].value)
    assert page.predictor == 2  # LZW with horizontal differencing, as the in-memory TIFF: no bloated outputs
    assert Path(banded.heatmap_uri).is_file()


def test_tiled_labels_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    grey = big_scan(700, 900, np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", np.dstack([grey] * 3), photometric="rgb", tile=(128, 128))
    ab = rng.normal(0, 15, (32, 32, 2)).astype(np.float32)
    analysis = tiled.analyse(str(tmp_path / "rgb.tif"))
    assert analysis.tone is not None and analysis.tone.kind == "grey"
    tiled.write_colorized(str(tmp_path / "rgb.tif"), str(tmp_path / "border.tif"), ab, label="border")
    tiled.write_colorized(str(tmp_path / "rgb.tif"), str(tmp_path / "corner.tif"), ab, label="corner")
    from chromata.colormath import color
    from chromata.media import visible_label
    from chromata.pipeline import lightness_of

    ref = color.from_unit_float(color.merge_chroma(lightness_of(grey), ab), np.uint8)
    border = cv2.imread(str(tmp_path / "border.tif"), cv2.IMREAD_UNCHANGED)
    corner = cv2.imread(str(tmp_path / "corner.tif"), cv2.IMREAD_UNCHANGED)
    assert np.abs(border.astype(int) - visible_label.visible_label(ref, "border").astype(int)).max() <= 1
    assert np.abs(corner.astype(int) - visible_label.visible_label(ref, "corner").astype(int)).max() <= 1


def test_colour_tiff_is_skipped_in_tiled_mode(tmp_path):
    img = np.zeros((300, 400, 3), np.uint8)
    img[:, :200] = (200, 30, 30)
    img[:, 200:] = (30, 30, 200)
    tifffile.imwrite(tmp_path / "c.tif", img, photometric="rgb")
    analysis = tiled.analyse(str(tmp_path / "c.tif"))
    assert analysis.tone is not None and analysis.tone.kind == "colour"  # the engine skips it (a Skip, not an error)


def test_huge_jpeg_over_the_budget_is_too_large_and_the_shard_goes_on(tmp_path, model):
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a-huge.jpg"), big_scan(2000, 2000, np.uint8))  # 4 MP > 3.1 MP at 256 MiB
    cv2.imwrite(str(src / "b-small.jpg"), big_scan(100, 120, np.uint8))
    cfg = build_config(source=str(src), destination=str(tmp_path / "out"), memory_budget_mb=256)
    result = ShardProcessor(cfg, model=model).process(next(make_shards(LocalStorage(src).list(), 10)), "run")
    huge, small = result.records
    assert huge.status == "failed" and huge.error.startswith("too_large:") and "memory budget" in huge.error
    assert small.status == "ok"


@pytest.mark.slow
def test_huge_tiff_from_s3_is_streamed_through_scratch(moto_endpoint, s3, tmp_path, model):
    """A source object bigger than an eighth of the budget is never read into memory: downloaded into
    scratch space, colorized in bands, uploaded by multipart."""
    s3.create_bucket(Bucket="huge")
    s3.create_bucket(Bucket="huge-out")
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, big_scan(4200, 4300))  # 36 MB uncompressed: over 256 MiB / 8
    s3.upload_file(str(path), "huge", "coll/scan.tif")
    rec = run_one(
        {
            "source": "s3://huge/coll/",
            "destination": "s3://huge-out/coll/",
            "endpoint_url": moto_endpoint,
            "memory_budget_mb": 256,
            "scratch_dir": str(tmp_path / "scratch"),
        },
        tmp_path,
        model,
    )
    assert rec.status == "ok", rec.error
    assert (rec.width, rec.height, rec.bit_depth) == (4300, 4200, 16)
    body = s3.get_object(Bucket="huge-out", Key="coll/scan.tif")["Body"].read()
    out = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape == (4200, 4300, 3) and out.dtype == np.uint16
    assert not any((tmp_path / "scratch").iterdir())  # scratch space cleaned up


OOM_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from chromata.config import build_config
    from chromata.models import load_colorizer
    from chromata.pipeline import ShardProcessor, make_shards
    from chromata.archive.local import LocalStorage

    src, out = sys.argv[1], sys.argv[2]
    model = load_colorizer("builtin", device="cpu")
    cfg = build_config(source=src, destination=out, memory_budget_mb=65536)  # the budget would allow it
    proc = ShardProcessor(cfg, model=model)
    small = [o for o in LocalStorage(src).list() if o.key.startswith("b-")]
    proc.process(next(make_shards(small, 10)), "warm-up")  # threads started, inference graph built
    vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 600 * 2**20, resource.RLIM_INFINITY))  # 600 MiB more
    result = proc.process(next(make_shards(LocalStorage(src).list(), 10)), "run-oom")
    for r in result.records:
        print(r.source_key, r.status, r.error)
    """
)


def test_out_of_memory_on_one_image_is_a_too_large_row_not_a_dead_worker(tmp_path):
    """A real MemoryError (address space capped with RLIMIT_AS): the image fails as too_large, the
    small image beside it in the same shard is colorized and the worker process exits normally."""
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a-huge.png"), big_scan(6000, 6000, np.uint8))  # 36 MP: ~2.3 GB in memory
    cv2.imwrite(str(src / "b-small.png"), big_scan(100, 120, np.uint8))
    proc = subprocess.run(
        [sys.executable, "-c", OOM_SCRIPT, str(src), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["a-huge.png"].startswith("failed too_large:"), lines
    assert lines["b-small.png"] == "ok None"
