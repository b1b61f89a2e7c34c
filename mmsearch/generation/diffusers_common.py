"""What the diffusers backends (karlo.py, kandinsky.py) share: importing diffusers, finding a
saved pipeline (a local folder, the Hugging Face cache, or the hub within a timeout), seeds,
and checking a request. diffusers (and transformers) are imported only when a backend is built."""

from __future__ import annotations

import inspect
import numbers
from pathlib import Path
from typing import Any

import torch

from ..encoders.base import CheckpointNotFoundError
from ..encoders.hub import cached_hf_snapshot, hf_endpoint, require_hub

UNCLIP_MIN_STEPS = 2  # UnCLIPScheduler.set_timesteps divides by (steps - 1)
DEFAULT_HUB_TIMEOUT_S = 5.0


def require_diffusers():
    """Import diffusers (and transformers, which its unCLIP/Kandinsky pipelines need), or say how to get them."""
    try:
        import diffusers
        import transformers  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"the diffusers generation backends need diffusers and transformers ({e}): "
            "install mmsearch[diffusers] (pip install 'mmsearch[diffusers]')"
        ) from e
    return diffusers


def looks_like_path(source: str) -> bool:
    """A hub id is exactly ORG/NAME; anything else that is not an existing folder is a missing path."""
    return source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") != 1


def resolve_pipeline(source: str, what: str, timeout_s: float, instead: str) -> tuple[str, bool]:
    """(folder or hub id, is_local) for one saved diffusers pipeline. Cached hub repos load from
    the cache without network; an uncached hub id needs the hub to answer within timeout_s."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointNotFoundError(
                f"{path} has no model_index.json: it is not a diffusers pipeline folder (save one with "
                "pipeline.save_pretrained(DIR))"
            )
        return str(path), True
    if looks_like_path(source):
        raise CheckpointNotFoundError(f"{what} folder {source} does not exist (and is not a hub id ORG/NAME)")
    snapshot = cached_hf_snapshot(source)
    if snapshot and (Path(snapshot) / "model_index.json").is_file():
        return snapshot, True
    require_hub(f"{what} {source}", hf_endpoint(), timeout_s, instead)
    return source, False


def load_pipeline(cls, where: str, local: bool, what: str, source: str, device: torch.device):
    try:
        pipe = cls.from_pretrained(where, local_files_only=local)
    except (OSError, ValueError) as e:
        raise CheckpointNotFoundError(f"cannot load the {what} from {source}: {e}") from e
    return ready(pipe, device)


def ready(pipe, device: torch.device):
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_side(sample_size: Any, default: int) -> int:
    if sample_size is None:
        return default
    if isinstance(sample_size, (list, tuple)):
        return int(sample_size[0])
    return int(sample_size)


def torch_generator(seed: int | None) -> torch.Generator:
    """A CPU generator (diffusers draws on CPU and moves the noise, so seeds match across devices)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return torch.Generator("cpu").manual_seed(int(seed))


def call_default(pipeline, parameter: str) -> float:
    """The default a pipeline's __call__ gives a parameter (what a request without it gets)."""
    return float(inspect.signature(type(pipeline).__call__).parameters[parameter].default)


def check_request(backend: str, supported: tuple[str, ...], n: int, steps: int, sampler: str, max_steps: int) -> None:
    if sampler not in supported:
        why = (
            " (UnCLIPPipeline can only step its UnCLIPScheduler, an ancestral DDPM sampler)"
            if backend == "karlo" and sampler == "ddim"
            else ""
        )
        raise ValueError(
            f"sampler {sampler!r} is not supported by the {backend} backend{why}: "
            f"it supports {', '.join(repr(s) for s in supported)}"
        )
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= max_steps:
        raise ValueError(f"steps must be an integer between 1 and {max_steps}, got {steps!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
