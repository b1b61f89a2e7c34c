"""The closed vocabulary of the synthetic corpus: colours, shapes, sizes, positions.

Every renderer, caption template and evaluation query draws its words from here, so the
ground truth in a manifest and the words in a query always mean the same thing.
"""

from __future__ import annotations

# Several shades per colour name so the models learn a colour *range*, not one RGB value.
COLORS: dict[str, list[tuple[int, int, int]]] = {
    "red": [(220, 30, 30), (200, 20, 45), (240, 60, 50), (175, 15, 20)],
    "orange": [(250, 140, 20), (240, 115, 0), (255, 160, 60)],
    "yellow": [(250, 220, 30), (240, 240, 60), (255, 205, 0)],
    "green": [(40, 170, 50), (30, 130, 40), (90, 200, 60), (20, 110, 60)],
    "cyan": [(30, 210, 220), (0, 190, 200), (90, 230, 235)],
    "blue": [(30, 60, 220), (40, 90, 200), (20, 40, 160), (60, 110, 240)],
    "purple": [(130, 40, 180), (110, 30, 150), (150, 70, 200)],
    "pink": [(250, 130, 180), (240, 100, 160), (255, 170, 200)],
    "brown": [(130, 80, 40), (110, 65, 30), (150, 95, 55)],
    "black": [(15, 15, 15), (35, 35, 35), (25, 20, 30)],
    "white": [(245, 245, 245), (232, 232, 232), (250, 248, 240)],
    "gray": [(128, 128, 128), (100, 100, 100), (160, 160, 160)],
}
COLOR_NAMES: list[str] = list(COLORS)

SHAPES: list[str] = ["circle", "square", "triangle", "star", "hexagon", "cross"]

# Object size as a fraction of the canvas's shorter side; the gaps between the ranges
# keep "small", "medium" and "large" unambiguous.
SIZES: dict[str, tuple[float, float]] = {
    "small": (0.16, 0.22),
    "medium": (0.28, 0.35),
    "large": (0.43, 0.52),
}
SIZE_NAMES: list[str] = list(SIZES)

ROWS = ["top", "middle", "bottom"]
COLS = ["left", "center", "right"]


def position_name(row: int, col: int) -> str:
    """Canonical name of a 3x3 grid cell: "top left", "top", "center", "bottom right", ..."""
    r, c = ROWS[row], COLS[col]
    if r == "middle" and c == "center":
        return "center"
    if r == "middle":
        return c
    if c == "center":
        return r
    return f"{r} {c}"


POSITIONS: list[str] = [position_name(r, c) for r in range(3) for c in range(3)]

RELATIONS = ["to the left of", "to the right of", "above", "below"]
INVERSE_RELATION = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}

# (colour, shape) pairs that never occur in the train split: the heldout split uses them
# to measure compositional generalisation. Green stars are deliberately left in train so
# the demo's generate-on-miss query ("a green star") is one the generator has seen.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "triangle"),
        ("blue", "hexagon"),
        ("yellow", "star"),
        ("purple", "square"),
        ("orange", "circle"),
        ("cyan", "cross"),
        ("pink", "triangle"),
        ("brown", "hexagon"),
    }
)

# Names that look alike on screen; a background never takes a colour this close to an object's.
SIMILAR_COLORS: dict[str, set[str]] = {
    "red": {"orange", "pink", "brown"},
    "orange": {"red", "yellow", "brown"},
    "yellow": {"orange"},
    "green": set(),
    "cyan": {"blue"},
    "blue": {"cyan", "purple"},
    "purple": {"blue", "pink"},
    "pink": {"red", "purple"},
    "brown": {"red", "orange"},
    "black": {"gray"},
    "white": {"gray"},
    "gray": {"black", "white"},
}
