"""How good the built-in unCLIP is, on a held-out synthetic split.

Prior: cosine between the predicted and the true image embedding of held-out captions, and
text-to-image R@1 on the unique-caption gallery when searching with the prior's prediction
instead of the raw text embedding; the prediction is the prior's expected embedding (what
search uses), with a sampled one (what drawing uses) beside it. Decoder: images drawn for "a <colour> <shape>" prompts,
judged by the separately trained attribute classifier (which can answer that an image
shows no shape at all: the "none_rate"), for DDPM over every step and DDIM
with 50 and 25 steps, with seconds per image. The prompts' embeddings come from the prior
once and are shared by every sampler, so the samplers are compared on the same inputs.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..datasets.synth import load_manifest
from ..datasets.vocab import COLOR_NAMES, SHAPES
from .attribute_classifier import NONE, AttributeClassifier

SAMPLER_SETTINGS = (("ddpm", None), ("ddim", 50), ("ddim", 25))


def _recall_at_1(queries: np.ndarray, gallery: np.ndarray) -> float:
    sims = queries @ gallery.T
    return float((sims.argmax(1) == np.arange(len(queries))).mean())


def evaluate_prior(generator, encoder, data_dir: str | Path, max_captions: int = 1000, seed: int = 0) -> dict:
    data_dir = Path(data_dir)
    items = [i for i in load_manifest(data_dir)["items"] if i["kind"] == "image"]
    counts = Counter(i["caption"] for i in items)
    gallery = [i for i in items if counts[i["caption"]] == 1][:max_captions]
    captions = [i["caption"] for i in gallery]
    images = encoder.embed_images([data_dir / i["file"] for i in gallery])
    texts = encoder.embed_texts(captions)
    batches = range(0, len(captions), 256)
    expected = np.concatenate([generator.query_embeddings(captions[k : k + 256]) for k in batches])
    sampled = np.concatenate([generator.prior_embeddings(captions[k : k + 256], seed=seed + k) for k in batches])

    def cosine(e: np.ndarray) -> float:
        return float(np.mean(np.sum(e * images, 1)))

    # The headline figures are for what search uses: the prior's expected embedding.
    return {
        "captions": len(captions),
        "cosine_to_true_image_embedding": cosine(expected),
        "cosine_of_sampled_embedding": cosine(sampled),
        "cosine_of_raw_text_embedding": cosine(texts),
        "R@1_prior": _recall_at_1(expected, images),
        "R@1_prior_sampled": _recall_at_1(sampled, images),
        "R@1_text": _recall_at_1(texts, images),
    }


def decoder_prompts(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(prompt, colour, shape) for n colour-shape pairs spread over the vocabulary."""
    pairs = list(itertools.product(COLOR_NAMES, SHAPES))
    picked = np.random.default_rng(seed).permutation(len(pairs))[:n]
    return [(f"a {pairs[k][0]} {pairs[k][1]}", pairs[k][0], pairs[k][1]) for k in sorted(picked)]


def evaluate_decoder(
    generator,
    classifier: AttributeClassifier,
    prompts: int = 48,
    seed: int = 0,
    settings=SAMPLER_SETTINGS,
    guidance: float | None = None,
    draws: int = 1,
) -> dict:
    """`draws` images per prompt (each from its own prior sample and noise): with few
    prompts one image moves accuracy by several points, so more draws steady the figures."""
    distinct = decoder_prompts(prompts, seed)
    chosen = distinct * draws
    embeddings = generator.prior_embeddings([p for p, _, _ in chosen], seed=seed)
    report = {"prompts": len(distinct), "images": len(chosen), "rows": []}
    for sampler, steps in settings:
        steps = steps or generator.decoder.schedule.num_steps
        t0 = time.perf_counter()
        images = generator.decode(embeddings, seed=seed + 1, steps=steps, sampler=sampler, guidance=guidance)
        seconds = time.perf_counter() - t0
        shapes, colors = classifier.predict(images)
        shape_ok = np.array([s == want for s, (_, _, want) in zip(shapes, chosen)])
        color_ok = np.array([c == want for c, (_, want, _) in zip(colors, chosen)])
        report["rows"].append(
            {
                "sampler": sampler,
                "steps": steps,
                "seconds_per_image": seconds / len(images),
                "color_accuracy": float(color_ok.mean()),
                "shape_accuracy": float(shape_ok.mean()),
                "both_accuracy": float((shape_ok & color_ok).mean()),
                "none_rate": float(np.mean([s == NONE for s in shapes])),
            }
        )  # judged no shape at all
    return report
