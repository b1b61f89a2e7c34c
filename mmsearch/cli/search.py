"""`mmsearch search`: query the library, a table or JSON lines of hits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import LIBRARY_OPT, MODEL_OPT, console, fail, failing_on, open_library


def search(
    query: Optional[str] = typer.Argument(
        None, help='Text; weighted terms allowed: \'"red circle" - "white background"\'.'
    ),
    image: Optional[Path] = typer.Option(
        None, "--image", help="Search with an image file (added to the text, if any)."
    ),
    media: Optional[int] = typer.Option(None, "--media", help="Search with an indexed media item's embedding."),
    video: Optional[Path] = typer.Option(
        None, "--video", help="Search with a video clip: images, videos and moments like it."
    ),
    k: int = typer.Option(10, "--k", min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    kind: str = typer.Option("any", help="image, video or any."),
    path_prefix: Optional[str] = typer.Option(None, help="Only media whose path starts with this."),
    min_score: Optional[float] = typer.Option(None),
    generate: Optional[str] = typer.Option(
        None, help="On a miss: auto (search with the prior, then generate), never, always (default: settings)."
    ),
    steps: Optional[int] = typer.Option(None, min=1, max=1000, help="Sampling steps when generating."),
    seed: Optional[int] = typer.Option(None, help="Seed when generating."),
    rerank: Optional[str] = typer.Option(
        None, help="itm: reorder the first hits by BLIP's image-text matching head (a blip: library, text query)."
    ),
    rerank_top: Optional[int] = typer.Option(
        None, "--rerank-top", min=1, max=200, help="How many of the first hits --rerank scores (default 20)."
    ),
    taken_after: Optional[str] = typer.Option(
        None, help="Taken at or after this ISO date or datetime (the clock where it was taken)."
    ),
    taken_before: Optional[str] = typer.Option(None, help="Taken at or before this ISO date (its whole day) or time."),
    camera: Optional[str] = typer.Option(None, help="Part of the camera make or model (any case)."),
    near: Optional[str] = typer.Option(None, help="LAT,LON,KM: taken within KM of a point."),
    place: Optional[str] = typer.Option(None, help="Part of the place name (any case): 'Lisbon', 'Portugal'."),
    sort: str = typer.Option("score", help="score, or date: the same hits newest first."),
    mode: str = typer.Option(
        "hybrid",
        help="vector (the embedding), keyword (the words: file names, captions, places...) or hybrid (both). "
        "A lone quoted term ('\"IMG_2041\"') searches words only.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per hit."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Search the library by text and/or image; optionally generate the image on a miss."""
    from ..api.urls import hit_json
    from ..encoders.base import EncoderError
    from ..imageio import UnreadableImageError, decode_rgb
    from ..library import GenerationUnavailable
    from ..search.query import MODES, RERANK_METHODS, RERANK_TOP_DEFAULT, SORTS, QueryError, SearchRequest, build_terms
    from ..services.drawing import GenerateOptions
    from ..services.generate_on_miss import GENERATE_MODES, prompt_of

    if rerank is not None and rerank not in RERANK_METHODS:
        fail(f"--rerank must be one of {RERANK_METHODS}")
    if rerank_top is not None and rerank is None:
        fail("--rerank-top applies with --rerank")
    if sort not in SORTS:
        fail(f"--sort must be one of {SORTS}")
    if mode not in MODES:
        fail(f"--mode must be one of {MODES}")
    if video is not None and (query or image or media):
        fail("--video searches with the clip alone (no text, --image or --media)")
    with failing_on(QueryError, EncoderError, UnreadableImageError, FileNotFoundError, GenerationUnavailable):
        capture = dict(
            taken_after=_when("--taken-after", taken_after),
            taken_before=_when("--taken-before", taken_before, end_of_day=True),
            camera=camera,
            near=_near(near) if near else None,
            place=place,
            sort=sort,
            mode=mode,
        )
        terms = [] if video else build_terms(text=query, image=decode_rgb(image) if image else None, media_id=media)
        with open_library(library, model) as lib:
            generate_mode = generate or lib.settings.generate_default
            if generate_mode not in GENERATE_MODES:
                fail(f"--generate must be one of {GENERATE_MODES}")
            request = SearchRequest(
                terms=terms,
                k=k,
                offset=offset,
                kind=kind,
                path_prefix=path_prefix,
                min_score=min_score,
                rerank=rerank,
                rerank_top=rerank_top or RERANK_TOP_DEFAULT,
                **capture,
            )
            if video is not None:
                hits, miss, via = lib.search_video(video, request), False, "video"
            else:
                options = GenerateOptions(mode=generate_mode, seed=seed, steps=steps or lib.settings.generate_steps)
                prompt = prompt_of(query, image is not None or media is not None)
                outcome = lib.search_or_generate(request, prompt, options)
                hits, miss, via = outcome.hits, outcome.miss, outcome.via
            model_name = lib.encoder.name
    if miss and not as_json:
        console.print(f"[yellow]miss[/yellow]: no close match in the library; answered via {via}")
    reranked = rerank is not None and via != "generated"  # drawn images are not reranked
    if reranked and not as_json:
        console.print(f"reranked the first {request.rerank_top} hits by {rerank} ({model_name})", soft_wrap=True)
    if as_json:
        for hit in hits:
            line = hit_json(hit)
            if line["rerank_score"] is None:  # as the API: only a reranked hit carries one
                del line["rerank_score"]
            sys.stdout.write(json.dumps(line) + "\n")
        return
    from rich.table import Table

    show_via = any(h.via not in ("text", "image") for h in hits)  # prior or generated: worth a column
    table = Table("#", "score", *(["itm"] if reranked else []), "kind", "moment", *(["via"] if show_via else []))
    table.add_column("path", overflow="fold")  # wrap long paths rather than cut them
    for rank, hit in enumerate(hits, 1 + offset):
        moment = f"{hit.t_start:.1f}-{hit.t_end:.1f}s" if hit.t_start is not None else ""
        itm = [f"{hit.rerank_score:.3f}" if hit.rerank_score is not None else ""] if reranked else []
        via = [hit.via] if show_via else []
        table.add_row(str(rank), f"{hit.score:.3f}", *itm, hit.kind, moment, *via, hit.path)
    Console().print(table)  # stdout: the result, where messages go to stderr


def _when(flag: str, text: str | None, end_of_day: bool = False) -> float | None:
    from ..capture_time import wall_clock

    if text is None:
        return None
    try:
        return wall_clock(text, end_of_day)
    except ValueError:
        fail(f"{flag} takes an ISO date or datetime (2019-06-01, 2019-06-01T14:30), not {text!r}")


def _near(text: str):
    """LAT,LON,KM -> Near (QueryError, which exits 2, when out of range)."""
    from ..search.query import Near

    try:
        lat, lon, km = (float(part) for part in text.split(","))
    except ValueError:
        fail(f"--near takes LAT,LON,KM (38.72,-9.14,25), not {text!r}")
    return Near(lat, lon, km)
