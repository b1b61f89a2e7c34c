"""Generate on miss through the library, with a briefly trained generator (the `trained`
fixture, tests/conftest.py): the prior's predicted image embedding is searched before
anything is drawn."""

import pytest

from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.services.generate_on_miss import GenerateOptions

from ..helpers import open_library


@pytest.mark.slow
def test_the_prior_stage_answers_before_generating(trained, mini_encoder, generated_count):
    base, gen_dir = trained
    with open_library(
        base / "lib", encoder=mini_encoder, generator=f"mini:{gen_dir}", miss_threshold=0.99, prior_miss_threshold=-1.0
    ) as lib:
        before = generated_count(lib)
        outcome = lib.search_or_generate(
            SearchRequest(terms=parse_text("a green star"), k=3, kind="image"),
            "a green star",
            GenerateOptions(mode="auto", steps=2),
        )
        assert outcome.via == "prior" and outcome.miss
        assert len(outcome.hits) == 3
        assert all(h.via == ("generated" if h.generated else "prior") for h in outcome.hits)
        assert generated_count(lib) == before
