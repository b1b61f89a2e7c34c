"""Which Milvus index a collection gets, from its size, and its search parameters.

The same lines as the FAISS backend (index_choice): exact below FLAT_MAX_VECTORS (100k),
an approximate index above, tuned by measurement (index_tuning) to the target recall@10.
Milvus holds float32 vectors either way (no compressed codes here): HNSW (M=32) when its
graph fits the memory share, else IVF_FLAT (the smaller: lists, no graph), with as many
lists as the FAISS backend would use. The memory budget is this process's, so it governs
Milvus Lite (served in this process) only; a Milvus server holds the vectors in its own.

What milvus-lite 3.2.2 accepts (tried): FLAT / BRUTE_FORCE, HNSW, IVF_FLAT, IVF_SQ8, HNSW_SQ
and AUTOINDEX (HNSW there), built per flushed segment with faiss-cpu; search params "ef"
(HNSW) and "nprobe" (IVF); filter expressions inline (`id in [...]`), not as templates with
filter_params. A Milvus server accepts all of these too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import index_choice
from .index_choice import HNSW_M, estimate_memory_bytes, ivf_nlist

EF_CONSTRUCTION = 200  # HNSW build-time beam (Milvus's usual; FAISS's HNSW32 builds with 40)
DEFAULT_EF = 64  # an untuned HNSW's search beam
DEFAULT_NPROBE = 16  # an untuned IVF_FLAT's probes
MAX_EF = 32_768  # the widest beam a Milvus server accepts without complaint


@dataclass(frozen=True)
class MilvusIndex:
    """A Milvus index type with its build parameters; `factory` is the FAISS factory of the
    same structure (what index_tuning's ladder and memory estimates understand)."""

    index_type: str  # FLAT | HNSW | IVF_FLAT
    build_params: dict

    @property
    def factory(self) -> str:
        if self.index_type == "HNSW":
            return f"HNSW{self.build_params['M']},Flat"
        if self.index_type == "IVF_FLAT":
            return f"IVF{self.build_params['nlist']},Flat"
        return "Flat"

    @property
    def exact(self) -> bool:
        return self.index_type == "FLAT"

    def default_params(self) -> dict:
        """Search parameters before any tuning, in Milvus's names."""
        if self.index_type == "HNSW":
            return {"ef": DEFAULT_EF}
        if self.index_type == "IVF_FLAT":
            return {"nprobe": min(DEFAULT_NPROBE, self.build_params["nlist"])}
        return {}

    def widened(self, params: dict, k: int, share: float, ntotal: int) -> dict:
        """Search parameters for a search kept to a subset holding `share` of the vectors: its
        k best lie as far as the index's k / share best, so HNSW's beam and IVF's probes widen
        by 1 / share (as the FAISS backend's search_subset does)."""
        if self.index_type == "HNSW":
            ef = params.get("ef", DEFAULT_EF)
            return {"ef": min(MAX_EF, max(ef, k, math.ceil(ef / share)), max(k, ntotal))}
        if self.index_type == "IVF_FLAT":
            nprobe = params.get("nprobe", DEFAULT_NPROBE)
            return {"nprobe": min(self.build_params["nlist"], math.ceil(nprobe / share))}
        return {}

    def exhaustive(self, k: int, ntotal: int) -> dict:
        """Search parameters visiting every vector (a widened search still short of results)."""
        if self.index_type == "HNSW":
            return {"ef": min(MAX_EF, max(k, ntotal))}
        if self.index_type == "IVF_FLAT":
            return {"nprobe": self.build_params["nlist"]}
        return {}

    def describe(self) -> dict:
        return {"index_type": self.index_type, "params": dict(self.build_params)}

    @classmethod
    def from_description(cls, index_type: str, params: dict) -> "MilvusIndex":
        keys = {"HNSW": ("M", "efConstruction"), "IVF_FLAT": ("nlist",)}.get(index_type, ())
        return cls(index_type, {key: int(params[key]) for key in keys if key in params})


FLAT = MilvusIndex("FLAT", {})


def choose_index(n_vectors: int, dim: int, memory_budget_bytes: int | None = None) -> MilvusIndex:
    """The index for a collection of n_vectors of dim (see the module's docstring)."""
    if n_vectors < index_choice.FLAT_MAX_VECTORS:  # read at call time: tests lower the line
        return FLAT
    hnsw = MilvusIndex("HNSW", {"M": HNSW_M, "efConstruction": EF_CONSTRUCTION})
    if memory_budget_bytes is None or estimate_memory_bytes(hnsw.factory, n_vectors, dim) <= memory_budget_bytes:
        return hnsw
    return MilvusIndex("IVF_FLAT", {"nlist": ivf_nlist(n_vectors)})


def suits(current: MilvusIndex, wanted: MilvusIndex) -> bool:
    """Whether a collection indexed as `current` may go on serving where `wanted` would be
    built now: the same type, and for IVF lists within a factor two of the wanted count (a
    library hovering about a size where the count steps is not re-indexed at every job)."""
    if current.index_type != wanted.index_type:
        return False
    if current.index_type == "IVF_FLAT":
        have, want = current.build_params.get("nlist", 0), wanted.build_params["nlist"]
        return want // 2 <= have <= 2 * want
    return True


def milvus_params(tuned: dict) -> dict:
    """index_tuning's setting ({"efSearch": n} / {"nprobe": n}) in Milvus's names."""
    if "efSearch" in tuned:
        return {"ef": int(tuned["efSearch"])}
    if "nprobe" in tuned:
        return {"nprobe": int(tuned["nprobe"])}
    return {}
