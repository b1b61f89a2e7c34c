"""The built-in generator (prior + decoder in the search encoder's space) and the embedding
arithmetic it offers: sampling is reproducible for a seed, and search's query embedding is
the prior's expected embedding."""

import numpy as np
import pytest
import torch

from mmsearch.generation.unclip import MiniGenerator, slerp, text_diff_edit


@pytest.mark.slow
def test_mini_generator_is_deterministic_for_a_seed(trained, mini_encoder):
    _, gen_dir = trained
    gen = MiniGenerator(mini_encoder, gen_dir)
    a = gen.generate("a red circle", seed=3, steps=3)[0]
    b = gen.generate("a red circle", seed=3, steps=3)[0]
    c = gen.generate("a red circle", seed=4, steps=3)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    with pytest.raises(ValueError, match="sampler"):
        gen.generate("a red circle", sampler="euler")


@pytest.mark.slow
def test_query_embeddings_are_the_prior_expected_embedding(trained, mini_encoder):
    """Search uses one deterministic estimate per prompt: the mean of the x0 predictions from
    pure noise at the last step, each normalised, then normalised again."""
    _, gen_dir = trained
    gen = MiniGenerator(mini_encoder, gen_dir)
    prompts = ["a red circle", "a large blue square in the center"]
    q = gen.query_embeddings(prompts)
    assert q.shape == (2, mini_encoder.dim) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    assert np.array_equal(q, gen.query_embeddings(prompts))
    text = torch.from_numpy(mini_encoder.embed_texts(prompts))
    noise = torch.Generator().manual_seed(0)
    last = torch.full((2,), gen.prior.schedule.num_steps - 1)
    by_hand = torch.zeros(2, mini_encoder.dim)
    for _ in range(4):
        x = torch.randn((2, mini_encoder.dim), generator=noise)
        with torch.inference_mode():
            by_hand += torch.nn.functional.normalize(
                gen.prior.model(x, last, text), dim=-1
            )  # x0-prediction: the output is x0
    assert np.allclose(q, torch.nn.functional.normalize(by_hand, dim=-1).numpy(), atol=1e-5)


def test_slerp_and_text_diff_edit():
    rng = np.random.default_rng(0)
    a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 16)))
    assert np.allclose(slerp(a, b, 0.0), a, atol=1e-6) and np.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    mid = slerp(a, b, 0.5)
    assert np.linalg.norm(mid) == pytest.approx(1.0, abs=1e-5)
    assert mid @ a == pytest.approx(mid @ b, abs=1e-5)  # halfway on the great circle
    src, tgt = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 16)))
    edited = text_diff_edit(a, src, tgt)
    assert np.linalg.norm(edited) == pytest.approx(1.0, abs=1e-5)
    assert edited @ tgt > a @ tgt and edited @ src < a @ src


def test_mini_counts_ddpm_at_its_whole_schedule(mini_encoder):
    gen = MiniGenerator(mini_encoder)
    assert gen.decoder.schedule.num_steps == 1000
    assert gen.denoising_steps(25, "ddim") == 25
    assert gen.denoising_steps(25, "ddpm") == 1000
