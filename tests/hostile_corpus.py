"""A corpus of broken, odd and hostile input files, generated (nothing binary is kept in the repository).

``python tests/hostile_corpus.py DIR`` writes it; ``tests/test_hostile_input.py`` runs a collection of it
through the pipeline and checks each file's row. ``CORPUS`` says what each file is and what must happen:
the status, and the reason code at the start of the error (failed) or among the confidence reasons (ok).
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

LONG_NAME = "a-very-long-archival-file-name-" * 7 + ".jpg"  # 221 bytes: leaves no room for a suffix
assert len(LONG_NAME.encode()) < 255 < len(LONG_NAME.encode()) + 40


@dataclass(frozen=True)
class Case:
    make: Callable[[], bytes]
    status: str  # ok, failed or skipped
    reason: str | None = None  # error code (failed) or a confidence reason (ok)
    note: str = ""


def scan(h: int = 120, w: int = 160, dtype: type = np.uint8) -> np.ndarray:
    """A grey scan with structure (gradient, disc, texture)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.15 + 0.6 * xx / w + 0.2 * ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 4) ** 2)
    img += 0.04 * np.sin(yy / 3.0) * np.cos(xx / 5.0)
    top = 65535 if dtype == np.uint16 else 255
    return (np.clip(img, 0, 1) * top + 0.5).astype(dtype)


def _cv(ext: str, img: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return bytes(buf.tobytes())


def _pil(img: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def adobe_rgb_icc() -> bytes:
    """A minimal ICC v2 display profile: Adobe RGB (1998) primaries (D50-adapted), gamma 2.2."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    text = b"Adobe RGB (1998) compatible"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233) + b"\0\0"  # u8Fixed8 2.2
    tags = [
        (b"desc", desc),
        (b"cprt", b"text\0\0\0\0" + b"No copyright, test profile\0"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.6097, 0.3111, 0.0195)),
        (b"gXYZ", xyz(0.2053, 0.6257, 0.0609)),
        (b"bXYZ", xyz(0.1492, 0.0632, 0.7446)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
        + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48
    )  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid 1-bit PNG of width x height pixels in a few hundred kB: 2.5 gigapixels if decoded."""
    row = b"\0" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    block = comp.compress(row * 1000)
    idat = block * (height // 1000) + comp.flush()  # deflate of zero rows repeats; a real decoder sees it all
    del block

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """Stored 160 wide x 120 high with EXIF orientation 6 (rotate 90° clockwise to display): 120 x 160."""
    img = Image.fromarray(scan(120, 160))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _pil(img, "JPEG", exif=exif.tobytes(), quality=92)


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.roll(scan(), 20 * i, axis=1)).convert("P") for i in range(3)]
    return _pil(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def multipage_tiff() -> bytes:
    pages = [scan(), scan()[:, ::-1].copy(), scan()[::-1].copy()]
    ok, buf = cv2.imencodemulti(".tif", pages)
    assert ok
    return bytes(buf.tobytes())


def grey_with_alpha_tiff() -> bytes:
    g = scan()
    return _cv(".tif", cv2.merge([g, g, g, np.full_like(g, 200)]))


def palette_png() -> bytes:
    return _pil(Image.fromarray(scan()).convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG")


def cmyk_jpeg() -> bytes:
    return _pil(Image.fromarray(scan()).convert("CMYK"), "JPEG", quality=92)


def adobe_rgb_jpeg() -> bytes:
    g = scan()
    return _pil(Image.fromarray(np.dstack([g, g, g])), "JPEG", quality=95, icc_profile=adobe_rgb_icc())


def corrupt_exif_jpeg() -> bytes:
    """A JPEG whose APP1 EXIF segment is garbage."""
    jpg = _cv(".jpg", scan())
    app1 = b"Exif\0\0" + b"\xde\xad\xbe\xef" * 16
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]


CORPUS: dict[str, Case] = {
    "truncated.jpg": Case(lambda: _cv(".jpg", scan())[:-600], "failed", "truncated", "cut before its end marker"),
    "truncated.png": Case(lambda: _cv(".png", scan())[:-300], "failed", "truncated", "IDAT cut, no IEND"),
    "truncated.tif": Case(lambda: _cv(".tif", scan(dtype=np.uint16))[:5000], "failed", "truncated"),
    "zero-bytes.jpg": Case(lambda: b"", "failed", "empty_file"),
    "text-named.jpg": Case(lambda: b"Dear curator, this is a letter, not a scan.\n" * 20, "failed", "decode_error"),
    "cmyk.jpg": Case(cmyk_jpeg, "ok", None, "CMYK JPEG of a grey print: decoded to RGB, colorized"),
    "deep-16bit.tif": Case(lambda: _cv(".tif", scan(dtype=np.uint16)), "ok", None, "stays 16-bit"),
    "deep-16bit.png": Case(lambda: _cv(".png", scan(dtype=np.uint16)), "ok", None, "stays 16-bit"),
    "with-alpha.tif": Case(grey_with_alpha_tiff, "ok", None, "alpha dropped"),
    "palette.png": Case(palette_png, "ok", None, "palette expanded"),
    "animated.gif": Case(animated_gif, "failed", "unsupported_format", "3 frames"),
    "still.gif": Case(lambda: _pil(Image.fromarray(scan()), "GIF"), "ok", None, "written as PNG"),
    "multipage.tif": Case(multipage_tiff, "ok", None, "3 pages, one row, frames=3"),
    "exif-rotated.jpg": Case(exif_rotated_jpeg, "ok", None, "orientation 6 honoured: 120 x 160"),
    "adobe-rgb.jpg": Case(adobe_rgb_jpeg, "ok", None, "converted to sRGB, Adobe profile not carried"),
    "one-pixel.png": Case(lambda: _cv(".png", np.full((1, 1), 128, np.uint8)), "ok", "tiny_image"),
    "bomb-50000x50000.png": Case(png_bomb, "failed", "too_large", "refused from its header, before decoding"),
    "corrupt-exif.jpg": Case(corrupt_exif_jpeg, "ok", None, "garbage EXIF ignored"),
    "ünïcödé scan %41 #1.jpg": Case(lambda: _cv(".jpg", scan()), "ok", None, "unicode, space, % and # in the name"),
    LONG_NAME: Case(lambda: _cv(".jpg", scan()), "ok", None, "221-byte name: heatmap name shortened"),
    "colour-photo.png": Case(
        lambda: _cv(".png", np.dstack([np.full((60, 60), v, np.uint8) for v in (200, 40, 40)])),
        "skipped",
        "already_colour",
    ),
    "flat-grey.jpg": Case(lambda: _cv(".jpg", np.full((90, 90), 127, np.uint8)), "ok", "low_contrast"),
}


def write_corpus(root: Path, outside: Path | None = None) -> dict[str, Case]:
    """Write every file of ``CORPUS`` under ``root``; with ``outside``, also a symlink pointing out of it."""
    root.mkdir(parents=True, exist_ok=True)
    for name, case in CORPUS.items():
        (root / name).write_bytes(case.make())
    if outside is not None:
        outside.mkdir(parents=True, exist_ok=True)
        secret = outside / "secret.jpg"
        secret.write_bytes(_cv(".jpg", scan()))
        (root / "link-out.jpg").symlink_to(secret)
    return CORPUS


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    write_corpus(target)
    print(f"{len(CORPUS)} files in {target}")
