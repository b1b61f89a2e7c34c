"""Captions for synthetic scenes, and the rule that says which scenes a caption describes.

A caption is made from a *spec*: the attributes it mentions (per object, a relation, the
background). `spec_matches(spec, scene)` is the ground truth used both for training
(several images in a batch can fit one caption) and for evaluation (a hit is any image
whose attributes satisfy the query).
"""

from __future__ import annotations

import numpy as np

from .vocab import INVERSE_RELATION

# {"objects": [{"color": .., "shape": .., "size": .., "position": ..}],
#  "relation": str|None, "background": str|None}
Spec = dict

# Phrasing variety: what the model sees in training, so users' wording also lands.
SIZE_WORDS = {
    "small": ["small", "small", "little", "tiny"],
    "medium": ["medium", "medium-sized", "mid-sized"],
    "large": ["large", "large", "big", "huge"],
}
COLOR_WORDS = {"gray": ["gray", "grey"]}
SHAPE_WORDS = {
    "cross": ["cross", "cross", "plus sign"],
    "star": ["star", "star", "five-pointed star"],
    "circle": ["circle", "circle", "disc"],
    "square": ["square"],
    "triangle": ["triangle"],
    "hexagon": ["hexagon"],
}
POSITION_PHRASES = {
    "top left": ["in the top left", "in the upper left", "at the top left", "in the top-left corner"],
    "top right": ["in the top right", "in the upper right", "at the top right", "in the top-right corner"],
    "bottom left": ["in the bottom left", "in the lower left", "at the bottom left", "in the bottom-left corner"],
    "bottom right": ["in the bottom right", "in the lower right", "at the bottom right", "in the bottom-right corner"],
    "top": ["at the top", "at the top center", "in the upper middle"],
    "bottom": ["at the bottom", "at the bottom center", "in the lower middle"],
    "left": ["on the left", "on the left side", "at the middle left"],
    "right": ["on the right", "on the right side", "at the middle right"],
    "center": ["in the center", "in the middle", "in the centre"],
}
POSITION_SHORT = {
    "top left": ["top left", "upper left", "top-left"],
    "top right": ["top right", "upper right", "top-right"],
    "bottom left": ["bottom left", "lower left", "bottom-left"],
    "bottom right": ["bottom right", "lower right", "bottom-right"],
    "top": ["top", "top center"],
    "bottom": ["bottom", "bottom center"],
    "left": ["left", "left side"],
    "right": ["right", "right side"],
    "center": ["center", "middle", "centre"],
}
PREFIXES = ["", "", "", "a picture of ", "an image of ", "a drawing of ", "a photo of ", "illustration of "]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def indefinite_article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"


def noun_phrase(obj: dict, rng: np.random.Generator | None = None) -> str:
    """ "small red circle" from whichever of size/colour/shape the object spec holds."""

    def word(table: dict, key: str) -> str:
        value = obj[key]
        options = table.get(value, [value])
        return options[0] if rng is None else _pick(rng, options)

    parts = []
    if "size" in obj:
        parts.append(word(SIZE_WORDS, "size"))
    if "color" in obj:
        parts.append(word(COLOR_WORDS, "color"))
    parts.append(
        word(SHAPE_WORDS, "shape") if "shape" in obj else ("shape" if rng is None else _pick(rng, ["shape", "object"]))
    )
    return " ".join(parts)


def canonical_caption(scene: dict) -> str:
    """The one full caption stored in the manifest, e.g.
    "a small red circle in the top left on a white background"."""
    objs = scene["objects"]
    bg = f" on a {scene['background']} background"
    if len(objs) == 1:
        o = objs[0]
        np_ = noun_phrase({k: o[k] for k in ("size", "color", "shape")})
        return f"{indefinite_article(np_)} {np_} {POSITION_PHRASES[o['position']][0]}{bg}"
    a = noun_phrase({k: objs[0][k] for k in ("color", "shape")})
    b = noun_phrase({k: objs[1][k] for k in ("color", "shape")})
    return f"{indefinite_article(a)} {a} {scene['relation']} {indefinite_article(b)} {b}{bg}"


