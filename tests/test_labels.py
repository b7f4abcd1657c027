"""Transparency labels: every output carries XMP (IPTC Digital Source Type, description, source, run,
model, confidence), read back with exiftool; the source's metadata is carried over; formats round-trip;
the visible label; and `chromata provenance` from an output file back to its source."""

import hashlib
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from chromata.archive.local import LocalStorage
from chromata.config import build_config
from chromata.media.imageio import is_image_key
from chromata.media.labels import ICC_JPEG_HEADER, embed_tiff, is_srgb_icc, source_metadata_jpeg
from chromata.media.visible_label import visible_label
from chromata.pipeline import ShardProcessor, make_shards
from chromata.record.manifest import write_fragment
from tests.certs import signing_chain
from tests.conftest import needs_tool

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = needs_tool("exiftool")  # skipped without it; fails in CI


def _run(collection, out, **kw):
    cfg = build_config(source=str(collection), destination=str(out), review_threshold=1.0, **kw)
    objs = [o for o in LocalStorage(collection).list() if is_image_key(o.key)]
    result = ShardProcessor(cfg).process(next(make_shards(objs, 100)), "run-labels")
    write_fragment(LocalStorage(out), result.shard_id, result.records)
    return {r.source_key: r for r in result.records}


def _exif(*paths):
    out = subprocess.run([EXIFTOOL, "-j", "-G1", "-a", "-n", *map(str, paths)], capture_output=True, text=True)
    return {d["SourceFile"].rsplit("/", 1)[-1]: d for d in json.loads(out.stdout)}


