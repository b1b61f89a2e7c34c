"""Contrastive training of the built-in mini CLIP on a synthetic corpus.

CLIP's symmetric InfoNCE with a learnable temperature, with one change that matters on
attribute captions: a caption such as "a red circle" fits several images of a batch, so
the targets spread over every image the caption truly describes (`spec_matches`) instead
of treating those as negatives. Captions are re-drawn every step from the ground-truth
attributes (many templates, synonyms and attribute subsets), images are flipped together
with their attributes and augmented; state is checkpointed so a killed run resumes.

Contrastive batches teach shape last: colour, size and position already tell most images of
a batch apart. An auxiliary linear head on the image embedding, trained to say which shapes
and colours are present, makes the tower learn shape early; the head is not exported.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..config import builtin_weights
from ..datasets.captions import (
    colorless_caption,
    flip_scene,
    mentions_color,
    perturb_spec,
    render_spec,
    sample_caption,
    spec_matches,
)
from ..datasets.synth import load_manifest
from ..datasets.vocab import COLOR_NAMES, SHAPES
from ..storage.files import atomic_path, atomic_write, digest
from .augment import augment_batch, rotate_hue
from .image_cache import image_array

log = logging.getLogger(__name__)

BUILTIN_CONFIG = builtin_weights("mini") / "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass
class ClipTrainConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 7e-4
    warmup: int = 150
    weight_decay: float = 0.1
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 0  # 0: torch's default
    hard_negatives: bool = True
    attribute_weight: float = 1.0  # weight of the auxiliary shape/colour-presence loss; 0 turns it off
    gray_prob: float = 0.25  # share of images shown in greyscale with colourless captions
    recolor_prob: float = 0.25  # share shown with their hues turned, also with colourless captions
    init_weights: str | None = None  # start from these exported weights (a fresh run only)
    image_size: int | None = None  # None: the built-in config's; another size changes the model's input side


def load_image_cache(data_dir: Path, items: list[dict], size: int) -> np.ndarray:
    """All images squashed to size x size (as the inference preprocess does), uint8 NHWC,
    cached next to the manifest so a resumed run does not decode again."""
    key = digest(json.dumps([i["file"] for i in items]), "sha1", 12)
    return image_array([data_dir / i["file"] for i in items], size, data_dir / f".cache-{size}px-{key}.npy")


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1], augmented
    texts: list[str]  # B captions (+ B hard negatives)
    fits: torch.Tensor  # (B, len(texts)) 1 where the caption describes the image
    ignore: torch.Tensor  # (B, len(texts)) pairs left out of the loss (colour captions vs colourless images)
    colorless: torch.Tensor  # (B,) images shown in greyscale or with turned hues: their colour names do not hold


def build_batch(
    images: np.ndarray,
    scenes: list[dict],
    idx: np.ndarray,
    rng: np.random.Generator,
    gen: torch.Generator,
    hard_negatives: bool = False,
    gray_prob: float = 0.0,
    recolor_prob: float = 0.0,
) -> Batch:
    """Images (augmented, flipped), captions, and the image-fits-caption matrix (B x B).

    With hard_negatives, B more captions follow, each one of the first B with one attribute
    changed (B x 2B matrix): the model must tell "red star" from "red circle" on the same image.
    With gray_prob, some images are shown in greyscale with colourless captions: shape must
    then be seen without colour, which keeps shape features from leaning on colour (and so
    lets unseen colour-shape pairs be recognised). With recolor_prob, some images have their
    hues turned by 60-300 degrees, also with colourless captions: the model then sees, say,
    blue hexagons labelled "hexagon" even when the corpus never pairs blue with hexagon."""
    x = torch.from_numpy(np.ascontiguousarray(images[idx])).permute(0, 3, 1, 2).float() / 255.0
    batch_scenes, texts, specs = [], [], []
    colorless = torch.zeros(len(idx), dtype=torch.bool)
    for k, i in enumerate(idx):
        scene = scenes[i]
        if rng.random() < 0.5:
            x[k] = x[k].flip(-1)
            scene = flip_scene(scene, horizontal=True)
        if rng.random() < 0.2:
            x[k] = x[k].flip(-2)
            scene = flip_scene(scene, horizontal=False)
        draw = rng.random()
        if draw < gray_prob + recolor_prob:
            colorless[k] = True
            if draw < gray_prob:
                x[k] = (x[k] * LUMA.view(3, 1, 1)).sum(0, keepdim=True).expand(3, -1, -1)
            else:
                x[k] = rotate_hue(x[k], rng.uniform(60, 300))
            text, spec = colorless_caption(scene, rng)
        else:
            text, spec = sample_caption(scene, rng)
        batch_scenes.append(scene)
        texts.append(text)
        specs.append(spec)
    if hard_negatives:
        negatives = [perturb_spec(spec, rng) for spec in specs]
        texts += [render_spec(spec, rng) for spec in negatives]
        specs += negatives
    fits = torch.tensor([[spec_matches(spec, scene) for spec in specs] for scene in batch_scenes], dtype=torch.float32)
    # A colourless image neither fits nor contradicts a caption that names colours.
    ignore = colorless[:, None] & torch.tensor([mentions_color(spec) for spec in specs])[None, :]
    return Batch(augment_batch(x, gen), texts, fits * ~ignore, ignore, colorless)


ATTRIBUTE_NAMES = [f"shape:{s}" for s in SHAPES] + [f"color:{c}" for c in COLOR_NAMES]


def attribute_targets(scenes: list[dict]) -> torch.Tensor:
    """Multi-hot (B, shapes + colours): which shapes and object colours each image holds."""
    out = torch.zeros(len(scenes), len(ATTRIBUTE_NAMES))
    for k, scene in enumerate(scenes):
        for obj in scene["objects"]:
            out[k, SHAPES.index(obj["shape"])] = 1
            out[k, len(SHAPES) + COLOR_NAMES.index(obj["color"])] = 1
    return out


def multi_positive_clip_loss(
    logits: torch.Tensor, fits: torch.Tensor, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE where image i's target is uniform over the captions that fit it, and
    caption j's over the images it fits (captions that fit no image, hard negatives, only
    serve as negatives). With a square diagonal `fits` this is CLIP's loss. Pairs in
    `ignore` count as neither positives nor negatives."""
    if ignore is not None:
        logits = logits.masked_fill(ignore, -1e4)  # finite: 0 * -inf would be nan
    img_targets = fits / fits.sum(1, keepdim=True)
    loss_i = -(img_targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    described = fits.sum(0) > 0
    txt_fits = fits.t()[described]
    txt_targets = txt_fits / txt_fits.sum(1, keepdim=True)
    loss_t = -(txt_targets * F.log_softmax(logits.t()[described], dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def _prefetch(make_batch, depth: int = 2):
    """Build batches in a background thread while the model trains on the current one
    (torch releases the GIL in its kernels, so the two overlap)."""
    q: queue.Queue = queue.Queue(maxsize=depth)

    def worker() -> None:
        while True:
            q.put(make_batch())

    threading.Thread(target=worker, daemon=True).start()
    while True:
        yield q.get()


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, cfg: ClipTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def export_weights(model: torch.nn.Module, out_dir: Path, config_path: Path = BUILTIN_CONFIG) -> Path:
    """Write an open_clip local-dir model: open_clip_config.json + fp16 safetensors weights."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if config_path.resolve() != (out_dir / "open_clip_config.json").resolve():
        with atomic_path(out_dir / "open_clip_config.json") as tmp:
            shutil.copyfile(config_path, tmp)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    return out_dir / WEIGHTS_NAME


def load_resized_weights(path: str | Path, model: torch.nn.Module) -> None:
    """Load exported weights into `model`, whose input side may differ from theirs: the
    attention pool's position embedding (one per cell of the final feature grid, plus the
    pooled token) is interpolated bicubically to the new grid; convolutions carry over as they are."""
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    key = "visual.attnpool.positional_embedding"
    target = model.state_dict().get(key)
    if key in state and target is not None and state[key].shape != target.shape:
        old, new = state[key], target
        src, dst = math.isqrt(old.shape[0] - 1), math.isqrt(new.shape[0] - 1)
        grid = old[1:].reshape(src, src, -1).permute(2, 0, 1).unsqueeze(0)
        grid = F.interpolate(grid, size=(dst, dst), mode="bicubic", align_corners=False)
        state[key] = torch.cat([old[:1], grid.squeeze(0).permute(1, 2, 0).reshape(dst * dst, -1)])
    model.load_state_dict(state)


def model_config(out_dir: Path, image_size: int | None) -> Path:
    """The open_clip config to build from: the built-in one, or a copy in out_dir with another
    input side (written once, so a resumed run builds the same model)."""
    if image_size is None:
        return BUILTIN_CONFIG
    cfg = json.loads(BUILTIN_CONFIG.read_text())
    cfg["model_cfg"]["vision_cfg"]["image_size"] = image_size
    path = out_dir / "open_clip_config.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(cfg, indent=2) + "\n")
    return path


def train_clip(
    data_dir: str | Path, out_dir: str | Path, cfg: ClipTrainConfig, resume: bool = True, progress=None
) -> dict:
    """Train and export; returns a summary. `progress(step, total, loss)` is called per step."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    manifest = load_manifest(data_dir)
    items = [i for i in manifest["items"] if i["kind"] == "image"]
    if not items:
        raise ValueError(f"{data_dir} holds no images to train on")
    config_path = model_config(out_dir, cfg.image_size)
    model_cfg = json.loads(config_path.read_text())
    size = model_cfg["model_cfg"]["vision_cfg"]["image_size"]
    pre = model_cfg["preprocess_cfg"]
    mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
    images = load_image_cache(data_dir, items, size)

    torch.manual_seed(cfg.seed)
    model = open_clip.create_model(f"local-dir:{config_path.parent}", load_weights=False)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{config_path.parent}")
    attribute_head = torch.nn.Linear(model_cfg["model_cfg"]["embed_dim"], len(ATTRIBUTE_NAMES))
    opt = torch.optim.AdamW(
        _param_groups(model, cfg.weight_decay) + [{"params": attribute_head.parameters(), "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    state_path = out_dir / "train-state.pt"
    step, rng, gen = 0, np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    if resume and state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        attribute_head.load_state_dict(state["attribute_head"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(state["torch_rng"])
        log.info("resumed from %s at step %d", state_path, step)
    elif cfg.init_weights:
        load_resized_weights(cfg.init_weights, model)
        log.info("initialised from %s", cfg.init_weights)
    out_dir.mkdir(parents=True, exist_ok=True)

    def save_state() -> None:
        with atomic_path(state_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "attribute_head": attribute_head.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step,
                    "numpy_rng": rng.bit_generator.state,
                    "torch_rng": gen.get_state(),
                    "config": asdict(cfg),
                },
                tmp,
            )

    model.train()
    t0, losses = time.time(), []

    def make_batch():
        idx = rng.choice(len(items), size=cfg.batch_size, replace=False)
        batch = build_batch(
            images,
            items,
            idx,
            rng,
            gen,
            hard_negatives=cfg.hard_negatives,
            gray_prob=cfg.gray_prob,
            recolor_prob=cfg.recolor_prob,
        )
        return batch, attribute_targets([items[i] for i in idx])

    batches = _prefetch(make_batch)
    while step < cfg.steps:
        batch, attributes = next(batches)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        img_features = model.encode_image((batch.images - mean) / std)
        img = F.normalize(img_features, dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(batch.texts)), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.t()
        loss = multi_positive_clip_loss(logits, batch.fits, batch.ignore)
        if cfg.attribute_weight:
            # Colour targets of colourless images are unknowable: left out.
            known = torch.ones_like(attributes)
            known[batch.colorless, len(SHAPES) :] = 0
            bce = (
                F.binary_cross_entropy_with_logits(
                    attribute_head(img_features), attributes, weight=known, reduction="sum"
                )
                / known.sum()
            )
            loss = loss + cfg.attribute_weight * bce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        losses.append(loss.item())
        if progress:
            progress(step, cfg.steps, loss.item())
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_state()
            export_weights(model, out_dir, config_path)
    export_weights(model, out_dir, config_path)
    return {
        "steps": step,
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "seconds": time.time() - t0,
        "out": str(out_dir),
        "images": len(items),
    }
