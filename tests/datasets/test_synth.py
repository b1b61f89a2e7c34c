import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmsearch.cli import app
from mmsearch.datasets import synth
from mmsearch.datasets.captions import canonical_caption, flip_scene, manifest_captions, perturb_spec, spec_matches
from mmsearch.datasets.synth_video import shot_caption
from mmsearch.datasets.vocab import COLORS, HELDOUT_PAIRS, POSITIONS, SHAPES

runner = CliRunner()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_synth_cli_is_deterministic(tmp_path):
    args = ["--images", "24", "--videos", "2", "--seed", "1"]
    assert runner.invoke(app, ["synth", str(tmp_path / "a"), *args]).exit_code == 0
    assert runner.invoke(app, ["synth", str(tmp_path / "b"), *args, "--workers", "2"]).exit_code == 0
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a == b
    assert sum(k.endswith(".mp4") for k in a) == 2
    assert sum(k.startswith("images/") for k in a) == 24
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [i["kind"] for i in manifest["items"]].count("video") == 2
    assert runner.invoke(app, ["synth", str(tmp_path / "c"), "--images", "24", "--seed", "2"]).exit_code == 0
    assert _digests(tmp_path / "c")["manifest.json"] != a["manifest.json"]


def test_synth_rejects_unknown_split(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path), "--split", "test"])
    assert result.exit_code == 2
    assert "split" in result.output


def test_heldout_pairs_never_in_train_and_present_in_heldout():
    def pairs(split):
        found = set()
        for i in range(400):
            scene, _, _ = synth.sample_image_scene(synth.item_rng(0, split, synth.KIND_IMAGE, i), split)
            found |= {(o["color"], o["shape"]) for o in scene["objects"]}
        return found

    assert not pairs("train") & HELDOUT_PAIRS
    assert pairs("heldout") >= HELDOUT_PAIRS


def _nearest_shade_distance(rgb: np.ndarray, color: str) -> float:
    return min(float(np.linalg.norm(rgb - np.array(s))) for s in COLORS[color])


@pytest.mark.slow
def test_manifest_attributes_match_the_pixels(tmp_path):
    manifest = synth.generate(tmp_path, 150, 0, seed=5)
    checked = 0
    for item in manifest["items"]:
        img = np.asarray(Image.open(tmp_path / item["file"]).convert("RGB"), dtype=float)
        for obj in item["objects"]:
            x, y = (int(round(v)) for v in obj["center"])
            centre = np.median(img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3), axis=0)
            assert _nearest_shade_distance(centre, obj["color"]) < _nearest_shade_distance(
                centre, item["background"]
            ), item["id"]
            h, w = img.shape[:2]
            row, col = int(y // (h / 3)), int(x // (w / 3))
            assert obj["position"] == synth.position_name(row, col)
            checked += 1
    assert checked >= 150


def test_captions_follow_the_templates():
    scene = {
        "background": "white",
        "relation": None,
        "objects": [{"shape": "circle", "color": "red", "size": "small", "position": "top left"}],
    }
    assert canonical_caption(scene) == "a small red circle in the top left on a white background"
    two = {
        "background": "gray",
        "relation": "to the left of",
        "objects": [
            {"shape": "circle", "color": "red", "size": "small", "position": "left"},
            {"shape": "square", "color": "blue", "size": "medium", "position": "right"},
        ],
    }
    assert canonical_caption(two) == "a red circle to the left of a blue square on a gray background"


def test_a_bare_colour_shape_caption_names_only_an_object_big_enough_to_see():
    def scene(size: str) -> dict:
        return {
            "background": "white",
            "relation": None,
            "objects": [{"shape": "star", "color": "orange", "size": size, "position": "top left"}],
        }

    assert manifest_captions(scene("large")) == [
        "a large orange star in the top left on a white background",
        "orange star, top left",
        "a large orange star",
        "an orange star",
    ]
    assert manifest_captions(scene("medium"))[-1] == "an orange star"
    assert "an orange star" not in manifest_captions(scene("small")) and len(manifest_captions(scene("small"))) == 3


def test_video_shot_captions_take_the_right_article():
    def shot(color: str, motion: str) -> dict:
        return {
            "object": {"shape": "star", "color": color, "size": "small"},
            "background": "gray",
            "motion": motion,
        }

    assert shot_caption(shot("orange", "shrinking")) == "an orange star shrinking on a gray background"
    assert shot_caption(shot("red", "growing")) == "a red star growing on a gray background"
    assert shot_caption(shot("orange", "moving left")) == "a small orange star moving left on a gray background"


def test_spec_matches_and_flips():
    two = {
        "background": "gray",
        "relation": "to the left of",
        "objects": [
            {"shape": "circle", "color": "red", "size": "small", "position": "left"},
            {"shape": "square", "color": "blue", "size": "medium", "position": "top right"},
        ],
    }

    def one(**kv) -> dict:
        return {"objects": [kv], "relation": None, "background": None}

    assert spec_matches(one(color="red"), two)
    assert spec_matches(one(color="blue", shape="square"), two)
    assert not spec_matches(one(color="red", shape="square"), two)

    def rel(r: str) -> dict:
        return {"objects": [{"shape": "square"}, {"shape": "circle"}], "relation": r, "background": None}

    assert spec_matches(rel("to the right of"), two)
    assert not spec_matches(rel("to the left of"), two)
    assert not spec_matches({**one(color="red"), "background": "white"}, two)
    flipped = flip_scene(two, horizontal=True)
    assert [o["position"] for o in flipped["objects"]] == ["right", "top left"]
    assert flipped["relation"] == "to the right of"
    assert flip_scene(two, horizontal=False)["objects"][1]["position"] == "bottom right"


def test_hard_negatives_never_describe_the_scene_and_include_binding_swaps():
    scene = {
        "background": "gray",
        "relation": "to the left of",
        "objects": [
            {"shape": "circle", "color": "red", "size": "small", "position": "left"},
            {"shape": "square", "color": "blue", "size": "medium", "position": "right"},
        ],
    }
    spec = {
        "objects": [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}],
        "relation": None,
        "background": None,
    }
    rng = np.random.default_rng(0)
    negatives = [perturb_spec(spec, rng) for _ in range(200)]
    assert not any(spec_matches(n, scene) for n in negatives)
    swapped = {
        "objects": [{"shape": "square", "color": "red"}, {"shape": "circle", "color": "blue"}],
        "relation": None,
        "background": None,
    }
    assert swapped in negatives  # the colours trade places: same words, other binding


def test_vocabulary_is_as_wide_as_promised():
    assert {"circle", "square", "triangle", "star", "hexagon", "cross"} <= set(SHAPES)
    assert len(COLORS) >= 10
    assert len(POSITIONS) == 9


@pytest.mark.slow
def test_videos_have_real_timestamps_and_shots(tmp_path):
    manifest = synth.generate(tmp_path, 0, 6, seed=1)
    multi = 0
    for item in manifest["items"]:
        assert 2.0 <= item["duration"] <= 8.0 + 1e-6
        shots = item["shots"]
        assert shots[0]["t_start"] == 0 and shots[-1]["t_end"] == pytest.approx(item["duration"])
        assert [s["t_start"] for s in shots[1:]] == item["cuts"]
        multi += len(shots) > 1
        with av.open(str(tmp_path / item["file"])) as container:
            stream = container.streams.video[0]
            times = [float(f.pts * stream.time_base) for f in container.decode(video=0)]
        assert len(times) == item["n_frames"]
        assert times == pytest.approx([k / item["fps"] for k in range(item["n_frames"])], abs=1e-3)
    assert multi >= 1
