"""Camera RAW files decode to their picture, within the pixel limit, or fail with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.camera_raw import is_camera_raw, raw_rgb
from mmsearch.imageio import UnreadableImageError
from tests.photos import SIZE, shape_image, write_dng


def test_a_dng_demosaics_to_its_picture(tmp_path):
    write_dng(tmp_path / "a.DNG", shape_image("square", "blue"), "Leica", "M10", "2017:05:05 05:05:05")
    data = (tmp_path / "a.DNG").read_bytes()
    assert is_camera_raw(tmp_path / "a.DNG") and not is_camera_raw(tmp_path / "a.jpg")
    im, shown = raw_rgb(data)
    assert im.size == shown == SIZE
    pixels = np.asarray(im, np.int16)
    assert pixels[64, 80, 2] >= 224 and pixels[64, 80, :2].max() <= 64  # inside the square: blue (LibRaw's colours)
    assert np.abs(pixels[4, 4] - (255, 255, 255)).max() <= 16  # the white around it
    assert min(raw_rgb(data, max_side=32)[0].size) >= 32  # halved only while the result stays large enough


def test_a_raw_over_the_pixel_limit_or_not_a_raw_is_refused(tmp_path):
    write_dng(tmp_path / "a.dng", shape_image("square", "blue"), "Leica", "M10", "2017:05:05 05:05:05")
    with pytest.raises(UnreadableImageError, match="decompression bomb"):
        raw_rgb((tmp_path / "a.dng").read_bytes(), max_pixels=1000)
    with pytest.raises(UnreadableImageError, match="cannot decode camera raw"):
        raw_rgb(b"II*\x00" + b"\x00" * 100)
