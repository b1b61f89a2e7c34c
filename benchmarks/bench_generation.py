"""Generation quality and speed of the built-in unCLIP, in one run: the prior (cosine to the
true image embedding; R@1 searching with its prediction vs with the raw text) and the
decoder (attribute accuracy of drawn images, seconds per image) for DDPM over every step
and DDIM-50/25, with DDIM's speed-up over DDPM measured in the same run.

    python benchmarks/bench_generation.py --data /data/heldout [--prompts 48] [--write]
"""

from __future__ import annotations

import argparse
import time

from report import device_description, publish

from mmsearch.encoders import load_encoder
from mmsearch.evaluation.attribute_classifier import AttributeClassifier
from mmsearch.evaluation.generation_eval import evaluate_decoder, evaluate_prior
from mmsearch.generation import load_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="heldout synthetic corpus")
    ap.add_argument("--generator", default="mini")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()

    encoder = load_encoder("mini")
    generator = load_generator(args.generator, encoder)
    prior = evaluate_prior(generator, encoder, args.data)
    decoder = evaluate_decoder(generator, AttributeClassifier.load(), prompts=args.prompts)
    ddpm = next(r for r in decoder["rows"] if r["sampler"] == "ddpm")
    lines = [
        f"\n### Generation ({time.strftime('%Y-%m-%d')}, {device_description()}, generator {generator.name})\n",
        f"Prior on {prior['captions']} heldout captions: cosine(predicted, true image embedding) "
        f"{prior['cosine_to_true_image_embedding']:.3f} "
        f"(raw text embedding: {prior['cosine_of_raw_text_embedding']:.3f}); "
        f"text->image R@1 searching with the prior's prediction {prior['R@1_prior']:.3f} "
        f"vs the raw text {prior['R@1_text']:.3f}.\n",
        f'Decoder on {decoder["prompts"]} "a <colour> <shape>" prompts (prior embeddings shared by every row), '
        "judged by the attribute classifier:\n",
        "| sampler | steps | colour acc | shape acc | both | s/image | speed-up vs DDPM |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in decoder["rows"]:
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['color_accuracy']:.3f} | {r['shape_accuracy']:.3f} | "
            f"{r['both_accuracy']:.3f} | {r['seconds_per_image']:.3f} | "
            f"{ddpm['seconds_per_image'] / r['seconds_per_image']:.1f}x |"
        )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
