"""Building an index of the type that measures best: each candidate factory that fits
(index_choice.candidate_factories) is built from the vectors, tuned for the target recall
(index_tuning), and the one reaching it at the lowest single-query latency is kept (none
reaching it: the one with the highest recall). Which type wins depends on the data: IVF lists
serve clustered collections with few probes, an HNSW graph serves spread-out ones.

Memory holds the best candidate so far (or, given a scratch folder, its file) and the one
being built, never every vector at once: builds stream their batches, into storage allocated
at its size up front (build_index).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .faiss_parts import as_vectors, new_faiss_index, training_clusters
from .index_choice import training_sample_size
from .index_files import meta_path
from .index_tuning import Tuning, apply_params
from .vector_index import VectorIndex

log = logging.getLogger(__name__)


def build_index(dim: int, factory: str, batches, count: int, use_gpu: str | bool = "auto") -> VectorIndex:
    """An index of `factory` over the (ids, vectors) of `batches(every=n)` (every n-th row when
    n > 1), trained on such a sample first: memory holds the index and one batch, never every
    vector."""
    index = VectorIndex(dim, factory, use_gpu)
    if count and not index.is_trained:
        clusters = training_clusters(new_faiss_index(dim, factory))
        step = max(1, count // training_sample_size(clusters))
        # held as float16 (normalised first): 1M training vectors of 512-d take 1 GB
        index.train(np.concatenate([as_vectors(v, dim).astype(np.float16) for _, v in batches(every=step)]))
    if index.is_trained:  # untrained only when nothing was counted: add() trains on what comes
        index.fill(count, batches)  # IVF: a pass finding each vector's list, then one adding it
    else:
        for batch_ids, batch_vecs in batches():
            index.add(batch_ids, batch_vecs)
    _hand_back_free_memory()
    return index


def build_measured(
    dim: int,
    candidates: list[str],
    batches,
    count: int,
    tune: Callable[[VectorIndex], Tuning],
    use_gpu: str | bool = "auto",
    scratch: Path | None = None,
) -> VectorIndex:
    """The best of `candidates` built over `batches` (see build_index) and tuned by `tune`,
    which sets the index's search setting and returns what it measured (kept as the index's
    meta_extra["tuning"]). An exact index (Flat) or an empty one is not tuned. With several
    candidates, meta_extra["compared"] lists each one's measurement.

    With a `scratch` folder, the best so far waits there on disk while the next candidate is
    built, so that memory holds one candidate at a time, not two (an import of 500k vectors:
    ~1.1 GB each)."""
    best, best_tuning, compared, waiting = None, None, [], None
    try:
        for position, factory in enumerate(candidates, 1):
            index = build_index(dim, factory, batches, count, use_gpu)
            if factory == "Flat" or not count:
                return index
            tuning = tune(index)
            compared.append(
                {
                    "factory": factory,
                    "params": tuning.params,
                    "recall": tuning.recall,
                    "p50_ms": tuning.p50_ms,
                    "reached": tuning.reached,
                    "vectors": tuning.vectors,
                }
            )
            log.info("measured %s: %s", factory, compared[-1])
            if best_tuning is None or _better(tuning, best_tuning):
                best, best_tuning = index, tuning
                if scratch is not None and position < len(candidates):
                    waiting = waiting or _scratch_file(scratch)
                    best.save(waiting)
                    best = None
            del index  # a loser's (or a saved one's) memory back before the next candidate is built
            _hand_back_free_memory()
        if best is None:
            best = VectorIndex.load(waiting, use_gpu)
            apply_params(best, best_tuning.params)
    finally:
        if waiting is not None:
            waiting.unlink(missing_ok=True)
            meta_path(waiting).unlink(missing_ok=True)
    best.meta_extra = {"tuning": best_tuning.as_meta(), **({"compared": compared} if len(compared) > 1 else {})}
    return best


def _scratch_file(scratch: Path) -> Path:
    """A new file in `scratch` for a candidate waiting to be compared, named after this process;
    those left by processes no longer running (killed mid-build) are deleted first."""
    for stale in scratch.glob(".candidate-*"):
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not _running(int(pid)):
            stale.unlink(missing_ok=True)
    return scratch / f".candidate-{os.getpid()}-{uuid.uuid4().hex}.index"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _better(a: Tuning, b: Tuning) -> bool:
    """Whether tuning `a` serves better than `b`: reaching the target beats not reaching it;
    among those reaching it the faster wins, among the others the higher worst recall."""
    if a.reached != b.reached:
        return a.reached
    if a.reached:
        return a.p50_ms < b.p50_ms
    return min(a.recall.values()) > min(b.recall.values())


def _hand_back_free_memory() -> None:
    """Return the heap a build freed (training sample, k-means buffers, a losing candidate) to
    the OS: glibc keeps freed blocks under its mmap threshold mapped, so a server's resident
    memory would stay at the build's peak."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (find_library runs ldconfig in a subprocess)."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None
