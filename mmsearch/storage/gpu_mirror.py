"""The GPU search copy of a CPU FAISS index: sharded over all GPUs, built lazily and dropped
whenever the CPU index (the master copy) changes."""

from __future__ import annotations

import logging

import faiss

log = logging.getLogger(__name__)

# faiss GPU k-selection handles k <= 2048; larger k is searched on the CPU copy.
GPU_MAX_K = 2048


def gpu_count() -> int:
    """GPUs faiss can use (0 with a CPU-only faiss build)."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def resolve_use_gpu(use_gpu: str | bool) -> bool:
    """ "auto" -> whether a GPU is there; True without one, or any other value, raises ValueError."""
    if use_gpu == "auto":
        return gpu_count() > 0
    if use_gpu is True and gpu_count() == 0:
        raise ValueError("use_gpu=True but faiss sees no GPU (is faiss-gpu installed?)")
    if use_gpu not in (True, False):
        raise ValueError(f"use_gpu must be 'auto', True or False, not {use_gpu!r}")
    return use_gpu


class GpuMirror:
    """The search copy of one CPU index on all GPUs, sharded."""

    def __init__(self):
        self._resources: list = []
        self._index: faiss.Index | None = None

    def get(self, cpu_index: faiss.Index, factory: str) -> faiss.Index | None:
        """The mirror of `cpu_index`, built on first use after a drop(); None (after a
        warning) when this kind of index cannot run on a GPU."""
        if self._index is None:
            if not self._resources:
                # Held here: the GPU index uses them for as long as it lives.
                self._resources = [faiss.StandardGpuResources() for _ in range(gpu_count())]
            options = faiss.GpuMultipleClonerOptions()
            options.shard = True
            try:
                self._index = faiss.index_cpu_to_gpu_multiple_py(self._resources, cpu_index, options)
            except RuntimeError as e:
                log.warning("%s cannot run on GPU (%s); searching on CPU", factory, e)
                return None
        return self._index

    def set_parameter(self, name: str, value) -> None:
        """Set a search parameter (nprobe, ...) on the mirror, when one is built."""
        if self._index is not None:
            faiss.GpuParameterSpace().set_index_parameter(self._index, name, value)

    def drop(self) -> None:
        """Forget the mirror: the CPU index changed, the next get() rebuilds it."""
        self._index = None
