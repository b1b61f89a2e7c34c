"""The label-free miss rule: does the library hold a close match for a query?

A raw cosine cannot say: its scale differs per model, per vector kind (an image's vector,
a video segment's mean of frames) and per phrasing. So each item's score is read against
what unrelated text scores the same item: PROBE_TEXTS, short generic descriptions that by
construction mostly miss. `probe_z` is the query's score for an item in standard
deviations above the probes' scores for that item (the probes' mean and spread per item
also take out the item's pull on every text, its hubness). The signal is the best
`probe_z` over the library's vectors of a kind: images are judged by their vectors,
videos by their segments' vectors, both in the text's own space (the temporal head's
pooled vectors meet a mapped query on a scale of their own).

The cutoff is calibrated per space and kind from the library alone: each probe in turn
is treated as a query against the library, read against the other probes (leave one out),
and the median of their best `probe_z` is the threshold: a hit must stand out from the
library more than unrelated text typically does. The calibration reads the kind's vectors
from SQL once (a sample of CALIBRATION_VECTORS when there are more); it is kept in
`<library>/miss_signal.json` and redone when the kind's vector count has moved by a
quarter. A search reads the CANDIDATES vectors nearest its probe-centred query and takes
the best probe_z among them. `benchmarks/bench_miss_signal.py` measures the rule.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..search.engine import QueryVectors, SearchEngine, passes_media_filters
from ..search.query import SearchRequest
from ..storage.files import atomic_write, digest

log = logging.getLogger(__name__)

# Written before any measurement: generic photo descriptions and content-free captions.
PROBE_TEXTS = (
    "a photo of a dog",
    "a cat sleeping on a sofa",
    "a city street at night",
    "a bowl of fruit",
    "a person smiling",
    "a mountain landscape",
    "a red car",
    "a plate of food",
    "a beach at sunset",
    "a bird in a tree",
    "an old building",
    "a child playing",
    "a forest path",
    "a cup of coffee",
    "a group of people",
    "a boat on the water",
    "a snowy field",
    "a close-up of a flower",
    "a computer on a desk",
    "a page of text",
    "a drawing",
    "a picture",
    "something",
    "a thing",
)
PROBES_ID = digest(json.dumps(PROBE_TEXTS), "sha1", 10)
# The vectors a media kind is judged by: they meet text queries in the encoder's own space.
JUDGED_VECTORS = {"image": "image", "video": "segment"}
CANDIDATES = 64  # nearest vectors (to the probe-centred query) whose probe_z a search computes
CALIBRATION_VECTORS = 200_000  # most vectors of a kind a calibration reads (a larger kind: every n-th)
RECALIBRATE_GROWTH = 1.25  # recalibrate when a kind's vector count grew or shrank by this factor
CALIBRATION_FILE = "miss_signal.json"
_EPS = 1e-6


def probe_z(queries: np.ndarray, probes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(m, n): each query's score for each item in standard deviations above the probes'
    scores for that item. queries (m, d) or (d,), probes (p, d), items (n, d)."""
    base = probes @ items.T
    spread = np.maximum(base.std(axis=0), _EPS)
    return (np.atleast_2d(queries) @ items.T - base.mean(axis=0)) / spread


