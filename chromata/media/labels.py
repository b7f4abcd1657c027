"""Transparency: every output says, inside the file, that its colour is an AI interpretation.

* **XMP** (readable by exiftool, Adobe tools, DAMs): IPTC Digital Source Type, a plain-language
  description, the source identifier, the run, the model and its weights hash, the confidence — embedded
  in JPEG (APP1), PNG (iTXt ``XML:com.adobe.xmp``), TIFF (tag 700), WebP (RIFF ``XMP `` chunk) and JPEG 2000
  (XMP ``uuid`` box); a sidecar ``.xmp`` for formats that cannot carry it (BMP).
* **The source's own metadata is carried over**: EXIF, IPTC-IIM and an RGB ICC profile (a greyscale
  profile does not describe an RGB output and is dropped; the output is then sRGB, as chromata computes).
* **An optional visible label** (``corner`` or ``border``), drawn after colorization
  (:mod:`chromata.media.visible_label`).
* **A signed C2PA manifest** with the institution's certificate, when one is configured
  (:mod:`chromata.media.c2pa_label`).

This module holds the XMP label and the carried-over metadata, container by container.

Digital Source Type: ``algorithmicallyEnhanced`` — IPTC NewsCodes "Algorithmically-altered media"
(http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced, vocabulary as of 2024-09-17), the
term for media modified by an algorithm. An institution that classes colorization by a trained model as
generative editing can set ``compositeWithTrainedAlgorithmicMedia`` ("Edited using Generative AI") with
``digital_source_type`` in the run config.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from xml.sax.saxutils import escape

from chromata.media.formats import format_of

IPTC_DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
DIGITAL_SOURCE_TYPES = ("algorithmicallyEnhanced", "compositeWithTrainedAlgorithmicMedia", "trainedAlgorithmicMedia")
CHROMATA_NS = "https://chromata.dev/ns/1.0/"
XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_JPEG_HEADER = b"Exif\x00\x00"
ICC_JPEG_HEADER = b"ICC_PROFILE\x00"


@dataclass(frozen=True)
class Provenance:
    """What every output says about itself."""

    source_uri: str
    source_sha256: str
    image_id: str
    run_id: str
    model_name: str
    model_sha256: str
    chromata_version: str
    confidence: float | None
    created_at: str  # ISO 8601
    digital_source_type: str = "algorithmicallyEnhanced"
    model_family: str = ""  # the --model family (builtin, ddcolor, deoldify, …)
    model_variant: str = ""  # e.g. DDColor's tiny or large, DeOldify's artistic or stable
    model_licence: str = ""  # the licence of the model's weights

    @property
    def description(self) -> str:
        about = ", ".join(x for x in (self.model_family, self.model_variant, self.model_licence) if x)
        return (
            f"Colorized by chromata {self.chromata_version} with model {self.model_name} "
            f"({f'{about}; ' if about else ''}{self.model_sha256}); colours are a machine estimate, not historical "
            f"record. Source: {self.source_uri}"
        )


def xmp_packet(p: Provenance) -> bytes:
    """An XMP packet (UTF-8) with the IPTC and chromata properties."""
    if p.digital_source_type not in DIGITAL_SOURCE_TYPES:
        raise ValueError(f"unknown digital source type {p.digital_source_type!r}")
    conf = "" if p.confidence is None else f"<chromata:confidence>{p.confidence:.4f}</chromata:confidence>"
    xml = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:chromata="{CHROMATA_NS}">
   <Iptc4xmpExt:DigitalSourceType>{IPTC_DST}{p.digital_source_type}</Iptc4xmpExt:DigitalSourceType>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(p.description)}</rdf:li></rdf:Alt></dc:description>
   <dc:source>{escape(p.source_uri)}</dc:source>
   <xmp:CreatorTool>chromata {escape(p.chromata_version)}</xmp:CreatorTool>
   <xmp:ModifyDate>{escape(p.created_at)}</xmp:ModifyDate>
   <photoshop:Instructions>AI-colorized: colours are a machine estimate, not historical record</photoshop:Instructions>
   <chromata:sourceUri>{escape(p.source_uri)}</chromata:sourceUri>
   <chromata:sourceSha256>{escape(p.source_sha256)}</chromata:sourceSha256>
   <chromata:imageId>{escape(p.image_id)}</chromata:imageId>
   <chromata:runId>{escape(p.run_id)}</chromata:runId>
   <chromata:modelName>{escape(p.model_name)}</chromata:modelName>
   <chromata:modelSha256>{escape(p.model_sha256)}</chromata:modelSha256>
   <chromata:modelFamily>{escape(p.model_family)}</chromata:modelFamily>
   <chromata:modelVariant>{escape(p.model_variant)}</chromata:modelVariant>
   <chromata:modelLicence>{escape(p.model_licence)}</chromata:modelLicence>
   {conf}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
    return xml.encode("utf-8")


# -- JPEG ----------------------------------------------------------------------------------------------
def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of the segments before the scan data."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    out: list[tuple[int, bytes]] = []
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: the rest is image data
            break
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((marker, data[i + 4 : i + 2 + length]))
        i += 2 + length
    return out


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("JPEG segment too large")
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def source_metadata_jpeg(source: bytes) -> list[tuple[int, bytes]]:
    """The source JPEG's EXIF (APP1), RGB ICC (APP2) and IPTC (APP13) segments, to carry over."""
    try:
        segments = _jpeg_segments(source)
    except ValueError:
        return []
    keep: list[tuple[int, bytes]] = []
    icc = [p for m, p in segments if m == 0xE2 and p.startswith(ICC_JPEG_HEADER)]
    for marker, payload in segments:
        if marker == 0xE1 and payload.startswith(EXIF_JPEG_HEADER):
            keep.append((marker, EXIF_JPEG_HEADER + upright_exif(payload[len(EXIF_JPEG_HEADER) :])))
        elif marker == 0xED:
            keep.append((marker, payload))
    if icc and is_srgb_icc(b"".join(p[14:] for p in icc)):
        keep.extend((0xE2, p) for p in icc)
    return keep


