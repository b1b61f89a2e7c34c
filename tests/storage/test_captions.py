"""Captions kept beside images: sidecar .txt files and a synth corpus's manifest."""

import json

from mmsearch.storage.captions import CaptionFinder

from ..helpers import make_corpus


def test_sidecar_captions_win_over_the_manifest(tmp_path):
    make_corpus(tmp_path, n=2)
    image = sorted((tmp_path / "images").iterdir())[0]
    assert CaptionFinder()(image, tmp_path)  # from the manifest
    image.with_suffix(".txt").write_text("my own caption\n\nanother one\n")
    assert CaptionFinder()(image, tmp_path) == ["my own caption", "another one"]


def test_a_kept_caption_finder_sees_a_rewritten_manifest(tmp_path):
    make_corpus(tmp_path, n=2)
    image = sorted((tmp_path / "images").iterdir())[0]
    find = CaptionFinder()
    before = find(image, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for item in manifest["items"]:
        item["captions"] = [f"rewritten {item['file']}"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert before != [f"rewritten images/{image.name}"]
    assert find(image, tmp_path) == [f"rewritten images/{image.name}"]
    (tmp_path / "manifest.json").unlink()
    assert find(image, tmp_path) == []