@needs_exiftool
def test_every_output_says_it_was_colorized_by_ai(collection, tmp_path):
    subprocess.run([EXIFTOOL, "-overwrite_original", "-Artist=Museum Photographer", "-Copyright=CC0 1.0",
                    str(collection / "a.jpg")], check=True, capture_output=True)  # fmt: skip
    rows = _run(collection, tmp_path / "out")
    outputs = {k: tmp_path / "out" / k for k, r in rows.items() if r.status == "ok"}
    tags = _exif(*outputs.values())
    assert len(tags) == 4
    for key, path in outputs.items():
        t, row = tags[path.name], rows[key]
        assert (
            t["XMP-iptcExt:DigitalSourceType"]
            == "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"
        )
        assert (
            t["XMP-dc:Description"].startswith("Colorized by chromata ") and row.model_sha256 in t["XMP-dc:Description"]
        )
        assert "not historical record" in t["XMP-dc:Description"]
        assert t["XMP-dc:Source"] == row.source_uri == t["XMP-chromata:SourceUri"]
        assert t["XMP-chromata:SourceSha256"] == row.source_sha256
        assert t["XMP-chromata:RunId"] == "run-labels" and t["XMP-chromata:ImageId"] == row.image_id
        assert t["XMP-chromata:ModelName"] == row.model_name
        assert t["XMP-chromata:ModelFamily"] == "builtin" and t["XMP-chromata:ModelLicence"].startswith("Apache-2.0")
        assert "builtin, Apache-2.0" in t["XMP-dc:Description"]
        assert float(t["XMP-chromata:Confidence"]) == pytest.approx(row.confidence, abs=1e-4)
    a = tags["a.jpg"]
    assert a["IFD0:Artist"] == "Museum Photographer" and a["IFD0:Copyright"] == "CC0 1.0"  # carried over
    assert tags["deep16.tif"]["IFD0:BitsPerSample"] in ("16 16 16", 16)
    deep = cv2.imread(str(outputs["deep16.tif"]), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape[:2] == (72, 100)


@needs_exiftool
@pytest.mark.parametrize(("fmt", "ext", "deep_dtype"), [("png", ".png", np.uint16), ("tiff", ".tif", np.uint16),
    ("jp2", ".jp2", np.uint16), ("jpeg", ".jpg", np.uint8), ("webp", ".webp", np.uint8)])  # fmt: skip
def test_output_formats_round_trip_with_their_label(collection, tmp_path, fmt, ext, deep_dtype):
    rows = _run(collection, tmp_path / "out", output_format=fmt)
    ok = {k: r for k, r in rows.items() if r.status == "ok"}
    assert len(ok) == 4
    for key, row in ok.items():
        assert row.output_uri.endswith(ext)
        img = cv2.imread(row.output_uri, cv2.IMREAD_UNCHANGED)
        src = cv2.imread(str(collection / key), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape[:2] == src.shape[:2], key  # size preserved
    deep = cv2.imread(ok["deep16.tif"].output_uri, cv2.IMREAD_UNCHANGED)
    assert deep.dtype == deep_dtype
    tags = _exif(*(r.output_uri for r in ok.values()))
    assert all(t.get("XMP-iptcExt:DigitalSourceType", "").endswith("algorithmicallyEnhanced") for t in tags.values())


def test_visible_label_corner_and_border_at_8_and_16_bit():
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        img = np.full((300, 400, 3), top // 2, dtype)
        corner = visible_label(img, "corner")
        assert corner.shape == img.shape and corner.dtype == dtype
        changed = np.argwhere((corner != img).any(axis=2))
        assert changed.size and changed[:, 0].min() > 250 and changed[:, 1].min() > 250  # bottom-right only
        assert corner.max() > top * 0.9  # white text on a darkened box
        border = visible_label(img, "border")
        assert border.shape[0] > 300 and np.array_equal(border[:300], img)  # the image itself is untouched
        assert visible_label(img, "none") is img
    with pytest.raises(ValueError):
        visible_label(img, "watermark")


def _icc(space: bytes) -> bytes:
    return b"\x00" * 16 + space + b"\x00" * 108


def test_only_an_srgb_icc_profile_is_carried_to_the_rgb_output():
    from PIL import ImageCms

    from tests.hostile_corpus import adobe_rgb_icc

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert is_srgb_icc(srgb) and not is_srgb_icc(_icc(b"GRAY")) and not is_srgb_icc(adobe_rgb_icc())
    base = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes()

    def with_icc(profile: bytes) -> bytes:
        payload = ICC_JPEG_HEADER + b"\x01\x01" + profile
        seg = b"\xff\xe2" + (len(payload) + 2).to_bytes(2, "big") + payload
        return base[:2] + seg + base[2:]

    assert [m for m, _ in source_metadata_jpeg(with_icc(srgb))] == [0xE2]
    assert source_metadata_jpeg(with_icc(_icc(b"GRAY"))) == []  # a grey profile would mislabel RGB pixels
    # the pixels were converted from Adobe RGB to sRGB on decoding: the Adobe profile no longer describes them
    assert source_metadata_jpeg(with_icc(adobe_rgb_icc())) == []


def test_tiff_embedding_keeps_the_pixels():
    img = (np.random.default_rng(0).random((40, 50, 3)) * 65535).astype(np.uint16)
    raw = cv2.imencode(".tif", img, [cv2.IMWRITE_TIFF_COMPRESSION, 5])[1].tobytes()
    labelled = embed_tiff(raw, b"<x:xmpmeta>test</x:xmpmeta>", [])
    back = cv2.imdecode(np.frombuffer(labelled, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(back, img)
    assert b"<x:xmpmeta>test</x:xmpmeta>" in labelled


def test_provenance_command_walks_from_output_to_source(collection, tmp_path):
    from tests.test_cli import chromata

    out = tmp_path / "out"
    rows = _run(collection, out)
    proc = chromata("provenance", str(out / "nested" / "C.JPEG"), "--json")
    assert proc.returncode == 0, proc.stderr
    chain = json.loads(proc.stdout)
    assert chain["ai_colorized"] and chain["file_matches_manifest"] and chain["source_verified"]
    assert chain["row"]["source_uri"] == rows["nested/C.JPEG"].source_uri
    assert chain["embedded"]["modelSha256"] == rows["nested/C.JPEG"].model_sha256
    table = chromata("provenance", str(out / "a.jpg"))
    assert "AI-colorized" in table.stdout and "matches manifest row" in table.stdout
    # an edited output no longer matches its manifest row
    path = out / "a.jpg"
    path.write_bytes(path.read_bytes() + b"\x00")
    chain = json.loads(chromata("provenance", str(path), "--json").stdout)
    assert chain["ai_colorized"] and not chain["file_matches_manifest"]


@needs_exiftool
def test_c2pa_manifest_is_signed_with_the_institutions_certificate(collection, tmp_path):
    pytest.importorskip("c2pa")
    from chromata.media.c2pa_label import read_c2pa

    cert, key, root = signing_chain(tmp_path)
    rows = _run(collection, tmp_path / "out", c2pa_cert=str(cert), c2pa_key=str(key))
    row = rows["a.jpg"]
    data = (tmp_path / "out" / "a.jpg").read_bytes()
    store = read_c2pa(data, "image/jpeg", trust_anchors_pem=root)
    manifest = store["manifests"][store["active_manifest"]]
    actions = next(a for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2")["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.created", "c2pa.color_adjustments"]
    assert actions[0]["digitalSourceType"].endswith("/algorithmicallyEnhanced")
    chromata_assertion = next(a for a in manifest["assertions"] if a["label"] == "org.chromata.provenance")["data"]
    assert chromata_assertion["source_sha256"] == row.source_sha256 and chromata_assertion["run_id"] == "run-labels"
    assert manifest["signature_info"]["common_name"] == "Test Museum chromata signer"
    failures = [s for s in store.get("validation_status", []) if s["code"] != "signingCredential.trusted"]
    assert failures == [], failures  # signature, hashes and chain all validate against the test root
    assert row.output_sha256 == hashlib.sha256(data).hexdigest()  # the manifest row is the signed file
    assert _exif(tmp_path / "out" / "a.jpg")["a.jpg"]["XMP-iptcExt:DigitalSourceType"].endswith(
        "algorithmicallyEnhanced"
    )
    assert "signer.key" not in row.params_json and '"c2pa":true' in row.params_json  # the key is never recorded


def _validated_c2pa(path, mime, root):
    """The active manifest of a signed file, after checking signature, hashes and chain against ``root``."""
    from chromata.media.c2pa_label import read_c2pa

    store = read_c2pa(path.read_bytes(), mime, trust_anchors_pem=root)
    failures = [s for s in store.get("validation_status", []) if s["code"] != "signingCredential.trusted"]
    assert failures == [], failures
    manifest = store["manifests"][store["active_manifest"]]
    return next(a for a in manifest["assertions"] if a["label"] == "org.chromata.provenance")["data"]


@pytest.mark.slow
def test_c2pa_signs_banded_and_multi_page_tiffs_and_reels_too(tmp_path):
    """A TIFF over the memory budget (colorized in bands, on disk), a multi-page TIFF and a film reel are
    signed like stills."""
    pytest.importorskip("c2pa")
    import tifffile

    from tests.test_tiled import big_scan
    from tests.test_video_iiif import _clip

    src = tmp_path / "src"
    src.mkdir()
    tifffile.imwrite(src / "scan.tif", big_scan(1700, 2000), tile=(256, 256), compression="zlib")  # > 256 MiB budget
    _clip(src / "reel.mp4", frames=6)
    pages = [big_scan(60, 80), big_scan(40, 50)]
    (src / "album.tif").write_bytes(cv2.imencodemulti(".tif", pages, [cv2.IMWRITE_TIFF_COMPRESSION, 5])[1].tobytes())
    cert, key, root = signing_chain(tmp_path)
    out = tmp_path / "out"
    cfg = build_config(
        source=str(src), destination=str(out), memory_budget_mb=256, c2pa_cert=str(cert), c2pa_key=str(key)
    )
    result = ShardProcessor(cfg).process(next(make_shards(LocalStorage(src).list(), 10)), "run-signed")
    rows = {r.source_key: r for r in result.records}
    for name, mime in (("scan.tif", "image/tiff"), ("album.tif", "image/tiff"), ("reel.mp4", "video/mp4")):
        row = rows[name]
        assert row.status == "ok", row.error
        assert _validated_c2pa(out / name, mime, root)["source_sha256"] == row.source_sha256
        assert row.output_sha256 == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert tifffile.imread(out / "scan.tif").shape == (1700, 2000, 3)  # still readable TIFFs
    assert [p.shape for p in cv2.imdecodemulti(np.fromfile(out / "album.tif", np.uint8), cv2.IMREAD_UNCHANGED)[1]] == [
        (60, 80, 3),
        (40, 50, 3),
    ]


def test_a_banded_output_too_big_to_sign_within_the_budget_fails_with_advice(tmp_path):
    """The C2PA SDK holds the whole file while signing: over half the budget the image fails, unsigned
    output is never written, and the error says which budget would do."""
    pytest.importorskip("c2pa")
    from chromata.errors import ImageError
    from chromata.media.labels import Provenance

    cert, key, _ = signing_chain(tmp_path)
    cfg = build_config(
        source=str(tmp_path / "src"), destination=str(tmp_path / "out"), memory_budget_mb=256, c2pa_cert=str(cert),
        c2pa_key=str(key),
    )  # fmt: skip
    big = tmp_path / "colorized.tif"
    with open(big, "wb") as f:
        f.truncate(129 * 2**20)  # sparse: over 128 MiB, no disk used
    from chromata.media.formats import BY_NAME

    proc = ShardProcessor(cfg)
    with pytest.raises(ImageError, match=r"too_large.*C2PA-sign.*memory_budget_mb=256.*at least 259"):
        proc.output._signed(big, BY_NAME["tiff"], Provenance.__new__(Provenance), "scan.tif")
    assert not (tmp_path / "signed.tif").exists()


def test_multi_page_tiff_is_colorized_page_by_page(collection, tmp_path):
    from chromata.media.imageio import probe
    from tests.conftest import gradient_gray

    pages = [
        gradient_gray(60, 80, np.uint16),
        gradient_gray(60, 80, np.uint16)[:, ::-1].copy(),
        gradient_gray(40, 50, np.uint16),
    ]
    ok, buf = cv2.imencodemulti(".tif", pages, [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    (collection / "album.tif").write_bytes(buf.tobytes())
    assert probe(buf.tobytes()).frames == 3
    rows = _run(collection, tmp_path / "out")
    row = rows["album.tif"]
    assert row.status == "ok" and row.frames == 3 and row.bit_depth == 16 and (row.width, row.height) == (80, 60)
    data = (tmp_path / "out" / "album.tif").read_bytes()
    assert probe(data).frames == 3
    ok, back = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert ok and [p.shape for p in back] == [(60, 80, 3), (60, 80, 3), (40, 50, 3)]
    assert all(p.dtype == np.uint16 for p in back)
    assert b"algorithmicallyEnhanced" in data
