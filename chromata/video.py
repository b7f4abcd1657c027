"""Film reels and video: colorize frame by frame with temporally smoothed chroma.

Each frame's own L* is kept (as for stills); the model's ab predictions at working resolution are
smoothed over time with an exponential moving average, reset at a cut (a large mean change of L*), so
colours do not flicker from frame to frame and do not bleed from one shot into the next.
Frames are decoded and encoded with OpenCV (its FFmpeg back-end); the output keeps the frame rate and
size. The flicker measure used in the tests and reports is the mean absolute frame-to-frame change of
a*/b* at working resolution.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from chromata import color
from chromata.errors import ImageError
from chromata.models.base import Colorizer

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


@dataclass(frozen=True)
class VideoResult:
    data: bytes
    frames: int
    fps: float
    width: int
    height: int
    uncertainty: float  # mean over frames
    flicker: float  # mean |Δab| between consecutive frames of the output chroma (working resolution)


def _frames(path: str) -> Iterator[NDArray[Any]]:
    cap = cv2.VideoCapture(path)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


CUT_THRESHOLD = 15.0  # mean |ΔL*| between frames above which a new shot starts


def smoothing_weight(prev_l: NDArray[np.float32], cur_l: NDArray[np.float32], alpha: float) -> float:
    """The weight of the new prediction: ``alpha`` within a shot (pans and motion included), 1 at a cut,
    so colours of the previous shot never bleed into the next."""
    change = float(np.mean(np.abs(cur_l - prev_l)))
    return 1.0 if change > CUT_THRESHOLD else alpha


def colorize_video(
    data: bytes,
    ext: str,
    model: Colorizer,
    smoothing: float = 0.3,
    batch_size: int = 8,
    max_frames: int = 100_000,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Colorize an encoded video; ``smoothing`` is the EMA weight of each new frame (1.0 = no smoothing)."""
    if not 0.0 < smoothing <= 1.0:
        raise ValueError("smoothing must be in (0, 1]")
    ext = ext.lower()
    with tempfile.TemporaryDirectory(prefix="chromata-video-") as tmp:
        src, dst = os.path.join(tmp, "in" + ext), os.path.join(tmp, "out" + ext)
        with open(src, "wb") as fh:
            fh.write(data)
        cap = cv2.VideoCapture(src)
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        cap.release()
        writer: Any = None
        prev_ab: NDArray[np.float32] | None = None
        prev_work: NDArray[np.float32] | None = None
        frames, uncertainties, flicker = 0, [], []
        size = (0, 0)
        pending: list[tuple[NDArray[np.float32], NDArray[np.float32]]] = []  # (full-res L, working L)

        def flush() -> None:
            nonlocal writer, prev_ab, prev_work, frames, size
            if not pending:
                return
            pred = model.predict_ab(np.stack([w for _, w in pending]))
            for (light, work), ab, unc in zip(pending, pred.ab, pred.uncertainty, strict=True):
                if prev_ab is not None and prev_work is not None:
                    w = smoothing_weight(prev_work, work, smoothing)
                    smoothed = (w * ab + (1.0 - w) * prev_ab).astype(np.float32)
                    flicker.append(float(np.mean(np.abs(smoothed - prev_ab))))
                else:
                    smoothed = ab
                prev_ab, prev_work = smoothed, work
                uncertainties.append(float(unc.mean()))
                bgr = color.merge_chroma_to(light, smoothed, np.uint8)
                if writer is None:
                    size = (bgr.shape[1], bgr.shape[0])
                    fourcc = cv2.VideoWriter.fourcc(*FOURCC.get(ext, "mp4v"))
                    writer = cv2.VideoWriter(dst, fourcc, fps, size)
                    if not writer.isOpened():
                        raise ImageError("encode_error", f"OpenCV cannot write {ext} video here")
                writer.write(bgr)
                frames += 1
                if on_frame:
                    on_frame(frames)
            pending.clear()

        for frame in _frames(src):
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            light = color.grey_pixels_to_lightness(grey)
            pending.append((light, color.working_lightness(light, model.input_size)))
            if len(pending) >= batch_size:
                flush()
            if frames + len(pending) >= max_frames:
                break
        flush()
        if writer is None:
            raise ImageError("decode_error", "no decodable video frames")
        writer.release()
        with open(dst, "rb") as rf:
            out = rf.read()
    return VideoResult(
        data=out,
        frames=frames,
        fps=fps,
        width=size[0],
        height=size[1],
        uncertainty=float(np.mean(uncertainties)),
        flicker=float(np.mean(flicker)) if flicker else 0.0,
    )
