"""A library's groups of near-identical images: copies resized, re-encoded or slightly cropped.

Two images are copies when their embeddings are at least `min_similarity` alike (all such
pairs found by search/near_pairs.py, near-linear in the library's size) and their perceptual
hashes (perceptual_hash.py, stored at index time) differ in at most `max_distance` bits: the
embedding alone also pairs different shots of one scene, the hash alone misses crops.
Confirmed pairs are joined into groups (a copy of a copy is in its original's group). Each
group suggests a keeper: the largest (pixels, then bytes), then the oldest (capture time).
Nothing is deleted.

Generated images are left out. Images indexed before hashes were stored (an upgraded
library, until its next index job) are hashed from their files when they are in a pair.

One search runs at a time; its groups are kept until the library's database changes (on
SQLite any commit; elsewhere, until the image vectors change).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..indexer.decode import decode_image
from ..perceptual_hash import hash_distance
from ..search.engine import Hit
from ..search.near_pairs import near_pairs
from ..storage.store import Media, Store

WAIT_S = 120.0  # how long a request waits for another's search before it is refused


class DuplicatesBusy(RuntimeError):
    """Another duplicate search held the library for the whole wait."""


@dataclass
class Member:
    hit: Hit  # as a search shows it; its score is its embedding's similarity to the keeper's
    hash_distance: int  # bits of its perceptual hash that differ from the keeper's
    width: int | None
    height: int | None
    size: int  # bytes


@dataclass
class DuplicateGroup:
    members: list[Member]  # the suggested keeper first, then by similarity to it

    @property
    def keeper(self) -> Hit:
        return self.members[0].hit


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]  # largest first, then by the keeper's id
    images: int  # images compared
    took_ms: float
    settings: dict = field(default_factory=dict)  # min_similarity, max_distance


def find_duplicates(store: Store, space: str, min_similarity: float, max_distance: int) -> DuplicateReport:
    started = time.perf_counter()
    ids, vectors = _image_vectors(store, space)
    first, second, _ = near_pairs(vectors, min_similarity)
    vector_media = store.media_of_vectors(np.unique(np.concatenate([ids[first], ids[second]])).tolist())
    rows = {m.id: m for m in store.media_by_id(sorted(set(vector_media.values()))).values() if not m.generated}
    position = {vector_media[int(v)]: i for i, v in enumerate(ids) if int(v) in vector_media}
    hashes = _hashes(rows.values())
    pairs = ((vector_media[v], vector_media[w]) for v, w in zip(ids[first].tolist(), ids[second].tolist()))
    confirmed = [(a, b) for a, b in pairs if _alike(hashes, a, b, max_distance)]
    groups = [_group(rows, members, vectors, position, hashes) for members in _components(confirmed)]
    groups.sort(key=lambda g: (-len(g.members), g.keeper.id))
    return DuplicateReport(
        groups,
        len(ids),
        1000 * (time.perf_counter() - started),
        {"min_similarity": min_similarity, "max_distance": max_distance},
    )


def _image_vectors(store: Store, space: str) -> tuple[np.ndarray, np.ndarray]:
    """The space's image vector ids and their vectors, as float16 (as SQL stores them: half
    the memory of float32)."""
    parts = [(ids, vectors.astype(np.float16)) for ids, vectors in store.iter_vectors(space, ("image",))]
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float16)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _hashes(rows) -> dict[int, str | None]:
    return {m.id: m.phash or decode_image(m.path).phash for m in rows}


def _alike(hashes: dict[int, str | None], a: int, b: int, max_distance: int) -> bool:
    ha, hb = hashes.get(a), hashes.get(b)
    return ha is not None and hb is not None and hash_distance(ha, hb) <= max_distance


def _components(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """The connected groups of media ids (union-find), each sorted."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return [sorted(g) for g in groups.values()]


def keeper_order(m: Media) -> tuple:
    """Sorts the suggested keeper first: the most pixels, then bytes, then the earliest taken."""
    return (-(m.width or 0) * (m.height or 0), -(m.size or 0), m.taken_at is None, m.taken_at or 0.0, m.id)


def _group(rows: dict[int, Media], members: list[int], vectors, position, hashes) -> DuplicateGroup:
    media = sorted((rows[i] for i in members), key=keeper_order)
    keeper = media[0]
    kept = vectors[position[keeper.id]].astype(np.float32)

    def similarity(m: Media) -> float:  # the keeper's own is 1 exactly, not its float16 rounding
        return 1.0 if m is keeper else min(1.0, float(vectors[position[m.id]].astype(np.float32) @ kept))

    out = [
        Member(
            Hit.of(m, similarity(m), "duplicate"),
            hash_distance(hashes[m.id], hashes[keeper.id]),
            m.width,
            m.height,
            m.size,
        )
        for m in media
    ]
    out[1:] = sorted(out[1:], key=lambda x: (-x.hit.score, x.hit.id))
    return DuplicateGroup(out)


class DuplicateFinder:
    """find_duplicates, one at a time, its last answer kept while the database is unchanged."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._last: tuple[tuple, DuplicateReport] | None = None

    def find(self, space: str, min_similarity: float, max_distance: int, wait_s: float = WAIT_S) -> DuplicateReport:
        if not self._lock.acquire(timeout=wait_s):
            raise DuplicatesBusy(f"another duplicate search ran for {wait_s:.0f} s; try again later")
        try:
            key = (
                space,
                min_similarity,
                max_distance,
                self.store.commits.version(),
                self.store.vector_stats(space, "image"),
            )
            if self._last is None or self._last[0] != key:
                self._last = (key, find_duplicates(self.store, space, min_similarity, max_distance))
            return self._last[1]
        finally:
            self._lock.release()
