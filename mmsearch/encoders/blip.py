"""BLIP image-text contrastive embeddings (and the ITM head for reranking), via transformers.

Spec: `blip:<dir or hub id>`, e.g. blip:Salesforce/blip-itm-base-coco or blip:/models/blip.
The folder (or hub repo) holds a BlipForImageTextRetrieval model and its processor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .base import CheckpointNotFoundError, EncoderError, ImageInput, embed_batched, load_rgb, resolve_device
from .hub import folder_or_hub_id
from .openclip import weights_digest

log = logging.getLogger(__name__)
INSTEAD = "--model mini (built in), or blip:/path/to/a/saved/BlipForImageTextRetrieval folder"


def _resolve_source(source: str, timeout_s: float) -> tuple[str, bool]:
    """(folder or hub id, is_local); a folder must hold a saved model's config.json."""
    path = Path(source).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise CheckpointNotFoundError(f"{path} has no config.json: save the model with save_pretrained()")
    missing = f"BLIP model folder {source} does not exist (and is not a hub id ORG/NAME)"
    return folder_or_hub_id(source, f"blip:{source}", timeout_s, INSTEAD, missing)


class BlipEncoder:
    """Embeddings from BLIP's ITC projections; `itm_scores` runs the image-text matching head."""

    def __init__(self, source: str, device: str = "auto", batch_size: int = 32, hub_timeout_s: float = 5.0):
        try:
            from transformers import BlipForImageTextRetrieval, BlipProcessor
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EncoderError("BLIP needs transformers: pip install 'mmsearch[blip]'") from e
        self.device = resolve_device(device)
        self.batch_size = batch_size
        where, local = _resolve_source(source, hub_timeout_s)
        try:
            self.model = BlipForImageTextRetrieval.from_pretrained(where, local_files_only=local).to(self.device).eval()
            self.processor = BlipProcessor.from_pretrained(where, local_files_only=local)
        except OSError as e:
            raise CheckpointNotFoundError(f"cannot load BLIP from {source}: {e}") from e
        size = self.processor.image_processor.size
        self.name = f"blip:{source}"
        # A hub id names its weights whether they were just downloaded or came from the cache;
        # a local folder is named by a digest of its weights file.
        if Path(source).expanduser().is_dir():
            weights = min(Path(where).glob("*.safetensors"), default=None) or min(
                Path(where).glob("*.bin"), default=None
            )
            label = f"{Path(source).name}@{weights_digest(weights) if weights else 'noweights'}"
        else:
            label = source
        self.space = f"blip:{label}|{size.get('height', size)}"
        self.dim = int(self.model.config.image_text_hidden_size)

    def _text_inputs(self, texts: Sequence[str]) -> dict:
        enc = self.processor.tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _pixels(self, images: Sequence[ImageInput], offset: int = 0) -> torch.Tensor:
        rgb = [load_rgb(im, offset + i) for i, im in enumerate(images)]
        return self.processor.image_processor(rgb, return_tensors="pt")["pixel_values"].to(self.device)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        def embed(chunk, _offset):
            hidden = self.model.text_encoder(**self._text_inputs(chunk)).last_hidden_state
            return self.model.text_proj(hidden[:, 0, :])

        return embed_batched(texts, self.batch_size, self.dim, embed)

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        def embed(chunk, offset):
            hidden = self.model.vision_model(pixel_values=self._pixels(chunk, offset)).last_hidden_state
            return self.model.vision_proj(hidden[:, 0, :])

        return embed_batched(images, self.batch_size, self.dim, embed)

    def itm_scores(self, text: str, images: Sequence[ImageInput]) -> np.ndarray:
        """P(match) of one text against each image, from BLIP's image-text matching head,
        float32 of shape (len(images),). The text is tokenised once and repeated per batch."""
        scores = [np.zeros((0,), np.float32)]
        tokens = self._text_inputs([text])  # (1, length): never rebound below, so every batch reads the query
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self._pixels(images[start : start + self.batch_size], offset=start)
                image_embeds = self.model.vision_model(pixel_values=pixels).last_hidden_state
                image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
                batch = {k: v.expand(len(pixels), -1) for k, v in tokens.items()}
                hidden = self.model.text_encoder(
                    **batch, encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts
                ).last_hidden_state
                logits = self.model.itm_head(hidden[:, 0, :])
                scores.append(torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy())
        return np.concatenate(scores)