def upright_exif(exif: bytes) -> bytes:
    """EXIF (a TIFF structure) with its Orientation set to 1: the decoder has already turned the pixels
    upright, so carrying the source's orientation over would make viewers rotate the output a second time."""
    if len(exif) < 8 or exif[:2] not in (b"II", b"MM"):
        return exif
    order = "<" if exif[:2] == b"II" else ">"
    try:
        ifd = struct.unpack(order + "I", exif[4:8])[0]
        (count,) = struct.unpack(order + "H", exif[ifd : ifd + 2])
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, typ = struct.unpack(order + "HH", exif[entry : entry + 4])
            if tag == 0x0112 and typ == 3:  # Orientation, SHORT
                value = entry + 8
                return exif[:value] + struct.pack(order + "H", 1) + exif[value + 2 :]
    except struct.error:
        pass
    return exif


def embed_jpeg(output: bytes, xmp: bytes, carried: list[tuple[int, bytes]]) -> bytes:
    """Insert the carried segments and the XMP packet right after SOI (and any JFIF APP0)."""
    segs = _jpeg_segments(output)
    pos = 2
    if segs and segs[0][0] == 0xE0:
        pos += 4 + len(segs[0][1])
    head = [_jpeg_segment(0xE1, XMP_JPEG_HEADER + xmp)] + [_jpeg_segment(m, p) for m, p in carried]
    return output[:pos] + b"".join(head) + output[pos:]


# -- PNG -----------------------------------------------------------------------------------------------
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIG):
        raise ValueError("not a PNG")
    out, i = [], 8
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        out.append((kind, data[i + 8 : i + 8 + length]))
        i += 12 + length
    return out


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def source_metadata_png(source: bytes) -> list[tuple[bytes, bytes]]:
    try:
        chunks = _png_chunks(source)
    except ValueError:
        return []
    keep = [(k, upright_exif(p)) for k, p in chunks if k == b"eXIf"]
    for k, p in chunks:
        if k == b"iCCP":
            name_end = p.index(b"\x00")
            if is_srgb_icc(zlib.decompress(p[name_end + 2 :])):
                keep.append((k, p))
    return keep


def embed_png(output: bytes, xmp: bytes, carried: list[tuple[bytes, bytes]]) -> bytes:
    chunks = _png_chunks(output)
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp  # keyword, no compression, no language, no translation
    out = [PNG_SIG]
    for kind, payload in chunks:
        out.append(_png_chunk(kind, payload))
        if kind == b"IHDR":  # ancillary chunks right after the header (iCCP must precede IDAT)
            out.extend(_png_chunk(k, p) for k, p in carried)
            out.append(_png_chunk(b"iTXt", itxt))
    return b"".join(out)


# -- TIFF ----------------------------------------------------------------------------------------------
TIFF_XMP, TIFF_ICC, TIFF_IPTC = 700, 34675, 33723


