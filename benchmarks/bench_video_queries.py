"""How video search answers the queries people type, next to the captions it trained on.

Renders a small synthetic video corpus, indexes it with the default settings, and for every
one-shot video with a motion asks which of the six motion queries for its object scores it
highest, through the engine (`kind=video`: best of the pooled vector, met by the head's
query map, and the orderless segment vectors). Two phrasings: the training caption ("a
small red circle moving up on a gray background") and what a person types ("a red circle
moving up"). Also prints each phrasing's mean pooled and segment score for the true video,
and how often the segment score wins (a win throws the video's motion away).

    python benchmarks/bench_video_queries.py [--videos 120] [--seed 77] [--write]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from report import device_description, publish
from sqlalchemy import select

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.datasets.synth_video import shot_caption
from mmsearch.library import Library
from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.storage.store import Media, Vector, decode_embeddings

MOTIONS = ["moving left", "moving right", "moving up", "moving down", "growing", "shrinking"]


def typed_query(shot: dict, motion: str) -> str:
    return f"a {shot['object']['color']} {shot['object']['shape']} {motion}"


def caption_query(shot: dict, motion: str) -> str:
    return shot_caption(dict(shot, motion=motion))


def score_of(lib: Library, text: str, path: str) -> float:
    hits = lib.search(SearchRequest(terms=parse_text(text), k=500, kind="video"))
    return next((h.score for h in hits if h.path == path), float("-inf"))


def score_of_segments(lib: Library, media_id: int, q: np.ndarray) -> float:
    """The best score of the video's segment vectors (the mean of each shot's frames)."""
    with lib.store.session() as s:
        rows = s.execute(
            select(Vector.dim, Vector.embedding).where(
                Vector.media_id == media_id, Vector.kind == "segment", Vector.space == lib.indexes.space_of("segment")
            )
        ).all()
    return max(float(decode_embeddings([e], d)[0] @ q) for d, e in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=120)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifest = synth.generate(Path(tmp) / "clips", 0, args.videos, seed=args.seed, split="train")
        shots = {
            str((Path(tmp) / "clips" / item["file"]).resolve()): item["shots"][0]
            for item in manifest["items"]
            if item.get("kind") == "video" and len(item["shots"]) == 1 and item["shots"][0]["motion"] in MOTIONS
        }
        rows = []
        with Library.open(settings=Settings(library_dir=Path(tmp) / "lib", model="mini")) as lib:
            lib.index([Path(tmp) / "clips"])
            with lib.store.session() as s:
                media_ids = dict(s.execute(select(Media.path, Media.id).where(Media.path.in_(list(shots)))).all())
            for phrasing, query in (("training caption", caption_query), ("typed", typed_query)):
                right = [
                    max(MOTIONS, key=lambda m: score_of(lib, query(shot, m), path)) == shot["motion"]
                    for path, shot in shots.items()
                ]
                pooled, segment = [], []
                for path, shot in shots.items():
                    text = query(shot, shot["motion"])
                    q = lib.engine.query_vectors(parse_text(text), "video")
                    media_id = media_ids[path]
                    pooled.append(float(lib.engine.media_vector(media_id) @ q.video))
                    segment.append(score_of_segments(lib, media_id, q.main))
                pooled, segment = np.array(pooled), np.array(segment)
                rows.append(
                    f"| {phrasing} | {np.mean(right):.3f} | {pooled.mean():.3f} | {segment.mean():.3f} "
                    f"| {np.mean(segment > pooled):.3f} |"
                )

    publish(
        [
            f"\n### Motion in video queries as typed vs as trained ({len(shots)} one-shot videos, "
            f"{time.strftime('%Y-%m-%d')}, "
            f"{device_description()})\n",
            "| phrasing | motion named right (of 6) | mean pooled score | mean best segment score | segment wins |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ],
        args.write,
    )


if __name__ == "__main__":
    main()
