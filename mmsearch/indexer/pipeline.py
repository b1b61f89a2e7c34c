"""decode workers -> batcher -> encoder -> writer, with bounded queues.

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

from ..imageio import DEFAULT_MAX_PIXELS
from .decode import DEFAULT_MAX_SIDE, Decoded, decode_image

log = logging.getLogger(__name__)


def default_decode_workers(cores: int | None = None) -> int:
    """Decode processes for a machine with `cores` usable CPU cores (default: this one's).
    0 on two cores or fewer: there workers only take CPU from the encoder (BENCHMARKS.md:
    `mini` indexed 291 images/s decoding inline, 221 with 2 workers)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else 2


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


def run_pipeline(
    paths: Iterable[str],
    embed: Callable[[list[Image.Image]], np.ndarray],
    write: Callable[[list[Decoded], np.ndarray, list[Decoded]], None],
    cfg: PipelineConfig,
) -> None:
    """Decode every path, embed the good ones in batches, and hand each batch to `write`
    together with the files that failed to decode (so their error rows commit with it)."""
    decode = partial(decode_image, max_side=cfg.max_side, max_pixels=cfg.max_pixels)
    good: list[Decoded] = []
    bad: list[Decoded] = []

    def flush() -> None:
        vectors = embed([Image.fromarray(d.pixels) for d in good]) if good else np.zeros((0, 0), np.float32)
        write(list(good), vectors, list(bad))
        good.clear()
        bad.clear()

    for item in decoded_in_order(paths, decode, cfg, cfg.in_flight):
        (bad if item.error else good).append(item)
        if len(good) >= cfg.batch_size or len(bad) >= cfg.batch_size:
            flush()
    if good or bad:
        flush()
