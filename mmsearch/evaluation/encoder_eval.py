"""Text-to-image retrieval quality of an encoder on a synthetic heldout split.

Two measures:
- the unique-caption gallery: every image whose canonical caption no other image shares;
  each caption must find its own image (R@1/5/10, median rank);
- attribute queries ("red", "circle", "red circle", "large star", ...) over all images:
  P@10, where a hit is any image whose ground-truth attributes satisfy the query.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from statistics import mean

import numpy as np

from ..datasets.captions import spec_matches
from ..datasets.synth import load_manifest
from ..datasets.vocab import COLOR_NAMES, HELDOUT_PAIRS, POSITIONS, SHAPES, SIZE_NAMES
from ..encoders.base import Encoder

MIN_GALLERY = 1000


def attribute_queries() -> dict[str, list[tuple[str, dict]]]:
    """Query text and spec, grouped by kind. "single" and "two" are the headline groups."""

    def one(**kv) -> dict:
        return {"objects": [kv], "relation": None, "background": None}

    return {
        "color": [(c, one(color=c)) for c in COLOR_NAMES],
        "shape": [(s, one(shape=s)) for s in SHAPES],
        "color+shape": [(f"{c} {s}", one(color=c, shape=s)) for c in COLOR_NAMES for s in SHAPES],
        "size+shape": [(f"{z} {s}", one(size=z, shape=s)) for z in SIZE_NAMES for s in SHAPES],
        "size": [(f"a {z} shape", one(size=z)) for z in SIZE_NAMES],
        "position": [
            (
                f"a shape in the {p}"
                if " " in p or p == "center"
                else f"a shape on the {p}"
                if p in ("left", "right")
                else f"a shape at the {p}",
                one(position=p),
            )
            for p in POSITIONS
        ],
    }


HEADLINE = {"single": ("color", "shape"), "two": ("color+shape", "size+shape")}


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    top = np.argsort(-scores, kind="stable")[:k]
    return float(relevant[top].mean())


def evaluate_encoder(encoder: Encoder, data_dir: str | Path, k: int = 10) -> dict:
    data_dir = Path(data_dir)
    items = [i for i in load_manifest(data_dir)["items"] if i["kind"] == "image"]
    if not items:
        raise ValueError(f"{data_dir} holds no images")
    image_vecs = encoder.embed_images([data_dir / i["file"] for i in items])

    # Unique-caption gallery.
    counts = Counter(i["caption"] for i in items)
    gallery = [n for n, i in enumerate(items) if counts[i["caption"]] == 1]
    g_vecs = image_vecs[gallery]
    t_vecs = encoder.embed_texts([items[n]["caption"] for n in gallery])
    sims = t_vecs @ g_vecs.T
    correct = sims[np.arange(len(gallery)), np.arange(len(gallery))]
    ranks = (sims > correct[:, None]).sum(1) + 1
    report: dict = {
        "model": encoder.name,
        "space": encoder.space,
        "data": str(data_dir),
        "images": len(items),
        "unique_caption_gallery": {
            "size": len(gallery),
            "meets_min_size": len(gallery) >= MIN_GALLERY,
            "R@1": float((ranks <= 1).mean()),
            "R@5": float((ranks <= 5).mean()),
            "R@10": float((ranks <= 10).mean()),
            "median_rank": float(np.median(ranks)),
        },
    }

    # Attribute queries over every image.
    groups = attribute_queries()
    precisions: dict[str, dict[str, float]] = {}
    novel: list[float] = []
    for group, queries in groups.items():
        q_vecs = encoder.embed_texts([q for q, _ in queries])
        precisions[group] = {}
        for (text, spec), qv in zip(queries, q_vecs):
            relevant = np.array([spec_matches(spec, it) for it in items])
            if relevant.sum() < k:
                continue  # too few matching images for P@k to mean anything
            p = precision_at_k(image_vecs @ qv, relevant, k)
            precisions[group][text] = p
            obj = spec["objects"][0]
            if (obj.get("color"), obj.get("shape")) in HELDOUT_PAIRS:
                novel.append(p)
    report["attribute_queries"] = {
        group: {
            "P@10": mean(ps.values()) if ps else None,
            "queries": len(ps),
            "worst": sorted(ps.items(), key=lambda kv: kv[1])[:3],
        }
        for group, ps in precisions.items()
    }
    for name, members in HEADLINE.items():
        vals = [p for g in members for p in precisions[g].values()]
        report[f"P@10_{name}_attribute"] = mean(vals) if vals else None
    report["P@10_novel_color_shape_pairs"] = mean(novel) if novel else None
    return report
