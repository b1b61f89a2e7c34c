"""Video decoding and frame sampling for indexing (no torch: runs in decode worker processes).

decord reads frames (resized while decoding); PyAV is the fallback for files decord cannot
open. Frame times are the decoder's presentation timestamps, never index / fps. Frames are
read in chunks and only the sampled ones are kept, so a long video never sits in memory.

Strategies:
- `uniform`: N frames at the centres of N equal spans (CLIP4Clip's protocol);
- `fps`: one frame every 1/fps seconds, at most `max_frames` (the rate drops for long videos);
- `shots`: hard cuts found from colour-histogram jumps between consecutive analysed frames;
  inside each shot, frames every 1/fps seconds (always one at the shot's start), near
  duplicates dropped. Gives the shots back for per-shot segment vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

STRATEGIES = ("uniform", "fps", "shots")
DEFAULT_FRAME_SIDE = 224  # shorter side of decoded frames; encoders resize to their own input
ANALYSIS_FPS = 8.0  # frames per second looked at for cut detection (at most)
CUT_THRESHOLD = 0.35  # histogram distance (0..1) between neighbouring analysed frames that marks a cut
# A frame repeats the last kept one when under 1% of its pixels changed visibly; a fraction
# of pixels (not a mean difference) so a small moving object still counts as change.
DUPLICATE_PIXEL_DELTA = 0.12
DUPLICATE_FRACTION = 0.01
CHUNK = 32  # frames decoded per read


class UnreadableVideoError(Exception):
    """The file is not a video we can decode (no video stream, truncated, empty, corrupt)."""


@dataclass
class VideoInfo:
    width: int
    height: int
    duration: float  # seconds, end of the last frame
    times: np.ndarray  # presentation time of every frame, seconds, ascending
    backend: str


@dataclass
class SampledVideo:
    info: VideoInfo
    frames: np.ndarray  # (n, h, w, 3) uint8, shorter side <= frame_side
    times: np.ndarray  # (n,) seconds
    shots: list[tuple[float, float]] = field(default_factory=list)  # [t_start, t_end) covering the video


@dataclass
class SamplingConfig:
    strategy: str = "shots"
    num_frames: int = 12  # uniform
    fps: float = 2.0  # fps and shots
    max_frames: int = 256
    frame_side: int = DEFAULT_FRAME_SIDE

    @classmethod
    def of(cls, settings) -> "SamplingConfig":
        """What a library's settings (config.Settings) say."""
        s = settings
        return cls(strategy=s.video_sampling, num_frames=s.video_frames, fps=s.video_fps, max_frames=s.video_max_frames)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown sampling strategy {self.strategy!r}; use one of {STRATEGIES}")
        if self.num_frames < 1 or self.fps <= 0 or self.max_frames < 1 or self.frame_side < 8:
            raise ValueError("num_frames, fps, max_frames and frame_side must be positive")


