"""The ways people word a query for one shot of a synthetic video, and which shots each fits.

A manifest caption names everything ("a small red circle moving up on a gray background");
people type "a red circle moving up" or "a circle moving up". A temporal head trained on the
full captions alone scores typed queries near the orderless segment vectors, and the engine
then loses the motion (benchmarks/bench_video_queries.py). Each phrasing here mentions a
subset of the shot's attributes; it fits every one-shot video whose shot has those values.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..datasets.captions import indefinite_article
from ..datasets.synth_video import SIZELESS_MOTIONS, shot_caption

# Attributes a phrasing may mention, in a fixed order (columns of `codes`).
ATTRIBUTES = ("color", "shape", "size", "motion", "background", "color_to")
UNSAID = -1  # a phrasing that does not mention the attribute


@dataclass(frozen=True)
class Phrasing:
    text: str
    said: dict  # attribute -> value it mentions


def shot_attributes(shot: dict) -> dict:
    o = shot["object"]
    return {
        "color": o["color"],
        "shape": o["shape"],
        "size": o.get("size"),
        "motion": shot["motion"],
        "background": shot["background"],
        "color_to": shot.get("color_to"),
    }


def phrasings(shot: dict) -> list[Phrasing]:
    """The manifest caption first, then shorter ones. Changing colour keeps both colours
    (without them the motion has no direction)."""
    a = shot_attributes(shot)
    full = shot_caption(shot)
    full_said = {k: v for k, v in a.items() if v is not None and (k != "size" or a["motion"] not in SIZELESS_MOTIONS)}
    if a["motion"] == "changing color":
        change = f"changing color from {a['color']} to {a['color_to']}"
        return [
            Phrasing(full, full_said),
            Phrasing(f"a {a['shape']} {change}", {k: a[k] for k in ("shape", "motion", "color", "color_to")}),
            Phrasing(f"something {change}", {k: a[k] for k in ("motion", "color", "color_to")}),
        ]
    subject = f"{a['color']} {a['shape']}"
    out = [
        Phrasing(full, full_said),
        Phrasing(
            f"{indefinite_article(subject)} {subject} {a['motion']}", {k: a[k] for k in ("color", "shape", "motion")}
        ),
        Phrasing(f"a {a['shape']} {a['motion']}", {k: a[k] for k in ("shape", "motion")}),
        Phrasing(f"{subject} {a['motion']}", {k: a[k] for k in ("color", "shape", "motion")}),
        Phrasing(
            f"{indefinite_article(subject)} {subject} {a['motion']} on a {a['background']} background",
            {k: a[k] for k in ("color", "shape", "motion", "background")},
        ),
    ]
    if "size" in full_said:
        out.append(
            Phrasing(f"a {a['size']} {subject} {a['motion']}", {k: a[k] for k in ("size", "color", "shape", "motion")})
        )
    return out


class AttributeCodes:
    """Attribute values as integers, so which phrasings fit which videos is one tensor test."""

    def __init__(self):
        self._ids: dict[str, int] = {}

    def encode(self, values: dict) -> list[int]:
        return [
            self._ids.setdefault(str(values[k]), len(self._ids)) if values.get(k) is not None else UNSAID
            for k in ATTRIBUTES
        ]
