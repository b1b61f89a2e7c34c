"""Text-to-video quality on a synthetic heldout split, for one temporal pooling.

- retrieval: each distinct video caption against every video (R@1/5/10, median rank), by
  the pooled vector alone and by the engine's rule (best of pooled and segment scores);
- motion direction: each video with a reversible motion is paired with itself played
  backwards (the same object moving the other way); a query with the true caption must
  score the true video higher. A tie counts half: mean pooling always ties. Text queries
  meet pooled vectors through the head's query map, as in search;
- moments: for every shot of a multi-shot video, the moment found for the shot's caption
  must overlap the shot with IoU >= 0.5.
"""

from __future__ import annotations

from statistics import median

import numpy as np

from ..datasets.video_features import VideoFeatures
from ..encoders.temporal import TemporalPooler
from ..indexer.video_vectors import segment_vectors
from ..search.moments import find_moment

DIRECTIONAL = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "growing",
    "shrinking",
    "appearing",
    "disappearing",
)


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _recall(scores: np.ndarray, relevant: np.ndarray) -> dict:
    """scores, relevant: (queries, videos); rank of the best relevant video per query."""
    best_relevant = np.where(relevant, scores, -np.inf).max(1)
    ranks = (scores > best_relevant[:, None]).sum(1) + 1
    return {
        "R@1": float((ranks <= 1).mean()),
        "R@5": float((ranks <= 5).mean()),
        "R@10": float((ranks <= 10).mean()),
        "median_rank": float(median(ranks.tolist())),
    }


def evaluate_video(videos: list[VideoFeatures], encoder, pooler: TemporalPooler) -> dict:
    pooled = np.stack([pooler.pool(v.frames, v.times) for v in videos])
    segs = [segment_vectors(v.frames, v.times, v.segments)[:2] for v in videos]
    captions = sorted({v.item["caption"] for v in videos})
    q = encoder.embed_texts(captions)
    relevant = np.asarray([[v.item["caption"] == c for v in videos] for c in captions])
    pooled_scores = pooler.adapt_query(q) @ pooled.T
    segment_scores = np.stack([(q @ s.T).max(1) for s, _ in segs], axis=1)
    report = {
        "pooling": pooler.name,
        "videos": len(videos),
        "queries": len(captions),
        "retrieval_pooled": _recall(pooled_scores, relevant),
        "retrieval_engine": _recall(np.maximum(pooled_scores, segment_scores), relevant),
    }

    # Motion direction: the video against itself reversed, for its own caption.
    directional = [v for v in videos if len(v.item["shots"]) == 1 and v.item["shots"][0]["motion"] in DIRECTIONAL]
    if directional:
        qv = pooler.adapt_query(encoder.embed_texts([v.item["caption"] for v in directional]))
        wins, by_motion = [], {}
        for v, qi in zip(directional, qv):
            forward = float(pooler.pool(v.frames, v.times) @ qi)
            backward = float(pooler.pool(v.frames[::-1].copy(), v.times) @ qi)
            wins.append(1.0 if forward > backward + 1e-6 else 0.5 if abs(forward - backward) <= 1e-6 else 0.0)
            by_motion.setdefault(v.item["shots"][0]["motion"], []).append(wins[-1])
        report["motion_direction"] = {
            "accuracy": float(np.mean(wins)),
            "pairs": len(wins),
            "by_motion": {m: round(float(np.mean(w)), 3) for m, w in sorted(by_motion.items())},
        }

    # Moments of shot captions in multi-shot videos.
    hits, total = 0, 0
    for v, (seg_vecs, frame_segments) in zip(videos, segs):
        shots = v.item["shots"]
        if len(shots) < 2:
            continue
        qs = encoder.embed_texts([s["caption"] for s in shots])
        for shot, qi in zip(shots, qs):
            moment = find_moment(qi, v.segments, seg_vecs, v.times, frame_segments, v.frames)
            hits += iou(moment, (shot["t_start"], shot["t_end"])) >= 0.5
            total += 1
    report["moments"] = {"iou_at_0.5": hits / total if total else None, "shots": total}
    return report
