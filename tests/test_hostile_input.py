"""Broken, odd and hostile input (tests/hostile_corpus.py): each file gets the right row, the run goes on,
nothing is written outside the destination and the source is left exactly as it was."""

from __future__ import annotations

import hashlib
import resource
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from chromata.archive.local import LocalStorage
from chromata.archive.s3 import S3Storage
from chromata.config import build_config
from chromata.media.imageio import is_image_key
from chromata.models import load_colorizer
from chromata.pipeline import ShardProcessor, make_shards
from tests.hostile_corpus import CORPUS, LONG_NAME, png_bomb, write_corpus


@pytest.fixture(scope="module")
def model():
    return load_colorizer("builtin", device="cpu")


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): (
            f"link->{p.readlink()}" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 20


def test_every_hostile_file_gets_its_row_and_the_run_goes_on(tmp_path, model):
    src, out = tmp_path / "src", tmp_path / "out"
    write_corpus(src, outside=tmp_path / "elsewhere")
    before = _tree_digest(src)
    cfg = build_config(source=str(src), destination=str(out), batch_size=4)
    objs = [o for o in LocalStorage(src).list() if is_image_key(o.key)]
    assert len(objs) == len(CORPUS) + 1  # the outside symlink is listed, to be recorded
    result = ShardProcessor(cfg, model=model).process(next(make_shards(objs, 1000)), "run-hostile")
    rows = {r.source_key: r for r in result.records}
    assert len(result.records) == len(objs)  # one row each, no duplicates

    for name, case in CORPUS.items():
        r = rows[name]
        assert r.status == case.status, (name, r.status, r.error)
        if case.status == "failed":
            assert r.error and r.error.startswith(f"{case.reason}:"), (name, r.error)
            assert r.output_uri is None
        elif case.reason:
            assert case.reason in r.confidence_reasons, (name, r.confidence_reasons)
        if case.status == "ok":
            assert Path(r.output_uri).is_file() and Path(r.heatmap_uri).is_file()
            assert Path(r.output_uri).resolve().is_relative_to(out.resolve())

    link = rows["link-out.jpg"]
    assert link.status == "failed" and link.error.startswith("unsafe_key:") and "outside the source" in link.error
    assert not (out / "link-out.jpg").exists()

    # the details that make a row right, not just present
    assert "before decoding" in rows["bomb-50000x50000.png"].error
    assert "3 frames" in rows["animated.gif"].error
    rotated = rows["exif-rotated.jpg"]
    assert (rotated.width, rotated.height) == (120, 160)
    assert cv2.imread(rotated.output_uri).shape[:2] == (160, 120)
    for deep in ("deep-16bit.tif", "deep-16bit.png"):
        assert rows[deep].bit_depth == 16
        assert cv2.imread(rows[deep].output_uri, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert rows["multipage.tif"].frames == 3
    assert rows["still.gif"].output_uri.endswith("still.png")
    assert rows[LONG_NAME].output_uri.endswith(LONG_NAME)
    adobe = Path(rows["adobe-rgb.jpg"].output_uri).read_bytes()
    assert b"Adobe RGB" not in adobe  # converted to sRGB: the source profile no longer describes the pixels

    # nothing outside the destination, nothing changed in the source
    assert _tree_digest(src) == before
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    assert not any(p.name == "secret.jpg" for p in out.rglob("*"))


def test_bomb_is_refused_without_allocating(tmp_path, model):
    """The 2.5-gigapixel PNG is refused from its header: the worker's peak memory does not move."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "bomb.png").write_bytes(png_bomb())
    cfg = build_config(source=str(src), destination=str(tmp_path / "out"))
    proc = ShardProcessor(cfg, model=model)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = proc.process(next(make_shards(LocalStorage(src).list(), 10)), "run-bomb")
    assert result.records[0].error.startswith("too_large:")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mib < 200  # decoding it would need 2.5 GB (8-bit grey) before any check


def test_adobe_rgb_source_is_converted_to_srgb():
    from chromata.media.imageio import decode
    from tests.hostile_corpus import adobe_rgb_jpeg

    img = decode(adobe_rgb_jpeg(), 10**9)
    assert img.colour_space_note == "converted from Adobe RGB (1998) compatible"
    raw = cv2.imdecode(np.frombuffer(adobe_rgb_jpeg(), np.uint8), cv2.IMREAD_COLOR)
    # gamma 2.2 vs sRGB: mid-tones shift a little, neutrals stay neutral
    assert 0 < np.abs(img.pixels.astype(int) - raw.astype(int)).max() < 20
    assert np.abs(img.pixels[..., 0].astype(int) - img.pixels[..., 2].astype(int)).max() <= 2


S3_KEYS = {
    "../escape.jpg": "unsafe_key",
    "a/../b.jpg": "unsafe_key",
    "./dot.jpg": "unsafe_key",
    "double//slash.jpg": "unsafe_key",
    "sp ace.jpg": None,
    "ünïcödé/scan.jpg": None,
    "100%.jpg": None,
    "%2e%2e/encoded-dots.jpg": None,  # literal characters, not a path escape
    "b.jpg": None,
}


def test_s3_keys_never_escape_the_destination_prefix(moto_endpoint, s3, tmp_path, model):
    s3.create_bucket(Bucket="hostile")
    s3.create_bucket(Bucket="derived")
    s3.put_object(Bucket="derived", Key="elsewhere/b.jpg", Body=b"another collection's output")
    for key in S3_KEYS:
        s3.put_object(
            Bucket="hostile",
            Key=f"coll/{key}",
            Body=cv2.imencode(".jpg", np.tile(np.arange(0, 250, 2, np.uint8), (64, 1)))[1].tobytes(),
        )
    cfg = build_config(
        source="s3://hostile/coll/", destination="s3://derived/coll/", endpoint_url=moto_endpoint, batch_size=3
    )
    objs = list(S3Storage("hostile", "coll", moto_endpoint).list())
    assert sorted(o.key for o in objs) == sorted(S3_KEYS)
    result = ShardProcessor(cfg, model=model).process(next(make_shards(objs, 100)), "run-keys")
    rows = {r.source_key: r for r in result.records}
    for key, reason in S3_KEYS.items():
        if reason:
            assert rows[key].status == "failed" and rows[key].error.startswith(f"{reason}:"), rows[key]
        else:
            assert rows[key].status == "ok", rows[key].error
            assert rows[key].output_uri == f"s3://derived/coll/{key}"
    written = [o["Key"] for o in s3.list_objects_v2(Bucket="derived")["Contents"]]
    assert all(k.startswith("coll/") for k in written if k != "elsewhere/b.jpg")
    assert not any(part in ("..", ".", "") for k in written for part in k.split("/"))
    body = s3.get_object(Bucket="derived", Key="elsewhere/b.jpg")["Body"].read()
    assert body == b"another collection's output"


def test_truncated_tiff_strips_are_detected():
    from chromata.errors import ImageError
    from chromata.media.imageio import decode

    data = tifffile_bytes(np.zeros((300, 200), np.uint16))
    with pytest.raises(ImageError, match="truncated"):
        decode(data[: len(data) // 2], 10**9)


def tifffile_bytes(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    tifffile.imwrite(buf, img, rowsperstrip=16)
    return buf.getvalue()


def test_s3_key_too_long_for_a_local_destination_is_a_row_not_a_failed_shard(moto_endpoint, s3, tmp_path, model):
    """S3 allows 1 024-byte keys; a local file name stops at 255 bytes. The image fails with unsafe_key,
    its neighbour in the same shard is colorized, and no partial file is left behind."""
    s3.create_bucket(Bucket="long-keys")
    body = cv2.imencode(".jpg", np.tile(np.arange(0, 250, 2, np.uint8), (64, 1)))[1].tobytes()
    long_name = "scan-" + "x" * 300 + ".jpg"
    s3.put_object(Bucket="long-keys", Key=f"c/{long_name}", Body=body)
    s3.put_object(Bucket="long-keys", Key="c/short.jpg", Body=body)
    cfg = build_config(source="s3://long-keys/c/", destination=str(tmp_path / "out"), endpoint_url=moto_endpoint)
    objs = list(S3Storage("long-keys", "c", moto_endpoint).list())
    rows = {r.source_key: r for r in ShardProcessor(cfg, model=model).process(next(make_shards(objs, 10)), "r").records}
    assert rows[long_name].status == "failed" and rows[long_name].error.startswith("unsafe_key:")
    assert "File name too long" in rows[long_name].error
    assert rows["short.jpg"].status == "ok"
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".tmp-")]
