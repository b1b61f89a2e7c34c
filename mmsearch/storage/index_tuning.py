"""Search parameters chosen by measurement: the cheapest setting of an index (HNSW efSearch,
IVF nprobe) whose recall@10 against exact search reaches a target for two kinds of query.

- image-like: vectors of the library itself (a query by an indexed photo);
- text-like: queries that sit apart from the data, as text queries do in CLIP space (the
  modality gap): library vectors moved off the data, each along one of GAP_DIRECTIONS fixed
  directions (how hard such queries are depends on the direction), and, when the library
  gives them, the text encoder's embeddings of probe phrases ("text"). Graph indexes find
  such queries' neighbours harder than the data's own.

The truth is exact inner-product search over the vectors streamed from SQL (never all in
memory at once). The ladder of settings is walked from the cheapest up; the first setting
where every query kind reaches the target wins, and its recall and single-query latency are
recorded with the index (`Tuning`, kept in the index's metadata). When no setting reaches
it, the best one is kept and `reached` says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np

from .vector_index import VectorIndex

DEFAULT_TARGET_RECALL = 0.95
K = 10
QUERIES_PER_KIND = 200
GAP = 1.0  # text-like queries: a library vector plus this times a fixed unit direction, renormalised
GAP_DIRECTIONS = 4
LATENCY_QUERIES = 50  # single queries timed at the chosen setting
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
RETUNE_GROWTH = 2.0  # an index that grew (or shrank) by this factor since its tuning is tuned again


@dataclass
class Tuning:
    """What tuning chose for one index, and what it measured there."""

    factory: str
    params: dict  # {"efSearch": n} or {"nprobe": n}; {} for exact indexes
    recall: dict  # query kind -> recall@10 at the chosen setting
    p50_ms: float  # single-query latency at the chosen setting (the slower query kind)
    target: float
    reached: bool
    vectors: int  # vectors in the index when tuned
    tuned_at: float = field(default_factory=time.time)
    tried: list = field(default_factory=list)  # [params, the worst query set's recall] per setting tried, in order

    def as_meta(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict | None) -> "Tuning | None":
        try:
            return cls(**meta) if meta else None
        except TypeError:
            return None  # written by another version: tuned again

    def due(self, ntotal: int, target: float) -> bool:
        """Whether an index of ntotal vectors should be tuned again."""
        grown = ntotal > self.vectors * RETUNE_GROWTH or ntotal * RETUNE_GROWTH < self.vectors
        return grown or self.target != target


def probe_queries(sample: np.ndarray, seed: int = 7919, text: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The query sets tuning measures: `sample` (library vectors) as image-like queries, the
    sample moved off the data as text-like, and `text` (the text encoder's probe phrases)."""
    sample = _unit(np.asarray(sample, np.float32))
    gaps = _unit(np.random.default_rng(seed).normal(size=(GAP_DIRECTIONS, sample.shape[1])).astype(np.float32))
    moved = sample + GAP * gaps[np.arange(len(sample)) % GAP_DIRECTIONS]
    queries = {"image-like": sample, "text-like": _unit(moved)}
    if text is not None and len(text):
        queries["text"] = _unit(np.asarray(text, np.float32))
    return queries


def exact_top_k(queries: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]], k: int = K) -> np.ndarray:
    """(m, k) ids of each query's k best vectors by inner product over (ids, vectors) batches,
    merged batch by batch (-1 where fewer than k exist)."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    queries = np.ascontiguousarray(queries, np.float32)
    for ids, vectors in batches:
        if len(vectors) == 0:
            continue
        # faiss's blocked product and heaps: numpy's argpartition over a 1000 x 100k product took 4x the product
        scores, rows = faiss.knn(
            queries, np.ascontiguousarray(vectors, np.float32), min(k, len(vectors)), faiss.METRIC_INNER_PRODUCT
        )
        both_scores = np.concatenate([best_scores, scores], axis=1)
        both_ids = np.concatenate([best_ids, np.where(rows >= 0, np.asarray(ids)[rows], -1)], axis=1)
        top = np.argpartition(-both_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(both_scores, top, axis=1)
        best_ids = np.take_along_axis(both_ids, top, axis=1)
    return best_ids


def exact_top_k_of(
    queries: dict[str, np.ndarray], batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], k: int = K
) -> dict[str, np.ndarray]:
    """exact_top_k of every query set, in one pass over `batches()`."""
    names = list(queries)
    found = exact_top_k(np.concatenate([queries[n] for n in names]), batches(), k)
    bounds = np.cumsum([0] + [len(queries[n]) for n in names])
    return {n: found[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)}


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true neighbours (ids >= 0) among those found."""
    shares = []
    for f, t in zip(found, truth):
        t = set(t[t >= 0].tolist())
        if t:
            shares.append(len(t & set(f.tolist())) / len(t))
    return float(np.mean(shares)) if shares else 1.0


def ladder(index: VectorIndex) -> list[dict]:
    """The settings to try, cheapest first: efSearch for HNSW, nprobe for IVF, none for Flat."""
    ivf = re.match(r"IVF(\d+)", index.factory)
    if index.factory.startswith("HNSW"):
        return [{"efSearch": ef} for ef in EF_LADDER]
    if ivf:
        nlist = int(ivf.group(1))
        steps, p = [], 1
        while p < nlist:
            steps.append({"nprobe": p})
            p *= 2
        return steps + [{"nprobe": nlist}]
    return [{}]


def tune(
    index: VectorIndex,
    queries: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    target: float = DEFAULT_TARGET_RECALL,
    apply=None,
) -> Tuning:
    """Walk the index's ladder until every query kind reaches `target` recall@10; time single
    queries there. `apply(params)` sets a setting on the index (default: set_search_params);
    the caller holds whatever lock that needs."""
    apply = apply or (lambda params: apply_params(index, params))
    best: tuple[float, dict, dict] | None = None
    tried = []
    for params in ladder(index):
        apply(params)
        recall = {kind: recall_at_k(index.search(q, K)[1], truth[kind]) for kind, q in queries.items()}
        worst = min(recall.values())
        tried.append([params, round(worst, 4)])
        if best is None or worst > best[0]:
            best = (worst, params, recall)
        if worst >= target:
            break
    worst, params, recall = best
    apply(params)
    return Tuning(
        factory=index.factory,
        params=params,
        recall={kind: round(r, 4) for kind, r in recall.items()},
        p50_ms=round(max(_p50_ms(index, q) for q in queries.values()), 3),
        target=target,
        reached=worst >= target,
        vectors=index.ntotal,
        tried=tried,
    )


def _p50_ms(index: VectorIndex, queries: np.ndarray) -> float:
    times = []
    for q in queries[:LATENCY_QUERIES]:
        started = time.perf_counter()
        index.search(q[None, :], K)
        times.append(1000 * (time.perf_counter() - started))
    return float(np.median(times))


def apply_params(index: VectorIndex, params: dict) -> None:
    """Set a tuned setting ({"efSearch": n} or {"nprobe": n}) on an index."""
    if params:
        index.set_search_params(nprobe=params.get("nprobe"), ef_search=params.get("efSearch"))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
