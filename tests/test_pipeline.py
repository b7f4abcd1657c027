import hashlib
import math

import cv2
import numpy as np
import pytest

from chromata.archive.local import LocalStorage
from chromata.archive.storage import ObjectInfo
from chromata.colormath import color
from chromata.config import build_config
from chromata.errors import StorageError
from chromata.media.imageio import is_image_key
from chromata.pipeline import ShardProcessor, make_shards, output_key, shard_id_for


@pytest.fixture(scope="module")
def model():
    from chromata.models import load_colorizer

    return load_colorizer("builtin", device="cpu")


def test_shards_are_deterministic_and_bounded():
    objs = [ObjectInfo(f"{i:03d}.jpg", i, f"e{i}", 0.0) for i in range(10)]
    shards = list(make_shards(iter(objs), 4))
    assert [len(s.objects) for s in shards] == [4, 4, 2]
    assert [s.shard_id for s in make_shards(iter(objs), 4)] == [s.shard_id for s in shards]
    changed = [*objs[:3], ObjectInfo("003.jpg", 3, "CHANGED", 0.0), *objs[4:]]
    assert shard_id_for(changed[:4]) != shards[0].shard_id


def test_output_key_stays_inside_destination():
    assert output_key("a/b/c.tif") == "a/b/c.tif"
    with pytest.raises(StorageError):
        output_key("../../etc/passwd.jpg")


def test_process_shard_end_to_end(collection, tmp_path, model):
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), batch_size=2)
    proc = ShardProcessor(cfg, model=model)
    objs = [o for o in LocalStorage(collection).list() if is_image_key(o.key)]
    shard = next(make_shards(objs, 100))
    seen = []
    result = proc.process(shard, "run-1", on_image=seen.append)
    by_key = {r.source_key: r for r in result.records}
    assert [r.source_key for r in result.records] == [o.key for o in objs]  # source order kept
    assert len(seen) == len(objs)

    # the default routing: the review budget, the least confident 15 % of the colorized images, each saying so
    colorized = sorted((r for r in result.records if r.status == "ok"), key=lambda r: r.confidence)
    queued = [r for r in result.records if r.needs_review]
    assert cfg.review_threshold is None and len(queued) == math.ceil(0.15 * len(colorized)) >= 1
    assert {r.source_key for r in queued} == {r.source_key for r in colorized[: len(queued)]}
    assert all("least_confident" in r.confidence_reasons for r in queued)
    assert by_key["broken.jpg"].status == "failed"
    assert by_key["broken.jpg"].error.startswith("decode_error")
    assert by_key["colour.png"].status == "skipped"
    assert by_key["colour.png"].confidence_reasons == ["already_colour"]
    assert not (tmp_path / "out" / "colour.png").exists()

    for key in ("a.jpg", "b.png", "deep16.tif", "nested/C.JPEG"):
        r = by_key[key]
        assert r.status == "ok", r.error
        src = cv2.imread(str(collection / key), cv2.IMREAD_UNCHANGED)
        out_path = tmp_path / "out" / key
        out = cv2.imread(str(out_path), cv2.IMREAD_UNCHANGED)
        assert out.shape[:2] == src.shape[:2] and out.ndim == 3
        assert out.dtype == src.dtype  # 16-bit stays 16-bit
        assert (r.width, r.height) == (src.shape[1], src.shape[0])
        assert r.output_sha256 == hashlib.sha256(out_path.read_bytes()).hexdigest()
        assert r.source_sha256 == hashlib.sha256((collection / key).read_bytes()).hexdigest()
        assert 0.0 <= r.confidence <= 1.0
        assert r.model_sha256 == model.weights_sha256 and r.params_json.startswith("{")
        heat = cv2.imread(r.heatmap_uri, cv2.IMREAD_COLOR)
        assert r.heatmap_uri == str(tmp_path / "out" / "_chromata" / "heatmaps" / f"{key}.png")
        assert max(heat.shape[:2]) == 256
        assert abs(heat.shape[1] / heat.shape[0] - src.shape[1] / src.shape[0]) < 0.05
    assert by_key["deep16.tif"].bit_depth == 16

    # lightness of the lossless 16-bit output is the source's, to within 16-bit rounding
    src16 = color.to_unit_float(cv2.imread(str(collection / "deep16.tif"), cv2.IMREAD_UNCHANGED))
    out16 = color.to_unit_float(cv2.imread(str(tmp_path / "out" / "deep16.tif"), cv2.IMREAD_UNCHANGED))
    l_src = color.gray_to_lightness(src16)
    l_out = color.bgr_to_lab(out16)[..., 0]
    in_gamut = ((out16 > 1e-4) & (out16 < 1 - 1e-4)).all(axis=2)
    assert np.abs(l_out - l_src)[in_gamut].max() < 0.02
    assert not (tmp_path / "out" / "README.txt").exists()


