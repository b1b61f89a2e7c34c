"""How well miss rules tell "the library holds a match" from "it does not", on held-out
synthetic images and videos, per media kind.

Libraries are built without certain colour+shape combinations: the 72 combinations are
dealt into folds, and each fold's library keeps only the items holding none of the fold's
combinations (a video is left out when any of its shots shows one, the start or end colour
of a colour change included). Every colour+shape query, in several short phrasings
("red circle", "a red circle", ...), is then asked of every fold's library: it should miss
when its combination is one of the fold's, and hit when the library holds an item showing
it unambiguously (an image with such an object; a video with a shot of such an object that
does not change colour). Queries that are neither (only a colour change shows the
combination) are not counted. Captions are asked the same way (`queries="captions"`): the
corpus's own captions of one-object images and of video shots, judged by the colour and
shape they name. Balanced accuracy is the mean of the hit rate on present queries and the
miss rate on absent ones.

Rules:
- previous: the rule before the calibrated one: the encoder space's labelled threshold
  shipped in miss_thresholds.json (else the old default, 0.25) on the engine's best score
  (a video's best of its pooled vector, met through the temporal head's query map, and
  its segments' vectors);
- calibrated: services.miss_signal, calibrated on each fold's library alone, no labels;
- labelled: the best single cutoff of the calibrated rule's signal, chosen with the truth:
  what any cutoff of that signal could reach (a ceiling, not a rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets.captions import spec_matches
from ..datasets.synth import load_manifest
from ..datasets.vocab import COLOR_NAMES, SHAPES
from ..services.miss_signal import PROBE_TEXTS, best_of, probe_null, probe_z, threshold_of
from ..services.miss_thresholds import load_thresholds
from .miss_calibration import best_split

PREVIOUS_DEFAULT = 0.25  # the text threshold of spaces without a labelled calibration, before this rule
PHRASINGS = {
    "image": ("{c} {s}", "a {c} {s}", "a photo of a {c} {s}"),
    "video": ("{c} {s}", "a {c} {s}", "a {c} {s} moving"),
}
COMBOS = [(c, s) for c in COLOR_NAMES for s in SHAPES]


@dataclass
class KindData:
    """One media kind of a corpus, embedded: the vectors the calibrated rule scores (images,
    or video frames with their segments), the owner media of each, what each media item
    shows; for the previous rule, the vectors the engine ranks by."""

    kind: str
    vectors: np.ndarray  # (n, d)
    owner: np.ndarray  # (n,) media index of each vector
    shows: list[set]  # per media: combos shown unambiguously
    touches: list[set]  # per media: combos shown at all
    captions: list[tuple[str, tuple[str, str]]] = field(default_factory=list)  # (caption, the combo it names)
    segments: np.ndarray | None = None  # (n,) segment of each frame (videos)
    ranked: np.ndarray | None = None  # (r, d) video segment vectors, for the previous rule (images: vectors)
    ranked_owner: np.ndarray | None = None  # (r,) media index of each
    pooled: np.ndarray | None = None  # (media, d) pooled video vectors, for the previous rule
    adapt_query: object = None  # the temporal head's query map (previous rule, videos)

    @property
    def media(self) -> int:
        return len(self.shows)


def image_data(encoder, data_dir: str | Path) -> KindData:
    data_dir = Path(data_dir)
    items = [i for i in load_manifest(data_dir)["items"] if i["kind"] == "image"]
    vectors = encoder.embed_images([data_dir / i["file"] for i in items])
    shows = [{(c, s) for c, s in COMBOS if spec_matches(_spec(c, s), it)} for it in items]
    captions = [(it["caption"], _combo(it["objects"][0])) for it in items if len(it["objects"]) == 1]
    return KindData("image", np.asarray(vectors, np.float32), np.arange(len(items)), shows, shows, captions)


def video_data(videos, pooler) -> KindData:
    """videos: datasets.video_features.VideoFeatures of a corpus (sampled as index jobs do)."""
    from ..indexer.video_vectors import segment_vectors

    cut = [segment_vectors(v.frames, v.times, v.segments)[:2] for v in videos]
    segment_of_frame, first = [], 0
    for vectors, frame_segment in cut:
        segment_of_frame.append(first + frame_segment)
        first += len(vectors)
    shows, touches = [], []
    for v in videos:
        shots = v.item["shots"]
        shows.append({_combo(s["object"]) for s in shots if s["motion"] != "changing color"})
        touches.append(
            {_combo(s["object"]) for s in shots}
            | {(s["color_to"], s["object"]["shape"]) for s in shots if "color_to" in s}
        )
    return KindData(
        "video",
        np.concatenate([v.frames for v in videos]).astype(np.float32),
        np.concatenate([[i] * len(v.frames) for i, v in enumerate(videos)]).astype(np.int64),
        shows,
        touches,
        [
            (s["caption"], _combo(s["object"]))
            for v in videos
            for s in v.item["shots"]
            if s["motion"] != "changing color"
        ],
        segments=np.concatenate(segment_of_frame).astype(np.int64),
        ranked=np.concatenate([vectors for vectors, _ in cut]).astype(np.float32),
        ranked_owner=np.concatenate([[i] * len(vectors) for i, (vectors, _) in enumerate(cut)]).astype(np.int64),
        pooled=np.stack([pooler.pool(v.frames, v.times) for v in videos]).astype(np.float32),
        adapt_query=pooler.adapt_query,
    )


def evaluate_kind(
    data: KindData, encoder, folds: int = 4, seed: int = 0, previous: float | None = None, queries: str = "short"
) -> dict:
    """Balanced accuracy of the previous, calibrated and labelled rules on one kind, for
    short colour+shape queries ("short") or the corpus's captions ("captions")."""
    if previous is None:
        previous = load_thresholds(encoder.space).get("text", PREVIOUS_DEFAULT)
    if queries == "short":
        texts = [p.format(c=c, s=s) for p in PHRASINGS[data.kind] for c, s in COMBOS]
        combos = [combo for _ in PHRASINGS[data.kind] for combo in COMBOS]
    elif queries == "captions":
        texts, combos = [t for t, _ in data.captions], [c for _, c in data.captions]
    else:
        raise ValueError(f"queries must be short or captions, not {queries!r}")
    q = np.asarray(encoder.embed_texts(texts), np.float32)
    probes = np.asarray(encoder.embed_texts(list(PROBE_TEXTS)), np.float32)
    engine_best = _engine_scores(data, q)  # (queries, media)
    order = np.random.default_rng(seed).permutation(len(COMBOS))
    rows = []  # (present, signal, threshold, previous best)
    thresholds = []
    for f in range(folds):
        left_out = {COMBOS[i] for i in order[f::folds]}
        kept = np.array([not (t & left_out) for t in data.touches])
        in_library = kept[data.owner]
        items = data.vectors[in_library]
        segments = None if data.segments is None else data.segments[in_library]
        if len(items):
            threshold = threshold_of(probe_null(probes, items, segments))
            signal = best_of(probe_z(q, probes, items), segments)
        else:  # an empty library: every query misses, as a search that finds nothing does
            threshold, signal = float("inf"), np.full(len(q), -np.inf)
        thresholds.append(threshold)
        best = np.where(kept[None, :], engine_best, -np.inf).max(axis=1)
        for k, combo in enumerate(combos):
            present = any(combo in data.shows[m] for m in np.flatnonzero(kept))
            if combo in left_out or present:
                rows.append((present, signal[k], threshold, best[k]))
    present = np.array([r[0] for r in rows])
    signal = np.array([r[1] for r in rows])
    cutoffs = np.array([r[2] for r in rows])
    best = np.array([r[3] for r in rows])
    _, labelled = best_split(signal[present], signal[~present])
    return {
        "kind": data.kind,
        "media": data.media,
        "folds": folds,
        "queries": {"set": queries, "present": int(present.sum()), "absent": int((~present).sum())},
        "previous": {"threshold": round(float(previous), 4), **_rates(present, best >= previous)},
        "calibrated": {"thresholds": [round(t, 3) for t in thresholds], **_rates(present, signal >= cutoffs)},
        "labelled_ceiling": round(labelled, 4),
    }


def _rates(present: np.ndarray, hit: np.ndarray) -> dict:
    hit_rate, miss_rate = float(hit[present].mean()), float((~hit[~present]).mean())
    return {
        "balanced_accuracy": round((hit_rate + miss_rate) / 2, 4),
        "hit_rate_present": round(hit_rate, 4),
        "miss_rate_absent": round(miss_rate, 4),
    }


def _engine_scores(data: KindData, q: np.ndarray) -> np.ndarray:
    """Each query's best score per media item, as the engine ranks it (videos: the best of
    the pooled vector, through the head's query map, and the segments)."""
    scores = np.full((len(q), data.media), -np.inf, np.float32)
    ranked, owner = (data.vectors, data.owner) if data.ranked is None else (data.ranked, data.ranked_owner)
    np.maximum.at(scores.T, owner, (q @ ranked.T).T)
    if data.pooled is not None:
        scores = np.maximum(scores, data.adapt_query(q) @ data.pooled.T)
    return scores


def _spec(color: str, shape: str) -> dict:
    return {"objects": [{"color": color, "shape": shape}], "relation": None, "background": None}


def _combo(obj: dict) -> tuple[str, str]:
    return obj["color"], obj["shape"]
