"""`mmsearch generate` and `delete-generated`: draw images, and delete stored drawings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import Settings
from .common import LIBRARY_OPT, MODEL_OPT, console, fail, failing_on


def generate(
    prompt: Optional[str] = typer.Argument(None, help="What to draw (not needed with --from-media)."),
    out: Path = typer.Option(..., help="PNG file to write (with --n > 1: FILE-1.png, FILE-2.png, ...)."),
    n: int = typer.Option(1, "--n", min=1, max=16),
    steps: int = typer.Option(25, min=1, max=1000),
    sampler: Optional[str] = typer.Option(
        None, help="ddim or ddpm (ddpm runs every step of the schedule); default: the generator's preferred one."
    ),
    guidance: Optional[float] = typer.Option(
        None, min=0, max=50, help="Classifier-free guidance scale (default: the backend's)."
    ),
    seed: Optional[int] = typer.Option(None),
    from_media: Optional[int] = typer.Option(None, help="Decode from an indexed image's embedding (a variation)."),
    edit: Optional[tuple[str, str]] = typer.Option(
        None, help='With --from-media: move along a text diff, e.g. --edit "red circle" "blue circle".'
    ),
    interpolate: Optional[int] = typer.Option(
        None, help="With --from-media: interpolate towards this media id's embedding."
    ),
    alpha: float = typer.Option(0.5, min=0, max=1, help="Interpolation weight of --interpolate's image."),
    save: bool = typer.Option(False, help="Also store and index the images in the library (as generated media)."),
    generator: Optional[str] = typer.Option(None, help="Generator spec (default: settings' generator, mini)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Generate images from text, or variations and edits of an indexed image."""
    from ..library import GenerationUnavailable, Library
    from ..search.query import QueryError
    from ..services.drawing import GenerateOptions

    if prompt is None and from_media is None:
        fail("give a PROMPT or --from-media ID")
    if (edit or interpolate is not None) and from_media is None:
        fail("--edit and --interpolate work on --from-media")
    settings = Settings().with_overrides(library_dir=library, model=model, generator=generator)
    options = GenerateOptions(mode="always", n=n, seed=seed, steps=steps, guidance=guidance, sampler=sampler)
    with failing_on(GenerationUnavailable, QueryError, ValueError, FileNotFoundError):
        with Library.open(settings=settings) as lib:
            if from_media is not None:
                images, params = lib.draw_from_media(
                    from_media, options, edit=edit, interpolate=(interpolate, alpha) if interpolate else None
                )
            else:
                images, params = lib.draw(prompt, options)
            if save:
                console.print(f"stored as media {', '.join(map(str, lib.store_generated(images, params)))}")
    for k, image in enumerate(images, 1):
        target = out if len(images) == 1 else out.with_name(f"{out.stem}-{k}{out.suffix or '.png'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, format="PNG")
        console.print(f"wrote {target}")


def delete_generated(
    ids: list[int] = typer.Argument(..., help="Media ids of generated images (as /search and /generate answer them)."),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Delete generated images from the library (row, vector, file), e.g. a poor drawing
    that a repeated query would otherwise keep returning; the next miss draws anew."""
    from ..encoders.base import EncoderError
    from ..library import Library, NotGeneratedError

    settings = Settings().with_overrides(library_dir=library, model=model)
    with failing_on(NotGeneratedError, EncoderError), Library.open(settings=settings) as lib:
        deleted = lib.delete_generated(ids)
    missing = sorted(set(ids) - set(deleted))
    console.print(
        f"deleted {len(deleted)} generated image(s)"
        + (f"; no media with id {', '.join(map(str, missing))}" if missing else "")
    )
