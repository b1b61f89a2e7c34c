"""A library in a generator's space: indexed with `hf-clip:` over the CLIP a tiny random
Kandinsky 2.2 prior pipeline carries, it shares the `kandinsky22:` generator's space, so
generate-on-miss runs its prior stage and indexed images have variations, edits and
interpolations. With another CLIP (another seed) the spaces differ and both are off.

Everything is built here with random weights (test_backends.py's builders); nothing is
trained, so these test the plumbing, not the pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from mmsearch.encoders import load_encoder  # noqa: E402
from mmsearch.generation import load_generator  # noqa: E402
from mmsearch.search.query import SearchRequest, parse_text  # noqa: E402
from mmsearch.services.drawing import GenerateOptions, GenerationUnavailable  # noqa: E402

from ..encoders.tiny_blip import scenes  # noqa: E402
from ..helpers import open_library  # noqa: E402
from .test_backends import _save_kandinsky, one_thread  # noqa: E402, F401 (an autouse fixture)

PROMPT = "a red circle"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Two tiny Kandinsky 2.2 folders that differ only in their prior's CLIP, and six pictures."""
    root = tmp_path_factory.mktemp("shared-space")
    photos = root / "photos"
    photos.mkdir()
    for i, im in enumerate(scenes()):
        im.save(photos / f"scene-{i}.png")
    return {
        "kandinsky": _save_kandinsky(root / "k0", clip_seed=0),
        "other": _save_kandinsky(root / "k1", clip_seed=1),
        "photos": photos,
    }


def _library(path: Path, clip: Path, generator: Path, **thresholds):
    """A library indexed with hf-clip over `clip`'s prior CLIP, drawing with kandinsky22:`generator`."""
    encoder = load_encoder(f"hf-clip:{clip / 'prior'}", device="cpu")
    return open_library(path, encoder=encoder, generator=f"kandinsky22:{generator}", **thresholds)


def _ask(lib, prompt: str = PROMPT):
    request = SearchRequest(terms=parse_text(prompt), k=3, kind="image")
    return lib.search_or_generate(request, prompt, GenerateOptions(mode="auto", steps=2, seed=1))


def test_an_hf_clip_library_of_the_priors_clip_has_the_generators_space(built):
    kandinsky = built["kandinsky"]
    encoder = load_encoder(f"hf-clip:{kandinsky / 'prior'}", device="cpu")
    generator = load_generator(f"kandinsky22:{kandinsky}", device="cpu")
    assert encoder.space == generator.space and encoder.dim == generator.dim
    other = load_encoder(f"hf-clip:{built['other'] / 'prior'}", device="cpu")
    assert other.space != generator.space
    # what the prior predicts and what the encoder embeds are vectors of one space
    assert generator.query_embeddings([PROMPT]).shape == encoder.embed_texts([PROMPT]).shape


def test_the_prior_stage_answers_a_missed_query(built, tmp_path):
    kandinsky = built["kandinsky"]
    with _library(tmp_path / "lib", kandinsky, kandinsky, miss_threshold=1.0, prior_miss_threshold=-1.0) as lib:
        lib.index([built["photos"]])
        outcome = _ask(lib)
        assert outcome.miss and outcome.via == "prior"
        assert [s["stage"] for s in outcome.steps] == ["text", "prior"]
        assert outcome.steps[1]["threshold"] == -1.0
        assert len(outcome.hits) == 3 and all(h.via == "prior" and not h.generated for h in outcome.hits)
        # searched with the prior's predicted image embedding, not with the text
        predicted = lib.generator.query_embeddings([PROMPT])[0]
        images = lib.encoder.embed_images([h.path for h in outcome.hits])
        np.testing.assert_allclose([h.score for h in outcome.hits], images @ predicted, atol=1e-4)
        assert not (lib.dir / "generated").exists()  # nothing was drawn


def test_a_prior_miss_goes_on_to_draw(built, tmp_path):
    kandinsky = built["kandinsky"]
    with _library(tmp_path / "lib", kandinsky, kandinsky, miss_threshold=1.0, prior_miss_threshold=1.0) as lib:
        lib.index([built["photos"]])
        outcome = _ask(lib)
        assert outcome.via == "generated"
        assert [s["stage"] for s in outcome.steps] == ["text", "prior", "generated"]
        drawn = lib.media(outcome.hits[0].id)
        assert drawn.generated and drawn.generation["backend"] == f"kandinsky22:{kandinsky}"
        assert drawn.generation["prompt"] == PROMPT


def test_variations_edits_and_interpolations_of_indexed_images(built, tmp_path):
    kandinsky = built["kandinsky"]
    with _library(tmp_path / "lib", kandinsky, kandinsky) as lib:
        lib.index([built["photos"]])
        first, second = (h.id for h in lib.search(SearchRequest(terms=parse_text("circle"), k=2, kind="image")))
        hits = lib.generate_from_media(first, GenerateOptions(n=2, steps=2, seed=3))
        assert len(hits) == 2 and all(h.generated and h.via == "generated" for h in hits)
        for hit in hits:
            record = lib.media(hit.id).generation
            assert record["source"] == {"media_id": first}
            assert record["prompt"] == f"variation of media {first}"
            assert record["backend"] == f"kandinsky22:{kandinsky}" and record["seed"] == 3
            assert record["sampler"] == "ddim" and record["guidance"] == lib.generator.default_guidance
        # scored against the source image, in the library's (and the generator's) space
        source = lib.media_vector(first)
        drawn = lib.encoder.embed_images([h.path for h in hits])
        np.testing.assert_allclose(sorted(h.score for h in hits), sorted(drawn @ source), atol=1e-4)

        edited = lib.generate_from_media(first, GenerateOptions(steps=2, seed=4), edit=("red circle", "blue square"))
        assert lib.media(edited[0].id).generation["source"] == {
            "media_id": first,
            "edit": ["red circle", "blue square"],
        }
        mixed = lib.generate_from_media(
            first, GenerateOptions(steps=2, seed=5, sampler="ddpm"), interpolate=(second, 0.5)
        )
        record = lib.media(mixed[0].id).generation
        assert record["source"] == {"media_id": first, "interpolate": second, "alpha": 0.5}
        assert record["sampler"] == "ddpm"


def test_another_clip_skips_the_prior_and_has_no_variations(built, tmp_path):
    kandinsky, other = built["kandinsky"], built["other"]
    with _library(tmp_path / "lib", other, kandinsky, miss_threshold=1.0, prior_miss_threshold=-1.0) as lib:
        lib.index([built["photos"]])
        assert lib.encoder.space != lib.generator.space
        outcome = _ask(lib)
        assert "prior" not in [s["stage"] for s in outcome.steps]
        assert outcome.via == "generated"  # straight from the text stage to drawing
        media_id = lib.search(SearchRequest(terms=parse_text("circle"), k=1, kind="image"))[0].id
        with pytest.raises(GenerationUnavailable, match="cannot decode embeddings of this library's space"):
            lib.generate_from_media(media_id, GenerateOptions(steps=2, seed=3))