def _tiff_ifd0(data: bytes) -> tuple[str, int, list[tuple[int, int, int, bytes]], int]:
    """(byte order, IFD0 offset, entries (tag, type, count, value/offset field), next-IFD offset)."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise ValueError("not a classic TIFF")
    off = struct.unpack(order + "I", data[4:8])[0]
    n = struct.unpack(order + "H", data[off : off + 2])[0]
    entries = []
    for j in range(n):
        e = data[off + 2 + 12 * j : off + 14 + 12 * j]
        tag, typ, count = struct.unpack(order + "HHI", e[:8])
        entries.append((tag, typ, count, e[8:12]))
    nxt = struct.unpack(order + "I", data[off + 2 + 12 * n : off + 6 + 12 * n])[0]
    return order, off, entries, nxt


def _tiff_value(data: bytes, order: str, typ: int, count: int, field: bytes) -> bytes:
    size = {1: 1, 2: 1, 7: 1, 3: 2, 4: 4}.get(typ, 1) * count
    if size <= 4:
        return field[:size]
    off = struct.unpack(order + "I", field)[0]
    return data[off : off + size]


def source_metadata_tiff(source: bytes) -> list[tuple[int, int, bytes]]:
    """(tag, type, bytes) of the source TIFF's RGB ICC profile and IPTC record."""
    try:
        order, _, entries, _ = _tiff_ifd0(source)
    except (ValueError, struct.error):
        return []
    keep = []
    for tag, typ, count, field in entries:
        if tag == TIFF_IPTC or (tag == TIFF_ICC and is_srgb_icc(_tiff_value(source, order, typ, count, field))):
            keep.append((tag, 7, _tiff_value(source, order, typ, count, field)))
    return keep


def embed_tiff(output: bytes, xmp: bytes, carried: list[tuple[int, int, bytes]]) -> bytes:
    """Append the new values and a rewritten IFD0 (with the extra tags, sorted) at the end of the file."""
    order, _, entries, nxt = _tiff_ifd0(output)
    add = {tag: (typ, value) for tag, typ, value in carried}
    add[TIFF_XMP] = (1, xmp)
    body = bytearray(output)
    new_entries = [(t, ty, c, f) for t, ty, c, f in entries if t not in add]
    for tag, (typ, value) in add.items():
        if len(body) % 2:
            body += b"\x00"
        field = struct.pack(order + "I", len(body)) if len(value) > 4 else value.ljust(4, b"\x00")
        if len(value) > 4:
            body += value
        new_entries.append((tag, typ, len(value), field))
    new_entries.sort()
    if len(body) % 2:
        body += b"\x00"
    ifd_at = len(body)
    body += struct.pack(order + "H", len(new_entries))
    for tag, typ, count, field in new_entries:
        body += struct.pack(order + "HHI", tag, typ, count) + field
    body += struct.pack(order + "I", nxt)
    body[4:8] = struct.pack(order + "I", ifd_at)
    return bytes(body)


# -- JPEG 2000 -----------------------------------------------------------------------------------------
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")  # the XMP box UUID (XMP spec part 3)


def embed_jp2(output: bytes, xmp: bytes) -> bytes:
    """Append a ``uuid`` box carrying the XMP packet (readers find it anywhere at the top level)."""
    if output[4:8] != b"jP  ":
        raise ValueError("not a JP2 file")
    return output + struct.pack(">I", 8 + 16 + len(xmp)) + b"uuid" + XMP_UUID + xmp


# -- WebP ----------------------------------------------------------------------------------------------
def embed_webp(output: bytes, xmp: bytes, width: int, height: int) -> bytes:
    """Extended-format WebP (VP8X with the XMP flag) with an ``XMP `` chunk after the image data."""
    if output[:4] != b"RIFF" or output[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    chunks = output[12:]
    if chunks[:4] == b"VP8X":  # already extended: set the XMP flag
        flags = chunks[8] | 0x04
        chunks = chunks[:8] + bytes([flags]) + chunks[9:]
    else:
        vp8x = bytes([0x04, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        chunks = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x + chunks
    pad = b"\x00" if len(xmp) % 2 else b""
    chunks += b"XMP " + struct.pack("<I", len(xmp)) + xmp + pad
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def is_srgb_icc(profile: bytes) -> bool:
    """True for an sRGB ICC profile (RGB data colour space, header bytes 16-19, described as sRGB): the
    only RGB profile that describes chromata's output, computed in sRGB. A source in another RGB space
    (Adobe RGB, ProPhoto, …) was converted to sRGB on decoding, so its profile is not carried over."""
    from chromata.media.imageio import is_srgb_profile

    return len(profile) >= 20 and profile[16:20] == b"RGB " and is_srgb_profile(profile)


def label_output(
    source: bytes, output: bytes, ext: str, xmp: bytes, width: int, height: int
) -> tuple[bytes, bytes | None]:
    """Embed the XMP (and the source's carried metadata) in an encoded output.

    Returns (output bytes, sidecar XMP or None when the format cannot carry it)."""
    fmt = format_of("x" + ext)
    slot = fmt.xmp if fmt else "sidecar"
    if slot == "jpeg":
        return embed_jpeg(output, xmp, source_metadata_jpeg(source)), None
    if slot == "png":
        return embed_png(output, xmp, source_metadata_png(source)), None
    if slot == "tiff":
        return embed_tiff(output, xmp, source_metadata_tiff(source)), None
    if slot == "webp":
        return embed_webp(output, xmp, width, height), None
    if slot == "jp2":
        return embed_jp2(output, xmp), None
    return output, xmp
