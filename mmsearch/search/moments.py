"""The moment of a video that matches a query: its best segment, trimmed to the run of
frames around the best frame whose similarity stays high.

"High" is relative to the rest of the video: a frame stays when it scores nearer the
segment's best frame than the best frame elsewhere in the video. A video of one segment is
not trimmed (nothing in it tells a match from a non-match)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from .store import Segment, Store, Vector, decode_embeddings


def best_moment(store: Store, space: str, media_id: int, q: np.ndarray) -> tuple[float, float] | None:
    with store.session() as s:
        segments = s.execute(select(Segment.id, Segment.t_start, Segment.t_end).where(Segment.media_id == media_id).order_by(Segment.t_start)).all()
        rows = s.execute(select(Vector.kind, Vector.segment_id, Vector.t.label("time"), Vector.dim, Vector.embedding)
                         .where(Vector.media_id == media_id, Vector.space == space, Vector.kind.in_(("frame", "segment")))).all()
    if not segments or not rows:
        return None
    seg_rows = [r for r in rows if r.kind == "segment"]
    seg_scores = {r.segment_id: float(v @ q) for r, v in zip(seg_rows, decode_embeddings([r.embedding for r in seg_rows], rows[0].dim))}
    seg_id, t_start, t_end = max(segments, key=lambda sg: seg_scores.get(sg.id, -np.inf))
    frame_rows = sorted((r for r in rows if r.kind == "frame"), key=lambda r: r.time)
    inside = np.asarray([r.segment_id == seg_id for r in frame_rows], bool)
    if not inside.any() or inside.all():
        return float(t_start), float(t_end)
    all_sims = decode_embeddings([r.embedding for r in frame_rows], rows[0].dim) @ q
    frames = [r for r, keep in zip(frame_rows, inside) if keep]
    sims = all_sims[inside]
    lo, hi = trim_run(sims, (sims.max() - all_sims[~inside].max()) / 2)
    start = t_start if lo == 0 else frames[lo].time
    end = t_end if hi == len(frames) - 1 else frames[hi + 1].time
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