def manifest_captions(scene: dict) -> list[str]:
    """A few alternative phrasings kept in the manifest beside the canonical caption.

    The bare "a red star" is kept for a medium or large object only, as people caption the
    subject of a picture: a prior trained on these pairs then draws a bare prompt's object
    big enough to see, not a speck in a corner."""
    objs = scene["objects"]
    if len(objs) == 1:
        o = objs[0]
        bare = f"{o['color']} {o['shape']}"
        return [
            canonical_caption(scene),
            f"{bare}, {o['position']}",
            f"a {o['size']} {bare}",
        ] + ([f"{indefinite_article(bare)} {bare}"] if o["size"] != "small" else [])
    a, b = objs
    return [
        canonical_caption(scene),
        f"{a['color']} {a['shape']} and {b['color']} {b['shape']}",
        f"{a['color']} {a['shape']} {scene['relation']} {b['color']} {b['shape']}",
    ]


def render_spec(spec: Spec, rng: np.random.Generator) -> str:
    """Words for a spec, with random template, synonyms and word order."""
    objs = spec["objects"]
    bg = spec.get("background")
    if not objs:
        return _pick(rng, [f"a {bg} background", f"plain {bg} background", f"something on {bg}"])
    if len(objs) == 1:
        o = objs[0]
        phrase = noun_phrase(o, rng)
        pos = o.get("position")
        style = int(rng.integers(3))
        if style == 0 or pos is None and style == 2:
            text = f"{indefinite_article(phrase)} {phrase}"
            if pos is not None:
                text += " " + _pick(rng, POSITION_PHRASES[pos])
        elif style == 1:
            text = phrase
            if pos is not None:
                text += ", " + _pick(rng, POSITION_SHORT[pos])
        else:
            text = (
                f"{indefinite_article(phrase)} {phrase} {_pick(rng, POSITION_PHRASES[pos])}"
                if rng.random() < 0.5
                else f"{_pick(rng, POSITION_SHORT[pos])}: {phrase}"
            )
        if list(o) == ["color"] and rng.random() < 0.5:
            text = _pick(rng, [o["color"], f"something {o['color']}", f"a {o['color']} object"])
    else:
        a, b = noun_phrase(objs[0], rng), noun_phrase(objs[1], rng)
        rel = spec.get("relation")
        if rel:
            text = f"{indefinite_article(a)} {a} {rel} {indefinite_article(b)} {b}"
        else:
            text = _pick(
                rng,
                [
                    f"{indefinite_article(a)} {a} and {indefinite_article(b)} {b}",
                    f"{a} and {b}",
                    f"{a} with {indefinite_article(b)} {b}",
                ],
            )
    if bg is not None:
        text += _pick(rng, [f" on a {bg} background", f" on {bg}", f", {bg} background"])
    if text.startswith(("a ", "an ")):
        text = _pick(rng, PREFIXES) + text
    return text


def sample_spec(scene: dict, rng: np.random.Generator, full_prob: float = 0.35) -> Spec:
    """Choose which of a scene's attributes a training caption mentions."""
    objs = scene["objects"]
    full = rng.random() < full_prob
    if len(objs) == 2 and (full or rng.random() < 0.5):
        keep = ("color", "shape") if full or rng.random() < 0.7 else ("shape",)
        first, second = (0, 1) if rng.random() < 0.5 else (1, 0)
        rel = scene["relation"] if first == 0 else INVERSE_RELATION[scene["relation"]]
        spec_objs = [{k: objs[i][k] for k in keep} for i in (first, second)]
        relation = rel if full or rng.random() < 0.6 else None
        return {
            "objects": spec_objs,
            "relation": relation,
            "background": scene["background"] if full or rng.random() < 0.3 else None,
        }
    o = objs[int(rng.integers(len(objs)))]
    if full:
        keys = ["size", "color", "shape", "position"]
    else:
        keys = [k for k in ("size", "color", "shape", "position") if rng.random() < 0.5]
        if not keys:
            keys = [str(rng.choice(["color", "shape"]))]
    bg = scene["background"] if full or rng.random() < 0.25 else None
    return {"objects": [{k: o[k] for k in keys}], "relation": None, "background": bg}


