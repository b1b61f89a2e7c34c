"""Exact (brute-force) text-to-image ranking over a synthetic corpus, for the demo.

It stands in for the search index until the indexing issue lands: the vectors and the
scores are the real encoder's, only the nearest-neighbour search is a plain matrix product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets.synth import load_manifest
from ..encoders.base import Encoder


def rank_images(encoder: Encoder, corpus: Path, queries: list[str], k: int = 3) -> list[tuple[str, list[tuple[str, float, str]]]]:
    items = [i for i in load_manifest(corpus)["items"] if i["kind"] == "image"]
    vecs = encoder.embed_images([corpus / i["file"] for i in items])
    out = []
    for query, qv in zip(queries, encoder.embed_texts(queries)):
        scores = vecs @ qv
        top = np.argsort(-scores)[:k]
        out.append((query, [(str(corpus / items[t]["file"]), float(scores[t]), items[t]["caption"]) for t in top]))
    return out
