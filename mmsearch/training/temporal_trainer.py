"""Contrastive training of the seqTransf temporal head on captioned synthetic videos, the
image and text encoders frozen (their vectors are computed once).

Every video also appears played backwards with its caption reversed ("moving left" becomes
"moving right", "growing" becomes "shrinking"): the same frames in the other order must
match the other caption, which is exactly what mean pooling cannot learn. The reversed
caption is also each video's hard negative. Frames are randomly dropped, one-shot videos
randomly cut to a part of themselves (still moving the same way), and frame vectors jittered
with noise, so the head copes with the varying frame counts index-time sampling gives and
with frames unlike the training renders.

Captions meet the pooled vectors through the head's query map (see SeqTransf), and a second
loss sets each video's caption against its reversed caption alone, so direction is not left
to the few reversed pairs a contrastive batch happens to hold.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets.synth_video import reversed_shot, video_caption
from ..datasets.video_features import VideoFeatures
from ..encoders.temporal import POOL_FRAMES, SeqTransf, pick_frames
from .clip_trainer import multi_positive_clip_loss
from .video_phrasings import ATTRIBUTES, UNSAID, AttributeCodes, Phrasing, phrasings, shot_attributes

log = logging.getLogger(__name__)


@dataclass
class TemporalTrainConfig:
    steps: int = 2500
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.05
    layers: int = 2
    heads: int = 4
    frame_dropout: float = 0.25
    min_crop: float = 0.6  # shortest part (fraction of frames) a one-shot video is cut to
    noise: float = 0.02  # std of the Gaussian noise added to frame vectors
    query_adapter: bool = True  # learn the query map for text queries against pooled vectors
    query_lr_scale: float = 10.0  # the query map's learning rate, as a multiple of lr
    reversal_weight: float = 1.0  # weight of the caption-vs-reversed-caption loss
    seed: int = 0


@dataclass
class _Examples:
    frames: torch.Tensor  # (N, POOL_FRAMES, d), zero padded
    valid: torch.Tensor  # (N, POOL_FRAMES) bool
    phrasing: torch.Tensor  # (N, V) caption ids of the ways to word it (the manifest caption first), -1 padded
    reversed_phrasing: torch.Tensor  # (N, V) the same wordings of the video played backwards
    phrasings: torch.Tensor  # (N,) how many wordings each has
    codes: torch.Tensor  # (N, len(ATTRIBUTES)) its shot's attributes; NOT_ONE_SHOT for multi-shot videos
    caption_codes: torch.Tensor  # (C, len(ATTRIBUTES)) what each caption says (UNSAID elsewhere)
    one_shot: torch.Tensor  # (N,) bool: any part of the video still fits its caption


NOT_ONE_SHOT = -2  # a multi-shot video fits its own whole caption only
FULL_CAPTION_SHARE = 0.4  # how often a step shows the manifest caption rather than a shorter wording


def _examples(videos: list[VideoFeatures], captions: dict[str, int]) -> _Examples:
    """Every video forwards and backwards, each with its wordings (see video_phrasings);
    `captions` gathers every wording's id."""
    dim = videos[0].frames.shape[1]
    n = 2 * len(videos)
    frames = torch.zeros(n, POOL_FRAMES, dim)
    valid = torch.zeros(n, POOL_FRAMES, dtype=torch.bool)
    one_shot = torch.tensor([len(v.item["shots"]) == 1 for v in videos for _ in range(2)])
    coder, caption_codes = AttributeCodes(), {}
    wordings, codes = [], []
    for k, v in enumerate(videos):
        picked = torch.from_numpy(v.frames[pick_frames(v.times)])
        shots, back = v.item["shots"], [reversed_shot(s) for s in reversed(v.item["shots"])]
        for j, (seq, a, b) in enumerate(((picked, shots, back), (picked.flip(0), back, shots))):
            frames[2 * k + j, : len(seq)] = seq
            valid[2 * k + j, : len(seq)] = True
            if len(shots) == 1:
                pairs = list(zip(phrasings(a[0]), phrasings(b[0])))
                codes.append(coder.encode(shot_attributes(a[0])))
            else:
                pairs = [(Phrasing(video_caption(a), {}), Phrasing(video_caption(b), {}))]
                codes.append([NOT_ONE_SHOT] * len(ATTRIBUTES))
            ids = []
            for own, rev in pairs:
                for p in (own, rev):
                    cid = captions.setdefault(p.text, len(captions))
                    # a multi-shot caption says nothing checkable: it fits by being the video's own
                    caption_codes.setdefault(
                        cid, coder.encode(p.said) if p.said else [NOT_ONE_SHOT - 1] * len(ATTRIBUTES)
                    )
                ids.append((captions[own.text], captions[rev.text]))
            wordings.append(ids)
    width = max(len(w) for w in wordings)
    phrasing = torch.full((n, width), -1, dtype=torch.long)
    reversed_phrasing = torch.full((n, width), -1, dtype=torch.long)
    for i, ids in enumerate(wordings):
        phrasing[i, : len(ids)] = torch.tensor([a for a, _ in ids])
        reversed_phrasing[i, : len(ids)] = torch.tensor([b for _, b in ids])
    return _Examples(
        frames,
        valid,
        phrasing,
        reversed_phrasing,
        torch.tensor([len(w) for w in wordings]),
        torch.tensor(codes),
        torch.tensor([caption_codes[c] for c in range(len(captions))]),
        one_shot,
    )


