"""Film reels (temporally smoothed chroma, frame rate kept, one manifest row per video) and the IIIF
Presentation 3 manifest of a run."""

import json
from urllib.parse import quote, unquote, urlparse

import cv2
import numpy as np
import pytest

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.media.imageio import is_media_key
from chromata.models import load_colorizer
from chromata.pipeline import ShardProcessor, make_shards
from chromata.pipeline.video import colorize_video
from chromata.record.iiif import IIIF_CONTEXT, IIIF_KEY, build_manifest
from chromata.record.manifest import write_fragment
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


def test_a_reel_is_judged_on_frames_spread_over_it_and_decoded_without_restraint(tmp_path, model, monkeypatch):
    """Score version 2 for films: the estimator judges ASSESSED_FRAMES delivered frames; the restraint stills get
    is not applied to frames (a restraining estimator leaves the reel's colours exactly as they were)."""
    from chromata.judgement import assess
    from chromata.pipeline.video import ASSESSED_FRAMES, colorize_stream

    src = str(_clip(tmp_path / "reel.mp4"))
    plain = colorize_stream(src, str(tmp_path / "a.mp4"), "mp4v", model)
    assert plain.assessments is not None and len(plain.assessments) == ASSESSED_FRAMES < FRAMES
    assert plain.assessed_frames[0] == 0 and plain.assessed_frames[-1] >= FRAMES - 3  # over the whole reel
    assert all(0.0 <= a.p_better <= 1.0 for a in plain.assessments)

    shipped = assess.shipped()
    restraining = assess.ConfidenceEstimator({**shipped.params, "restraint": {"threshold": 0.0, "keep": 0.0}})
    monkeypatch.setattr(assess, "shipped", lambda: restraining)
    work = np.full((1, model.input_size, model.input_size), 50.0, np.float32)
    work[0, :, : model.input_size // 2] = 20.0
    assert float(np.abs(model.predict_ab(work).ab).max()) == 0.0  # a still: every region damped to grey
    again = colorize_stream(src, str(tmp_path / "b.mp4"), "mp4v", model)
    assert again.flicker == plain.flicker and np.array_equal(again.uncertainty, plain.uncertainty)
    assert [a.p_better for a in again.assessments] == [a.p_better for a in plain.assessments]


@pytest.mark.parametrize("frames", [1, 5, 13, 24, 100, 1001])
def test_assessed_frames_spread_over_a_reel_whatever_its_length(frames):
    """Containers misreport frame counts, so the spread does not trust one: frames are offered one by one."""
    from chromata.pipeline.video import ASSESSED_FRAMES, _Spread

    spread = _Spread(ASSESSED_FRAMES)
    grey = np.zeros((4, 4), np.float32)
    for i in range(frames):
        spread.offer(i, grey, np.zeros((2, 2, 2), np.float32))
    at = [i for i, _, _ in spread.picked()]
    assert len(at) == min(frames, ASSESSED_FRAMES) and at == sorted(set(at)) and at[0] == 0
    assert at[-1] >= 0.85 * (frames - 1)  # the end of the reel is judged too
    gaps = np.diff(at) if len(at) > 1 else np.array([1])
    assert gaps.max() <= 2.5 * max(1.0, (frames - 1) / (ASSESSED_FRAMES - 1))  # evenly, not bunched


def test_a_cut_resets_the_smoothing():
    from chromata.pipeline.video import smoothing_weight

    a = np.full((8, 8), 30.0, np.float32)
    assert smoothing_weight(a, a + 3.0, 0.3) == 0.3  # same shot
    assert smoothing_weight(a, a + 40.0, 0.3) == 1.0  # a cut: start afresh


def test_a_run_colorizes_a_reel_into_one_manifest_row(collection, tmp_path, monkeypatch):
    import dataclasses

    from chromata.pipeline import video

    real = video.assessments

    def hopeless(work, ab):  # the film's frames judged as badly as can be: the row's score must follow
        return [dataclasses.replace(a, p_better=0.0) for a in real(work, ab)]

    monkeypatch.setattr(video, "assessments", hopeless)
    _clip(collection / "reel.mp4", frames=10)
    assert is_media_key("reel.mp4")
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"))
    objs = [o for o in LocalStorage(collection).list() if is_media_key(o.key)]
    result = ShardProcessor(cfg).process(next(make_shards(objs, 100)), "run-v")
    reel = next(r for r in result.records if r.source_key == "reel.mp4")
    assert reel.status == "ok" and reel.frames == 10 and (reel.width, reel.height) == (128, 96)
    assert (tmp_path / "out" / "reel.mp4").is_file()
    assert b"algorithmicallyEnhanced" in (tmp_path / "out" / "reel.mp4.xmp").read_bytes()
    first_still = next(r for r in result.records if r.status == "ok" and r.source_key != "reel.mp4")
    film, still = json.loads(reel.params_json), json.loads(first_still.params_json)
    assert film["score_version"] == "2" and film["restraint"] is None  # judged on its frames, not restrained
    assert still["restraint"] is not None  # a still's row names the restraint its model decodes with
    calibration = load_colorizer("builtin", device="cpu").calibration
    floor = calibration.apply(0.0) if calibration is not None and calibration.applies_to("2") else 0.0
    assert reel.confidence == pytest.approx(floor, abs=1e-4)  # the score is the frames' judgement
    assert reel.confidence < first_still.confidence
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
        # no source_base_url: the colorized derivative alone (the originals are not published anywhere)
        colorized = anno["body"]
        assert colorized["type"] == "Image" and colorized["label"]["en"] == ["AI colorized"]
        key = unquote(colorized["id"].removeprefix("https://iiif.museum.example/colorized/"))
        img = cv2.imread(str(out / key), cv2.IMREAD_UNCHANGED)  # the painted image is the derivative itself
        assert img is not None and (img.shape[1], img.shape[0]) == (colorized["width"], colorized["height"])
        assert "(AI colorized)" in canvas["label"]["en"][0]
    assert str(collection) not in json.dumps(m)  # the sources' folder on this machine is published nowhere
    published = build_manifest(LocalStorage(out), "https://x.example/c", "g", source_base_url="https://x.example/s/")
    bodies = [c["items"][0]["items"][0]["body"] for c in published["items"]]
    # a Choice: the colorized derivative first (what viewers show), the published original to toggle to
    assert {b["type"] for b in bodies} == {"Choice"}
    assert {(b["items"][0]["label"]["en"][0], b["items"][1]["label"]["en"][0]) for b in bodies} == {
        ("AI colorized", "Original")
    }
    originals = [b["items"][1] for b in bodies]
    assert sorted(o["id"] for o in originals) == sorted(f"https://x.example/s/{quote(r.source_key)}" for r in ok)
    for o in originals:
        src = cv2.imread(str(collection / unquote(urlparse(o["id"]).path).removeprefix("/s/")))
        assert src is not None and (src.shape[1], src.shape[0]) == (o["width"], o["height"])


def test_the_iiif_manifest_never_publishes_the_sources_internal_path(tmp_path):
    """A canvas used to name its source by ``source_uri`` (a server folder, a private bucket) and offer that
    address as the original. Now a source is named only by a configured public identifier, and an original
    only where ``source_base_url`` publishes it."""
    from dataclasses import replace

    from tests.test_manifest import rec

    out = tmp_path / "out"
    private = "s3://museum-private-masters/restricted"
    rows = [
        replace(rec(f"box-{i}/plate {i}.tif"), source_uri=f"{private}/box-{i}/plate {i}.tif",
                output_uri=str(out / f"box-{i}/plate {i}.tif"))
        for i in range(2)
    ]  # fmt: skip
    write_fragment(LocalStorage(out), "s1", rows)

    def manifest(template):  # type: ignore[no-untyped-def]
        return build_manifest(LocalStorage(out), "https://iiif.example/c", "plates", source_id_template=template)

    def sources(m):  # type: ignore[no-untyped-def]
        return sorted(x["value"]["en"][0] for c in m["items"] for x in c["metadata"] if x["label"]["en"] == ["Source"])

    default = json.dumps(manifest(None))
    assert "museum-private-masters" not in default and "restricted" not in default and "s3://" not in default
    assert sources(json.loads(default)) == []  # no identifier configured: the source is not named
    named = manifest("{collection}/{key}")
    assert "museum-private-masters" not in json.dumps(named)
    assert sources(named) == ["plates/box-0/plate 0.tif", "plates/box-1/plate 1.tif"]
    assert sorted(c["label"]["en"][0] for c in named["items"]) == [f"{s} (AI colorized)" for s in sources(named)]
    assert sources(manifest("MUS-{stem}")) == ["MUS-plate 0", "MUS-plate 1"]
    for bad in ("{source_uri}", "{key.__class__}", "{0}", "{", ""):
        with pytest.raises(ValueError, match="bad source id template"):
            manifest(bad)


def test_a_source_id_template_with_a_format_spec_is_refused_up_front():
    """A spec may hold fields of its own ("{key:{key.__class__}}"): only plain fields are allowed."""
    from chromata.record.iiif import check_source_id

    assert check_source_id("{collection}/{key}") == "{collection}/{key}"
    for bad in ("{key:{key.__class__}}", "{key!r}", "{key:>10}", "{secret}"):
        with pytest.raises(ValueError, match="bad source id template"):
            check_source_id(bad)
