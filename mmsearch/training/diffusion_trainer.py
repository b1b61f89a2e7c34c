"""Training of the generation models (prior and decoder) from an indexed library.

One resumable loop serves both: AdamW with warm-up and cosine decay, an exponential moving
average of the weights (the EMA copy is what gets saved and sampled: diffusion samples from
averaged weights are much cleaner), and a training-state checkpoint (kept in a work folder,
not beside the exported model) so a killed run resumes where it stopped.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..generation.models import Decoder, DecoderConfig, DiffusionPrior, PriorConfig
from ..pixels import unit_pixels
from ..storage.files import atomic_path
from .diffusion_losses import ImageFeatures, decoder_loss, prior_loss
from .image_cache import image_array
from .pairs import LibraryPairs

log = logging.getLogger(__name__)


@dataclass
class DiffusionTrainConfig:
    steps: int = 4000
    batch_size: int = 128
    lr: float = 3e-4
    warmup: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 0  # 0: torch's default
    init: str | None = (
        None  # a fresh run starts from this exported model folder (fine-tuning, e.g. after the encoder changed)
    )


def train_loop(
    model,
    batch_loss: Callable[[torch.nn.Module, np.random.Generator, torch.Generator], torch.Tensor],
    out_dir: Path,
    state_path: Path,
    cfg: DiffusionTrainConfig,
    progress=None,
) -> dict:
    """Optimise model on batch_loss(model, rng, gen); saves the EMA weights with model.save
    into out_dir, and the state to resume from at state_path."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, rng, gen = 0, np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    if not state_path.exists() and cfg.init:
        # Weights only: the schedule, optimizer and EMA start afresh, so the run adapts fully.
        try:
            model.load_state_dict(type(model).load(cfg.init).state_dict())
        except RuntimeError as e:  # another width, depth or embedding size
            raise ValueError(f"cannot fine-tune from {cfg.init}: its shapes differ from this model's ({e})") from e
        ema.load_state_dict(model.state_dict())
        log.info("initialised from %s", cfg.init)
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(state["torch_rng"])
        log.info("resumed from %s at step %d", state_path, step)

    def checkpoint() -> None:
        ema.save(out_dir)
        state = {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": gen.get_state(),
        }
        with atomic_path(state_path) as tmp:  # a run killed mid-save resumes from the previous state
            torch.save(state, tmp)

    t0, losses = time.time(), []
    model.train()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = (
                cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.steps)))
            )
        loss = batch_loss(model, rng, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))  # short warm-up: early weights are noise
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - decay)
        step += 1
        losses.append(loss.item())
        if progress:
            progress(step, cfg.steps, loss.item())
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint()
    if not losses:
        ema.save(out_dir)
    return {
        "steps": step,
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "seconds": round(time.time() - t0, 1),
        "out": str(out_dir),
    }


def train_prior(
    pairs: LibraryPairs,
    embed_texts: Callable[[list[str]], np.ndarray],
    out_dir: str | Path,
    work_dir: str | Path,
    cfg: DiffusionTrainConfig,
    prior_cfg: PriorConfig,
    progress=None,
) -> dict:
    """Fit the prior on (caption, image) embedding pairs; every caption of an image is used.
    work_dir keeps the state a killed run resumes from."""
    pairs = pairs.captioned()
    if len(pairs) == 0:
        raise ValueError(
            "the library has no captioned images: add sidecar .txt captions or index a `mmsearch synth` corpus"
        )
    flat = [c for caps in pairs.captions for c in caps]
    owner = torch.tensor([k for k, caps in enumerate(pairs.captions) for _ in caps])
    texts = F.normalize(torch.from_numpy(np.asarray(embed_texts(flat), np.float32)), dim=-1)
    images = torch.from_numpy(pairs.image_embeddings)
    torch.manual_seed(cfg.seed)
    model = DiffusionPrior(prior_cfg)

    def batch_loss(m, rng, gen):
        idx = torch.randint(0, len(flat), (cfg.batch_size,), generator=gen)
        return prior_loss(m, texts[idx], images[owner[idx]], gen, candidates=images, own=owner[idx])

    summary = train_loop(model, batch_loss, Path(out_dir), Path(work_dir) / "prior-train-state.pt", cfg, progress)
    return summary | {"images": len(pairs), "captions": len(flat)}


def train_decoder(
    pairs: LibraryPairs,
    out_dir: str | Path,
    work_dir: str | Path,
    cfg: DiffusionTrainConfig,
    decoder_cfg: DecoderConfig,
    cond_noise: float = 0.02,
    progress=None,
    image_features: ImageFeatures | None = None,
    consistency_weight: float = 0.0,
) -> dict:
    """Fit the decoder on the library's images and their image embeddings. A little noise on
    the conditioning embedding makes it forgiving of the prior's slightly-off predictions.
    With the library's image encoder (`image_features`) and a weight, the embedding-consistency
    loss is added (diffusion_losses.consistency_loss). work_dir keeps the resumable state and the
    decoded-images cache."""
    if len(pairs) == 0:
        raise ValueError("the library has no indexed images to train the decoder on")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    pixels = image_array(
        pairs.paths, decoder_cfg.image_size, work_dir / f"decoder-images-{decoder_cfg.image_size}px.npy"
    )
    embeddings = torch.from_numpy(pairs.image_embeddings)
    torch.manual_seed(cfg.seed)
    # Channels-last convolutions train about 20% faster on CPU (measured on the mini decoder).
    model = Decoder(decoder_cfg).to(memory_format=torch.channels_last)

    def batch_loss(m, rng, gen):
        idx = np.sort(rng.choice(len(pixels), size=cfg.batch_size, replace=False))
        x = (unit_pixels(pixels[idx]) * 2 - 1).contiguous(memory_format=torch.channels_last)
        e = embeddings[idx]
        e = F.normalize(e + cond_noise * torch.randn(e.shape, generator=gen), dim=-1)
        return decoder_loss(m, x, e, gen, image_features, consistency_weight)

    summary = train_loop(model, batch_loss, Path(out_dir), work_dir / "decoder-train-state.pt", cfg, progress)
    return summary | {"images": len(pairs)}
