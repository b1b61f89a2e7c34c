"""Temporal pooling: frame vectors -> one video vector (CLIP4Clip's meanP and seqTransf).

Both are query-independent, so the pooled vector is computed once at index time and
indexed. The pooling's name joins the encoder's space for video vectors: vectors pooled
differently never mix in one index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import builtin_weights
from ..storage.files import atomic_path, atomic_write, file_digest

POOLINGS = ("mean", "seqTransf")
POOL_FRAMES = 12  # frames a video vector is pooled from (CLIP4Clip's protocol)
HEAD_CONFIG = "temporal_config.json"
HEAD_WEIGHTS = "temporal_head.safetensors"


def pick_frames(times: np.ndarray, n: int = POOL_FRAMES) -> np.ndarray:
    """Indices of up to n frames spread evenly over the sampled ones (in time order)."""
    if len(times) <= n:
        return np.arange(len(times))
    return np.unique(np.round(np.linspace(0, len(times) - 1, n)).astype(int))


def mean_pool(frames: np.ndarray) -> np.ndarray:
    """meanP: normalise each frame, average, normalise."""
    f = frames / np.maximum(np.linalg.norm(frames, axis=-1, keepdims=True), 1e-12)
    v = f.mean(axis=0)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


class SeqTransf(nn.Module):
    """A small transformer over frame vectors with frame-position embeddings, a residual to
    the input frames, then the mean over frames (CLIP4Clip's seqTransf).

    With `query_adapter`, text queries against the pooled vectors pass through a learned
    residual linear map first. It stands in for CLIP4Clip's fine-tuning of the text tower:
    a text encoder trained on still images places "moving up" and "moving down" almost on
    top of each other (cosine 0.996 for mini), and no pooling of frames can separate what
    the query side does not."""

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, max_frames: int = 32, query_adapter: bool = False):
        super().__init__()
        self.config = {
            "dim": dim,
            "layers": layers,
            "heads": heads,
            "max_frames": max_frames,
            "query_adapter": query_adapter,
        }
        self.position = nn.Embedding(max_frames, dim)
        nn.init.normal_(self.position.weight, std=0.01)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # Starts as meanP (the transformer's contribution is scaled by a gate that begins at
        # zero), so training can only move away from a sensible pooling.
        self.gate = nn.Parameter(torch.zeros(()))
        self.query_map = nn.Linear(dim, dim, bias=False) if query_adapter else None
        if self.query_map is not None:
            nn.init.zeros_(self.query_map.weight)  # starts as the identity on queries

    def adapt_query(self, text: torch.Tensor) -> torch.Tensor:
        """(B, D) unit text vectors -> the unit vectors to score pooled videos with."""
        if self.query_map is None:
            return text
        return F.normalize(text + self.query_map(text), dim=-1)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, T, D) unit vectors, valid (B, T) bool -> (B, D) unit vectors."""
        b, t, _ = frames.shape
        if valid is None:
            valid = torch.ones(b, t, dtype=torch.bool, device=frames.device)
        x = frames + self.position(torch.arange(t, device=frames.device))[None]
        y = frames + self.gate * self.transformer(x, src_key_padding_mask=~valid)
        w = valid.unsqueeze(-1).to(y.dtype)
        return F.normalize((y * w).sum(1) / w.sum(1).clamp(min=1), dim=-1)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / HEAD_CONFIG, json.dumps(self.config, indent=2))
        with atomic_path(directory / HEAD_WEIGHTS) as tmp:
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp))

    @classmethod
    def load(cls, directory: Path) -> "SeqTransf":
        from safetensors.torch import load_file

        model = cls(**json.loads((directory / HEAD_CONFIG).read_text()))
        model.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
        return model.eval()


class TemporalPooler:
    """Pools one video's frame vectors; `name` is recorded in the video vectors' space."""

    def __init__(self, kind: str = "mean", head_dir: str | Path | None = None):
        if kind not in POOLINGS:
            raise ValueError(f"unknown pooling {kind!r}; use one of {POOLINGS}")
        self.kind, self.head = kind, None
        if kind == "seqTransf":
            if head_dir is None or not (Path(head_dir) / HEAD_WEIGHTS).exists():
                raise FileNotFoundError(
                    f"seqTransf pooling needs a trained head ({HEAD_WEIGHTS}) in {head_dir}; "
                    "train one with `mmsearch train temporal` or use --pooling mean"
                )
            self.head = SeqTransf.load(Path(head_dir))
            digest = file_digest(Path(head_dir) / HEAD_WEIGHTS, length=10)
            self.name = f"seqTransf@{digest}"
        else:
            self.name = "mean"

    def adapt_query(self, text_vectors: np.ndarray) -> np.ndarray:
        """(n, d) text query vectors -> the ones to score pooled video vectors with (the
        head's query map; unchanged for mean pooling or a head without one)."""
        if self.head is None or self.head.query_map is None:
            return text_vectors
        with torch.inference_mode():
            return self.head.adapt_query(torch.from_numpy(np.ascontiguousarray(text_vectors, np.float32))).numpy()

    def pool(self, frames: np.ndarray, times: np.ndarray) -> np.ndarray:
        chosen = frames[pick_frames(times)]
        if self.head is None:
            return mean_pool(chosen)
        with torch.inference_mode():
            x = F.normalize(torch.from_numpy(np.ascontiguousarray(chosen, np.float32)), dim=-1)[None]
            return self.head(x)[0].numpy().astype(np.float32)


SHIPPED_HEADS = {"mini": builtin_weights("mini")}


def resolve_pooler(settings) -> TemporalPooler:
    """The pooling the settings ask for; `auto` is seqTransf when a trained head is there
    (given, or shipped with the model), else mean."""
    head = settings.temporal_head or SHIPPED_HEADS.get(settings.model)
    if settings.pooling == "auto":
        has_head = head is not None and (Path(head) / HEAD_WEIGHTS).exists()
        return TemporalPooler("seqTransf", head) if has_head else TemporalPooler("mean")
    return TemporalPooler(settings.pooling, head)


def video_space(encoder_space: str, pooler: TemporalPooler) -> str:
    return f"{encoder_space}|pool={pooler.name}"
