"""Shared helpers for tests that build and query real libraries."""

from __future__ import annotations

import json
from pathlib import Path

from mmsearch.config import Settings
from mmsearch.datasets import synth
from mmsearch.library import Library


class CountingEncoder:
    """The real encoder, counting how many images it is asked to embed."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.images_embedded = 0

    def embed_images(self, images):
        self.images_embedded += len(images)
        return self._encoder.embed_images(images)

    def __getattr__(self, name):
        return getattr(self._encoder, name)


def make_corpus(folder: Path, n: int = 90, seed: int = 11) -> dict:
    return synth.generate(folder, n, 0, seed=seed, split="train")


def open_library(path: Path, encoder=None, **overrides) -> Library:
    settings = Settings(library_dir=path, batch_size=16, decode_workers=0, **overrides)
    return Library.open(settings=settings, encoder=encoder)


def paths_with(corpus: Path, **attrs: str) -> set[str]:
    """Images of a synthetic corpus holding an object with all the given attributes."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    return {
        str((corpus / i["file"]).resolve())
        for i in manifest["items"]
        if any(all(o[k] == v for k, v in attrs.items()) for o in i["objects"])
    }


def perturbed_mini(folder: Path, seed: int = 1, scale: float = 0.05) -> Path:
    """A second model for switching tests: mini's CLIP with every weight nudged by noise,
    saved as a local open_clip checkpoint folder (its own space, close enough to still work)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from mmsearch.config import builtin_weights

    mini = builtin_weights("mini")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("open_clip_config.json", "synonyms.json"):
        shutil.copy(mini / name, folder / name)
    weights = load_file(mini / "open_clip_model.safetensors")
    noise = torch.Generator().manual_seed(seed)
    for key, tensor in weights.items():
        if tensor.is_floating_point() and tensor.numel() > 1:
            # multiplicative: a variance or a scale stays positive
            weights[key] = tensor * (1 + scale * torch.randn(tensor.shape, generator=noise))
    save_file(weights, folder / "open_clip_model.safetensors")
    return folder
