"""The sampling loops and the pipelines: a perfect denoiser is recovered exactly, DDIM noise
follows eta and the seed, guidance costs one batched model call, and a decoder samples with
the guidance its saved config names."""

import pytest
import torch

from mmsearch.generation.models import Decoder, DecoderConfig
from mmsearch.generation.pipelines import DecoderPipeline, ddim_loop, ddpm_loop, guided, sample_loop
from mmsearch.generation.samplers import ddim_timesteps, eps_from_x0, model_target, noise_schedule


def _perfect_model(d, prediction, x0: torch.Tensor):
    """A denoiser that knows x0 and answers in the given prediction type."""

    def model_fn(xt, t):
        eps = eps_from_x0(d, xt, t, x0)
        return model_target(d, prediction, x0, eps, t)

    return model_fn


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_ddpm_and_ddim_with_all_steps_and_a_perfect_predictor_recover_x0(prediction):
    d = noise_schedule("cosine", 200)
    x0 = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    x_T = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    model_fn = _perfect_model(d, prediction, x0)
    ddpm = ddpm_loop(model_fn, d, prediction, x_T, torch.Generator().manual_seed(2))
    ddim = ddim_loop(model_fn, d, prediction, x_T, steps=200)
    torch.testing.assert_close(ddpm, x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(ddim, x0, atol=1e-4, rtol=0)
    assert ddim_timesteps(d.num_steps, 200) == list(range(199, -1, -1))


def test_ddim_eta_zero_is_deterministic_and_eta_one_depends_on_the_seed():
    d = noise_schedule("cosine", 1000)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    model_fn = lambda x, t: net(torch.cat([x, t[:, None].float() / 1000], 1))  # noqa: E731
    x_T = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))

    def run(eta, seed):
        return ddim_loop(
            model_fn, d, "eps", x_T.clone(), steps=25, eta=eta, generator=torch.Generator().manual_seed(seed)
        )

    assert torch.equal(run(0.0, 1), run(0.0, 2))  # no noise drawn at all
    assert torch.equal(run(1.0, 1), run(1.0, 1))
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))
    timesteps = ddim_timesteps(d.num_steps, 25)
    assert len(timesteps) == 25 and timesteps[0] == 999 and timesteps[-1] == 0


def test_classifier_free_guidance_extrapolates_from_uncond_in_one_batched_call():
    calls = []

    def forward(x, t, c):
        calls.append(x.shape[0])
        return x + c  # cond moves the output by c, the null condition (0) does not

    x, t = torch.ones(2, 3), torch.zeros(2, dtype=torch.long)
    cond, null = torch.full((2, 3), 0.5), torch.zeros(1, 3)
    out = guided(forward, cond, null, scale=3.0)(x, t)
    torch.testing.assert_close(out, x + 3.0 * 0.5)  # uncond + 3 * (cond - uncond)
    assert calls == [4]


def test_bad_sampling_settings_raise_clear_errors():
    d = noise_schedule("linear", 100)
    with pytest.raises(ValueError, match="DDIM steps"):
        sample_loop(lambda x, t: x, d, "eps", torch.zeros(1, 2), "ddim", steps=101)
    with pytest.raises(ValueError, match="sampler"):
        sample_loop(lambda x, t: x, d, "eps", torch.zeros(1, 2), "euler")
    with pytest.raises(ValueError, match="prediction"):
        DecoderPipeline(Decoder(DecoderConfig(dim=8, channels=16, prediction="score")))


def test_a_decoder_samples_with_the_guidance_its_saved_config_names(tmp_path):
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(dim=8, channels=16, guidance=2.0))
    with torch.no_grad():  # fresh zero-initialised layers would ignore the condition, and guidance with it
        for p in decoder.parameters():
            p.normal_(0, 0.05)
    decoder.save(tmp_path)
    loaded = DecoderPipeline(Decoder.load(tmp_path))
    e = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)

    def draw(guidance):
        return loaded.sample(e, steps=3, guidance=guidance, generator=torch.Generator().manual_seed(1))

    assert loaded.cfg.guidance == 2.0
    assert torch.equal(draw(None), draw(2.0))
    assert not torch.allclose(draw(None), draw(3.0))


def test_saving_leaves_no_temporary_files_and_loads_back_the_same_weights(tmp_path):
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(dim=8, channels=16))
    decoder.save(tmp_path)
    decoder.save(tmp_path)  # over an earlier save: each write goes through its own temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoder.safetensors", "decoder_config.json"]
    loaded = Decoder.load(tmp_path)
    assert loaded.cfg == decoder.cfg
    assert all(torch.equal(v.half().float(), loaded.state_dict()[k]) for k, v in decoder.state_dict().items())
