"""The local runner: decode workers -> batcher -> encoder -> writer, with bounded queues.

Decoding runs in worker processes; at most `in_flight` files are decoding or decoded but
not yet embedded, so memory stays bounded while the encoder always has the next batch ready.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from ..encoders.video import SamplingConfig
from ..imageio import DEFAULT_MAX_PIXELS
from .decode import DEFAULT_MAX_SIDE, Decoded, decode_image
from .decode_video import DecodedVideo, decode_video
from .video_vectors import frame_vectors

log = logging.getLogger(__name__)


def default_decode_workers(cores: int | None = None) -> int:
    """Decode processes for a machine with `cores` usable CPU cores (default: this one's).
    0 on two cores or fewer: there workers only take CPU from the encoder (BENCHMARKS.md:
    `mini` indexed 291 images/s decoding inline, 221 with 2 workers)."""
    return 0 if (usable_cores() if cores is None else cores) <= 2 else 2


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class PipelineConfig:
    workers: int = 2  # decode processes; 0 decodes in this process
    batch_size: int = 64
    max_side: int = DEFAULT_MAX_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def in_flight(self) -> int:
        return max(2 * self.batch_size, 4 * max(1, self.workers))


class _InlineExecutor(Executor):
    """Runs each task at submit time: the same pipeline with no worker processes."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()
        f.set_result(fn(*args, **kwargs))
        return f


def _executor(cfg: PipelineConfig) -> Executor:
    if cfg.workers <= 0:
        return _InlineExecutor()
    # spawn, not fork: forking a process that already runs torch threads can deadlock.
    return ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"))


def decoded_in_order(paths: Iterable[str], decode: Callable, cfg: PipelineConfig, in_flight: int) -> Iterator:
    """decode(path) for every path, run in the workers with at most `in_flight` results
    pending at once; results come back in input order."""
    pending: deque[Future] = deque()
    with _executor(cfg) as pool:
        it = iter(paths)
        exhausted = False
        while True:
            while not exhausted and len(pending) < in_flight:
                try:
                    pending.append(pool.submit(decode, next(it)))
                except StopIteration:
                    exhausted = True
            if not pending:
                return
            yield pending.popleft().result()


def embedded_batches(
    paths: Iterable[str], embed: Callable[[list[Image.Image]], np.ndarray], cfg: PipelineConfig
) -> Iterator[tuple[list[Decoded], np.ndarray, list[Decoded]]]:
    """Decode every path and yield, per `cfg.batch_size` consecutive paths, the decoded images,
    their vectors (embedded together) and the files that failed to decode (so their error rows
    commit with the batch). Every runner groups so: an encoder's float results depend slightly
    on which images share its batch, and runners must agree."""
    decode = partial(decode_image, max_side=cfg.max_side, max_pixels=cfg.max_pixels)
    group: list[Decoded] = []
    for item in decoded_in_order(paths, decode, cfg, cfg.in_flight):
        group.append(item)
        if len(group) == cfg.batch_size:
            yield embedded_group(group, embed)
            group = []
    if group:
        yield embedded_group(group, embed)


def embedded_group(
    group: list[Decoded], embed: Callable[[list[Image.Image]], np.ndarray]
) -> tuple[list[Decoded], np.ndarray, list[Decoded]]:
    """(decoded images, their vectors, failed files) of one group of decoded files."""
    good = [d for d in group if d.error is None]
    vectors = embed([Image.fromarray(d.pixels) for d in good]) if good else np.zeros((0, 0), np.float32)
    return good, vectors, [d for d in group if d.error is not None]


class LocalEmbedder:
    """The local runner: decode in this machine's worker processes, embed in this process."""

    def __init__(self, encoder, cfg: PipelineConfig, sampling: SamplingConfig):
        self.encoder, self.cfg, self.sampling = encoder, cfg, sampling

    def image_batches(self, paths: list[str]) -> Iterator[tuple[list[Decoded], np.ndarray, list[Decoded]]]:
        return embedded_batches(paths, self.encoder.embed_images, self.cfg)

    def videos(self, paths: list[str]) -> Iterator[tuple[DecodedVideo, np.ndarray | None]]:
        for video in decoded_videos(paths, self.sampling, self.cfg):
            yield video, None if video.error else frame_vectors(video, self.encoder)


def decoded_videos(paths: Iterable[str], sampling: SamplingConfig, cfg: PipelineConfig) -> Iterator[DecodedVideo]:
    """Every video decoded (frames sampled), in order. Videos are heavy (hundreds of frames
    each): only one per worker decodes ahead."""
    return decoded_in_order(paths, partial(decode_video, sampling=sampling), cfg, in_flight=max(1, cfg.workers) + 1)
