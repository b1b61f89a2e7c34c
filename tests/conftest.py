import os
from pathlib import Path

import pytest

from mmsearch.datasets import synth

# Never let a test reach a real model hub: a closed local port answers "refused" at once.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
# The suite names the built-in model (a new library's default is a real open_clip model, which
# is not cached here); tests of the default remove this.
os.environ["MMSEARCH_MODEL"] = "mini"


def pytest_sessionfinish(session, exitstatus):
    from .helpers import POSTGRES_URL, drop_postgres_databases

    if POSTGRES_URL:
        drop_postgres_databases()


@pytest.fixture(scope="session")
def heldout_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heldout")
    synth.generate(out, 160, 0, seed=7, split="heldout")
    return out


@pytest.fixture(scope="session")
def mini_encoder():
    from mmsearch.encoders import load_encoder

    return load_encoder("mini", device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mini_encoder):
    """A library of 60 synthetic images and a prior + decoder trained on it for a few steps:
    (base folder, generator folder). Too briefly trained to draw well; enough for the mechanics.
    Module-scoped: its users add and delete generated images and count them, so each module
    gets its own library and no result depends on which other modules ran first."""
    import torch

    from mmsearch.generation.models import DecoderConfig, PriorConfig
    from mmsearch.training.diffusion_trainer import DiffusionTrainConfig, train_decoder, train_prior
    from mmsearch.training.pairs import library_pairs

    from .helpers import make_corpus, open_library

    torch.set_num_threads(2)
    base = tmp_path_factory.mktemp("gen")
    make_corpus(base / "photos", n=60)
    gen_dir = base / "generator"
    with open_library(base / "lib", encoder=mini_encoder) as lib:
        lib.index([base / "photos"])
        pairs = library_pairs(lib.store, mini_encoder.space)
    quick = DiffusionTrainConfig(steps=20, batch_size=16, checkpoint_every=10)
    train_prior(
        pairs,
        mini_encoder.embed_texts,
        gen_dir,
        base / "work",
        quick,
        PriorConfig(dim=mini_encoder.dim, width=64, layers=2, heads=2, space=mini_encoder.space, choice_weight=2.0),
    )
    train_decoder(
        pairs,
        gen_dir,
        base / "work",
        DiffusionTrainConfig(steps=4, batch_size=8),
        DecoderConfig(dim=mini_encoder.dim, channels=16, space=mini_encoder.space, timestep_sampling="logit_normal"),
        image_features=mini_encoder.image_features,
        consistency_weight=0.1,
    )
    return base, gen_dir


def _generated_count(lib) -> int:
    from mmsearch.storage.store import Media

    with lib.store.session() as s:
        return s.query(Media).filter(Media.generated.is_(True)).count()


@pytest.fixture
def generated_count():
    """How many generated images a library holds: generated_count(lib)."""
    return _generated_count


VIDEO_SEED = 21


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> tuple[Path, dict]:
    """Eight synthetic clips (some with cuts) and their manifest: (folder, manifest). Read-only:
    a test that needs to change a clip copies it into its own tmp_path."""
    root = tmp_path_factory.mktemp("videos") / "clips"
    manifest = synth.generate(root, 0, 8, seed=VIDEO_SEED, split="train")
    return root, manifest


@pytest.fixture(scope="module")
def video_library(tmp_path_factory, videos, mini_encoder):
    """The `videos` indexed with the mini encoder and mean pooling: (library, folder, manifest,
    job summary). Module-scoped: a module's API server stops the library's jobs on shutdown."""
    from .helpers import open_library

    root, manifest = videos
    lib = open_library(tmp_path_factory.mktemp("videolib"), encoder=mini_encoder, pooling="mean")
    summary = lib.index([root])
    yield lib, root, manifest, summary
    lib.close()


def _write_audio_only(path: Path) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


@pytest.fixture
def write_audio_only():
    """Writes an mp4 with an audio stream and no video stream: write_audio_only(path)."""
    return _write_audio_only
