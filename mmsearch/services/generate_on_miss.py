"""Generate on miss: answer a text query from the library when it can, else draw the image.

In order: (1) search with the text; it is a hit when the configured text threshold says so
(a best score at or above it), else when the library's calibrated miss rule does (see
services.miss_signal: the best item must stand out from the library more than unrelated
text does, judged per kind, image or video). (2) Map the text through the generator's
prior to a predicted image embedding and search with that (image-to-image scores run
higher than text-to-image ones, hence a threshold of its own); a hit there is returned
marked `via: prior`. (3) Unless told never to, reuse images generated earlier for exactly
this prompt, or generate new ones, store and index them, and return them marked
`generated`. Drawing runs on the drawing queue, never under a search's locks; in auto mode
a repeat of a prompt being drawn waits for that drawing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from ..search.engine import Hit, QueryVectors, SearchEngine
from ..search.query import SearchRequest
from ..storage.generated import GenerationParams, find_generated
from .drawing import GenerateOptions, GenerationUnavailable, draw
from .drawing_queue import DrawingQueue
from .miss_signal import MissSignal

GENERATE_MODES = ("auto", "never", "always")


@dataclass
class MissThresholds:
    text: float | None = None  # configured: a best text score below this is a miss (wins over `signal`)
    prior: float | None = None  # best score of the prior's predicted embedding below this is a miss
    signal: MissSignal | None = None  # the library's calibrated rule, when no text threshold is configured
    prior_rule: str = "configured"  # where `prior` comes from: configured | shipped (a labelled calibration)


@dataclass
class Outcome:
    hits: list[Hit]
    miss: bool  # the text search alone found nothing good enough
    via: str  # text | prior | generated
    steps: list[dict] = field(default_factory=list)  # what each stage found: its best score and threshold


def _best_score(engine: SearchEngine, q: QueryVectors, req: SearchRequest, page: list[Hit]) -> float | None:
    """The query's best score over all results, not the page's: every page of one query
    must be judged the same way (a later page's first hit is always weaker). A rerank
    reorders the page, so then the best is read from the cosine ranking, without the rerank."""
    if req.offset == 0 and req.rerank is None:
        return max((h.score for h in page), default=None)  # sorted by date, the best is anywhere
    top = engine.search_vectors(q, replace(req, k=1, offset=0, rerank=None, sort="score"))
    return top[0].score if top else None


def search_or_generate(
    engine: SearchEngine,
    req: SearchRequest,
    prompt: str | None,
    generator,
    opts: GenerateOptions,
    thresholds: MissThresholds,
    save: Callable[[list, GenerationParams], list[int]],
    drawings: DrawingQueue,
) -> Outcome:
    if opts.mode not in GENERATE_MODES:
        raise ValueError(f"generate must be one of {GENERATE_MODES}")
    q = engine.query_vectors(req.terms, req.kind)
    hits = engine.search_query(q, req)
    # The query's words name media of the library (a file name, a caption, a place): no miss. A
    # drawing found by its prompt's words is left to the stages below, which reuse it.
    by_words = sum(h.found_by != "vector" and not h.generated for h in hits)
    if by_words:
        return Outcome(hits, False, q.via, [{"stage": "keyword", "found": by_words}])
    best = _best_score(engine, q, req, hits)
    step, miss = judge_text(q, req, best, thresholds)
    steps = [step]
    if opts.mode != "always" and not miss:
        return Outcome(hits, False, q.via, steps)
    # Only a text query can be drawn, and only images are drawn.
    can_generate = prompt is not None and generator is not None and req.kind in ("image", "any")
    if opts.mode != "always" and can_generate and thresholds.prior is not None and _shares_space(generator, engine):
        predicted = QueryVectors.single(generator.query_embeddings([prompt])[0], "prior")
        prior_hits = engine.search_vectors(predicted, req)
        prior_best = _best_score(engine, predicted, req, prior_hits)
        steps.append(
            {"stage": "prior", "rule": thresholds.prior_rule, "best": prior_best, "threshold": thresholds.prior}
        )
        if prior_best is not None and prior_best >= thresholds.prior:
            return Outcome(prior_hits, miss, "prior", steps)
    if opts.mode == "never" or not can_generate or req.offset > 0:
        return Outcome(hits, miss, q.via, steps)
    reuse = opts.mode == "auto"  # always: a fresh drawing each time
    space = engine.indexes.space_of("image") if reuse else None

    def stored_drawings() -> list[int]:
        return find_generated(engine.store, prompt, generator.name, space) if reuse else []

    stored = stored_drawings()
    if not stored:

        def stored_or_drawn() -> tuple[list[int], bool]:
            # Queued behind a drawing of the same prompt that has since been stored: reuse it.
            again = stored_drawings()
            return (again, True) if again else (save(*draw(generator, prompt, opts)), False)

        key = ("generate-on-miss", prompt, generator.name, space) if reuse else None
        (ids, reused), joined = drawings.run_shared(key, stored_or_drawn)
        if not (reused or joined):
            steps.append({"stage": "generated", "media": ids})
            return Outcome(engine.hits_for_media(q.main, ids, "generated"), miss, "generated", steps)
        stored = ids
    steps.append({"stage": "stored", "media": stored})
    return Outcome(engine.hits_for_media(q.main, stored[: req.k], "generated"), miss, "generated", steps)


def judge_text(
    q: QueryVectors, req: SearchRequest, best: float | None, thresholds: MissThresholds
) -> tuple[dict, bool]:
    """The text stage's record and whether it missed. Nothing found is a miss; otherwise a
    configured threshold decides ("configured"), else the calibrated rule ("calibrated",
    with the kind that decided, its signal and threshold); a library whose searched kinds
    hold no vector to calibrate on answers what it found ("uncalibrated")."""
    step = {"stage": "text", "rule": "configured", "best": best, "threshold": thresholds.text}
    if thresholds.text is not None:
        return step, best is None or best < thresholds.text
    verdict = thresholds.signal.judge(q, req) if thresholds.signal is not None and best is not None else None
    if verdict is None:
        return {**step, "rule": "uncalibrated" if best is not None else "empty"}, best is None
    step.update(rule="calibrated", kind=verdict.kind, signal=verdict.signal, threshold=verdict.threshold)
    return step, verdict.miss


def generator_for(mode: str, prompt: str | None, load: Callable[[], object]) -> tuple[object | None, str | None]:
    """The generator a request may draw with, and why there is none: loaded only when the
    request may draw; in auto mode one that cannot be loaded still lets the search answer."""
    if mode == "never" or prompt is None:
        return None, None
    try:
        return load(), None
    except GenerationUnavailable as e:
        if mode == "always":
            raise
        return None, str(e)


def _shares_space(generator, engine: SearchEngine) -> bool:
    return getattr(generator, "space", None) == engine.encoder.space and hasattr(generator, "query_embeddings")


def prompt_of(text: str | None, has_other_terms: bool) -> str | None:
    """The prompt to draw: the query text, when the query is text alone."""
    return text.strip() if text and text.strip() and not has_other_terms else None
