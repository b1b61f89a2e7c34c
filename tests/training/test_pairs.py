"""The (caption, image) pairs the generator learns from, taken from an indexed library."""

import pytest

from mmsearch.training.pairs import library_pairs

from ..helpers import open_library


@pytest.mark.slow
def test_library_pairs_carry_manifest_captions(trained, mini_encoder):
    base, _ = trained
    with open_library(base / "lib", encoder=mini_encoder) as lib:
        pairs = library_pairs(lib.store, mini_encoder.space)
    assert len(pairs) == 60 and pairs.image_embeddings.shape == (60, mini_encoder.dim)
    assert all(pairs.captions) and all(isinstance(c, str) and c for caps in pairs.captions for c in caps)
