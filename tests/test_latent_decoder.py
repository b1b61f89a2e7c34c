"""The latent decoder: an autoencoder trained first, then a diffusion over its latents."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmsearch.generation.autoencoder import AutoencoderConfig, ImageAutoencoder
from mmsearch.generation.decoder import Decoder, latent_decoder_config
from mmsearch.generation.pairs import LibraryPairs
from mmsearch.training.diffusion_trainer import DiffusionTrainConfig, train_decoder

DIM = 16


def _squares(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """n images in [-1, 1] of one coloured square on a flat background."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3, size, size), np.float32)
    for k in range(n):
        out[k] = rng.uniform(-1, 1, (3, 1, 1))
        x, y, side = *rng.integers(0, size // 2, 2), int(rng.integers(6, size // 2))
        out[k, :, y:y + side, x:x + side] = rng.uniform(-1, 1, (3, 1, 1))
    return torch.from_numpy(out)


def _tiny_latent_config():
    cfg = latent_decoder_config(DIM, 32, "test-space")
    cfg.channels, cfg.autoencoder["channels"] = 16, 32
    return cfg


def test_autoencoder_latents_are_a_quarter_of_the_side_and_calibrate_to_unit_spread():
    torch.manual_seed(0)
    ae = ImageAutoencoder(AutoencoderConfig(image_size=32, channels=32, latent_channels=4)).eval().requires_grad_(False)
    images = _squares(16)
    assert ae.encode(images).shape == (16, 4, 8, 8)
    ae.calibrate(images)
    assert float(ae.encode(images).std()) == pytest.approx(1.0, rel=1e-4)
    assert ae.decode(ae.encode(images)).shape == images.shape


def test_autoencoder_training_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    ae = ImageAutoencoder(AutoencoderConfig(image_size=32, channels=32, latent_noise=0.0))
    images, gen = _squares(32), torch.Generator().manual_seed(0)
    error = lambda: float((ae.decode(ae.encode(images)) - images).abs().mean())  # noqa: E731
    with torch.no_grad():
        before = error()
    opt = torch.optim.AdamW(ae.parameters(), 2e-3)
    for _ in range(60):
        loss = ae.loss(images, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert error() < 0.5 * before


def test_latent_decoder_trains_its_autoencoder_once_then_draws_full_size_images(tmp_path):
    torch.set_num_threads(2)
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for k, image in enumerate(_squares(12)):
        paths.append(folder / f"{k}.png")
        Image.fromarray(((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)).save(paths[-1])
    embeddings = torch.nn.functional.normalize(torch.randn(12, DIM, generator=torch.Generator().manual_seed(0)), dim=-1).numpy()
    pairs = LibraryPairs(paths, embeddings, [[] for _ in paths])
    out, work = tmp_path / "decoder", tmp_path / "work"
    phases = []
    train_decoder(pairs, out, work, DiffusionTrainConfig(steps=3, batch_size=4), _tiny_latent_config(), autoencoder_steps=3,
                  progress=lambda step, total, loss, phase: phases.append((phase, step, total)))
    assert phases == [("autoencoder", 1, 3), ("autoencoder", 2, 3), ("autoencoder", 3, 3),
                      ("decoder", 1, 3), ("decoder", 2, 3), ("decoder", 3, 3)]
    trained_autoencoder = ImageAutoencoder.load(work / "decoder-autoencoder")
    decoder = Decoder.load(out)
    for name, tensor in trained_autoencoder.state_dict().items():  # shipped inside the decoder's own weights
        assert torch.equal(decoder.autoencoder.state_dict()[name], tensor), name

    images = decoder.sample(torch.from_numpy(embeddings[:2]), steps=2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 32, 32) and 0 <= float(images.min()) and float(images.max()) <= 1

    # A longer run resumes the decoder; the finished autoencoder is reused, not trained again.
    phases.clear()
    train_decoder(pairs, out, work, DiffusionTrainConfig(steps=4, batch_size=4), _tiny_latent_config(), autoencoder_steps=50,
                  progress=lambda step, total, loss, phase: phases.append((phase, step, total)))
    assert phases == [("decoder", 4, 4)]
