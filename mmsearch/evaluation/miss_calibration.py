"""Calibrating the miss thresholds of an embedding space on a held-out synthetic split.

For every colour+shape query ("green star") the best score over the whole gallery is what a
search sees when the library holds a match; the best score once every matching image is
taken out is what it sees when it does not. The threshold is the score that tells those
two apart best (highest balanced accuracy). The same is done for the prior's predicted
image embedding, whose scores are image-to-image and so run on another scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets.captions import spec_matches
from ..datasets.synth import load_manifest
from .encoder_eval import attribute_queries


def best_split(present: np.ndarray, absent: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy): scores >= threshold count as "the library has it"."""
    candidates = np.unique(np.concatenate([present, absent]))
    best_t, best_acc = float(candidates[0]), 0.0
    for t in candidates:
        acc = ((present >= t).mean() + (absent < t).mean()) / 2
        if acc > best_acc:
            best_t, best_acc = float(t), float(acc)
    # Midway to the next lower score: a threshold sitting exactly on a sample is fragile.
    below = candidates[candidates < best_t]
    return (best_t + float(below.max())) / 2 if len(below) else best_t, best_acc


def calibrate(encoder, data_dir: str | Path, prior_embeddings=None) -> dict:
    """Thresholds for encoder.space; prior_embeddings(texts) -> (n, dim) adds the prior's."""
    data_dir = Path(data_dir)
    items = [i for i in load_manifest(data_dir)["items"] if i["kind"] == "image"]
    images = encoder.embed_images([data_dir / i["file"] for i in items])
    queries = [(text, spec) for text, spec in attribute_queries()["color+shape"]]
    relevant = [np.array([spec_matches(spec, it) for it in items]) for _, spec in queries]
    keep = [k for k, r in enumerate(relevant) if r.any()]
    texts = [queries[k][0] for k in keep]
    report = {"space": encoder.space, "data": str(data_dir), "queries": len(texts)}
    sources = {"text": encoder.embed_texts(texts)}
    if prior_embeddings is not None:
        sources["prior"] = prior_embeddings(texts)
    for name, q in sources.items():
        scores = q @ images.T
        present = np.array([scores[j].max() for j in range(len(keep))])
        absent = np.array([scores[j][~relevant[k]].max() for j, k in enumerate(keep)])
        threshold, accuracy = best_split(present, absent)
        report[name] = {
            "threshold": round(threshold, 4),
            "balanced_accuracy": round(accuracy, 4),
            "median_best_when_present": round(float(np.median(present)), 4),
            "median_best_when_absent": round(float(np.median(absent)), 4),
        }
    return report
