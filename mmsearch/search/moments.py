"""The moment of a video that matches a query: its best segment, trimmed to the run of
frames around the best frame whose similarity stays high.

"High" is relative to the rest of the video: a frame stays when it scores nearer the
segment's best frame than the best frame elsewhere in the video. A video of one segment is
not trimmed (nothing in it tells a match from a non-match)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from ..storage.store import Segment, Store, Vector, decode_embeddings


def best_moment(store: Store, space: str, media_id: int, q: np.ndarray) -> tuple[float, float] | None:
    """The moment of an indexed video (from its stored segment and frame vectors)."""
    with store.session() as s:
        segments = s.execute(
            select(Segment.id, Segment.t_start, Segment.t_end)
            .where(Segment.media_id == media_id)
            .order_by(Segment.t_start)
        ).all()
        rows = s.execute(
            select(Vector.kind, Vector.segment_id, Vector.t.label("time"), Vector.dim, Vector.embedding).where(
                Vector.media_id == media_id, Vector.space == space, Vector.kind.in_(("frame", "segment"))
            )
        ).all()
    if not segments or not rows:
        return None
    dim = rows[0].dim
    position = {sg.id: k for k, sg in enumerate(segments)}
    seg_rows = [r for r in rows if r.kind == "segment"]
    seg_vecs = np.full((len(segments), dim), np.nan, np.float32)  # nan: a segment without a vector never wins
    seg_vecs[[position[r.segment_id] for r in seg_rows]] = decode_embeddings([r.embedding for r in seg_rows], dim)
    frames = sorted((r for r in rows if r.kind == "frame"), key=lambda r: r.time)
    return find_moment(
        q,
        [(sg.t_start, sg.t_end) for sg in segments],
        np.nan_to_num(seg_vecs, nan=-1.0),
        np.asarray([r.time for r in frames]),
        np.asarray([position[r.segment_id] for r in frames], np.int64),
        decode_embeddings([r.embedding for r in frames], dim),
    )


def find_moment(
    q: np.ndarray,
    segments: list[tuple[float, float]],
    segment_vectors: np.ndarray,
    frame_times: np.ndarray,
    frame_segments: np.ndarray,
    frame_vectors: np.ndarray,
) -> tuple[float, float]:
    """The best-scoring segment, trimmed at either end to the frames that score nearer its
    best frame than the best frame elsewhere in the video."""
    best = int(np.argmax(segment_vectors @ q))
    t_start, t_end = segments[best]
    inside = frame_segments == best
    if not inside.any() or inside.all():
        return float(t_start), float(t_end)
    all_sims = frame_vectors @ q
    sims, times = all_sims[inside], frame_times[inside]
    lo, hi = trim_run(sims, (sims.max() - all_sims[~inside].max()) / 2)
    start = t_start if lo == 0 else times[lo]
    end = t_end if hi == len(sims) - 1 else times[hi + 1]
    return float(start), float(end)


def trim_run(sims: np.ndarray, margin: float) -> tuple[int, int]:
    """First and last index of the contiguous run around the best score where every score
    is within `margin` of it (a negative margin keeps just the best)."""
    best = int(np.argmax(sims))
    keep = sims >= sims[best] - margin
    lo = hi = best
    while lo > 0 and keep[lo - 1]:
        lo -= 1
    while hi < len(sims) - 1 and keep[hi + 1]:
        hi += 1
    return lo, hi
