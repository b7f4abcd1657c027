"""Colorize scans too large to hold in memory: a TIFF read and written in bands of rows.

A 20 000 x 20 000 16-bit scan is 800 MB of grey samples and 2.4 GB of RGB output, and the in-memory
path needs tens of bytes per pixel for its float intermediates. Here the image never exists whole:

1. ``analyse`` streams the source once (strip by strip or tile by tile, as the file stores it; an
   uncompressed file is read row band by row band), computing L* per band and keeping only a block-
   averaged reduction (``color.reduce_lightness``) for the model and the input checks.
2. The caller runs the model on that reduction, exactly as for any image.
3. ``write_colorized`` streams the source a second time; each band's full-resolution L* is merged with
   the chroma upsampled for just those rows (the same bilinear mapping as ``cv2.resize``, so the result
   equals the in-memory path's) and written as tiles of a LZW-compressed TIFF, the XMP label embedded.

Peak memory is a few bands (``BAND_ROWS`` rows) plus the chroma map widened to the full width.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chromata.colormath import color
from chromata.errors import ImageError
from chromata.judgement import inputchecks
from chromata.media import visible_label

BAND_ROWS = 256  # output tile height, and the rows processed at a time
TILE_COLS = 256


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    dtype: np.dtype[Any]
    samples: int  # 1 (grey) or 3 (RGB), extra samples (alpha) dropped
    invert: bool  # MINISWHITE: 0 is white

    @property
    def bit_depth(self) -> int:
        return 16 if self.dtype == np.uint16 else 8


@dataclass
class Analysis:
    layout: Layout
    lightness: NDArray[np.float32]  # block-averaged L* (color.reduce_lightness)
    tone: inputchecks.Tone | None  # of an RGB scan (None for grey): the engine's input checks take both


def _open(path: str) -> Any:
    import tifffile

    try:
        return tifffile.TiffFile(path)
    except Exception as exc:
        raise ImageError("decode_error", f"not a readable TIFF: {exc}") from exc


def _layout(tif: Any) -> Layout:
    import tifffile

    pages = [p for p in tif.pages if isinstance(p, tifffile.TiffPage) and not p.is_reduced]
    if len(pages) != 1:
        raise ImageError("too_large", f"a {len(pages)}-page TIFF too large for memory cannot be tiled")
    page = pages[0]
    photometric = int(page.photometric)
    if photometric not in (0, 1, 2):  # MINISWHITE, MINISBLACK, RGB
        raise ImageError(
            "unsupported_format", f"tiled processing reads grey or RGB TIFFs, not photometric {photometric}"
        )
    if page.dtype not in (np.uint8, np.uint16):
        raise ImageError("unsupported_depth", f"sample type {page.dtype} is not 8- or 16-bit")
    if page.samplesperpixel > 1 and int(page.planarconfig) != 1:
        raise ImageError("unsupported_format", "tiled processing reads interleaved (contiguous) samples only")
    samples = 3 if photometric == 2 else 1
    return Layout(int(page.imagewidth), int(page.imagelength), np.dtype(page.dtype), samples, photometric == 0)


def _segment_rows(tif: Any, layout: Layout, max_segment_bytes: int) -> Iterator[NDArray[Any]]:
    """The image as consecutive bands of rows, in whatever bands the file stores (strips or tile rows)."""
    page = tif.pages[0]
    row_bytes = layout.width * page.samplesperpixel * layout.dtype.itemsize
    if page.is_contiguous and int(page.compression) == 1:  # uncompressed: read BAND_ROWS rows at a time
        fh = tif.filehandle
        dtype = layout.dtype.newbyteorder(tif.byteorder)
        for y in range(0, layout.height, BAND_ROWS):
            rows = min(BAND_ROWS, layout.height - y)
            fh.seek(int(page.dataoffsets[0]) + y * row_bytes)
            raw = np.frombuffer(fh.read(rows * row_bytes), dtype=dtype)
            yield raw.reshape(rows, layout.width, page.samplesperpixel).astype(layout.dtype, copy=False)
        return
    chunk_rows = int(page.chunks[0])
    if chunk_rows * row_bytes > max_segment_bytes:
        raise ImageError(
            "too_large",
            f"stored as {chunk_rows}-row strips of {chunk_rows * row_bytes / 2**20:.0f} MiB each; "
            "save it tiled or in smaller strips to process it in bounded memory",
        )
    band: NDArray[Any] | None = None
    band_y = -1
    for segment, index, _shape in page.segments(sort=True, maxworkers=1):
        y, x = int(index[2]), int(index[3])
        if y != band_y:
            if band is not None:
                yield band
            band_y = y
            band = np.empty((min(chunk_rows, layout.height - y), layout.width, page.samplesperpixel), layout.dtype)
        assert band is not None
        seg = segment[0]  # (rows, cols, samples), padded to the chunk's size at the edges
        cols = min(seg.shape[1], layout.width - x)
        band[:, x : x + cols] = seg[: band.shape[0], :cols]
    if band is not None:
        yield band


def _rechunk(bands: Iterator[NDArray[Any]], rows: int) -> Iterator[NDArray[Any]]:
    """Re-cut a stream of bands into bands of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[NDArray[Any]] = []
    have = 0
    for band in bands:
        pending.append(band)
        have += band.shape[0]
        while have >= rows:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:rows]
            rest = joined[rows:]
            pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]
    if have:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