def test_unwritable_destination_fails_the_shard(collection, tmp_path, model):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the destination folder should be")
    cfg = build_config(source=str(collection), destination=str(blocker))
    proc = ShardProcessor(cfg, model=model)
    shard = next(make_shards([o for o in LocalStorage(collection).list() if o.key == "a.jpg"], 10))
    with pytest.raises(StorageError, match="cannot write"):
        proc.process(shard, "run-x")


def test_toned_print_is_colorized_not_skipped(tmp_path, model):
    from tests.test_inputchecks import toned

    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "sepia.jpg"), toned(6.0, 22.0), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cfg = build_config(source=str(src), destination=str(tmp_path / "out"))
    result = ShardProcessor(cfg, model=model).process(next(make_shards(LocalStorage(src).list(), 10)), "r")
    (rec,) = result.records
    assert rec.status == "ok" and "sepia_toned" in rec.confidence_reasons
    assert (tmp_path / "out" / "sepia.jpg").is_file()


def test_review_budget_routes_least_confident_fraction(tmp_path):
    from chromata.pipeline import route_for_review
    from tests.test_manifest import rec

    records = [rec(f"{i}.jpg", confidence=c, needs_review=False) for i, c in enumerate([0.9, 0.2, 0.5, 0.7, 0.1])]
    records.append(rec("bad.jpg", status="failed", needs_review=False))
    cfg = build_config(source="in", destination=str(tmp_path), review_budget=0.4)
    routed = {r.source_key: r.needs_review for r in route_for_review(records, cfg)}
    assert routed == {"0.jpg": False, "1.jpg": True, "2.jpg": False, "3.jpg": False, "4.jpg": True, "bad.jpg": False}
    # a queued item says why, once, even when a shard is routed again (a shard run image by image)
    twice = route_for_review(route_for_review(records, cfg), cfg)
    reasons = {r.source_key: r.confidence_reasons for r in twice}
    assert reasons["1.jpg"] == ["low_contrast", "least_confident"] and reasons["0.jpg"] == ["low_contrast"]
    threshold_only = build_config(source="in", destination=str(tmp_path), review_threshold=0.4)
    assert route_for_review(records, threshold_only) == records


def test_a_processor_that_loads_its_model_warms_it_up(collection, tmp_path):
    """The built-in model's TorchScript graph is built when the processor loads the model (in the actor's
    start-up, off the run's critical path), not by the first batch of the first shard."""
    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), device="cpu")
    proc = ShardProcessor(cfg)
    assert proc.model.forward.graph is not None  # type: ignore[attr-defined]


@pytest.mark.gpu
def test_shard_on_gpu_matches_cpu_output(collection, tmp_path):
    """The GPU path end to end: the processor puts the model on CUDA and writes the same images as on
    the CPU (same statuses; pixels within a few levels of 8-bit colour)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    objs = [o for o in LocalStorage(collection).list() if is_image_key(o.key)]
    outputs, statuses = {}, {}
    for device in ("cpu", "cuda"):
        cfg = build_config(source=str(collection), destination=str(tmp_path / device), batch_size=2, device=device)
        proc = ShardProcessor(cfg)
        assert proc.model.device.startswith(device)
        result = proc.process(next(make_shards(objs, 100)), f"run-{device}")
        statuses[device] = {r.source_key: r.status for r in result.records}
        outputs[device] = {
            r.source_key: cv2.imread(str(tmp_path / device / output_key(r.source_key)), cv2.IMREAD_UNCHANGED)
            for r in result.records
            if r.status == "ok"
        }
    assert statuses["cpu"] == statuses["cuda"]
    assert outputs["cpu"].keys() == outputs["cuda"].keys() and outputs["cpu"]
    for key, cpu_img in outputs["cpu"].items():
        diff = np.abs(cpu_img.astype(np.int32) - outputs["cuda"][key].astype(np.int32))
        scale = 257 if cpu_img.dtype == np.uint16 else 1
        assert np.percentile(diff, 99) <= 3 * scale, key
