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
    as_json: bool = typer.Option(False, "--json", help="One JSON object per hit."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Search the library by text and/or image; optionally generate the image on a miss."""
    from ..api.urls import hit_json
    from ..encoders.base import EncoderError
    from ..imageio import UnreadableImageError, decode_rgb
    from ..library import GenerationUnavailable
    from ..search.query import QueryError, SearchRequest, build_terms
    from ..services.drawing import GenerateOptions
    from ..services.generate_on_miss import GENERATE_MODES, prompt_of

    with failing_on(QueryError, EncoderError, UnreadableImageError, FileNotFoundError, GenerationUnavailable):
        terms = build_terms(text=query, image=decode_rgb(image) if image else None, media_id=media)
        with open_library(library, model) as lib:
            mode = generate or lib.settings.generate_default
            if mode not in GENERATE_MODES:
                fail(f"--generate must be one of {GENERATE_MODES}")
            request = SearchRequest(
                terms=terms, k=k, offset=offset, kind=kind, path_prefix=path_prefix, min_score=min_score
            )
            options = GenerateOptions(mode=mode, seed=seed, steps=steps or lib.settings.generate_steps)
            outcome = lib.search_or_generate(request, prompt_of(query, image is not None or media is not None), options)
            hits = outcome.hits
    if outcome.miss and not as_json:
        console.print(f"[yellow]miss[/yellow]: nothing scored above the threshold; answered via {outcome.via}")
    if as_json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit_json(hit)) + "\n")
        return
    from rich.table import Table

    show_via = any(h.via not in ("text", "image") for h in hits)  # prior or generated: worth a column
    table = Table("#", "score", "kind", "moment", *(["via"] if show_via else []))
    table.add_column("path", overflow="fold")  # wrap long paths rather than cut them
    for rank, hit in enumerate(hits, 1 + offset):
        moment = f"{hit.t_start:.1f}-{hit.t_end:.1f}s" if hit.t_start is not None else ""
        table.add_row(str(rank), f"{hit.score:.3f}", hit.kind, moment, *([hit.via] if show_via else []), hit.path)
    Console().print(table)  # stdout: the result, where messages go to stderr
