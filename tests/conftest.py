import os
from pathlib import Path

import pytest

from mmsearch.datasets import synth

# Never let a test reach a real model hub: a closed local port answers "refused" at once.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"


@pytest.fixture(scope="session")
def heldout_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heldout")
    synth.generate(out, 160, 0, seed=7, split="heldout")
    return out


@pytest.fixture(scope="session")
def mini_encoder():
    from mmsearch.encoders import load_encoder

    return load_encoder("mini", device="cpu")
