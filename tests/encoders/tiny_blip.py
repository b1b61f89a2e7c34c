"""A tiny BLIP of the real architecture (BlipForImageTextRetrieval) with random weights,
saved as a local folder that `blip:<folder>` loads, and a small corpus for it: for tests of
the ITM head and of the rerank."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from mmsearch.datasets import synth
from mmsearch.datasets.render import ObjectGeom, Style, draw_scene

COLOURS = [(220, 30, 30), (30, 60, 220), (30, 160, 60), (240, 200, 20), (120, 40, 160), (20, 20, 20)]

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "green", "circle", "square", "dog"]


def tiny_blip_folder(folder: Path, seed: int = 0) -> Path:
    from transformers import BertTokenizerFast, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True)
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})  # transformers 5 ignores vocab_file
    config = BlipConfig(
        text_config={
            "vocab_size": len(WORDS),
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "encoder_hidden_size": 48,
            "initializer_range": 0.2,
        },
        vision_config={
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "initializer_range": 0.1,  # BLIP's default (1e-10) leaves every image with the same output
        },
        image_text_hidden_size=24,
    )
    torch.manual_seed(seed)
    BlipForImageTextRetrieval(config).save_pretrained(folder)
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(folder)
    return folder


def scenes() -> list[Image.Image]:
    """Six different pictures: a circle or a square in six colours."""
    return [
        draw_scene(64, 64, (245, 245, 245), [ObjectGeom(("circle", "square")[i % 2], rgb, 32, 32, 20)], Style())
        for i, rgb in enumerate(COLOURS)
    ]


def blip_corpus(root: Path) -> Path:
    """root/images: the six scenes as PNG; root/videos: two synthetic videos (with shots)."""
    synth.generate(root, 0, 2, seed=5)
    (root / "images").mkdir(parents=True, exist_ok=True)  # synth made it, empty
    for i, im in enumerate(scenes()):
        im.save(root / "images" / f"scene-{i}.png")
    return root
