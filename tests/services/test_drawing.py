"""services.drawing: options completed from the generator, the seed, and the latent tricks."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.generation.unclip import slerp, text_diff_edit
from mmsearch.search.query import QueryError
from mmsearch.services import drawing
from mmsearch.services.drawing import (
    GenerateOptions,
    GenerationRequestError,
    GenerationUnavailable,
    draw,
    draw_from_media,
    draw_seed,
    generator_errors,
    with_generator_defaults,
)
from mmsearch.storage.generated import GenerationParams


class FakeGenerator:
    """Records how it was asked to draw; answers one string per image."""

    name = "fake"
    space = "space-a"
    SAMPLERS = ("ddpm", "ddim")
    default_guidance = 4.0

    def __init__(self):
        self.calls = []

    def generate(self, prompt, n, seed, steps, guidance, sampler):
        self.calls.append(dict(prompt=prompt, n=n, seed=seed, steps=steps, guidance=guidance, sampler=sampler))
        if sampler == "euler":
            raise ValueError("unknown sampler 'euler'")
        return [f"image {i}" for i in range(n)]

    def decode(self, embeddings, seed, steps, guidance, sampler):
        self.calls.append(dict(embeddings=embeddings, seed=seed, steps=steps, guidance=guidance, sampler=sampler))
        return [f"image {i}" for i in range(len(embeddings))]


class Bare:
    """A generator that says nothing of its samplers or guidance."""

    name = "bare"


@pytest.fixture()
def seeds(monkeypatch):
    """Every default seed drawn, each answered 1234."""
    drawn = []

    def randrange(stop):
        drawn.append(stop)
        return 1234

    monkeypatch.setattr(drawing.random, "randrange", randrange)
    return drawn


def test_defaults_come_from_the_generator_when_not_given():
    got = with_generator_defaults(GenerateOptions(mode="auto", n=2, seed=3, steps=7), FakeGenerator())
    assert got == GenerateOptions(mode="auto", n=2, seed=3, steps=7, guidance=4.0, sampler="ddpm")


def test_given_sampler_and_guidance_win_over_the_generator():
    given = GenerateOptions(guidance=1.5, sampler="ddim")
    assert with_generator_defaults(given, FakeGenerator()) == given


def test_a_generator_that_says_nothing_gets_ddim_and_no_guidance():
    assert with_generator_defaults(GenerateOptions(), Bare()) == GenerateOptions(sampler="ddim", guidance=None)


def test_no_generator_leaves_the_options_as_they_are():
    options = GenerateOptions(mode="auto")
    assert with_generator_defaults(options, None) is options


def test_a_seed_is_drawn_only_when_not_given(seeds):
    assert draw_seed(7) == 7 and draw_seed(0) == 0
    assert seeds == []
    assert draw_seed(None) == 1234
    assert seeds == [2**31]


def test_draw_uses_one_seed_for_the_images_and_their_record(seeds):
    generator = FakeGenerator()
    images, params = draw(generator, "a red circle", GenerateOptions(n=2, steps=3))
    assert images == ["image 0", "image 1"]
    assert seeds == [2**31]
    assert generator.calls == [dict(prompt="a red circle", n=2, seed=1234, steps=3, guidance=4.0, sampler="ddpm")]
    assert params == GenerationParams("a red circle", "fake", 1234, 3, 4.0, "ddpm")


def test_draw_keeps_a_given_seed(seeds):
    generator = FakeGenerator()
    _, params = draw(generator, "a cat", GenerateOptions(seed=5, steps=2, guidance=2.0, sampler="ddim"))
    assert seeds == []
    assert generator.calls[0]["seed"] == 5
    assert params == GenerationParams("a cat", "fake", 5, 2, 2.0, "ddim")


def test_a_refused_setting_is_the_request_s_error():
    with pytest.raises(GenerationRequestError, match="unknown sampler 'euler'"):
        draw(FakeGenerator(), "a cat", GenerateOptions(sampler="euler"))


def test_generator_errors_keep_query_errors_and_do_not_wrap_twice():
    with pytest.raises(QueryError):
        with generator_errors():
            raise QueryError("no media with id 9")
    with pytest.raises(GenerationRequestError) as caught:
        with generator_errors():
            raise GenerationRequestError("steps must be positive")
    assert caught.value.__cause__ is None


class FakeEncoder:
    space = "space-a"

    def embed_texts(self, texts):
        return [np.eye(4, dtype=np.float32)[{"red circle": 2, "blue circle": 3}[t]] for t in texts]


VECTORS = {1: np.array([1, 0, 0, 0], np.float32), 2: np.array([0, 1, 0, 0], np.float32)}


def test_variation_decodes_the_media_s_embedding_n_times(seeds):
    generator = FakeGenerator()
    images, params = draw_from_media(generator, FakeEncoder(), VECTORS.__getitem__, 1, GenerateOptions(n=3, steps=2))
    assert images == ["image 0", "image 1", "image 2"]
    (call,) = generator.calls
    np.testing.assert_array_equal(call["embeddings"], np.repeat(VECTORS[1][None], 3, 0))
    assert (call["seed"], call["steps"], call["guidance"], call["sampler"]) == (1234, 2, 4.0, "ddpm")
    assert params == GenerationParams("variation of media 1", "fake", 1234, 2, 4.0, "ddpm", source={"media_id": 1})


def test_interpolation_then_edit_are_recorded_with_their_sources(seeds):
    generator = FakeGenerator()
    options = GenerateOptions(seed=9, steps=2)
    edit = ("red circle", "blue circle")
    _, params = draw_from_media(generator, FakeEncoder(), VECTORS.__getitem__, 1, options, edit, (2, 0.25))
    expected = text_diff_edit(slerp(VECTORS[1], VECTORS[2], 0.25), np.eye(4)[2], np.eye(4)[3])
    np.testing.assert_allclose(generator.calls[0]["embeddings"][0], expected, rtol=1e-6)
    assert seeds == []
    assert params == GenerationParams(
        "edit of media 1: red circle -> blue circle",
        "fake",
        9,
        2,
        4.0,
        "ddpm",
        source={"media_id": 1, "interpolate": 2, "alpha": 0.25, "edit": ["red circle", "blue circle"]},
    )


def test_a_generator_of_another_space_cannot_draw_from_media():
    other = FakeGenerator()
    other.space = "space-b"
    with pytest.raises(GenerationUnavailable, match="generator 'fake' cannot decode embeddings"):
        draw_from_media(other, FakeEncoder(), VECTORS.__getitem__, 1, GenerateOptions())
    with pytest.raises(GenerationUnavailable):
        draw_from_media(Bare(), FakeEncoder(), VECTORS.__getitem__, 1, GenerateOptions())
    assert other.calls == []


class ScheduledGenerator(FakeGenerator):
    """Runs a 1000-step schedule whole under DDPM, as mini does."""

    def denoising_steps(self, steps, sampler):
        return 1000 if sampler == "ddpm" else steps


def test_a_request_over_the_step_budget_is_refused_with_what_it_would_cost():
    gen = ScheduledGenerator()
    drawing.check_step_budget(gen, GenerateOptions(n=8, steps=250, sampler="ddim"), 2000)  # 8 x 250: allowed
    with pytest.raises(GenerationRequestError) as caught:
        drawing.check_step_budget(gen, GenerateOptions(n=3, steps=25, sampler="ddpm"), 2000)
    assert str(caught.value) == (
        "3 image(s) x 1000 ddpm steps = 3000 denoising steps, over this server's 2000 per request "
        "(generate_step_budget): ask for fewer images or steps, or the ddim sampler"
    )
    # no sampler given: the generator's preferred one (ddpm here) is what is counted
    with pytest.raises(GenerationRequestError, match="= 3000 denoising steps"):
        drawing.check_step_budget(gen, GenerateOptions(n=3, steps=25), 2000)
    assert gen.calls == []


def test_a_generator_that_does_not_count_its_steps_is_charged_the_steps_asked_for():
    drawing.check_step_budget(FakeGenerator(), GenerateOptions(n=2, steps=10, sampler="ddpm"), 20)
    with pytest.raises(GenerationRequestError, match="2 image\\(s\\) x 11 ddpm steps = 22 denoising steps"):
        drawing.check_step_budget(FakeGenerator(), GenerateOptions(n=2, steps=11, sampler="ddpm"), 20)
    drawing.check_step_budget(None, GenerateOptions(n=8, steps=1000), 1)  # nothing draws: nothing to refuse
