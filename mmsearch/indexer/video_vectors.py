"""A decoded video's vectors at three levels: frames (with times), segments (a shot or a
window of it; mean of its frames) and the whole video (temporal pooling); plus keyframes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders.temporal import TemporalPooler, mean_pool
from ..storage.files import atomic_path
from ..storage.store import Segment, Vector, encode_embedding
from .decode_video import DecodedVideo, segment_members

KEYFRAME_SIDE = 256


@dataclass
class VideoVectors:
    frames: np.ndarray  # (n, d)
    frame_segment: np.ndarray  # (n,) index of the segment each frame belongs to
    segments: np.ndarray  # (s, d)
    keyframe_index: list[int]  # per segment, the sampled frame nearest its middle
    video: np.ndarray  # (d,)


def segment_vectors(
    frames: np.ndarray, times: np.ndarray, segments: list[tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per segment the mean of its frames' vectors; per frame the segment its time falls in;
    and each segment's member frames."""
    members = segment_members(times, segments)
    starts = np.asarray([a for a, _ in segments])
    frame_segment = np.clip(np.searchsorted(starts, times + 1e-6, side="right") - 1, 0, len(starts) - 1)
    return np.stack([mean_pool(frames[m]) for m in members]), frame_segment, members


def frame_vectors(video: DecodedVideo, encoder) -> np.ndarray:
    """(n, d) vectors of the video's sampled frames."""
    return encoder.embed_images([Image.fromarray(f) for f in video.frames])


def keyframe_indices(times: np.ndarray, segments: list[tuple[float, float]]) -> list[int]:
    """Per segment, the sampled frame nearest its middle."""
    members = segment_members(times, segments)
    return [int(m[np.argmin(np.abs(times[m] - (a + b) / 2))]) for m, (a, b) in zip(members, segments)]


def vectors_of_frames(video: DecodedVideo, frames: np.ndarray, pooler: TemporalPooler) -> VideoVectors:
    """The video's segment and pooled vectors from its frames' vectors."""
    segments, frame_segment, _ = segment_vectors(frames, video.times, video.segments)
    keyframes = keyframe_indices(video.times, video.segments)
    return VideoVectors(frames, frame_segment, segments, keyframes, pooler.pool(frames, video.times))


def video_vectors(video: DecodedVideo, encoder, pooler: TemporalPooler) -> VideoVectors:
    return vectors_of_frames(video, frame_vectors(video, encoder), pooler)


def save_keyframe(frame: np.ndarray, directory: Path, name: str) -> Path:
    """A JPEG of the frame (shorter side at most KEYFRAME_SIDE), written atomically."""
    img = Image.fromarray(frame)
    img.thumbnail((KEYFRAME_SIDE * 4, KEYFRAME_SIDE) if img.width >= img.height else (KEYFRAME_SIDE, KEYFRAME_SIDE * 4))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jpg"
    with atomic_path(path, durable=False) as tmp:  # a keyframe can be cut again from its video
        img.save(tmp, format="JPEG", quality=85)
    return path


@dataclass
class VideoRows:
    """A video's vector rows in one space, to add to a session: its frames', its segments' and
    its pooled one (in the pooled space)."""

    frames: list[Vector]
    segments: list[Vector]
    video: Vector

    def all(self) -> list[Vector]:
        return [*self.frames, *self.segments, self.video]


def video_rows(
    media_id: int, segments: list[Segment], times: np.ndarray, vecs: VideoVectors, space: str, pooled_space: str
) -> VideoRows:
    """The rows of a video's vectors, on its segment rows (in the order of vecs.segments)."""
    dim = int(vecs.video.shape[-1])

    def row(kind: str, v: np.ndarray, **where) -> Vector:
        return Vector(media_id=media_id, kind=kind, dim=dim, embedding=encode_embedding(v), **where)

    return VideoRows(
        frames=[
            row("frame", v, segment_id=segments[k].id, space=space, t=float(t))
            for v, t, k in zip(vecs.frames, times, vecs.frame_segment)
        ],
        segments=[row("segment", v, segment_id=seg.id, space=space) for seg, v in zip(segments, vecs.segments)],
        video=row("video", vecs.video, space=pooled_space),
    )