def _bands(tif: Any, layout: Layout, max_segment_bytes: int) -> Iterator[NDArray[Any]]:
    """Bands of ``BAND_ROWS`` rows as OpenCV-style pixels: (rows, W) grey or (rows, W, 3) BGR."""
    for band in _rechunk(_segment_rows(tif, layout, max_segment_bytes), BAND_ROWS):
        if layout.samples == 1:
            grey = np.ascontiguousarray(band[..., 0])
            if layout.invert:
                grey = np.iinfo(layout.dtype).max - grey
            yield grey
        else:
            yield np.ascontiguousarray(band[..., 2::-1])  # RGB(A) -> BGR


def analyse(path: str, max_segment_bytes: int = 256 << 20) -> Analysis:
    """First pass: the layout, a reduced L* (for the model and the input checks) and the tone of an RGB scan."""
    with _open(path) as tif:
        layout = _layout(tif)
        factor = color.reduction_factor(layout.width, layout.height)
        light = color.BlockReducer(layout.width, factor)
        colour = color.BlockReducer(layout.width, factor) if layout.samples == 3 else None
        for band in _bands(tif, layout, max_segment_bytes):
            light.add(color.lightness_of(band))
            if colour is not None:
                colour.add(band.astype(np.float32))
    tone = None
    if colour is not None:
        reduced = colour.result()
        tone = inputchecks.classify_tone(np.clip(reduced + 0.5, 0, np.iinfo(layout.dtype).max).astype(layout.dtype))
    return Analysis(layout, light.result(), tone)


def write_colorized(
    path: str,
    out_path: str,
    ab: NDArray[np.float32],
    *,
    label: str = "none",
    xmp: bytes | None = None,
    max_segment_bytes: int = 256 << 20,
) -> Layout:
    """Second pass: merge each band's full-resolution L* with its rows of the upsampled chroma and write
    an RGB TIFF of the source's bit depth (LZW with horizontal predictor, 256 x 256 tiles), the XMP packet
    in tag 700."""
    import tifffile

    with _open(path) as tif:
        layout = _layout(tif)
        w, h = layout.width, layout.height
        ab_wide = color.resize_ab(ab, w, ab.shape[0])  # widened here; rows are interpolated per band
        border = visible_label.label_border_strip(w, h, layout.dtype)[..., ::-1] if label == "border" else None  # RGB

        def rgb_bands() -> Iterator[NDArray[Any]]:
            y = 0
            for band in _bands(tif, layout, max_segment_bytes):
                rows = band.shape[0]
                out = color.merge_chroma_to(
                    color.lightness_of(band), color.chroma_rows(ab_wide, h, y, rows), layout.dtype
                )
                if label == "corner":
                    out = visible_label.label_corner_rows(out, y, h)
                yield out[..., ::-1]
                y += rows
            if border is not None:
                yield border

        def tiles() -> Iterator[NDArray[Any]]:
            for band in _rechunk(rgb_bands(), BAND_ROWS):
                for x in range(0, w, TILE_COLS):
                    yield band[:, x : x + TILE_COLS]

        out_h = h + (border.shape[0] if border is not None else 0)
        extratags = [(700, "B", 0, xmp, True)] if xmp else []
        tifffile.imwrite(
            out_path,
            data=tiles(),
            shape=(out_h, w, 3),
            dtype=layout.dtype,
            photometric="rgb",
            compression="lzw",
            predictor=True,  # horizontal differencing, as OpenCV writes the in-memory TIFFs
            tile=(BAND_ROWS, TILE_COLS),
            extratags=extratags,
            software="chromata",
            metadata=None,
        )
    return layout
