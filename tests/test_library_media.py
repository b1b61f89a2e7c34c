"""Generated images as library media: how a repeat of a prompt finds the images drawn for it."""

from pathlib import Path

from PIL import Image

from mmsearch.generation.library_media import GenerationParams, find_generated, save_generated

from .helpers import open_library


def _draw(lib, colour: str, prompt: str, backend: str = "mini", source: dict | None = None) -> int:
    image = Image.new("RGB", (32, 32), colour)
    params = GenerationParams(prompt, backend, seed=0, steps=2, guidance=1.5, sampler="ddim", source=source)
    return save_generated(lib.store, lib.indexes, lib.encoder, lib.dir, [image], params)[0]


def test_a_prompt_finds_only_images_drawn_from_exactly_it_by_the_same_backend(tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        first = _draw(lib, "green", "a green star")
        second = _draw(lib, "darkgreen", "a green star")
        _draw(lib, "red", "a green star ")  # another prompt, by one space
        _draw(lib, "blue", "A green star")
        _draw(lib, "yellow", "a green star", backend="kandinsky22:x")
        _draw(lib, "white", "a green star", source={"media_id": first})  # a variation is not an answer to the prompt
        assert find_generated(lib.store, "a green star", "mini") == [first, second]
        assert find_generated(lib.store, "a green star", "karlo:x") == []

        # an image whose file is gone is not offered (the next query draws a new one)
        Path(lib.media(first).path).unlink()
        assert find_generated(lib.store, "a green star", "mini") == [second]
