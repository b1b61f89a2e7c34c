"""services.contents: where an item's file may be served from, and its caption."""

from __future__ import annotations

from pathlib import Path

from mmsearch.services.contents import caption, serving_roots
from mmsearch.storage.captions import CaptionFinder
from mmsearch.storage.store import Media


def test_an_indexed_file_is_served_from_its_root_a_generated_one_also_from_the_library(tmp_path):
    library = tmp_path / "lib"
    assert serving_roots(Media(path="/m/a.jpg", root="/m", generated=False), library) == [Path("/m")]
    assert serving_roots(Media(path="/lib/g/1.png", root=None, generated=True), library) == [library]
    assert serving_roots(Media(path="/m/b.jpg", root="/m", generated=True), library) == [Path("/m"), library]
    assert serving_roots(Media(path="/x.jpg", root=None, generated=False), library) == []


def test_a_generated_image_s_caption_is_its_prompt(tmp_path):
    media = Media(path=str(tmp_path / "1.png"), root=None, generated=True, generation={"prompt": "a red circle"})
    assert caption(CaptionFinder(), media, tmp_path) == "a red circle"
    assert caption(CaptionFinder(), Media(path="/x.png", root=None, generated=True), tmp_path) is None


def test_an_indexed_image_s_caption_is_the_first_line_of_its_sidecar(tmp_path):
    (tmp_path / "photos").mkdir()
    image = tmp_path / "photos" / "a.jpg"
    image.write_bytes(b"")
    media = Media(path=str(image), root=str(tmp_path), generated=False)
    assert caption(CaptionFinder(), media, tmp_path / "lib") is None
    image.with_suffix(".txt").write_text("\na dog on a beach\na beach\n")
    assert caption(CaptionFinder(), media, tmp_path / "lib") == "a dog on a beach"
