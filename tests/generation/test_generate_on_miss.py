"""Generate on miss through the library, with a briefly trained generator (the `trained`
fixture, tests/conftest.py): the prior's predicted image embedding is searched before
anything is drawn."""

import pytest

from mmsearch.search.query import SearchRequest, parse_text
from mmsearch.services.drawing import GenerateOptions

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


@pytest.mark.slow
def test_the_same_missed_prompt_asked_at_once_is_drawn_once(trained, mini_encoder, generated_count):
    """Searches no longer queue behind one lock, so two users may miss on one prompt at the
    same moment: the second waits for the first's drawing instead of drawing it again."""
    from concurrent.futures import ThreadPoolExecutor

    base, gen_dir = trained
    prompt = "a cyan hexagon drawn once"
    with open_library(
        base / "lib", encoder=mini_encoder, generator=f"mini:{gen_dir}", miss_threshold=0.99, prior_miss_threshold=1.0
    ) as lib:
        before = generated_count(lib)

        def ask(_):
            request = SearchRequest(terms=parse_text(prompt), k=3, kind="image")
            return lib.search_or_generate(request, prompt, GenerateOptions(mode="auto", steps=5))

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(ask, range(4)))
        assert generated_count(lib) == before + 1
        assert {o.hits[0].id for o in outcomes} == {outcomes[0].hits[0].id}
        assert all(o.via == "generated" and o.hits[0].generated for o in outcomes)
        assert sorted(o.steps[-1]["stage"] for o in outcomes) == ["generated", "stored", "stored", "stored"]
