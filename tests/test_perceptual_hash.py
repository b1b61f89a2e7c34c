"""The perceptual hash: copies of a picture (resized, re-encoded, slightly cropped) keep most
of its bits; different pictures share about half."""

from __future__ import annotations

import itertools

from PIL import Image

from mmsearch.datasets.photos import scene, write_copy
from mmsearch.perceptual_hash import hash_distance, perceptual_hash


def test_copies_stay_within_the_default_distance_and_other_pictures_do_not(tmp_path):
    originals = [scene(seed) for seed in range(8)]
    hashes = [perceptual_hash(im) for im in originals]
    for i, im in enumerate(originals):
        im.save(tmp_path / f"{i}.png")
        for n, (crop, scale, quality) in enumerate(
            [((0, 0, 0, 0), 0.5, 60), ((0.03, 0.02, 0.0, 0.04), 0.8, 75), ((0.05,) * 4, 0.9, 90)]
        ):
            write_copy(tmp_path / f"{i}.png", tmp_path / f"{i}-{n}.jpg", crop, scale, quality)
            assert hash_distance(hashes[i], perceptual_hash(Image.open(tmp_path / f"{i}-{n}.jpg"))) <= 14, (i, n)
    assert min(hash_distance(a, b) for a, b in itertools.combinations(hashes, 2)) > 18


def test_hashes_are_16_hex_digits_and_distance_counts_differing_bits():
    for colour in ("teal", "white"):  # only the mean is above the median
        assert perceptual_hash(Image.new("RGB", (50, 40), colour)) == "8000000000000000"
    assert perceptual_hash(Image.new("RGB", (50, 40), "black")) == "0000000000000000"  # not even the mean
    h = perceptual_hash(scene(1))
    assert len(h) == 16 and int(h, 16) >= 0
    assert hash_distance(h, h) == 0
    assert hash_distance("0000000000000000", "ffffffffffffffff") == 64
    assert hash_distance("00000000000000f0", "0000000000000001") == 5
