"""Query terms: text with weights and negative terms, images, media ids, raw vectors.

`parse_text('"red circle" - "white background" + 0.5*"blue"')` gives three weighted text
terms; the engine embeds each term and sums them (the text-diff idea of DALL-E 2 and
clip-retrieval) into one unit query vector. A hyphen inside words ("top-left") is not an
operator: operators stand alone between spaces or next to a quote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_WEIGHT = 100.0  # of one term as written ("2*red"), as a weight of the HTTP API
MAX_COMBINED_WEIGHT = 1e6  # of a term as combined (a written weight times the API's weight of its part)
RERANK_METHODS = ("itm",)  # itm: BLIP's image-text matching head (search/rerank.py)
RERANK_TOP_DEFAULT = 20  # hits a rerank scores again, unless the request says how many
RERANK_TOP_MAX = 200
SORTS = ("score", "date")
MODES = ("vector", "keyword", "hybrid")
MAX_NEAR_KM = 20_038.0  # half the equator: every point of the earth is within it


class QueryError(ValueError):
    """The query cannot be understood or has nothing to search with."""


class MediaNotFoundError(QueryError):
    """The query names a media id the library does not have."""


@dataclass
class Term:
    weight: float = 1.0
    text: str | None = None
    image: Image.Image | None = None
    media_id: int | None = None
    vector: np.ndarray | None = None
    quoted: bool = False  # text written in quotes: a lone quoted term is searched as keywords only


@dataclass(frozen=True)
class Near:
    """Within km of a point (great-circle distance)."""

    lat: float
    lon: float
    km: float

    def __post_init__(self):
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise QueryError(f"near: ({self.lat}, {self.lon}) is not a latitude and longitude in degrees")
        if not (0 < self.km <= MAX_NEAR_KM):
            raise QueryError(f"near: km must be over 0 and at most {MAX_NEAR_KM:g}")


@dataclass
class SearchRequest:
    terms: list[Term]
    k: int = 10
    offset: int = 0
    kind: str = "any"  # image | video | any
    path_prefix: str | None = None
    generated: bool | None = None  # None: both
    min_score: float | None = None
    rerank: str | None = None  # one of RERANK_METHODS: reorder the first rerank_top hits by its score
    rerank_top: int = RERANK_TOP_DEFAULT
    # Capture filters (search/media_filters.py): wall-clock seconds where taken, inclusive
    # (storage/capture_time.wall_clock reads them from ISO text), and parts of names.
    taken_after: float | None = None
    taken_before: float | None = None
    camera: str | None = None
    near: Near | None = None
    place: str | None = None
    sort: str = "score"  # score | date: the same hits, newest first (undated last)
    mode: str = "hybrid"  # vector | keyword | hybrid: how text terms search (search/hybrid.py)


_WEIGHT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*\*\s*")
_OPERATOR = re.compile(r"\s+[+-](?:\s+|$)|\s*[+-]\s*(?=[\d.]*\s*\*?\s*\")|(?<=\")\s*[+-]\s*")


def _is_operator(s: str, pos: int) -> bool:
    """A + or - at pos is an operator when a space, a quote or a weight ("2*") follows it;
    "-5 degrees" is text."""
    rest = s[pos + 1 :]
    return rest == "" or rest[0].isspace() or rest[0] == '"' or _WEIGHT.match(rest) is not None


def parse_text(query: str) -> list[Term]:
    """Split a text query into weighted terms."""
    s = query.strip()
    if not s:
        raise QueryError("empty query text")
    terms: list[Term] = []
    pos, sign = 0, 1.0
    while pos < len(s):
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos < len(s) and s[pos] in "+-" and _is_operator(s, pos):
            if s[pos + 1 :].strip() == "":
                raise QueryError(f"query ends with a dangling {s[pos]!r}: {query!r}")
            sign *= -1.0 if s[pos] == "-" else 1.0
            pos += 1
            continue
        weight = 1.0
        m = _WEIGHT.match(s, pos)
        if m:
            weight, pos = float(m.group(1)), m.end()
            if weight > MAX_WEIGHT:  # 1e23*"red" overflowed the query's norm: every score came back 0.0
                raise QueryError(f"weight {m.group(1)} is out of range: a term's weight is at most {MAX_WEIGHT:g}")
        quoted = pos < len(s) and s[pos] == '"'
        if quoted:
            end = s.find('"', pos + 1)
            if end < 0:
                raise QueryError(f"unclosed quote in query: {query!r}")
            text, pos = s[pos + 1 : end], end + 1
        else:
            m = _OPERATOR.search(s, pos)
            end = m.start() if m else len(s)
            text, pos = s[pos:end], end
        text = text.strip()
        if not text:
            raise QueryError(f"empty term in query: {query!r}")
        terms.append(Term(weight=sign * weight, text=text, quoted=quoted))
        sign = 1.0
    return terms


def build_terms(
    text: str | None = None,
    image: Image.Image | None = None,
    media_id: int | None = None,
    vector: list[float] | np.ndarray | None = None,
    weights: dict[str, float] | None = None,
) -> list[Term]:
    """Terms from the usual query parts; `weights` scales each part ("text", "image", "vector")."""
    w = weights or {}
    terms = []
    for t in parse_text(text) if text else []:
        t.weight *= w.get("text", 1.0)
        terms.append(t)
    if image is not None:
        terms.append(Term(image=image, weight=w.get("image", 1.0)))
    if media_id is not None:
        terms.append(Term(media_id=media_id, weight=w.get("image", 1.0)))
    if vector is not None:
        terms.append(Term(vector=np.asarray(vector, np.float32), weight=w.get("vector", 1.0)))
    return terms


def combine(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of unit vectors, renormalised (in float64); refuses weights out of range,
    non-finite values and a sum that cancels out (nothing left but rounding noise)."""
    for w in weights:
        if not math.isfinite(w):
            raise QueryError("the query has non-finite values")
        if abs(w) > MAX_COMBINED_WEIGHT:
            raise QueryError(f"weight {w:g} is out of range: at most {MAX_COMBINED_WEIGHT:g} in magnitude")
    with np.errstate(invalid="ignore", over="ignore"):
        terms = [w * np.asarray(v, np.float64) for w, v in zip(weights, vectors)]
        q = np.sum(terms, axis=0)
        if not np.all(np.isfinite(q)):
            raise QueryError("the query has non-finite values")
        scale = sum(float(np.linalg.norm(t)) for t in terms)
    norm = float(np.linalg.norm(q))
    if norm <= 1e-6 * scale or norm < 1e-12:
        raise QueryError("the query terms cancel each other out")
    return (q / norm).astype(np.float32)
