"""Film reels (temporally smoothed chroma, frame rate kept, one manifest row per video) and the IIIF
Presentation 3 manifest of a run."""

import json
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import cv2
import numpy as np
import pytest

from chromata.config import build_config
from chromata.iiif import IIIF_CONTEXT, IIIF_KEY, build_manifest
from chromata.imageio import is_media_key
from chromata.manifest import write_fragment
from chromata.models import load_colorizer
from chromata.pipeline import ShardProcessor, make_shards
from chromata.storage import LocalStorage
from chromata.video import colorize_video
from tests.conftest import PHOTOS

FPS, FRAMES = 12.0, 24


def _clip(path, frames=FRAMES):
    """A grey pan across a real photo with film-grain-like noise: what makes naive colorization flicker."""
    rng = np.random.default_rng(0)
    photo = cv2.imread(str(next(iter(sorted(PHOTOS.glob("*.jpg"))))), cv2.IMREAD_GRAYSCALE)
    photo = cv2.resize(photo, (400, 300))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (128, 96))
    for t in range(frames):
        frame = cv2.resize(photo[t * 2 : t * 2 + 200, t * 3 : t * 3 + 260], (128, 96))
        noisy = np.clip(frame.astype(np.int16) + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def model():
    return load_colorizer("builtin", device="cpu")


def test_temporal_smoothing_lowers_chroma_flicker(tmp_path, model):
    data = _clip(tmp_path / "reel.mp4").read_bytes()
    raw = colorize_video(data, ".mp4", model, smoothing=1.0)
    smooth = colorize_video(data, ".mp4", model, smoothing=0.3)
    assert raw.frames == smooth.frames == FRAMES and smooth.fps == FPS
    assert smooth.flicker < 0.7 * raw.flicker, (smooth.flicker, raw.flicker)
    out = tmp_path / "out.mp4"
    out.write_bytes(smooth.data)
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == FPS and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, frame = cap.read()
    assert ok and frame.shape == (96, 128, 3)
    b, r = frame[..., 0].astype(int), frame[..., 2].astype(int)
    assert np.abs(r - b).mean() > 1.0  # it has colour now


def test_a_cut_resets_the_smoothing():
    from chromata.video import smoothing_weight

    a = np.full((8, 8), 30.0, np.float32)
    assert smoothing_weight(a, a + 3.0, 0.3) == 0.3  # same shot
    assert smoothing_weight(a, a + 40.0, 0.3) == 1.0  # a cut: start afresh


def test_a_run_colorizes_a_reel_into_one_manifest_row(collection, tmp_path):
    _clip(collection / "reel.mp4", frames=10)
    assert is_media_key("reel.mp4")
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"))
    objs = [o for o in LocalStorage(collection).list() if is_media_key(o.key)]
    result = ShardProcessor(cfg).process(next(make_shards(objs, 100)), "run-v")
    reel = next(r for r in result.records if r.source_key == "reel.mp4")
    assert reel.status == "ok" and reel.frames == 10 and (reel.width, reel.height) == (128, 96)
    assert (tmp_path / "out" / "reel.mp4").is_file()
    assert b"algorithmicallyEnhanced" in (tmp_path / "out" / "reel.mp4.xmp").read_bytes()
    write_fragment(LocalStorage(tmp_path / "out"), result.shard_id, result.records)


def test_iiif_manifest_lists_each_colorized_image_labelled(collection, tmp_path):
    out = tmp_path / "out"
    cfg = build_config(source=str(collection), destination=str(out))
    objs = [o for o in LocalStorage(collection).list() if is_media_key(o.key)]
    result = ShardProcessor(cfg).process(next(make_shards(objs, 100)), "run-i")
    write_fragment(LocalStorage(out), result.shard_id, result.records)
    m = build_manifest(LocalStorage(out), "https://iiif.museum.example/colorized", "glass-plates")
    assert m["@context"] == IIIF_CONTEXT and m["type"] == "Manifest"
    assert m["id"] == f"https://iiif.museum.example/colorized/{IIIF_KEY}"
    assert "AI colorized" in m["label"]["en"][0] and "machine estimate" in m["summary"]["en"][0]
    ok = [r for r in result.records if r.status == "ok"]
    assert len(m["items"]) == len(ok) == 4
    ids = [c["id"] for c in m["items"]]
    assert len(set(ids)) == len(ids)
    for canvas in m["items"]:
        assert canvas["type"] == "Canvas" and canvas["width"] > 0 and canvas["height"] > 0
        anno = canvas["items"][0]["items"][0]
        assert anno["motivation"] == "painting" and anno["target"] == canvas["id"]
        # a Choice: the colorized derivative first (what viewers show), the original to toggle to
        assert anno["body"]["type"] == "Choice"
        colorized, original = anno["body"]["items"]
        assert colorized["label"]["en"] == ["AI colorized"] and original["label"]["en"] == ["Original"]
        key = unquote(colorized["id"].removeprefix("https://iiif.museum.example/colorized/"))
        img = cv2.imread(str(out / key), cv2.IMREAD_UNCHANGED)  # the painted image is the derivative itself
        assert img is not None and (img.shape[1], img.shape[0]) == (colorized["width"], colorized["height"])
        assert colorized["type"] == original["type"] == "Image"
        source = unquote(urlparse(original["id"]).path)  # no source_base_url: the source file itself
        assert Path(source).is_file() and Path(source).parent == collection / Path(key).parent
        src = cv2.imread(source, cv2.IMREAD_UNCHANGED)
        assert (src.shape[1], src.shape[0]) == (original["width"], original["height"])
        assert "(AI colorized)" in canvas["label"]["en"][0]
    json.dumps(m)
    published = build_manifest(LocalStorage(out), "https://x.example/c", "g", source_base_url="https://x.example/s/")
    originals = [c["items"][0]["items"][0]["body"]["items"][1]["id"] for c in published["items"]]
    assert sorted(originals) == sorted(f"https://x.example/s/{quote(r.source_key)}" for r in ok)
