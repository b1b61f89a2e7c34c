"""The label-free miss rule: does the library hold a close match for a query?

A raw cosine cannot say: its scale differs per model, per vector kind (an image's vector,
a video segment's mean of frames) and per phrasing. So each item's score is read against
what unrelated text scores the same item: PROBE_TEXTS, short generic descriptions that by
construction mostly miss. `probe_z` is the query's score for an item in standard
deviations above the probes' scores for that item (the probes' mean and spread per item
also take out the item's pull on every text, its hubness). The signal is the best
`probe_z` over the library's vectors of a kind, in the text's own space (the temporal
head's pooled vectors meet a mapped query on a scale of their own): an image's vector;
for videos, a segment's frames, by the mean of its two best frames (one frame can stand
out by chance; a segment's mean vector blurs what its shot shows: both measured worse,
BENCHMARKS.md).

The cutoff is calibrated per space and kind from the library alone: each probe in turn
is treated as a query against the library, read against the other probes (leave one out),
and the median of their signals is the threshold: a hit must stand out from the library
more than unrelated text typically does. The calibration reads the kind's vectors from SQL
once (a sample of about CALIBRATION_VECTORS when there are more); it is kept in
`<library>/miss_signal.json` and redone when the kind's count of indexed vectors has moved
by a quarter, or the rule changed. A search reads the CANDIDATES indexed vectors (images,
or video segments) nearest its probe-centred query and scores them (or their frames).
`benchmarks/bench_miss_signal.py` measures the rule.
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

from ..search.engine import QueryVectors, SearchEngine
from ..search.media_filters import passes_media_filters
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
RULE_VERSION = 2  # 2: videos judged by their segments' frames (1: by segment vectors)


@dataclass(frozen=True)
class Judged:
    """The vectors a media kind is judged by, in the encoder's own space."""

    candidates: str  # the indexed vector kind a search reads its candidates from
    scored: str  # the vectors scored: the candidates themselves, or their segments' frames


JUDGED = {"image": Judged("image", "image"), "video": Judged("segment", "frame")}
CANDIDATES = 64  # nearest indexed vectors (to the probe-centred query) a search scores
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


def best_of(z: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
    """(m,): each row's signal over its items: the best item; or, when the items are frames
    with their segment ids, the best segment by the mean of its two best frames (a segment
    of one frame: that frame)."""
    if z.shape[1] == 0:
        return np.full(len(z), -np.inf)
    if segments is None:
        return z.max(axis=1)
    order = np.argsort(segments, kind="stable")
    z, segments = z[:, order], segments[order]
    starts = np.flatnonzero(np.r_[True, segments[1:] != segments[:-1]])
    sizes = np.diff(np.r_[starts, len(segments)])
    first = np.maximum.reduceat(z, starts, axis=1)
    is_first = z == np.repeat(first, sizes, axis=1)
    second = np.maximum.reduceat(np.where(is_first, -np.inf, z), starts, axis=1)
    # a tie for the best is its own second; a lone frame is its own pair
    tied_or_alone = (np.add.reduceat(is_first, starts, axis=1) > 1) | (sizes == 1)[None, :]
    second = np.where(tied_or_alone, first, second)
    return ((first + second) / 2).max(axis=1)


def probe_null(probes: np.ndarray, items: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
    """(p,): each probe's signal over the items (see best_of), read against the other probes."""
    if not len(items):
        return np.full(len(probes), -np.inf)
    return best_of(leave_one_out_z(probes, items), segments)


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
    vectors: str  # the vector kind scored (image | frame)
    space: str
    threshold: float
    count: int  # indexed vectors of the kind (images, segments) when calibrated
    probes: str = PROBES_ID
    null: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the probes' signals: 10th, 50th, 90th percentile
    calibrated_at: float = 0.0
    rule: int = RULE_VERSION

    def stale(self, count: int) -> bool:
        return (
            self.probes != PROBES_ID
            or self.rule != RULE_VERSION
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
        judged = JUDGED[kind]
        count = self.engine.indexes.size(judged.candidates)
        self._load()
        known = self._kinds.get(kind)
        if count == 0:
            return None
        if known is not None and not force and not known.stale(count):
            return known
        with self._lock:
            known = self._kinds.get(kind)
            if known is None or force or known.stale(count):
                known = self._calibrate(kind, judged, count)
                self._kinds[kind] = known
                self._save()
            return known

    def calibrate(self, force: bool = True) -> dict[str, KindCalibration]:
        """Every kind the library holds, calibrated now (force) or when stale."""
        out = {}
        for kind in JUDGED:
            found = self.calibration(kind, force=force)
            if found is not None:
                out[kind] = found
        return out

    def _calibrate(self, kind: str, judged: Judged, count: int) -> KindCalibration:
        """Each probe's signal over the kind's vectors, read from SQL in batches (every vector
        up to CALIBRATION_VECTORS, else every n-th image or segment: then the max runs a
        little low)."""
        started = time.perf_counter()
        probes, store = self.probes(), self.engine.store
        space = self.engine.indexes.space_of(judged.scored)
        null = np.full(len(probes), -np.inf)
        if judged.scored == judged.candidates:
            step = -(-count // CALIBRATION_VECTORS)
            for _, batch in store.iter_vectors(space, (judged.scored,), every=step):
                null = np.maximum(null, probe_null(probes, batch))
        else:
            step = -(-store.vector_stats(space, judged.scored)[1] // CALIBRATION_VECTORS)
            for segments, batch in store.iter_segment_frames(space, every=step):
                null = np.maximum(null, probe_null(probes, batch, segments))
        calibration = KindCalibration(
            kind=kind,
            vectors=judged.scored,
            space=space,
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
            signal = self._signal(q.main, JUDGED[kind], req)
            if signal is not None:
                verdicts.append(Verdict(kind, round(signal, 4), calibration.threshold))
        if not verdicts:
            return None
        return max(verdicts, key=lambda v: v.signal - v.threshold)

    def _signal(self, q: np.ndarray, judged: Judged, req: SearchRequest) -> float | None:
        """The signal over the CANDIDATES indexed vectors nearest the probe-centred query (or
        their frames), of media passing the request's filters (None when none does)."""
        probes = self.probes()
        size = self.engine.indexes.size(judged.candidates)
        if size == 0:
            return None
        centred = (q - probes.mean(axis=0))[None, :]
        _, ids = self.engine.indexes.search(judged.candidates, centred, min(CANDIDATES, size))
        ids = [int(i) for i in ids[0] if i >= 0]
        if req.path_prefix or req.generated is not None:
            ids = self._passing(ids, req)
        if judged.scored == judged.candidates:
            segments, items = None, _stack(self.engine.store.vectors_by_id(ids), ids)
        else:
            segments, items = self.engine.store.frames_of_segments(ids)
        return float(best_of(probe_z(q, probes, items), segments)[0]) if len(items) else None

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
            # a record without a rule version is of rule 1: stale, recalibrated on first use
            entry = {**entry, "rule": entry.get("rule", 1), "null": tuple(entry.get("null", (0.0, 0.0, 0.0)))}
            out[kind] = KindCalibration(**entry)
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
