"""Film reels and video: colorize frame by frame with temporally smoothed chroma, streamed.

Each frame's own L* is kept (as for stills); the model's ab predictions at working resolution are
smoothed over time with an exponential moving average, reset at a cut (a large mean change of L*), so
colours do not flicker from frame to frame and do not bleed from one shot into the next.

Frames are decoded from a local file and encoded into another with OpenCV (its FFmpeg back-end), a chunk
at a time (``chunk`` frames in flight), so memory is bounded by the chunk, whatever the reel's length; the
output keeps the frame rate and size. The input checks run on frames sampled across the reel before any is
colorized (``sample_checks``). The flicker measure used in the tests and reports is the mean absolute
frame-to-frame change of a*/b* at working resolution.

The confidence (score version 2, :mod:`chromata.judgement.assess`) judges up to ``ASSESSED_FRAMES`` delivered
frames spread over the reel; the least good counts, as a page set's least good page does. Films decode without
the restraint stills get (:func:`chromata.models.postprocess.without_restraint`): it was measured on stills, and
its per-region threshold, applied frame by frame, can switch a region's chroma from one frame to the next.
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

from chromata.colormath import color
from chromata.errors import ImageError
from chromata.judgement import inputchecks
from chromata.media.formats import BY_EXTENSION
from chromata.models.base import Colorizer, model_input
from chromata.models.postprocess import assessments, without_restraint

F32 = NDArray[np.float32]
CUT_THRESHOLD = 15.0  # mean |ΔL*| between frames above which a new shot starts
SAMPLED_FRAMES = 16  # frames the input checks look at, spread over the reel
ASSESSED_FRAMES = 12  # frames the confidence estimator judges, spread over the reel (the least good one counts)


@dataclass(frozen=True)
class FilmInfo:
    frames: int  # as the container says (an estimate for some codecs)
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class StreamResult:
    frames: int
    fps: float
    width: int
    height: int
    uncertainty: F32  # the per-pixel uncertainty (working resolution), averaged over the frames
    flicker: float  # mean |Δab| between consecutive frames of the output chroma (working resolution)
    # the confidence estimator's assessment of up to ASSESSED_FRAMES frames spread over the reel (None: the
    # package ships no estimator), and which frames (0-based)
    assessments: list[Any] | None = None
    assessed_frames: tuple[int, ...] = ()


class _Spread:
    """Up to ``k`` frames spread evenly over a reel of unknown length (a container's frame count may be wrong):
    every ``stride``-th frame is kept, and when 2k are kept every other one is dropped and the stride doubled;
    at the end ``k`` are picked evenly from what is kept."""

    def __init__(self, k: int) -> None:
        self.k, self.stride = k, 1
        self.kept: list[tuple[int, F32, F32]] = []

    def offer(self, index: int, work: F32, ab: F32) -> None:
        if index % self.stride:
            return
        self.kept.append((index, work, ab.copy()))  # a copy: ``ab`` may be a view into a whole chunk
        if len(self.kept) >= 2 * self.k:
            self.kept, self.stride = self.kept[::2], self.stride * 2

    def picked(self) -> list[tuple[int, F32, F32]]:
        if len(self.kept) <= self.k:
            return self.kept
        at = np.linspace(0, len(self.kept) - 1, self.k).round().astype(int)
        return [self.kept[i] for i in at]


@dataclass(frozen=True)
class VideoResult:
    data: bytes
    frames: int
    fps: float
    width: int
    height: int
    uncertainty: float  # mean over frames and pixels
    flicker: float


def film_info(path: str) -> FilmInfo:
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise ImageError("decode_error", "not a video OpenCV can open")
        get = cap.get
        info = FilmInfo(int(get(cv2.CAP_PROP_FRAME_COUNT)), float(get(cv2.CAP_PROP_FPS)) or 25.0,
                        int(get(cv2.CAP_PROP_FRAME_WIDTH)), int(get(cv2.CAP_PROP_FRAME_HEIGHT)))  # fmt: skip
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise ImageError("decode_error", "no decodable video frames")
    return info


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


def sample_checks(path: str, info: FilmInfo, samples: int = SAMPLED_FRAMES) -> inputchecks.InputChecks:
    """The input checks on up to ``samples`` frames spread over the reel; a reason (or colour) holds for
    the film when it holds on most of them."""
    checks = inputchecks.InputChecks("most")
    step = max(1, info.frames // samples) if info.frames > 0 else 1
    cap = cv2.VideoCapture(path)
    try:
        for i in range(samples):
            if step > 1:
                cap.set(cv2.CAP_PROP_POS_FRAMES, i * step)
            ok, frame = cap.read()
            if not ok:
                break
            light = color.grey_pixels_to_lightness(_grey(frame))
            checks.add(color.reduce_lightness(light), frame.shape[1], frame.shape[0], inputchecks.unit_tone(frame))
    finally:
        cap.release()
    return checks


def _grey(frame: NDArray[Any]) -> NDArray[Any]:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame


def smoothing_weight(prev_l: F32, cur_l: F32, alpha: float) -> float:
    """The weight of the new prediction: ``alpha`` within a shot (pans and motion included), 1 at a cut,
    so colours of the previous shot never bleed into the next."""
    change = float(np.mean(np.abs(cur_l - prev_l)))
    return 1.0 if change > CUT_THRESHOLD else alpha


class _Smoother:
    """The temporal EMA of the predicted chroma, with the running statistics of the reel."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.prev_ab: F32 | None = None
        self.prev_work: F32 | None = None
        self.unc_sum: F32 | None = None
        self.frames = 0
        self.flicker: list[float] = []

    def __call__(self, work: F32, ab: F32, unc: F32) -> F32:
        if self.prev_ab is not None and self.prev_work is not None:
            w = smoothing_weight(self.prev_work, work, self.alpha)
            ab = (w * ab + (1.0 - w) * self.prev_ab).astype(np.float32)
            self.flicker.append(float(np.mean(np.abs(ab - self.prev_ab))))
        self.prev_ab, self.prev_work = ab, work
        self.unc_sum = unc.astype(np.float32) if self.unc_sum is None else self.unc_sum + unc
        self.frames += 1
        return ab


def colorize_stream(
    src: str,
    dst: str,
    fourcc: str,
    model: Colorizer,
    *,
    smoothing: float = 0.3,
    chunk: int = 8,
    max_frames: int = 100_000,
    on_frame: Callable[[int], None] | None = None,
) -> StreamResult:
    """Colorize the video file ``src`` into ``dst`` (codec ``fourcc``), ``chunk`` frames at a time."""
    if not 0.0 < smoothing <= 1.0:
        raise ValueError("smoothing must be in (0, 1]")
    info = film_info(src)
    smooth = _Smoother(smoothing)
    writer: Any = None
    pending: list[tuple[F32, F32]] = []  # (full-res L, working L)
    sampled = _Spread(ASSESSED_FRAMES)

    def flush() -> None:
        nonlocal writer
        if not pending:
            return
        pred = model.predict_ab(np.stack([w for _, w in pending]))
        for (light, work), ab, unc in zip(pending, pred.ab, pred.uncertainty, strict=True):
            delivered = smooth(work, ab, unc)
            sampled.offer(smooth.frames - 1, work, delivered)
            bgr = color.merge_chroma_to(light, delivered, np.uint8)
            if writer is None:
                writer = cv2.VideoWriter(dst, cv2.VideoWriter.fourcc(*fourcc), info.fps, (bgr.shape[1], bgr.shape[0]))
                if not writer.isOpened():
                    raise ImageError("encode_error", f"OpenCV cannot write {os.path.splitext(dst)[1]} video here")
            writer.write(bgr)
            if on_frame:
                on_frame(smooth.frames)
        pending.clear()

    def stream() -> None:
        for frame in _frames(src):
            light = color.grey_pixels_to_lightness(_grey(frame))
            pending.append((light, model_input(model, light)))
            if len(pending) >= chunk:
                flush()
            if smooth.frames + len(pending) >= max_frames:
                break
        flush()

    try:
        with without_restraint():  # restraint was measured on stills; a per-frame threshold would flicker
            stream()
    finally:
        if writer is not None:
            writer.release()
    if smooth.unc_sum is None:
        raise ImageError("decode_error", "no decodable video frames")
    flicker = float(np.mean(smooth.flicker)) if smooth.flicker else 0.0
    mean_uncertainty = (smooth.unc_sum / smooth.frames).astype(np.float32)
    picked = sampled.picked()
    judged = assessments(np.stack([w for _, w, _ in picked]), np.stack([a for _, _, a in picked]))
    return StreamResult(smooth.frames, info.fps, info.width, info.height, mean_uncertainty, flicker, judged,
                        tuple(i for i, _, _ in picked))  # fmt: skip


def colorize_video(
    data: bytes,
    ext: str,
    model: Colorizer,
    smoothing: float = 0.3,
    batch_size: int = 8,
    max_frames: int = 100_000,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Colorize an encoded video held in memory (small clips, tests); ``colorize_stream`` for reels."""
    ext = ext.lower()
    fmt = BY_EXTENSION.get(ext)
    with tempfile.TemporaryDirectory(prefix="chromata-video-") as tmp:
        src, dst = os.path.join(tmp, "in" + ext), os.path.join(tmp, "out" + ext)
        with open(src, "wb") as fh:
            fh.write(data)
        res = colorize_stream(src, dst, (fmt.fourcc if fmt else None) or "mp4v", model, smoothing=smoothing,
                              chunk=batch_size, max_frames=max_frames, on_frame=on_frame)  # fmt: skip
        with open(dst, "rb") as rf:
            out = rf.read()
    return VideoResult(out, res.frames, res.fps, res.width, res.height, float(res.uncertainty.mean()), res.flicker)
