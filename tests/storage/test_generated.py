"""Generated images as library media: how a repeat of a prompt finds the images drawn for it."""

from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from mmsearch.storage.generated import GenerationParams, find_generated, save_generated
from mmsearch.storage.store import Vector

from ..helpers import open_library


def _draw(lib, colour: str, prompt: str, backend: str = "mini", source: dict | None = None) -> int:
    image = Image.new("RGB", (32, 32), colour)
    params = GenerationParams(prompt, backend, seed=0, steps=2, guidance=1.5, sampler="ddim", source=source)
    return save_generated(lib.store, lib.indexes, lib.encoder, lib.dir, [image], params)[0]


@pytest.mark.slow  # opens a library with the mini encoder and indexes drawings
def test_a_prompt_finds_only_images_drawn_from_exactly_it_by_the_same_backend(tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        first = _draw(lib, "green", "a green star")
        second = _draw(lib, "darkgreen", "a green star")
        _draw(lib, "red", "a green star ")  # another prompt, by one space
        _draw(lib, "blue", "A green star")
        _draw(lib, "yellow", "a green star", backend="kandinsky22:x")
        _draw(lib, "white", "a green star", source={"media_id": first})  # a variation is not an answer to the prompt
        assert find_generated(lib.store, "a green star", "mini", lib.encoder.space) == [first, second]
        assert find_generated(lib.store, "a green star", "karlo:x", lib.encoder.space) == []

        # an image whose file is gone is not offered (the next query draws a new one)
        Path(lib.media(first).path).unlink()
        assert find_generated(lib.store, "a green star", "mini", lib.encoder.space) == [second]


@pytest.mark.slow  # opens a library with the mini encoder and indexes drawings
def test_a_drawing_stored_under_another_model_is_found_once_embedded_in_this_one(tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        drawn = _draw(lib, "green", "a green star")
        with lib.store.session() as s:  # as if drawn under another model: its only vector is in another space
            s.execute(update(Vector).where(Vector.media_id == drawn).values(space="open_clip:other|squash64"))
        assert find_generated(lib.store, "a green star", "mini", lib.encoder.space) == []
        assert (
            _draw(lib, "green", "a green star") == drawn
        )  # the same picture drawn again: same media, now embedded here
        assert find_generated(lib.store, "a green star", "mini", lib.encoder.space) == [drawn]
        hits = lib.engine.hits_for_media(lib.encoder.embed_texts(["a green star"])[0], [drawn], "generated")
        assert [h.id for h in hits] == [drawn]
