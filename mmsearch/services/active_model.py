"""The parts a library searches with, all of one model: its encoder, video pooling, the
indexes of its space and the search engine over them. Built together and swapped together,
so a search holding one engine never mixes two models' vectors."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..encoders.temporal import TemporalPooler, resolve_pooler, video_space
from ..search.engine import SearchEngine
from ..storage.index_backends import open_index_set
from ..storage.index_set import IndexSet
from ..storage.spaces import active_space, record_space
from ..storage.store import Store
from . import models
from .miss_signal import PROBE_TEXTS


@dataclass(frozen=True)
class ModelParts:
    spec: str
    encoder: object
    pooler: TemporalPooler
    indexes: IndexSet
    engine: SearchEngine

    @property
    def space(self) -> str:
        return self.encoder.space


def model_settings(settings: Settings, spec: str) -> Settings:
    """The settings with the model set: what the encoder and the pooling are built from."""
    return settings.with_overrides(model=spec)


def load_parts(settings: Settings, store: Store, library_dir: Path, spec: str, encoder=None) -> ModelParts:
    """A model's parts (loading its encoder unless one is given)."""
    own = model_settings(settings, spec)
    if models.is_external(spec):  # vectors imported without their model: nothing to load
        external = encoder or models.ExternalEncoder(spec)
        return with_indexes(own, spec, external, TemporalPooler("mean"), store, library_dir)
    if encoder is None:
        from ..encoders import encoder_for

        encoder = encoder_for(own)
    pooler = resolve_pooler(own)
    if pooler.head is not None and pooler.head.config["dim"] != encoder.dim:
        # A head configured for one model (MMSEARCH_TEMPORAL_HEAD) cannot pool another's vectors.
        raise models.ModelMismatchError(
            f"the temporal head {pooler.name} pools {pooler.head.config['dim']}-d vectors; model {spec!r} makes "
            f"{encoder.dim}-d ones: set MMSEARCH_POOLING=mean, or MMSEARCH_TEMPORAL_HEAD to a head trained for it "
            f"(`mmsearch train temporal --model {spec}`)"
        )
    return with_indexes(own, spec, encoder, pooler, store, library_dir)


def with_indexes(
    settings: Settings, spec: str, encoder, pooler: TemporalPooler, store: Store, library_dir: Path
) -> ModelParts:
    """A model's parts over indexes opened afresh from its index files (and SQL), or from the
    Milvus the settings name (storage/index_backends), tuned for the settings' target recall
    within their memory budget."""
    indexes = open_index_set(
        settings,
        store,
        library_dir,
        encoder.space,
        encoder.dim,
        kind_spaces={"video": video_space(encoder.space, pooler)},
        text_queries=None if models.is_external(spec) else lambda: encoder.embed_texts(list(TUNING_PHRASES)),
    )
    return ModelParts(spec, encoder, pooler, indexes, SearchEngine(store, encoder, indexes, pooler.adapt_query))


# The text-like queries an index is tuned with: what people type, in the model's own text space.
TUNING_PHRASES = PROBE_TEXTS

ACTIVE_CHECK_S = 1.0  # how often a library looks whether another process switched its model


class ModelSlot:
    """The model a library searches with, and the models being added beside it, each loaded
    once. A switch swaps all the parts at once: searches in flight finish on the old ones."""

    def __init__(
        self, settings: Settings, store: Store, library_dir: Path, spec: str, given_encoder=None, on_swap=None
    ):
        self.settings, self.store, self.dir = settings, store, library_dir
        self._spec, self._given = spec, given_encoder  # a loaded encoder handed in (tests, notebooks)
        self._on_swap = on_swap or (lambda: None)
        self._parts: ModelParts | None = None
        self._candidates: dict[str, ModelParts] = {}
        self._lock = threading.RLock()
        self._switching = threading.Lock()
        self._checked = time.monotonic()

    @property
    def spec(self) -> str:
        return self._spec

    def _load(self, spec: str) -> ModelParts:
        given = self._given if getattr(self._given, "name", None) == spec else None
        return load_parts(self.settings, self.store, self.dir, spec, given)

    def current(self) -> ModelParts:
        """The active model's parts, loaded on first use (checking its space is the library's)."""
        parts = self._parts  # every search asks: no lock once they are loaded (a swap is one assignment)
        if parts is not None:
            return parts
        with self._lock:
            if self._parts is None:
                parts = self._load(self._spec)
                models.adopt(self.store, self._spec, parts.space)
                self._parts = parts
            return self._parts

    def loaded(self) -> ModelParts | None:
        return self._parts

    def candidate(self, spec: str) -> ModelParts:
        """A model's parts, the active one's or loaded once for adding and switching."""
        with self._lock:
            if self._parts is not None and self._parts.spec == spec:
                return self._parts
            if spec not in self._candidates:
                self._candidates[spec] = self._load(spec)
            return self._candidates[spec]

    def forget(self, spec: str) -> None:
        with self._lock:
            self._candidates.pop(spec, None)

    def swap(self, parts: ModelParts) -> None:
        with self._lock:
            old, self._parts, self._spec = self._parts, parts, parts.spec
            self._candidates.pop(parts.spec, None)
        self._on_swap()
        if old is not None:
            old.indexes.checkpoint(force=True)

    def for_import(self, requested: str | None, dim: int) -> ModelParts:
        """The parts whose space vectors imported from elsewhere go to (models.import_spec), their
        dimension checked; the library's first vectors make it the library's model."""
        from ..indexer.clip_retrieval import ImportFormatError

        spec = models.import_spec(self.store, requested, dim)
        parts = self.current() if spec == self._spec else self.candidate(spec)
        if parts.encoder.dim != dim:
            raise ImportFormatError(
                f"the folder holds {dim}-d vectors; model {spec!r} makes {parts.encoder.dim}-d ones: name the "
                "model that made them, or none to import them without a model"
            )
        if active_space(self.store) is None:
            record_space(self.store, spec, parts.space, dim, active=True)
            if spec != self._spec:
                self.swap(parts)
        return parts

    def reopen_indexes(self, space: str) -> None:
        """Drop the loaded indexes of `space` for fresh ones, read from their files on next use:
        an import wrote those files itself (the dropped ones hold nothing SQL lacks)."""
        with self._lock:
            if self._parts is not None and self._parts.space == space:
                self._parts = self._fresh(self._parts)
            for spec, parts in list(self._candidates.items()):
                if parts.space == space:
                    self._candidates[spec] = self._fresh(parts)

    def _fresh(self, parts: ModelParts) -> ModelParts:
        return with_indexes(self.settings, parts.spec, parts.encoder, parts.pooler, self.store, self.dir)

    def follow_active(self) -> None:
        """Another process may have switched the model (`mmsearch model use`): look at most once
        a second; one search thread loads the new model while the others go on with the old."""
        now = time.monotonic()
        if self._parts is None or now - self._checked < ACTIVE_CHECK_S:
            return
        self._checked = now
        row = active_space(self.store)
        if row is None or row.spec is None or row.space == self._parts.space or not self._switching.acquire(False):
            return
        try:
            self.swap(self.candidate(row.spec))
        finally:
            self._switching.release()

    def close(self) -> None:
        """Save every opened index set, then close it (its upkeep, its connection to Milvus)."""
        with self._lock:
            opened = [p for p in (self._parts, *self._candidates.values()) if p is not None]
        for parts in opened:
            parts.indexes.checkpoint(force=True)
            parts.indexes.close()
