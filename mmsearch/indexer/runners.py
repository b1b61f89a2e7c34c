"""Where an index job decodes and embeds its files: the local runner (worker processes on this
machine, pipeline.py) or the Ray runner (Ray Data stages on a cluster, ray_runner.py). Either
way the scan before and the writes after stay in the job's process, which alone commits to SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from ..encoders.video import SamplingConfig
from .decode import Decoded
from .decode_video import DecodedVideo
from .pipeline import LocalEmbedder, PipelineConfig

RUNNERS = ("local", "ray")


class RunnerUnavailableError(RuntimeError):
    """The runner asked for cannot run here (Ray not installed)."""


def check_runner(runner: str) -> None:
    """Fail now, before a job is queued, when `runner` is unknown (ValueError) or cannot run here."""
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    if runner == "ray":
        from .ray_runner import require_ray

        require_ray()


class MediaEmbedder(Protocol):
    def image_batches(self, paths: list[str]) -> Iterator[tuple[list[Decoded], np.ndarray, list[Decoded]]]:
        """Per batch: the decoded images (in input order), their vectors, and the files that
        failed to decode."""
        ...

    def videos(self, paths: list[str]) -> Iterator[tuple[DecodedVideo, np.ndarray | None]]:
        """Each video (in input order) with its frames' vectors; None for one that failed to decode."""
        ...


def media_embedder(
    runner: str,
    encoder,
    load_encoder: Callable[[], object],
    cfg: PipelineConfig,
    sampling: SamplingConfig,
    ray_address: str | None = None,
) -> MediaEmbedder:
    """The runner's embedder. The Ray runner's workers build their own encoder with
    `load_encoder` (picklable); the local one uses `encoder`, loaded here."""
    check_runner(runner)
    if runner == "ray":
        from .ray_runner import RayEmbedder

        return RayEmbedder(load_encoder, cfg, sampling, ray_address)
    return LocalEmbedder(encoder, cfg, sampling)
