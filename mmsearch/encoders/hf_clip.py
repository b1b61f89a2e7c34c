"""A CLIP in Hugging Face transformers' format behind the Encoder protocol: the CLIP that
diffusers' unCLIP / Kandinsky pipelines carry, so a library can be indexed in the space a
generator's prior predicts and its decoder consumes.

Spec: `hf-clip:<folder or hub id>`, where the folder (or hub repo) is either

  a CLIPModel saved with save_pretrained (config.json, weights, tokenizer files,
  preprocessor_config.json), e.g. hf-clip:openai/clip-vit-large-patch14, or
  a diffusers pipeline folder that holds the two towers as text_encoder/
  (CLIPTextModelWithProjection) and image_encoder/ (CLIPVisionModelWithProjection), with
  tokenizer/ and image_processor/ (or feature_extractor/): e.g. a Kandinsky 2.2 prior,
  hf-clip:/models/kandinsky22/prior.

The space is `clip_space(...)`: a digest of the weights both towers embed with and of the
image preprocessing, never of where they were read from. The Kandinsky 2.2 backend declares
the space of the CLIP in its prior pipeline with the same function, so a library indexed
with `hf-clip:<that prior folder>` is in the generator's space.

transformers is imported only when an encoder is built.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .base import (
    CheckpointNotFoundError,
    EncoderError,
    ImageInput,
    embed_batched,
    load_rgb,
    resolve_device,
)
from .hub import folder_or_hub_id

INSTEAD = "--model mini (built in), or hf-clip:/path/to/a/saved/CLIPModel or pipeline folder"
# Elements of each weight tensor that enter the space's digest: evenly spaced, so a digest
# of a multi-GB CLIP costs milliseconds, while any retrained or fine-tuned tower changes it.
DIGEST_SAMPLES = 4096
# The image processor's settings that decide the pixels a tower sees (its class name does not).
PREPROCESSING_KEYS = (
    "size",
    "crop_size",
    "do_resize",
    "do_center_crop",
    "do_convert_rgb",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "resample",
)
PROCESSOR_SUBFOLDERS = ("image_processor", "feature_extractor")


def _tower_parameters(text, vision) -> dict[str, torch.Tensor]:
    """The embedding weights under one naming, whether they come from a CLIPModel (text is
    vision) or from a CLIPTextModelWithProjection and a CLIPVisionModelWithProjection."""
    parts = {
        "text_model": text.text_model,
        "text_projection": text.text_projection,
        "vision_model": vision.vision_model,
        "visual_projection": vision.visual_projection,
    }
    return {f"{prefix}.{name}": p for prefix, module in parts.items() for name, p in module.named_parameters()}


def _preprocessing(image_processor) -> dict:
    settings = image_processor.to_dict()
    return {k: settings[k] for k in PREPROCESSING_KEYS if k in settings}


def _input_side(preprocessing: dict) -> int | str:
    """The side of the square the tower sees: the crop, else the resize target."""
    for key, sub in (("crop_size", "height"), ("size", "height"), ("size", "shortest_edge")):
        value = preprocessing.get(key)
        if isinstance(value, dict) and value.get(sub):
            return int(value[sub])
        if isinstance(value, int):
            return value
    return "?"


def clip_space(text, vision, image_processor) -> str:
    """The embedding space of a CLIP: `hf-clip:<dim>d@<digest>|<input side>`. The digest covers
    every parameter of both towers and their projections (name, shape and an even sample of its
    values rounded to float16, so the dtype it was loaded in does not matter) and the image
    preprocessing. `text` holds text_model + text_projection and `vision` holds vision_model +
    visual_projection (a CLIPModel is both)."""
    h = hashlib.blake2b(digest_size=8)
    with torch.no_grad():
        for name, p in sorted(_tower_parameters(text, vision).items()):
            flat = p.detach().reshape(-1)
            if flat.numel() > DIGEST_SAMPLES:
                picks = torch.linspace(0, flat.numel() - 1, DIGEST_SAMPLES, dtype=torch.float64).round().long()
                flat = flat[picks.to(flat.device)]
            h.update(f"{name}{tuple(p.shape)}".encode())
            h.update(flat.to(torch.float16).cpu().numpy().tobytes())
    preprocessing = _preprocessing(image_processor)
    h.update(json.dumps(preprocessing, sort_keys=True, default=list).encode())
    dim = int(vision.visual_projection.out_features)
    return f"hf-clip:{dim}d@{h.hexdigest()}|{_input_side(preprocessing)}"


def _resolve_source(source: str, timeout_s: float) -> tuple[str, bool]:
    """(folder or hub id, is_local). Cached hub repos load from the cache without network."""
    missing = f"CLIP folder {source!r} does not exist (and is not a hub id ORG/NAME)"
    return folder_or_hub_id(source, f"hf-clip:{source}", timeout_s, INSTEAD, missing)


def _is_pipeline(where: str, local: bool) -> bool:
    """A diffusers pipeline layout (text_encoder/ + image_encoder/), else a CLIPModel folder."""
    if local:
        folder = Path(where)
        if (folder / "text_encoder" / "config.json").is_file() and (folder / "image_encoder" / "config.json").is_file():
            return True
        if (folder / "config.json").is_file():
            return False
        raise CheckpointNotFoundError(
            f"{folder} is no CLIP folder: it needs config.json (a CLIPModel saved with save_pretrained) or "
            "text_encoder/ and image_encoder/ subfolders (a diffusers pipeline such as a Kandinsky 2.2 prior)"
        )
    from huggingface_hub import file_exists

    return file_exists(where, "model_index.json")


def load_clip_parts(where: str, local: bool, source: str):
    """(text, vision, tokenizer, image processor) of a CLIPModel folder or a pipeline folder,
    the towers in float32 on the CPU."""
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTextModelWithProjection,
        CLIPVisionModelWithProjection,
    )

    pipeline = _is_pipeline(where, local)
    try:
        if not pipeline:
            model = CLIPModel.from_pretrained(where, local_files_only=local).float()
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local)
            return model, model, tokenizer, CLIPImageProcessor.from_pretrained(where, local_files_only=local)
        text = CLIPTextModelWithProjection.from_pretrained(where, subfolder="text_encoder", local_files_only=local)
        vision = CLIPVisionModelWithProjection.from_pretrained(where, subfolder="image_encoder", local_files_only=local)
        tokenizer = AutoTokenizer.from_pretrained(where, subfolder="tokenizer", local_files_only=local)
        subfolders = [s for s in PROCESSOR_SUBFOLDERS if (Path(where) / s).is_dir()] if local else PROCESSOR_SUBFOLDERS
        for sub in subfolders:
            try:
                processor = CLIPImageProcessor.from_pretrained(where, subfolder=sub, local_files_only=local)
                return text.float(), vision.float(), tokenizer, processor
            except OSError:
                continue
    except (OSError, ValueError) as e:
        raise CheckpointNotFoundError(f"cannot load the CLIP in {source}: {e}") from e
    raise CheckpointNotFoundError(f"{source} has no image_processor/ or feature_extractor/ subfolder")


class HfClipEncoder:
    """Text and image embeddings from a transformers CLIP (its projected text and image
    embeddings, as diffusers' priors and decoders use them), L2-normalised."""

    def __init__(self, source: str, device: str = "auto", batch_size: int = 64, hub_timeout_s: float = 5.0):
        try:
            import transformers  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EncoderError("hf-clip models need transformers: pip install 'mmsearch[diffusers]'") from e
        self.device = resolve_device(device)
        self.batch_size = batch_size
        source = source.strip()
        where, local = _resolve_source(source, hub_timeout_s)
        text, vision, self.tokenizer, self.image_processor = load_clip_parts(where, local, source)
        self.text = text.to(self.device).eval().requires_grad_(False)
        self.vision = vision if vision is text else vision.to(self.device).eval().requires_grad_(False)
        dim, text_dim = int(self.vision.visual_projection.out_features), int(self.text.text_projection.out_features)
        if dim != text_dim:
            raise EncoderError(f"{source}: the text projection gives {text_dim}-d embeddings, the image one {dim}-d")
        self.dim = dim
        self.name = f"hf-clip:{source}"
        self.space = clip_space(self.text, self.vision, self.image_processor)
        positions = int(self.text.text_model.config.max_position_embeddings)
        self._max_tokens = min(int(getattr(self.tokenizer, "model_max_length", positions) or positions), positions)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        def embed(chunk, _offset):
            tokens = self.tokenizer(
                list(chunk), padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
            )
            hidden = self.text.text_model(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
            return self.text.text_projection(hidden.pooler_output)

        return embed_batched(texts, self.batch_size, self.dim, embed)

    def preprocess_images(self, images: Sequence[ImageInput], offset: int = 0) -> torch.Tensor:
        """Decode and preprocess to the vision tower's input tensor (N, 3, H, W)."""
        rgb = [load_rgb(im, offset + i) for i, im in enumerate(images)]
        return self.image_processor(images=rgb, return_tensors="pt")["pixel_values"]

    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed already preprocessed images (N, 3, H, W)."""
        return embed_batched(pixels, self.batch_size, self.dim, lambda chunk, _: self._image_embeds(torch.stack(chunk)))

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        def embed(chunk, offset):
            return self._image_embeds(self.preprocess_images(chunk, offset))

        return embed_batched(images, self.batch_size, self.dim, embed)

    def _image_embeds(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.vision.vision_model(pixel_values=pixels.to(self.device, torch.float32))
        return self.vision.visual_projection(hidden.pooler_output)
