"""Any open_clip model behind the Encoder protocol, loaded through open_clip's own factory.

Spec strings:
  mini                          the built-in model shipped in mmsearch/weights/mini
  ViT-B-32/laion2b_s34b_b79k    an open_clip architecture with a pretrained tag (hub)
  hf-hub:ORG/REPO               an open_clip model on the Hugging Face hub
  /path/to/dir                  a local model folder: open_clip_config.json + weights
  /path/to/weights.pt           local weights with open_clip_config.json beside them
  ViT-B-32:/path/to/weights.pt  an open_clip architecture with local weights
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import builtin_weights
from ..storage.files import file_digest
from .base import (
    CheckpointNotFoundError,
    ImageInput,
    UnknownModelError,
    embed_batched,
    load_rgb,
    resolve_device,
)
from .hub import cached_hf_file, cached_hf_snapshot, hf_endpoint, require_hub
from .synonyms import Synonyms

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")
INSTEAD = "--model mini (built in) or a local checkpoint path"
# A model that squashes its input (mini) sees wider pictures padded to this aspect first:
# squashed 4:1, a hexagon reads as a square (zero-shot shape 0.42 on pictures wider than
# 2.2:1, 0.88 padded), while padding all the way to square loses "top"/"bottom" of very wide
# ones (position 0.52 there); 1.6 kept both (0.96 shape, 0.94 position; BENCHMARKS.md).
MAX_SQUASH_ASPECT = 1.6


def weights_digest(path: str | Path) -> str:
    """Short content digest of a weights file (size + head + tail: cheap on GB files)."""
    return file_digest(path, "sha1", 10, ends_only=1 << 20)


def _is_pathlike(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or spec.endswith(WEIGHT_SUFFIXES)


def _local_dir_weights(folder: Path) -> Path:
    if not (folder / "open_clip_config.json").is_file():
        raise CheckpointNotFoundError(f"{folder} has no open_clip_config.json (an open_clip model folder needs one)")
    found = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not found:
        raise CheckpointNotFoundError(
            f"{folder} holds open_clip_config.json but no weights file ({', '.join(WEIGHT_SUFFIXES)})"
        )
    preferred = [p for p in found if p.name.startswith("open_clip")]
    return (preferred or found)[0]


class OpenClipEncoder:
    """Text and image embeddings from an open_clip model."""

    def __init__(self, spec: str = "mini", device: str = "auto", batch_size: int = 64, hub_timeout_s: float = 5.0):
        self.spec = spec
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self._hub_timeout_s = hub_timeout_s
        self._folder: Path | None = None  # set by _load for models read from a folder
        self.model, self.preprocess, self.tokenizer, label = self._load(spec)
        self.synonyms = Synonyms.load(self._folder) if self._folder else None
        self.model.eval().requires_grad_(False)  # inference only; image_features passes gradients to its input
        cfg = self.model.visual.preprocess_cfg if hasattr(self.model.visual, "preprocess_cfg") else {}
        size = cfg.get("size", getattr(self.model.visual, "image_size", "?"))
        self._input_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.name = spec
        resize_mode = cfg.get("resize_mode", "shortest")
        self._pad_to_aspect = MAX_SQUASH_ASPECT if resize_mode == "squash" else None
        padding = f"pad{self._pad_to_aspect:g}" if self._pad_to_aspect else ""
        self.space = f"open_clip:{label}|{resize_mode}{self._input_size[0]}{padding}"
        # What image_features needs to preprocess tensors as self.preprocess does PIL images.
        self._pixel_mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=self.device).view(
            1, 3, 1, 1
        )
        self._pixel_std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=self.device).view(
            1, 3, 1, 1
        )
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["x"]).to(self.device)).shape[-1])

    # -- loading -------------------------------------------------------------------------
    def _create(self, model_name: str, pretrained: str | None = None, weights: Path | None = None):
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=self.device, load_weights=weights is None
        )
        if weights is not None:
            open_clip.load_checkpoint(
                model, str(weights), device="cpu"
            )  # safetensors wants a plain string device; params move on load
        return model, preprocess, open_clip.get_tokenizer(model_name)

    def _load(self, spec: str):
        if spec == "mini":
            folder = self._folder = builtin_weights("mini")
            weights = folder / "open_clip_model.safetensors"
            if not weights.is_file():
                raise CheckpointNotFoundError(
                    f"built-in mini weights are missing ({weights}); train them with `mmsearch train clip`"
                )
            return (*self._create(f"local-dir:{folder}"), f"mini@{weights_digest(weights)}")
        if spec.startswith("hf-hub:"):
            return self._load_hf_hub(spec[len("hf-hub:") :])
        arch, sep, path = spec.partition(":")
        if sep and arch in open_clip.list_models() and _is_pathlike(path):
            p = Path(path).expanduser()
            if not p.is_file():
                raise CheckpointNotFoundError(f"checkpoint {p} does not exist")
            return (*self._create(arch, pretrained=str(p)), f"{arch}@{weights_digest(p)}")
        p = Path(spec).expanduser()
        if p.is_dir():
            weights = _local_dir_weights(p)
            self._folder = p
            return (*self._create(f"local-dir:{p.resolve()}", weights=weights), f"{p.name}@{weights_digest(weights)}")
        if p.is_file():
            weights = p
            _local_dir_weights(p.parent)  # the config must sit beside the weights
            self._folder = p.parent
            return (
                *self._create(f"local-dir:{p.parent.resolve()}", weights=weights),
                f"{p.stem}@{weights_digest(weights)}",
            )
        if spec.split("/", 1)[0] in open_clip.list_models():
            return self._load_pretrained_tag(spec)
        if _is_pathlike(spec):
            raise CheckpointNotFoundError(f"checkpoint {spec} does not exist")
        raise UnknownModelError(
            f"unknown model spec {spec!r}: expected 'mini', an open_clip NAME/TAG (e.g. ViT-B-32/laion2b_s34b_b79k), "
            "hf-hub:ORG/REPO, blip:DIR, hf-clip:DIR, or a local checkpoint path"
        )

    def _load_pretrained_tag(self, spec: str):
        name, _, tag = spec.partition("/")
        tags = open_clip.list_pretrained_tags_by_model(name)
        if not tag:
            raise UnknownModelError(
                f"{name} needs a pretrained tag: {name}/<tag>, one of {tags}, or {name}:/path/to/weights"
            )
        cfg = open_clip.get_pretrained_cfg(name, tag)
        if not cfg:
            raise UnknownModelError(f"unknown pretrained tag {tag!r} for {name}; known tags: {tags}")
        cached = self._cached_pretrained(cfg)
        if cached is None:
            url = hf_endpoint() if cfg.get("hf_hub") else cfg.get("url", hf_endpoint())
            require_hub(f"weights for {spec}", url, self._hub_timeout_s, INSTEAD)
            return (*self._create(name, pretrained=tag), spec)
        # Cached: load the file directly so nothing touches the network.
        model, preprocess, tokenizer = self._create_from_cached(name, tag, cached)
        return model, preprocess, tokenizer, spec

    def _create_from_cached(self, name: str, tag: str, path: str):
        cfg = open_clip.get_pretrained_cfg(name, tag)
        model, _, preprocess = open_clip.create_model_and_transforms(
            name,
            pretrained=path,
            device=self.device,
            force_quick_gelu=bool(cfg.get("quick_gelu", False)),
            image_mean=cfg.get("mean"),
            image_std=cfg.get("std"),
            image_interpolation=cfg.get("interpolation"),
            image_resize_mode=cfg.get("resize_mode"),
        )
        return model, preprocess, open_clip.get_tokenizer(name)

    @staticmethod
    def _cached_pretrained(cfg: dict) -> str | None:
        hub = cfg.get("hf_hub", "")
        if hub:
            repo, filename = os.path.split(hub)  # "org/repo/" means the default file names
            names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
            if filename.endswith(".bin"):
                names.insert(0, filename[:-4] + ".safetensors")
            return cached_hf_file(repo, names)
        url = cfg.get("url", "")
        if url:
            local = Path("~/.cache/clip").expanduser() / os.path.basename(url)
            return str(local) if local.is_file() else None
        return None

    def _load_hf_hub(self, repo: str):
        snapshot = cached_hf_snapshot(repo)
        if snapshot and (Path(snapshot) / "open_clip_config.json").is_file():
            weights = _local_dir_weights(Path(snapshot))
            return (*self._create(f"local-dir:{snapshot}", weights=weights), f"hf-hub:{repo}")
        require_hub(f"hf-hub:{repo}", hf_endpoint(), self._hub_timeout_s, INSTEAD)
        return (*self._create(f"hf-hub:{repo}"), f"hf-hub:{repo}")

    # -- embedding -----------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.synonyms and not isinstance(texts, str):
            texts = [self.synonyms(t) for t in texts]
        return embed_batched(
            texts,
            self.batch_size,
            self.dim,
            lambda chunk, _: self.model.encode_text(self.tokenizer(chunk).to(self.device)),
        )

    def preprocess_images(self, images: Sequence[ImageInput], offset: int = 0) -> torch.Tensor:
        """Decode and preprocess to the model's input tensor."""

        def prepared(image: Image.Image) -> Image.Image:
            return pad_to_aspect(image, self._pad_to_aspect) if self._pad_to_aspect else image

        return torch.stack([self.preprocess(prepared(load_rgb(im, offset + i))) for i, im in enumerate(images)])

    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed already preprocessed images (N, 3, H, W)."""
        return embed_batched(
            pixels,
            self.batch_size,
            self.dim,
            lambda chunk, _: self.model.encode_image(torch.stack(chunk).to(self.device)),
        )

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable, unnormalised image embeddings of square pixel tensors in [0, 1]
        (B, 3, H, W): resized to the model's input and normalised as its preprocessing does,
        so a training loss (the decoder's embedding-consistency loss) can pass gradients
        through the frozen encoder."""
        if tuple(images.shape[-2:]) != self._input_size:
            images = F.interpolate(images, size=self._input_size, mode="bicubic", align_corners=False)
        return self.model.encode_image((images - self._pixel_mean) / self._pixel_std)

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        return embed_batched(
            images,
            self.batch_size,
            self.dim,
            lambda chunk, offset: self.model.encode_image(self.preprocess_images(chunk, offset).to(self.device)),
        )


def pad_to_aspect(image: Image.Image, max_aspect: float) -> Image.Image:
    """The image, centred on a canvas widened along its short side until its aspect is at most
    max_aspect; the canvas takes the median colour of the image's border, so it reads as more
    background."""
    width, height = image.size
    if max(width, height) <= max_aspect * min(width, height):
        return image
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    colour = tuple(int(v) for v in np.median(border, axis=0))
    size = (width, round(width / max_aspect)) if width > height else (round(height / max_aspect), height)
    canvas = Image.new("RGB", size, colour)
    canvas.paste(image, ((size[0] - width) // 2, (size[1] - height) // 2))
    return canvas
