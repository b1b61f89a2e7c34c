"""Drawing images: the options a request gives, completed from the generator's defaults, the
seed, and DALL-E 2's latent tricks on an indexed image. Nothing here stores what it draws."""

from __future__ import annotations

import dataclasses
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from ..search.query import QueryError
from ..storage.generated import GenerationParams

Edit = tuple[str, str]  # a text-diff edit: (from text, to text)
Towards = tuple[int, float]  # an interpolation: (the other media id, how far towards it, 0-1)


class GenerationUnavailable(RuntimeError):
    """No generator can serve this request (turned off, not trained, or another space)."""


class GenerationRequestError(ValueError):
    """The generator refused the request's settings (e.g. a sampler this backend lacks)."""


@dataclass
class GenerateOptions:
    mode: str = "never"  # auto: generate on a miss; never; always: generate fresh images every time
    n: int = 1
    seed: int | None = None
    steps: int = 25
    guidance: float | None = None
    sampler: str | None = None  # None: the generator's first (preferred) sampler


@contextmanager
def generator_errors():
    """A generator's ValueError is the request's fault: re-raise it as GenerationRequestError
    (a bad query stays a QueryError)."""
    try:
        yield
    except (QueryError, GenerationRequestError):
        raise
    except ValueError as e:
        raise GenerationRequestError(str(e)) from e


def check_step_budget(generator, options: GenerateOptions, budget: int) -> None:
    """Refuse, before it is queued, a request whose drawing would cost more than `budget`
    denoiser steps: its images times the steps each costs (DDPM: the whole schedule)."""
    if generator is None:
        return
    options = with_generator_defaults(options, generator)
    per_image = (
        generator.denoising_steps(options.steps, options.sampler)
        if hasattr(generator, "denoising_steps")
        else options.steps
    )
    if options.n * per_image > budget:
        raise GenerationRequestError(
            f"{options.n} image(s) x {per_image} {options.sampler} steps = {options.n * per_image} denoising steps, "
            f"over this server's {budget} per request (generate_step_budget): ask for fewer images or steps"
            + (", or the ddim sampler" if options.sampler == "ddpm" else "")
        )


def draw_seed(seed: int | None) -> int:
    """The seed asked for, else a fresh one; either way it is recorded, so a drawing can be redone."""
    return seed if seed is not None else random.randrange(2**31)


def with_generator_defaults(options: GenerateOptions, generator) -> GenerateOptions:
    """Options with the sampler and guidance filled in from the generator when not given,
    so a generated image's record says how it was actually drawn."""
    if generator is None:
        return options
    return dataclasses.replace(
        options,
        sampler=options.sampler if options.sampler is not None else getattr(generator, "SAMPLERS", ("ddim",))[0],
        guidance=options.guidance if options.guidance is not None else getattr(generator, "default_guidance", None),
    )


def draw(generator, prompt: str, options: GenerateOptions) -> tuple[list[Image.Image], GenerationParams]:
    """Images for a prompt and how they were made."""
    options = with_generator_defaults(options, generator)
    seed = draw_seed(options.seed)
    with generator_errors():
        images = generator.generate(
            prompt, n=options.n, seed=seed, steps=options.steps, guidance=options.guidance, sampler=options.sampler
        )
    return images, GenerationParams(prompt, generator.name, seed, options.steps, options.guidance, options.sampler)


def draw_from_media(
    generator,
    encoder,
    media_vector: Callable[[int], np.ndarray],
    media_id: int,
    options: GenerateOptions,
    edit: Edit | None = None,
    interpolate: Towards | None = None,
) -> tuple[list[Image.Image], GenerationParams]:
    """DALL-E 2's latent tricks on an indexed image: variations of it, an interpolation towards
    another image, or a text-diff edit ("red circle" -> "blue circle"). media_vector(id) is an
    indexed item's embedding in the encoder's space, which the generator must decode."""
    from ..generation.unclip import slerp, text_diff_edit  # torch: only when drawing

    if getattr(generator, "space", None) != encoder.space or not hasattr(generator, "decode"):
        raise GenerationUnavailable(f"generator {generator.name!r} cannot decode embeddings of this library's space")
    options = with_generator_defaults(options, generator)
    embedding = media_vector(media_id)
    source: dict = {"media_id": media_id}
    if interpolate is not None:
        other, alpha = interpolate
        embedding = slerp(embedding, media_vector(other), alpha)
        source |= {"interpolate": other, "alpha": alpha}
    if edit is not None:
        src, tgt = encoder.embed_texts(list(edit))
        embedding = text_diff_edit(embedding, src, tgt)
        source |= {"edit": list(edit)}
    seed = draw_seed(options.seed)
    with generator_errors():
        images = generator.decode(
            np.repeat(embedding[None], options.n, 0),
            seed=seed,
            steps=options.steps,
            guidance=options.guidance,
            sampler=options.sampler,
        )
    label = f"edit of media {media_id}: {edit[0]} -> {edit[1]}" if edit else f"variation of media {media_id}"
    return images, GenerationParams(
        label, generator.name, seed, options.steps, options.guidance, options.sampler, source=source
    )
