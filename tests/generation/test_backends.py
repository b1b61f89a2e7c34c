"""The diffusers generation backends, end to end on tiny randomly initialised pipelines.

Every component is built here (no hub: conftest points HF_ENDPOINT at a closed port), saved
with save_pretrained in the layouts the backends read, and loaded back through them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from mmsearch.encoders.base import CheckpointNotFoundError, HubUnreachableError  # noqa: E402
from mmsearch.generation.diffusers_backends import (  # noqa: E402
    Kandinsky22Generator,
    KarloGenerator,
    load_diffusers_generator,
)
from mmsearch.generation.unclip import Generator  # noqa: E402

from ..encoders.tiny_clip import letter_tokenizer  # noqa: E402

EMB = 32  # CLIP embedding / hidden width of every tiny component
SEQ = 16  # tokenizer max length = text encoder positions = prior text tokens
KARLO_DECODER_PX, KARLO_OUT_PX = 16, 32
KANDINSKY_LATENT_PX = 16  # movq upsamples by 2 -> 32 px images


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- tiny components


def _tokenizer(tmp: Path):
    return letter_tokenizer(tmp, SEQ)


def _text_encoder(vocab_size: int, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=EMB,
            projection_dim=EMB,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=SEQ,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )


def _prior(seed: int):
    from diffusers import PriorTransformer

    torch.manual_seed(seed)
    prior = PriorTransformer(
        num_attention_heads=2, attention_head_dim=16, num_layers=1, embedding_dim=EMB, num_embeddings=SEQ
    )
    # clip_std starts at 0, which would make every predicted embedding clip_mean: un-degenerate it.
    with torch.no_grad():
        prior.clip_std.fill_(1.0)
        prior.clip_mean.normal_()
    return prior


def _unclip_scheduler(variance_type: str, prediction_type: str, **kw):
    from diffusers import UnCLIPScheduler

    return UnCLIPScheduler(variance_type=variance_type, prediction_type=prediction_type, num_train_timesteps=1000, **kw)


def _save_karlo(root: Path) -> Path:
    from diffusers import UnCLIPPipeline, UNet2DConditionModel, UNet2DModel
    from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel

    tokenizer = _tokenizer(root / "tok-src")
    time_embed_dim = 4 * 32  # the decoder's block_out_channels[0] * 4
    torch.manual_seed(0)
    text_proj = UnCLIPTextProjModel(
        clip_extra_context_tokens=2, clip_embeddings_dim=EMB, time_embed_dim=time_embed_dim, cross_attention_dim=EMB
    )
    torch.manual_seed(0)
    decoder = UNet2DConditionModel(
        sample_size=KARLO_DECODER_PX,
        in_channels=3,
        out_channels=6,  # mean + learned variance
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=EMB,
        attention_head_dim=8,
        resnet_time_scale_shift="scale_shift",
        class_embed_type="identity",
    )
    super_res = dict(
        sample_size=KARLO_OUT_PX,
        in_channels=6,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D"),
        up_block_types=("ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"),
    )
    torch.manual_seed(0)
    super_res_first = UNet2DModel(**super_res)
    torch.manual_seed(1)
    super_res_last = UNet2DModel(**super_res)
    pipe = UnCLIPPipeline(
        prior=_prior(0),
        decoder=decoder,
        text_encoder=_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        text_proj=text_proj,
        super_res_first=super_res_first,
        super_res_last=super_res_last,
        prior_scheduler=_unclip_scheduler("fixed_small_log", "sample", clip_sample_range=5.0),
        decoder_scheduler=_unclip_scheduler("learned_range", "epsilon"),
        super_res_scheduler=_unclip_scheduler("fixed_small_log", "epsilon"),
    )
    out = root / "karlo"
    pipe.save_pretrained(out)
    return out


def _save_kandinsky(root: Path, clip_seed: int = 0) -> Path:
    """A tiny Kandinsky 2.2 folder (prior/ and decoder/). Its prior's CLIP (text_encoder +
    image_encoder) is drawn from clip_seed; everything else is the same for every clip_seed."""
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, KandinskyV22PriorPipeline, UNet2DConditionModel, VQModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    tokenizer = _tokenizer(root / "tok-src")
    torch.manual_seed(clip_seed)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=EMB,
            projection_dim=EMB,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=8,
            num_channels=3,
        )
    )
    image_processor = CLIPImageProcessor(
        size=32,
        crop_size=32,
        do_resize=True,
        do_center_crop=True,
        do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
    )
    prior = KandinskyV22PriorPipeline(
        prior=_prior(1),
        image_encoder=image_encoder,
        text_encoder=_text_encoder(len(tokenizer), clip_seed),
        tokenizer=tokenizer,
        scheduler=_unclip_scheduler("fixed_small_log", "sample", clip_sample=True, clip_sample_range=10.0),
        image_processor=image_processor,
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=KANDINSKY_LATENT_PX,
        in_channels=4,
        out_channels=8,  # mean + learned variance
        addition_embed_type="image",
        encoder_hid_dim=EMB,
        encoder_hid_dim_type="image_proj",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=EMB,
        attention_head_dim=8,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    )
    torch.manual_seed(0)
    movq = VQModel(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        vq_embed_dim=4,
        num_vq_embeddings=12,
        layers_per_block=1,
        block_out_channels=(32, 64),
        norm_num_groups=8,
        norm_type="spatial",
        down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    # learned_range: the saved DDPM config asks for the unet's variance, as a learned-variance
    # decoder would; the backend must still hand DDIM the mean only.
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type="epsilon",
        variance_type="learned_range",
    )
    decoder = KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)
    out = root / "kandinsky22"
    prior.save_pretrained(out / "prior")
    decoder.save_pretrained(out / "decoder")
    return out


@pytest.fixture(scope="module")
def karlo_dir(tmp_path_factory) -> Path:
    return _save_karlo(tmp_path_factory.mktemp("karlo"))


@pytest.fixture(scope="module")
def kandinsky_dir(tmp_path_factory) -> Path:
    return _save_kandinsky(tmp_path_factory.mktemp("kandinsky"))


@pytest.fixture(scope="module")
def karlo(karlo_dir) -> KarloGenerator:
    return load_diffusers_generator(f"karlo:{karlo_dir}")


@pytest.fixture(scope="module")
def kandinsky(kandinsky_dir) -> Kandinsky22Generator:
    return load_diffusers_generator(f"kandinsky22:{kandinsky_dir}")


def _pixels(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(im) for im in images]


def _check_images(images, n: int, size: int) -> None:
    assert isinstance(images, list) and len(images) == n
    for im in images:
        assert isinstance(im, Image.Image)
        assert im.size == (size, size) and im.mode == "RGB"


# ---------------------------------------------------------------- Karlo


def test_karlo_loads_from_a_local_folder(karlo, karlo_dir):
    assert isinstance(karlo, KarloGenerator) and isinstance(karlo, Generator)
    assert karlo.name == f"karlo:{karlo_dir}"
    assert karlo.space.startswith("karlo:") and karlo.space != "mini"
    assert karlo.image_size == KARLO_OUT_PX  # the super-res stage's side, not the decoder's
    assert karlo.SAMPLERS == ("ddpm",)


def test_karlo_generates_deterministically(karlo):
    a = karlo.generate("a red horse", n=2, seed=3, steps=2, sampler="ddpm")
    _check_images(a, 2, KARLO_OUT_PX)
    b = karlo.generate("a red horse", n=2, seed=3, steps=2, sampler="ddpm")
    for x, y in zip(_pixels(a), _pixels(b)):
        np.testing.assert_array_equal(x, y)
    c = karlo.generate("a red horse", n=1, seed=4, steps=2, sampler="ddpm")
    assert not np.array_equal(_pixels(a)[0], _pixels(c)[0])


def test_karlo_one_step_and_guidance(karlo):
    # one step runs as the two UnCLIPScheduler needs; guidance 1 turns classifier-free guidance off
    _check_images(karlo.generate("cat", seed=0, steps=1, guidance=1.0, sampler="ddpm"), 1, KARLO_OUT_PX)


def test_karlo_names_the_guidance_a_request_without_one_gets(karlo):
    assert karlo.default_guidance == 8.0  # UnCLIPPipeline's decoder_guidance_scale default
    unset = karlo.generate("cat", seed=2, steps=2, sampler="ddpm")
    named = karlo.generate("cat", seed=2, steps=2, guidance=karlo.default_guidance, sampler="ddpm")
    np.testing.assert_array_equal(_pixels(unset)[0], _pixels(named)[0])


def test_karlo_rejects_ddim_and_bad_requests(karlo):
    with pytest.raises(ValueError, match="'ddpm'"):
        karlo.generate("cat", steps=2, sampler="ddim")  # ddim cannot drive UnCLIPPipeline
    with pytest.raises(ValueError, match="supports 'ddpm'"):
        karlo.generate("cat", steps=2, sampler="euler")
    for steps in (0, -1, 10_000):
        with pytest.raises(ValueError, match="steps"):
            karlo.generate("cat", steps=steps, sampler="ddpm")
    with pytest.raises(ValueError, match="n must"):
        karlo.generate("cat", n=0, steps=2, sampler="ddpm")


# ---------------------------------------------------------------- Kandinsky 2.2


def test_kandinsky_loads_from_a_local_folder(kandinsky, kandinsky_dir):
    assert isinstance(kandinsky, Kandinsky22Generator) and isinstance(kandinsky, Generator)
    assert kandinsky.name == f"kandinsky22:{kandinsky_dir}"
    assert kandinsky.space.startswith("hf-clip:")  # the space of the CLIP in its prior pipeline
    assert kandinsky.image_size == 2 * KANDINSKY_LATENT_PX
    assert kandinsky.SAMPLERS == ("ddim", "ddpm")


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_kandinsky_generates_deterministically(kandinsky, sampler):
    a = kandinsky.generate("a blue cat", n=2, seed=5, steps=2, sampler=sampler)
    _check_images(a, 2, kandinsky.image_size)
    b = kandinsky.generate("a blue cat", n=2, seed=5, steps=2, sampler=sampler)
    for x, y in zip(_pixels(a), _pixels(b)):
        np.testing.assert_array_equal(x, y)
    assert type(kandinsky.decoder.scheduler).__name__ == {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler"}[sampler]


def test_kandinsky_samplers_differ_and_defaults_work(kandinsky):
    ddim = kandinsky.generate("dog", seed=1, steps=2, sampler="ddim")
    ddpm = kandinsky.generate("dog", seed=1, steps=2, sampler="ddpm")
    assert not np.array_equal(_pixels(ddim)[0], _pixels(ddpm)[0])
    _check_images(kandinsky.generate("dog", seed=1, steps=1, guidance=1.0), 1, kandinsky.image_size)


def test_kandinsky_names_the_guidance_a_request_without_one_gets(kandinsky):
    assert kandinsky.default_guidance == 4.0  # KandinskyV22Pipeline's guidance_scale default
    unset = kandinsky.generate("dog", seed=2, steps=2)
    named = kandinsky.generate("dog", seed=2, steps=2, guidance=kandinsky.default_guidance)
    np.testing.assert_array_equal(_pixels(unset)[0], _pixels(named)[0])


def test_kandinsky_accepts_two_folders(kandinsky_dir):
    gen = Kandinsky22Generator(f"{kandinsky_dir / 'prior'},{kandinsky_dir / 'decoder'}")
    _check_images(gen.generate("x", seed=0, steps=1), 1, gen.image_size)


def test_kandinsky_rejects_bad_requests(kandinsky):
    with pytest.raises(ValueError, match="supports 'ddim', 'ddpm'"):
        kandinsky.generate("cat", steps=2, sampler="euler")
    for steps in (0, 1001):
        with pytest.raises(ValueError, match="steps"):
            kandinsky.generate("cat", steps=steps)


# ---------------------------------------------------------------- Kandinsky 2.2 in embedding space


def test_kandinsky_declares_the_space_of_its_priors_clip(kandinsky, kandinsky_dir, tmp_path):
    from mmsearch.encoders.hf_clip import clip_space

    prior = kandinsky.prior
    assert kandinsky.space == clip_space(prior.text_encoder, prior.image_encoder, prior.image_processor)
    assert kandinsky.dim == EMB
    # the same CLIP under other decoders and folder names: the same space; another CLIP: another
    assert Kandinsky22Generator(f"{kandinsky_dir / 'prior'},{kandinsky_dir / 'decoder'}").space == kandinsky.space
    other = _save_kandinsky(tmp_path, clip_seed=1)
    assert Kandinsky22Generator(str(other)).space != kandinsky.space


def test_kandinsky_prior_and_query_embeddings(kandinsky):
    prompts = ["a red cat", "a blue dog"]
    sampled = kandinsky.prior_embeddings(prompts, seed=1)
    query = kandinsky.query_embeddings(prompts)
    for out in (sampled, query):
        assert out.shape == (2, EMB) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(sampled, kandinsky.prior_embeddings(prompts, seed=1))
    assert not np.allclose(sampled, kandinsky.prior_embeddings(prompts, seed=2))
    # deterministic, and a prompt's search vector does not depend on the prompts asked with it
    np.testing.assert_array_equal(query, kandinsky.query_embeddings(prompts))
    np.testing.assert_allclose(kandinsky.query_embeddings(prompts[1:])[0], query[1], atol=1e-6)
    assert kandinsky.prior_embeddings([]).shape == (0, EMB) and kandinsky.query_embeddings([]).shape == (0, EMB)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_kandinsky_decodes_given_embeddings(kandinsky, sampler):
    e = kandinsky.prior_embeddings(["a red cat", "a blue dog"], seed=0)
    a = kandinsky.decode(e, seed=4, steps=2, sampler=sampler)
    _check_images(a, 2, kandinsky.image_size)
    b = kandinsky.decode(e * 3.0, seed=4, steps=2, sampler=sampler)  # only the direction counts (to rounding)
    for x, y in zip(_pixels(a), _pixels(b)):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
    c = kandinsky.decode(e, seed=5, steps=2, sampler=sampler)
    assert not np.array_equal(_pixels(a)[0], _pixels(c)[0])


def test_kandinsky_decodes_at_the_typical_embedding_norm(kandinsky, monkeypatch):
    """Unit vectors are scaled to sqrt(|clip_mean|^2 + |clip_std|^2), the prior's statistics of
    the raw CLIP image embeddings its decoder was trained on, and drawn against the embedding of
    the empty image, as a generation is."""
    stats = kandinsky.prior.prior
    expected = float(torch.sqrt((stats.clip_mean.detach() ** 2).sum() + (stats.clip_std.detach() ** 2).sum()))
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(kandinsky, "decoder", spy)
    with pytest.raises(RuntimeError, match="stop"):
        kandinsky.decode(np.eye(EMB, dtype=np.float32)[:2], seed=0, steps=1)
    np.testing.assert_allclose(seen["image_embeds"].norm(dim=-1).numpy(), expected, rtol=1e-5)
    with torch.no_grad():
        zero = kandinsky.prior.get_zero_embed(2)
    np.testing.assert_allclose(seen["negative_image_embeds"].numpy(), zero.numpy(), atol=1e-6)


def test_kandinsky_decode_rejects_bad_requests(kandinsky):
    e = kandinsky.prior_embeddings(["cat"], seed=0)
    with pytest.raises(ValueError, match=r"\(n, 32\)"):
        kandinsky.decode(e[:, :-1], steps=1)
    with pytest.raises(ValueError, match=r"\(n, 32\)"):
        kandinsky.decode(e[0], steps=1)
    with pytest.raises(ValueError, match="n must"):
        kandinsky.decode(e[:0], steps=1)
    with pytest.raises(ValueError, match="supports 'ddim', 'ddpm'"):
        kandinsky.decode(e, steps=1, sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        kandinsky.decode(e, steps=0)


def test_karlo_keeps_its_own_space(karlo):
    """UnCLIPPipeline holds no image tower, so Karlo cannot name the image space its prior
    predicts: it stays a plain Generator, in a space no library has."""
    assert karlo.space == karlo.name and not hasattr(karlo, "decode") and not hasattr(karlo, "query_embeddings")


# ---------------------------------------------------------------- specs and failures


def test_unknown_prefix():
    with pytest.raises(ValueError, match="unknown generator spec"):
        load_diffusers_generator("dalle3:whatever")
    with pytest.raises(ValueError, match="unknown generator spec"):
        load_diffusers_generator("/some/folder")


def test_missing_local_folders_fail_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_diffusers_generator(f"karlo:{tmp_path / 'nope'}")
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_diffusers_generator(f"kandinsky22:{tmp_path / 'nope'}")
    with pytest.raises(CheckpointNotFoundError, match="model_index.json"):
        KarloGenerator(str(tmp_path))  # exists, but is no saved pipeline
    with pytest.raises(CheckpointNotFoundError, match="prior/"):
        Kandinsky22Generator(str(tmp_path))
    with pytest.raises(ValueError, match="prior_id,decoder_id"):
        Kandinsky22Generator("some-org/one-repo")
    assert time.monotonic() - start < 10


def test_uncached_hub_ids_fail_fast_offline():
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match="local directory"):
        load_diffusers_generator("karlo:no-such-org/no-such-karlo", hub_timeout_s=2.0)
    with pytest.raises(HubUnreachableError, match="local directory"):
        load_diffusers_generator("kandinsky22:no-such-org/prior,no-such-org/decoder", hub_timeout_s=2.0)
    assert time.monotonic() - start < 10


def test_import_is_lazy_and_missing_diffusers_is_explained(monkeypatch):
    code = (
        "import sys, mmsearch.generation.diffusers_backends; "
        "assert 'diffusers' not in sys.modules, 'diffusers was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` raise ImportError
    with pytest.raises(ImportError, match=r"mmsearch\[diffusers\]"):
        KarloGenerator("/does/not/matter")


# ---------------------------------------------------------------- what a request costs


def _count_steps(monkeypatch, schedulers) -> list[int]:
    """Calls of each scheduler's step(), counted as a drawing runs."""
    counts = [0] * len(schedulers)
    for i, scheduler in enumerate(schedulers):

        def counted(*args, _i=i, _step=scheduler.step, **kwargs):
            counts[_i] += 1
            return _step(*args, **kwargs)

        monkeypatch.setattr(scheduler, "step", counted)
    return counts


@pytest.mark.parametrize("steps", [1, 3, 9])
def test_karlo_counts_the_steps_its_stages_run(karlo, monkeypatch, steps):
    pipe = karlo.pipe
    counts = _count_steps(monkeypatch, [pipe.prior_scheduler, pipe.decoder_scheduler, pipe.super_res_scheduler])
    karlo.generate("cat", seed=0, steps=steps, sampler="ddpm")
    assert sum(counts) == karlo.denoising_steps(steps, "ddpm")


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_kandinsky_counts_the_steps_its_stages_run(kandinsky, monkeypatch, sampler):
    counts = _count_steps(monkeypatch, [kandinsky.prior.scheduler, *kandinsky._schedulers.values()])
    kandinsky.generate("dog", seed=1, steps=3, sampler=sampler)
    assert sum(counts) == kandinsky.denoising_steps(3, sampler)