def probe_null(probes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(p,): each probe's best probe_z over the items, read against the other probes."""
    if not len(items):
        return np.full(len(probes), -np.inf)
    return leave_one_out_z(probes, items).max(axis=1)


def leave_one_out_z(probes: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(p, n): probe_z of each probe for each item, the other probes being the probes."""
    base = probes @ items.T
    rest = len(probes) - 1
    mean = (base.sum(axis=0) - base) / rest
    var = ((base**2).sum(axis=0) - base**2) / rest - mean**2
    return (base - mean) / np.sqrt(np.maximum(var, _EPS**2))


def threshold_of(null: np.ndarray) -> float:
    """The cutoff: what unrelated text reaches in this library, the median probe."""
    return float(np.median(null))


@dataclass
class KindCalibration:
    kind: str  # media kind: image | video
    vectors: str  # the vector kind judged (image | segment)
    space: str
    threshold: float
    count: int  # vectors of the kind when calibrated
    probes: str = PROBES_ID
    null: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the probes' best probe_z: 10th, 50th, 90th percentile
    calibrated_at: float = 0.0

    def stale(self, count: int) -> bool:
        return (
            self.probes != PROBES_ID
            or count > self.count * RECALIBRATE_GROWTH
            or count * RECALIBRATE_GROWTH < self.count
        )


@dataclass
class Verdict:
    kind: str
    signal: float  # the best probe_z over the kind's vectors that pass the request's filters
    threshold: float

    @property
    def miss(self) -> bool:
        return self.signal < self.threshold


class MissSignal:
    """The calibrated miss rule of one library's engine (see the module's doc)."""

    def __init__(self, engine: SearchEngine, directory: Path | None = None):
        self.engine = engine
        self.path = Path(directory) / CALIBRATION_FILE if directory is not None else None
        self._lock = threading.Lock()
        self._probes: np.ndarray | None = None
        self._kinds: dict[str, KindCalibration] = {}
        self._loaded = False

    @property
    def space(self) -> str:
        return self.engine.indexes.space

    def probes(self) -> np.ndarray:
        if self._probes is None:
            self._probes = np.asarray(self.engine.encoder.embed_texts(list(PROBE_TEXTS)), np.float32)
        return self._probes

    # -- calibration ------------------------------------------------------------------------
    def calibration(self, kind: str, force: bool = False) -> KindCalibration | None:
        """The kind's calibration, made or remade when missing or stale; None when the
        library holds no vector of the kind."""
        vectors = JUDGED_VECTORS[kind]
        count = self.engine.indexes.size(vectors)
        self._load()
        known = self._kinds.get(kind)
        if count == 0:
            return None
        if known is not None and not force and not known.stale(count):
            return known
        with self._lock:
            known = self._kinds.get(kind)
            if known is None or force or known.stale(count):
                known = self._calibrate(kind, vectors, count)
                self._kinds[kind] = known
                self._save()
            return known

    def calibrate(self, force: bool = True) -> dict[str, KindCalibration]:
        """Every kind the library holds, calibrated now (force) or when stale."""
        out = {}
        for kind in JUDGED_VECTORS:
            found = self.calibration(kind, force=force)
            if found is not None:
                out[kind] = found
        return out

    def _calibrate(self, kind: str, vectors: str, count: int) -> KindCalibration:
        """Each probe's best probe_z over the kind's vectors, read from SQL in batches (every
        vector up to CALIBRATION_VECTORS, else every n-th: then the max runs a little low)."""
        started = time.perf_counter()
        probes = self.probes()
        step = -(-count // CALIBRATION_VECTORS)
        null = np.full(len(probes), -np.inf)
        for _, batch in self.engine.store.iter_vectors(self.engine.indexes.space_of(vectors), (vectors,), every=step):
            null = np.maximum(null, probe_null(probes, batch))
        calibration = KindCalibration(
            kind=kind,
            vectors=vectors,
            space=self.engine.indexes.space_of(vectors),
            threshold=round(threshold_of(null), 4),
            count=count,
            null=tuple(round(float(x), 4) for x in np.percentile(null, [10, 50, 90])),
            calibrated_at=round(time.time(), 3),
        )
        log.info(
            "miss rule for %s calibrated on %d vectors in %.0f ms: threshold %.3f",
            kind,
            count,
            1000 * (time.perf_counter() - started),
            calibration.threshold,
        )
        return calibration

    def _load(self) -> None:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._kinds.update(_read(self.path, self.space))
                    self._loaded = True

    def _save(self) -> None:
        if self.path is None:
            return
        table = _read_table(self.path)
        table[self.space] = {kind: asdict(c) for kind, c in self._kinds.items()}
        try:
            atomic_write(self.path, json.dumps(table, indent=2) + "\n", durable=False)
        except OSError as e:  # a read-only library still searches; it recalibrates per process
            log.warning("cannot record the miss calibration in %s: %s", self.path, e)

    # -- judging ----------------------------------------------------------------------------
    def judge(self, q: QueryVectors, req: SearchRequest) -> Verdict | None:
        """The verdict on a query's vectors for the request's kinds: a hit when any kind's
        signal reaches its threshold (the kind reported is the one that stands out most).
        None when no kind the request searches holds a vector."""
        kinds = ("image", "video") if req.kind == "any" else (req.kind,)
        verdicts = []
        for kind in kinds:
            calibration = self.calibration(kind)
            if calibration is None:
                continue
            signal = self._signal(q.main, calibration.vectors, req)
            if signal is not None:
                verdicts.append(Verdict(kind, round(signal, 4), calibration.threshold))
        if not verdicts:
            return None
        return max(verdicts, key=lambda v: v.signal - v.threshold)

    def _signal(self, q: np.ndarray, vectors: str, req: SearchRequest) -> float | None:
        """The best probe_z among the CANDIDATES vectors nearest the probe-centred query,
        of media passing the request's filters (None when none does)."""
        probes = self.probes()
        size = self.engine.indexes.size(vectors)
        if size == 0:
            return None
        _, ids = self.engine.indexes.search(vectors, (q - probes.mean(axis=0))[None, :], min(CANDIDATES, size))
        ids = [int(i) for i in ids[0] if i >= 0]
        if req.path_prefix or req.generated is not None:
            ids = self._passing(ids, req)
        items = _stack(self.engine.store.vectors_by_id(ids), ids)
        return float(probe_z(q, probes, items).max()) if len(items) else None

    def _passing(self, ids: list[int], req: SearchRequest) -> list[int]:
        owners = self.engine.store.media_of_vectors(ids)
        media = self.engine.store.media_by_id(sorted(set(owners.values())))
        return [i for i in ids if (m := media.get(owners.get(i, -1))) is not None and passes_media_filters(m, req)]


def _stack(found: dict[int, np.ndarray], ids) -> np.ndarray:
    """The found vectors of ids, in order ((0, 0) when none)."""
    items = [found[int(i)] for i in ids if int(i) in found]
    return np.stack(items) if items else np.zeros((0, 0), np.float32)


def _read_table(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("ignoring an unreadable %s: %s", path, e)
        return {}
    return table if isinstance(table, dict) else {}


def _read(path: Path | None, space: str) -> dict[str, KindCalibration]:
    out = {}
    for kind, entry in _read_table(path).get(space, {}).items():
        try:
            out[kind] = KindCalibration(**{**entry, "null": tuple(entry.get("null", (0.0, 0.0, 0.0)))})
        except TypeError:
            continue  # written by another version: recalibrated on first use
    return out


_SIGNALS: "weakref.WeakKeyDictionary[SearchEngine, MissSignal]" = weakref.WeakKeyDictionary()
_SIGNALS_LOCK = threading.Lock()


def miss_signal_for(engine: SearchEngine, directory: Path | None = None) -> MissSignal:
    """The MissSignal of an engine, one per engine (its calibration is cached there)."""
    with _SIGNALS_LOCK:
        signal = _SIGNALS.get(engine)
        if signal is None:
            signal = _SIGNALS[engine] = MissSignal(engine, directory)
        return signal
