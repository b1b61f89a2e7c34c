"""A CLIP tokenizer small enough to build in a test: the tiny CLIPs of the hf-clip encoder
tests and of the Kandinsky and Karlo backends' tests read text with it."""

from __future__ import annotations

import json
from pathlib import Path


def letter_tokenizer(folder: Path, max_length: int):
    """A CLIP BPE tokenizer over single letters (vocab.json + merges.txt written in `folder`)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in "abcdefghijklmnopqrstuvwxyz":
            vocab[c + suffix] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length)
