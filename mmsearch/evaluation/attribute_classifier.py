"""A small CNN that names the shape and colour of a one-object synthetic image.

It judges generated images in eval-generation, so it is trained apart from the CLIP model
(a judge that shares the generator's encoder would grade its own homework), on
single-object images of a synthetic train corpus, at the decoder's small resolution.
A judge trained with non-shapes (blobs, scribbles, hatching, fragments; datasets/non_shapes.py)
has a seventh shape answer, "none": without it, a scribble is called whichever shape it
looks least unlike, and a decoder that scribbles scores as if it drew.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn

from ..config import builtin_weights
from ..datasets.non_shapes import non_shape_array
from ..datasets.synth import load_manifest
from ..datasets.vocab import COLOR_NAMES, SHAPES
from ..generation.checkpoint import load_pretrained, save_pretrained
from ..pixels import unit_pixels
from ..storage.files import atomic_write
from ..training.augment import augment_batch
from ..training.image_cache import image_array

CONFIG_NAME, WEIGHTS_NAME = "attribute_classifier.json", "attribute_classifier.safetensors"
CLASSIFIER_DIR = builtin_weights("mini")
NONE = "none"  # the shape answer of a judge trained with non-shapes
NONE_INDEX = len(SHAPES)  # its class index: after the six shapes
TRAIN_NON_SHAPE_SEED, HELDOUT_NON_SHAPE_SEED = 0, 1


@dataclass
class ClassifierConfig:
    image_size: int = 32
    width: int = 32
    non_shapes: bool = False  # a seventh shape class, NONE (judges saved before it existed have six)


class AttributeClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(
            block(3, w), block(w, 2 * w), block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.shape_names = SHAPES + [NONE] if cfg.non_shapes else list(SHAPES)
        self.shape_head = nn.Linear(4 * w, len(self.shape_names))
        self.color_head = nn.Linear(4 * w, len(COLOR_NAMES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: images in [0, 1], (B, 3, S, S). Returns shape and colour logits."""
        h = self.features(x * 2 - 1)
        return self.shape_head(h), self.color_head(h)

    @torch.inference_mode()
    def predict(self, images: list) -> tuple[list[str], list[str]]:
        """PIL images -> (shape names, colour names)."""
        size = self.cfg.image_size
        arr = np.stack([np.asarray(im.convert("RGB").resize((size, size))) for im in images])
        x = unit_pixels(arr)
        shape_logits, color_logits = self(x)
        return [self.shape_names[i] for i in shape_logits.argmax(1)], [COLOR_NAMES[i] for i in color_logits.argmax(1)]

    def save(self, out_dir: str | Path) -> None:
        save_pretrained(self, out_dir, CONFIG_NAME, WEIGHTS_NAME)

    @classmethod
    def load(cls, model_dir: str | Path = CLASSIFIER_DIR) -> "AttributeClassifier":
        return load_pretrained(cls, ClassifierConfig, model_dir, CONFIG_NAME, WEIGHTS_NAME, "cpu")


def single_object_items(data_dir: Path) -> list[dict]:
    return [i for i in load_manifest(data_dir)["items"] if i["kind"] == "image" and len(i["objects"]) == 1]


def labelled_images(
    data_dir: Path, size: int, cache: Path | None = None
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    items = single_object_items(data_dir)
    pixels = image_array([data_dir / i["file"] for i in items], size, cache)
    shapes = torch.tensor([SHAPES.index(i["objects"][0]["shape"]) for i in items])
    colors = torch.tensor([COLOR_NAMES.index(i["objects"][0]["color"]) for i in items])
    return pixels, shapes, colors


def _non_shape_count(images: int) -> int:
    """One non-shape per six shape images: about as many as any one shape."""
    return max(1, images // len(SHAPES))


def train_classifier(
    train_dir: str | Path,
    out_dir: str | Path,
    steps: int = 4000,
    batch_size: int = 128,
    lr: float = 2e-3,
    cfg: ClassifierConfig | None = None,
    heldout_dir: str | Path | None = None,
    seed: int = 0,
) -> dict:
    """Train on the one-object images of a train split (flips and the CLIP trainer's
    augmentations, which keep colour names true), plus one non-shape per six images when the
    config has the NONE class (the default); report accuracy on a heldout split when given."""
    cfg = cfg or ClassifierConfig(non_shapes=True)
    train_dir = Path(train_dir)
    torch.manual_seed(seed)
    pixels, shapes, colors = labelled_images(
        train_dir, cfg.image_size, train_dir / f".classifier-{cfg.image_size}px.npy"
    )
    if cfg.non_shapes:
        negatives, negative_colors = non_shape_array(
            _non_shape_count(len(pixels)), cfg.image_size, TRAIN_NON_SHAPE_SEED
        )
        pixels = np.concatenate([pixels, negatives])
        shapes = torch.cat([shapes, torch.full((len(negatives),), NONE_INDEX)])
        colors = torch.cat([colors, torch.tensor([COLOR_NAMES.index(c) for c in negative_colors])])
    model = AttributeClassifier(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = torch.randint(0, len(pixels), (batch_size,), generator=gen).sort().values  # sorted: cheap memmap reads
        x = unit_pixels(pixels[idx.numpy()])
        x = torch.where(torch.rand(batch_size, 1, 1, 1, generator=gen) < 0.5, x.flip(-1), x)
        x = augment_batch(x, gen)  # zoom, shift, blur, light and noise: a soft-edged star is still a star
        shape_logits, color_logits = model(x)
        loss = F.cross_entropy(shape_logits, shapes[idx]) + F.cross_entropy(color_logits, colors[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    model.save(out_dir)
    report = {
        "steps": steps,
        "seconds": round(time.time() - t0, 1),
        "train_images": len(pixels),
        "final_loss": loss.item(),
    }
    if heldout_dir is not None:
        report["heldout"] = classifier_accuracy(model, Path(heldout_dir))
    atomic_write(
        Path(out_dir) / "attribute_classifier_report.json",
        json.dumps(report | {"config": asdict(cfg)}, indent=2) + "\n",
    )
    return report


@torch.inference_mode()
def classifier_accuracy(model: AttributeClassifier, data_dir: Path) -> dict:
    """Accuracy on the split's one-object images, as they are and softened by a 1 px
    Gaussian blur (generated images are rarely as crisp as renders). A judge with the NONE
    class also reports how often it calls a real shape none, and how often it rejects
    non-shapes it never saw (one per six images)."""
    pixels, shapes, colors = labelled_images(data_dir, model.cfg.image_size)
    report = {"images": len(pixels)}
    blurred = np.stack([np.asarray(Image.fromarray(p).filter(ImageFilter.GaussianBlur(1.0))) for p in pixels])
    for suffix, batch in (("", pixels), ("_blurred", blurred)):
        shape_logits, color_logits = model(unit_pixels(batch))
        report[f"shape_accuracy{suffix}"] = float((shape_logits.argmax(1) == shapes).float().mean())
        report[f"color_accuracy{suffix}"] = float((color_logits.argmax(1) == colors).float().mean())
        if model.cfg.non_shapes:
            report[f"none_rate{suffix}"] = float((shape_logits.argmax(1) == NONE_INDEX).float().mean())
    if model.cfg.non_shapes:
        negatives, _ = non_shape_array(_non_shape_count(len(pixels)), model.cfg.image_size, HELDOUT_NON_SHAPE_SEED)
        report["non_shapes"] = len(negatives)
        report["non_shape_rejection"] = float((model(unit_pixels(negatives))[0].argmax(1) == NONE_INDEX).float().mean())
    return report