def _pick_wordings(data: _Examples, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One wording per example, and the same wording of it played backwards."""
    others = (torch.rand(len(idx), generator=gen) * (data.phrasings[idx] - 1)).long() + 1
    pick = torch.where(
        (torch.rand(len(idx), generator=gen) < FULL_CAPTION_SHARE) | (data.phrasings[idx] == 1), 0, others
    )
    return data.phrasing[idx, pick], data.reversed_phrasing[idx, pick]


def _fits(data: _Examples, idx: torch.Tensor, own: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(B, C): caption column c describes example i, by its attributes or as its own caption."""
    said = data.caption_codes[columns][None]  # (1, C, A)
    by_attributes = ((said == UNSAID) | (said == data.codes[idx][:, None])).all(-1)
    return (by_attributes | (own[:, None] == columns[None])).float()


def _augment(
    data: _Examples, idx: torch.Tensor, cfg: TemporalTrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (noised, renormalised) and the mask of frames kept (crops, then dropout)."""
    valid = data.valid[idx]
    lengths = valid.sum(1)
    crop_len = (
        torch.ceil(lengths * (cfg.min_crop + (1 - cfg.min_crop) * torch.rand(len(idx), generator=gen)))
        .long()
        .clamp(min=1)
    )
    crop_len = torch.where(data.one_shot[idx], torch.minimum(crop_len, lengths), lengths)
    start = (torch.rand(len(idx), generator=gen) * (lengths - crop_len + 1)).long()
    slot = torch.arange(valid.shape[1])[None, :]
    keep = valid & (slot >= start[:, None]) & (slot < (start + crop_len)[:, None])
    keep &= torch.rand(keep.shape, generator=gen) >= cfg.frame_dropout
    first = torch.where(keep.any(1), keep.float().argmax(1), start)
    keep[torch.arange(len(idx)), first] = True  # at least one frame
    frames = F.normalize(data.frames[idx] + cfg.noise * torch.randn(data.frames[idx].shape, generator=gen), dim=-1)
    return frames, keep


def _reversal_loss(
    logits: torch.Tensor, columns: torch.Tensor, caption: torch.Tensor, reversed_caption: torch.Tensor
) -> torch.Tensor:
    """Each video's own caption against the caption of itself played backwards, alone: the
    contrastive loss spreads its push over the whole batch, this one aims at direction."""
    directed = caption != reversed_caption
    if not directed.any():
        return logits.new_zeros(())
    rows = torch.arange(len(caption))[directed]
    own = logits[rows, torch.searchsorted(columns, caption[directed])]
    backwards = logits[rows, torch.searchsorted(columns, reversed_caption[directed])]
    return F.cross_entropy(torch.stack([own, backwards], 1), torch.zeros(len(rows), dtype=torch.long))


def all_captions(videos: list[VideoFeatures]) -> list[str]:
    captions: dict[str, int] = {}
    _examples(videos, captions)
    return list(captions)


def train_temporal(
    videos: list[VideoFeatures],
    text_vectors: np.ndarray,
    captions: list[str],
    out_dir: str | Path,
    cfg: TemporalTrainConfig,
    progress=None,
) -> dict:
    """text_vectors[i] embeds captions[i] (all_captions order). Writes the head into out_dir."""
    torch.manual_seed(cfg.seed)
    ids = {c: i for i, c in enumerate(captions)}
    data = _examples(videos, ids)
    texts = F.normalize(torch.from_numpy(np.asarray(text_vectors, np.float32)), dim=-1)
    model = SeqTransf(texts.shape[1], layers=cfg.layers, heads=cfg.heads, query_adapter=cfg.query_adapter)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    # The query map has to stretch directions the text encoder barely separates: it learns
    # faster than the pooling and without decay pulling it back to the identity.
    query_params = list(model.query_map.parameters()) if model.query_map is not None else []
    query_ids = {id(p) for p in query_params}
    pooling_params = [p for p in model.parameters() if id(p) not in query_ids]
    opt = torch.optim.AdamW(
        [
            {"params": [*pooling_params, logit_scale], "lr_scale": 1.0},
            {"params": query_params, "lr_scale": cfg.query_lr_scale, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, losses = time.time(), []
    model.train()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = (
                g["lr_scale"] * cfg.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            )
        idx = torch.randperm(len(data.one_shot), generator=gen)[: cfg.batch_size]
        frames, keep = _augment(data, idx, cfg, gen)
        own, backwards = _pick_wordings(data, idx, gen)
        columns = torch.unique(torch.cat([own, backwards]))
        fits = _fits(data, idx, own, columns)
        video = model(frames, keep)
        queries = model.adapt_query(texts[columns])
        logits = logit_scale.exp().clamp(max=100) * video @ queries.t()
        loss = multi_positive_clip_loss(logits, fits) + cfg.reversal_weight * _reversal_loss(
            logits, columns, own, backwards
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, loss.item())
    model.eval()
    model.save(Path(out_dir))
    return {
        "steps": cfg.steps,
        "final_loss": float(np.mean(losses[-50:])),
        "seconds": round(time.time() - t0, 1),
        "videos": len(videos),
        "out": str(out_dir),
    }
