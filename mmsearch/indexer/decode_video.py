"""Video decoding for index jobs (worker processes; no torch): sampled frames, their times,
the shots, and the segments to store. Never raises for a bad file: the error is returned."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..encoders.video import SamplingConfig, UnreadableVideoError, sample_video
from ..storage.files import file_digest
from .capture import Capture, video_file_capture

MAX_SEGMENT_S = 10.0  # longer shots are split into windows of at most this long


@dataclass
class DecodedVideo:
    path: str
    content_hash: str | None = None
    frames: np.ndarray | None = None  # (n, h, w, 3) uint8
    times: np.ndarray | None = None  # (n,) seconds, decoder presentation times
    segments: list[tuple[float, float]] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    capture: Capture = field(default_factory=Capture)  # container tags: when, with what, where
    error: str | None = None
    # The frames still held once `frames` is dropped (keep_only), by index: a video sent back
    # over the network carries its keyframes only.
    kept: dict[int, np.ndarray] = field(default_factory=dict)

    def frame(self, i: int) -> np.ndarray:
        return self.frames[i] if self.frames is not None else self.kept[i]

    def keep_only(self, indices: list[int]) -> None:
        """Drop every frame but these (their vectors are made)."""
        self.kept = {i: self.frame(i) for i in indices}
        self.frames = None


def split_segments(shots: list[tuple[float, float]], max_len: float = MAX_SEGMENT_S) -> list[tuple[float, float]]:
    """Each shot, cut into equal windows of at most max_len seconds."""
    out = []
    for a, b in shots:
        n = max(1, int(np.ceil((b - a) / max_len - 1e-9)))
        edges = np.linspace(a, b, n + 1)
        out.extend((float(x), float(y)) for x, y in zip(edges[:-1], edges[1:]))
    return out


def decode_video(path: str, sampling: SamplingConfig) -> DecodedVideo:
    out = DecodedVideo(path)
    try:
        out.content_hash = file_digest(path)
    except OSError as e:
        out.error = f"cannot read: {e}"
        return out
    try:
        sampled = sample_video(path, sampling)
    except UnreadableVideoError as e:
        out.error = str(e)
        return out
    out.frames, out.times = sampled.frames, sampled.times
    out.segments = split_segments(sampled.shots)
    out.width, out.height, out.duration = sampled.info.width, sampled.info.height, sampled.info.duration
    out.capture = video_file_capture(path)
    return out


def segment_members(times: np.ndarray, segments: list[tuple[float, float]]) -> list[np.ndarray]:
    """Frame indices of each segment; a segment with no sampled frame of its own (a still
    stretch whose repeats were dropped) takes the last frame shown before it ends."""
    members = []
    for k, (a, b) in enumerate(segments):
        last = k == len(segments) - 1
        inside = np.nonzero((times >= a - 1e-6) & ((times <= b + 1e-6) if last else (times < b - 1e-6)))[0]
        if not len(inside):
            before = np.nonzero(times < b)[0]
            inside = before[-1:] if len(before) else np.array([0])
        members.append(inside)
    return members
