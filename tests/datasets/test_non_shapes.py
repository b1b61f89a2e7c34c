import numpy as np
import pytest

from mmsearch.datasets.non_shapes import NON_SHAPE_KINDS, non_shape_array, render_non_shape
from mmsearch.datasets.render import ObjectGeom, Style, draw_scene, unit_shape
from mmsearch.datasets.vocab import COLOR_NAMES, COLORS, SHAPES


@pytest.mark.parametrize("shape", SHAPES)
def test_a_shape_drawn_from_its_polygon_as_parts_is_the_named_shape(shape):
    named = ObjectGeom(shape, (220, 30, 30), 40, 36, 22, angle=17)
    parts = ObjectGeom("none", (220, 30, 30), 40, 36, 22, angle=17, parts=[unit_shape(shape)])
    style = Style(fill="gradient", shadow=True, background="stripes", background_strength=0.1)
    assert np.array_equal(
        np.asarray(draw_scene(80, 72, (240, 240, 240), [named], style)),
        np.asarray(draw_scene(80, 72, (240, 240, 240), [parts], style)),
    )


def test_non_shapes_are_reproducible_and_cover_every_kind():
    first, colors = non_shape_array(2 * len(NON_SHAPE_KINDS), 32, seed=3)
    again, colors_again = non_shape_array(2 * len(NON_SHAPE_KINDS), 32, seed=3)
    other, _ = non_shape_array(2 * len(NON_SHAPE_KINDS), 32, seed=4)
    assert first.shape == (8, 32, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and colors == colors_again
    assert not np.array_equal(first, other)
    assert set(colors) <= set(COLOR_NAMES)


def _shade_distance(rgb: np.ndarray, color: str) -> float:
    return min(float(np.linalg.norm(rgb - np.array(s))) for s in COLORS[color])


@pytest.mark.parametrize("index", range(3 * len(NON_SHAPE_KINDS)))
def test_a_non_shape_is_drawn_in_its_colour_against_another_background(index):
    image, color = render_non_shape(0, index)
    pixels = np.asarray(image, dtype=float).reshape(-1, 3)
    background = np.median(pixels, axis=0)
    marked = pixels[np.linalg.norm(pixels - background, axis=1) > 60]
    assert len(marked) >= 10  # something other than background is drawn
    assert _shade_distance(np.median(marked, axis=0), color) < _shade_distance(background, color)