def colorless_caption(scene: dict, rng: np.random.Generator, tries: int = 20) -> tuple[str, Spec]:
    """A caption that names no colour (for a greyscale copy of the image): shapes, sizes,
    positions and relations only."""
    for _ in range(tries):
        spec = sample_spec(scene, rng)
        objs = [{k: v for k, v in o.items() if k != "color"} for o in spec["objects"]]
        if all(objs):
            spec = {"objects": objs, "relation": spec.get("relation"), "background": None}
            return render_spec(spec, rng), spec
    spec = {"objects": [{"shape": scene["objects"][0]["shape"]}], "relation": None, "background": None}
    return render_spec(spec, rng), spec


def mentions_color(spec: Spec) -> bool:
    return spec.get("background") is not None or any("color" in o for o in spec["objects"])


def perturb_spec(spec: Spec, rng: np.random.Generator) -> Spec:
    """A hard negative: the same caption with one attribute changed (shape most often, the
    attribute contrastive batches teach least), or, for two objects, the relation reversed
    or an attribute swapped between them ("a blue circle and a red square" against "a red
    circle and a blue square": which colour goes with which shape is what binding means)."""
    from .vocab import COLOR_NAMES, POSITIONS, SHAPES, SIZE_NAMES  # local: vocab is tiny and cycle-free

    values = {"shape": SHAPES, "color": COLOR_NAMES, "size": SIZE_NAMES, "position": POSITIONS}
    out = {
        "objects": [dict(o) for o in spec["objects"]],
        "relation": spec.get("relation"),
        "background": spec.get("background"),
    }
    if out["relation"] and rng.random() < 0.3:
        out["relation"] = INVERSE_RELATION[out["relation"]]
        return out
    if len(out["objects"]) == 2 and rng.random() < 0.4:
        first, second = out["objects"]
        differing = [k for k in first if k in second and first[k] != second[k]]
        if differing:
            key = differing[int(rng.integers(len(differing)))]
            first[key], second[key] = second[key], first[key]
            return out
    if not out["objects"]:
        out["background"] = str(rng.choice([c for c in COLOR_NAMES if c != spec["background"]]))
        return out
    obj = out["objects"][int(rng.integers(len(out["objects"])))]
    keys = list(obj)
    key = "shape" if "shape" in keys and rng.random() < 0.5 else keys[int(rng.integers(len(keys)))]
    obj[key] = str(rng.choice([v for v in values[key] if v != obj[key]]))
    return out


def sample_caption(scene: dict, rng: np.random.Generator) -> tuple[str, Spec]:
    spec = sample_spec(scene, rng)
    return render_spec(spec, rng), spec


def _object_fits(obj: dict, want: dict) -> bool:
    return all(obj.get(k) == v for k, v in want.items())


def spec_matches(spec: Spec, scene: dict) -> bool:
    """True when every attribute the spec mentions holds in the scene."""
    if spec.get("background") is not None and spec["background"] != scene["background"]:
        return False
    wanted = spec["objects"]
    objs = scene["objects"]
    if not wanted:
        return True
    if len(wanted) == 1:
        return any(_object_fits(o, wanted[0]) for o in objs)
    for i, oi in enumerate(objs):
        for j, oj in enumerate(objs):
            if i == j or not (_object_fits(oi, wanted[0]) and _object_fits(oj, wanted[1])):
                continue
            rel = spec.get("relation")
            if rel is None:
                return True
            declared = scene.get("relation")
            if declared and (
                (i, j) == (0, 1) and rel == declared or (i, j) == (1, 0) and rel == INVERSE_RELATION[declared]
            ):
                return True
    return False


def flip_scene(scene: dict, horizontal: bool) -> dict:
    """Attributes of the mirrored image (left<->right or top<->bottom)."""
    a, b = ("left", "right") if horizontal else ("top", "bottom")
    swap_words = {a: b, b: a}

    def flip_pos(pos: str) -> str:
        return " ".join(swap_words.get(w, w) for w in pos.split())

    rels = (
        {"to the left of": "to the right of", "to the right of": "to the left of"}
        if horizontal
        else {"above": "below", "below": "above"}
    )
    out = dict(scene)
    out["objects"] = [dict(o, position=flip_pos(o["position"])) for o in scene["objects"]]
    if scene.get("relation"):
        out["relation"] = rels.get(scene["relation"], scene["relation"])
    return out
