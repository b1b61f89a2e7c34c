"""A video clip as the query: sampled and embedded as an index job embeds a video, then
searched with the mean of its frames (against images, segments and frames) and with its
pooled vector (against videos' pooled vectors), so one clip finds photos, videos and moments.

Bounded: a clip longer than max_seconds is refused before any frame is decoded, the frames
are at most the library's per-video sampling limit, and at most QUERY_VIDEOS_AT_ONCE clips
are decoded at a time (a request waits QUERY_VIDEO_WAIT_S for its turn, then is refused).
"""

from __future__ import annotations

import threading

import numpy as np

from ..encoders.temporal import TemporalPooler
from ..encoders.video import SamplingConfig, UnreadableVideoError, open_video
from ..indexer.decode_video import decode_video
from ..indexer.video_vectors import video_vectors
from ..search.engine import QueryVectors
from ..search.query import QueryError

QUERY_VIDEOS_AT_ONCE = 2
QUERY_VIDEO_WAIT_S = 10.0
_DECODING = threading.BoundedSemaphore(QUERY_VIDEOS_AT_ONCE)


class QueryVideoBusy(RuntimeError):
    """Other clips took every decoding turn for the whole wait."""


def video_query_vectors(
    path: str, encoder, pooler: TemporalPooler, sampling: SamplingConfig, max_seconds: float
) -> QueryVectors:
    """The query vectors of a clip file. QueryError for a file that is not a readable video or
    is too long; QueryVideoBusy when no decoding turn came."""
    try:
        duration = open_video(path).info.duration
    except UnreadableVideoError as e:
        raise QueryError(f"the upload is not a readable video: {e}") from e
    if duration > max_seconds:
        raise QueryError(f"the query video is {duration:.1f} s long; at most {max_seconds:g} s is searched with")
    if not _DECODING.acquire(timeout=QUERY_VIDEO_WAIT_S):
        raise QueryVideoBusy(f"{QUERY_VIDEOS_AT_ONCE} query videos are being decoded; try again shortly")
    try:
        decoded = decode_video(path, sampling)
    finally:
        _DECODING.release()
    if decoded.error:
        raise QueryError(f"the upload is not a readable video: {decoded.error}")
    vectors = video_vectors(decoded, encoder, pooler)
    frames = vectors.frames.mean(axis=0)
    return QueryVectors(frames / max(float(np.linalg.norm(frames)), 1e-12), vectors.video, "video")