def _scaled_size(width: int, height: int, side: int) -> tuple[int, int]:
    short = min(width, height)
    if short <= side:
        return width, height
    s = side / short
    return max(2, round(width * s) // 2 * 2), max(2, round(height * s) // 2 * 2)


# -- backends ---------------------------------------------------------------------------------


class _DecordReader:
    name = "decord"

    def __init__(self, path: str, side: int, width: int, height: int):
        import decord

        out_w, out_h = _scaled_size(width, height, side)
        self.reader = decord.VideoReader(path, width=out_w, height=out_h, num_threads=1)
        if not len(self.reader):
            raise UnreadableVideoError("the video has no frames")
        times = self.reader.get_frame_timestamp(np.arange(len(self.reader)))
        self.info = VideoInfo(width, height, float(times[-1, 1]), times[:, 0].astype(np.float64), self.name)

    def read(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(indices), CHUNK):
            chunk = indices[start : start + CHUNK]
            frames = self.reader.get_batch(chunk.tolist()).asnumpy()
            yield from zip(chunk.tolist(), frames)


class _PyAVReader:
    """Sequential decode; timestamps come from demuxed packets (no decoding needed for them)."""

    name = "pyav"

    def __init__(self, path: str, side: int):
        import av

        self.path, self.side = path, side
        try:
            with av.open(path) as c:
                if not c.streams.video:
                    raise UnreadableVideoError("the file has no video stream")
                stream = c.streams.video[0]
                tb = float(stream.time_base)
                pts = sorted(p.pts for p in c.demux(stream) if p.pts is not None and p.size)
                w, h = stream.codec_context.width, stream.codec_context.height
                frame_s = 1 / float(stream.average_rate) if stream.average_rate else 0.0
        except av.error.FFmpegError as e:
            raise UnreadableVideoError(f"cannot read video: {e}") from e
        if not pts or not w or not h:
            raise UnreadableVideoError("the video has no frames")
        times = np.asarray(pts, np.float64) * tb
        self.info = VideoInfo(w, h, float(times[-1] + frame_s), times, self.name)

    def read(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        import av

        wanted = set(indices.tolist())
        out_w, out_h = _scaled_size(self.info.width, self.info.height, self.side)
        by_time = {round(t, 6): i for i, t in enumerate(self.info.times)}
        with av.open(self.path) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in c.decode(stream):
                if frame.pts is None:
                    continue
                i = by_time.get(round(float(frame.pts * stream.time_base), 6))
                if i in wanted:
                    yield i, frame.to_ndarray(format="rgb24", width=out_w, height=out_h)
                    wanted.discard(i)
                    if not wanted:
                        return


def open_video(path: str, side: int = DEFAULT_FRAME_SIDE):
    """A reader (decord, else PyAV) with `.info` and `.read(indices)`; UnreadableVideoError if neither can."""
    import av

    # PyAV probes the container first: it names the problem (no video stream, not a video)
    # where decord only says it failed.
    try:
        with av.open(path) as c:
            if not c.streams.video:
                raise UnreadableVideoError("the file has no video stream")
            width, height = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
    except av.error.FFmpegError as e:
        raise UnreadableVideoError(f"not a readable video: {e}") from e
    if not width or not height:
        raise UnreadableVideoError("the video stream has no frame size")
    try:
        return _DecordReader(path, side, width, height)
    except UnreadableVideoError:
        raise
    except Exception as e:  # decord raises its own DECORDError and RuntimeErrors
        log.info("decord cannot open %s (%s); decoding with PyAV", path, e)
    return _PyAVReader(path, side)


# -- sampling ---------------------------------------------------------------------------------


def nearest_indices(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame shown at each target time (the last frame starting at or before it)."""
    idx = np.searchsorted(times, targets, side="right") - 1
    return np.unique(np.clip(idx, 0, len(times) - 1))


def uniform_indices(info: VideoInfo, n: int) -> np.ndarray:
    start, end = float(info.times[0]), info.duration
    centres = start + (np.arange(n) + 0.5) * (end - start) / n
    return nearest_indices(info.times, centres)


def fps_indices(info: VideoInfo, fps: float, max_frames: int) -> np.ndarray:
    start, end = float(info.times[0]), info.duration
    step = max(1 / fps, (end - start) / max_frames)
    return nearest_indices(info.times, np.arange(start, end, step))[:max_frames]


def _histogram(frame: np.ndarray, bins: int = 8) -> np.ndarray:
    """Joint RGB histogram (bins^3), normalised to sum 1, from a subsampled frame."""
    small = frame[:: max(1, frame.shape[0] // 48), :: max(1, frame.shape[1] // 48)]
    q = (small.astype(np.int32) * bins) // 256
    codes = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    h = np.bincount(codes.ravel(), minlength=bins**3).astype(np.float32)
    return h / h.sum()


def _tiny(frame: np.ndarray) -> np.ndarray:
    return frame[:: max(1, frame.shape[0] // 32), :: max(1, frame.shape[1] // 32)].astype(np.float32) / 255


def _repeats(tiny: np.ndarray, last: np.ndarray | None) -> bool:
    return (
        last is not None
        and float((np.abs(tiny - last).max(axis=-1) > DUPLICATE_PIXEL_DELTA).mean()) < DUPLICATE_FRACTION
    )


def sample_shots(reader, cfg: SamplingConfig) -> SampledVideo:
    """One pass over frames at up to ANALYSIS_FPS: cuts where the histogram jumps, and frames
    every 1/fps seconds within each shot (the first frame of every shot always)."""
    info = reader.info
    start, end = float(info.times[0]), info.duration
    analysed = nearest_indices(info.times, np.arange(start, end, 1 / ANALYSIS_FPS))
    span = max(end - start, 1e-6)
    step = max(1 / cfg.fps, span / cfg.max_frames)
    frames, times, cuts = [], [], []
    prev_hist = None
    next_sample = start
    last_kept_tiny = None
    for i, frame in reader.read(analysed):
        t = float(info.times[i])
        hist = _histogram(frame)
        is_cut = prev_hist is not None and 0.5 * float(np.abs(hist - prev_hist).sum()) > CUT_THRESHOLD
        prev_hist = hist
        if is_cut:
            cuts.append(t)
            next_sample = t
            last_kept_tiny = None
        if t + 1e-9 < next_sample:
            continue
        next_sample = max(next_sample + step, t + step / 2)
        tiny = _tiny(frame)
        if _repeats(tiny, last_kept_tiny):
            continue  # a still stretch: the previous kept frame already shows it
        last_kept_tiny = tiny
        frames.append(frame)
        times.append(t)
    if not frames:
        raise UnreadableVideoError("no frame could be decoded")
    bounds = [start, *cuts, end]
    shots = [(a, b) for a, b in zip(bounds, bounds[1:])]
    return SampledVideo(info, np.stack(frames), np.asarray(times), shots)


def _with_fallback(path: str, side: int, use):
    """use(reader) with decord; when decord fails mid-read (it cannot copy frames of some
    odd sizes, among other things), again with PyAV; UnreadableVideoError if both fail."""
    reader = open_video(path, side)
    try:
        return use(reader)
    except UnreadableVideoError:
        raise
    except Exception as e:
        if reader.info.backend != "decord":
            raise UnreadableVideoError(f"cannot decode video: {e}") from e
        log.info("decord failed reading %s (%s); decoding with PyAV", path, e)
    try:
        return use(_PyAVReader(path, side))
    except UnreadableVideoError:
        raise
    except Exception as e:
        raise UnreadableVideoError(f"cannot decode video: {e}") from e


def _sample(reader, cfg: SamplingConfig) -> SampledVideo:
    if cfg.strategy == "shots":
        return sample_shots(reader, cfg)
    info = reader.info
    idx = (
        uniform_indices(info, cfg.num_frames)
        if cfg.strategy == "uniform"
        else fps_indices(info, cfg.fps, cfg.max_frames)
    )
    got = list(reader.read(idx))
    if not got:
        raise UnreadableVideoError("no frame could be decoded")
    return SampledVideo(
        info, np.stack([f for _, f in got]), info.times[[i for i, _ in got]], [(float(info.times[0]), info.duration)]
    )


def sample_video(path: str, cfg: SamplingConfig | None = None) -> SampledVideo:
    """Decode and sample one video per the config; raises UnreadableVideoError."""
    cfg = cfg or SamplingConfig()
    return _with_fallback(path, cfg.frame_side, lambda reader: _sample(reader, cfg))


def frame_at(path: str, t: float, side: int = DEFAULT_FRAME_SIDE) -> np.ndarray:
    """The frame shown at t seconds (uint8 HxWx3, shorter side <= side)."""

    def first(reader):
        for _, frame in reader.read(nearest_indices(reader.info.times, np.asarray([t]))):
            return frame
        raise UnreadableVideoError(f"no frame at {t} s")

    return _with_fallback(path, side, first)
