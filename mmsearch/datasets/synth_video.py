"""Synthetic captioned videos: one object per shot doing one thing, some videos cut between shots.

Motions: moving left / right / up / down, growing, shrinking, changing colour from X to Y,
appearing, disappearing. Written as H.264 mp4 through PyAV with real presentation
timestamps; each shot's [t_start, t_end] and caption go into the manifest.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .captions import indefinite_article
from .render import ObjectGeom, draw_scene, jitter_rgb, sample_style
from .synth import KIND_VIDEO, item_rng, sample_background, sample_canvas, sample_pair
from .vocab import COLOR_NAMES, SIZES

MOTIONS = [
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "growing",
    "shrinking",
    "changing color",
    "appearing",
    "disappearing",
]
FPS_CHOICES = [10, 12, 15, 24, 25]
# Motions whose caption leaves the size out (the size changes, or the caption names colours instead).
SIZELESS_MOTIONS = ("growing", "shrinking", "changing color")


REVERSED_MOTION = {
    "moving left": "moving right",
    "moving right": "moving left",
    "moving up": "moving down",
    "moving down": "moving up",
    "growing": "shrinking",
    "shrinking": "growing",
    "appearing": "disappearing",
    "disappearing": "appearing",
    "changing color": "changing color",
}


def reversed_shot(shot: dict) -> dict:
    """The manifest entry of the same shot played backwards."""
    out = dict(shot, motion=REVERSED_MOTION[shot["motion"]])
    if shot["motion"] == "changing color":
        out["object"] = dict(shot["object"], color=shot["color_to"])
        out["color_to"] = shot["object"]["color"]
    return out


def video_caption(shots: list[dict]) -> str:
    return ", then ".join(shot_caption(s) for s in shots)


def shot_caption(shot: dict) -> str:
    o, bg, motion = shot["object"], shot["background"], shot["motion"]
    if motion == "changing color":
        return f"a {o['shape']} changing color from {o['color']} to {shot['color_to']} on a {bg} background"
    if motion in SIZELESS_MOTIONS:
        subject = f"{o['color']} {o['shape']}"
        return f"{indefinite_article(subject)} {subject} {motion} on a {bg} background"
    return f"a {o['size']} {o['color']} {o['shape']} {motion} on a {bg} background"


def _sample_shot(rng: np.random.Generator, split: str, width: int, height: int) -> dict:
    color, shape = sample_pair(rng, split, prefer_heldout=split == "heldout" and rng.random() < 0.5)
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    size = ["small", "medium"][int(rng.integers(2))] if motion.startswith("moving") else "medium"
    shot = {"motion": motion, "object": {"shape": shape, "color": color, "size": size}}
    colors = [color]
    if motion == "changing color":
        shot["color_to"] = str(rng.choice([c for c in COLOR_NAMES if c != color]))
        colors.append(shot["color_to"])
    shot["background"] = sample_background(rng, colors)
    # Geometry at the start and the end of the shot, in pixels.
    lo, hi = SIZES[size]
    r = float(rng.uniform(lo, hi)) * min(width, height) / 2
    cx, cy = float(rng.uniform(0.35, 0.65)) * width, float(rng.uniform(0.35, 0.65)) * height
    start, end = {"cx": cx, "cy": cy, "r": r}, {"cx": cx, "cy": cy, "r": r}
    travel_x, travel_y = 0.55 * width, 0.55 * height
    if motion == "moving left":
        start["cx"], end["cx"] = (width + travel_x) / 2, (width - travel_x) / 2
    elif motion == "moving right":
        start["cx"], end["cx"] = (width - travel_x) / 2, (width + travel_x) / 2
    elif motion == "moving up":
        start["cy"], end["cy"] = (height + travel_y) / 2, (height - travel_y) / 2
    elif motion == "moving down":
        start["cy"], end["cy"] = (height - travel_y) / 2, (height + travel_y) / 2
    elif motion in ("growing", "shrinking"):
        small, large = SIZES["small"][0] * min(width, height) / 2, SIZES["large"][1] * min(width, height) / 2
        start["r"], end["r"] = (small, large) if motion == "growing" else (large, small)
    shot["geometry"] = {
        "start": {k: round(v, 2) for k, v in start.items()},
        "end": {k: round(v, 2) for k, v in end.items()},
    }
    shot["rgb"] = [jitter_rgb(rng, c) for c in colors]
    shot["bg_rgb"] = jitter_rgb(rng, shot["background"], amount=10)
    shot["angle"] = float(rng.uniform(-20, 20)) if shape != "circle" else 0.0
    shot["caption"] = shot_caption(shot)
    return shot


def _object_at(shot: dict, u: float) -> ObjectGeom:
    """The shot's object at progress u in [0, 1]."""
    g0, g1 = shot["geometry"]["start"], shot["geometry"]["end"]

    def lerp(a, b):
        return a + (b - a) * u

    rgb = shot["rgb"][0]
    opacity = 1.0
    if shot["motion"] == "changing color":
        w = float(np.clip((u - 0.3) / 0.4, 0, 1))  # blend over the middle of the shot
        rgb = tuple(int(lerp_c) for lerp_c in (np.array(shot["rgb"][0]) * (1 - w) + np.array(shot["rgb"][1]) * w))
    elif shot["motion"] == "appearing":
        opacity = float(np.clip(u / 0.5, 0, 1))
    elif shot["motion"] == "disappearing":
        opacity = float(np.clip((1 - u) / 0.5, 0, 1))
    return ObjectGeom(
        shot["object"]["shape"],
        tuple(rgb),
        lerp(g0["cx"], g1["cx"]),
        lerp(g0["cy"], g1["cy"]),
        lerp(g0["r"], g1["r"]),
        shot["angle"],
        opacity,
    )


def _write_mp4(
    path: Path, width: int, height: int, fps: int, bounds: list[tuple[int, int]], shots: list[dict], styles: list
) -> None:
    """H.264 with one presentation timestamp per frame (pts = frame number, time base 1/fps)."""
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # mbtree off: with it, the x264 in PyAV's wheels (17, 18) gave different files for the
    # same frames from run to run (the output changed with unrelated memory allocations).
    stream.options = {"crf": "20", "preset": "veryfast", "threads": "1", "bframes": "0", "x264-params": "mbtree=0"}
    stream.codec_context.time_base = Fraction(1, fps)
    for (f0, f1), shot, style in zip(bounds, shots, styles):
        style.jpeg_quality = None  # the video codec already compresses
        for f in range(f0, f1):
            u = (f - f0) / max(1, f1 - f0 - 1)
            img = draw_scene(width, height, tuple(shot["bg_rgb"]), [_object_at(shot, u)], style, frame_salt=f)
            frame = av.VideoFrame.from_image(img)
            frame.pts = f
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def render_long_video(
    path: Path,
    seconds: float,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    fps: int = 10,
    shot_seconds: tuple[float, float] = (5.0, 20.0),
) -> list[dict]:
    """One long video (for benchmarks): shots of 5-20 s back to back. Returns the shots."""
    rng = np.random.default_rng(seed)
    n_frames = int(round(seconds * fps))
    bounds, f = [], 0
    while f < n_frames:
        length = int(rng.uniform(*shot_seconds) * fps)
        bounds.append((f, min(n_frames, f + length)))
        f += length
    shots = [_sample_shot(rng, "train", width, height) for _ in bounds]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_mp4(path, width, height, fps, bounds, shots, [sample_style(rng) for _ in bounds])
    return [{"t_start": a / fps, "t_end": b / fps, "caption": sh["caption"]} for (a, b), sh in zip(bounds, shots)]


def render_video(args: tuple[int, str, int, str]) -> dict:
    seed, split, index, out_dir = args
    rng = item_rng(seed, split, KIND_VIDEO, index)
    width, height = sample_canvas(rng)
    width, height = width // 2 * 2, height // 2 * 2  # yuv420p needs even sizes
    fps = FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))]
    duration = float(rng.uniform(2, 8))
    n_shots = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2])) if duration >= 3 else 1
    n_frames = int(round(duration * fps))
    # Cut points on frame boundaries, every shot at least one second long.
    cuts = (
        sorted(rng.choice(np.arange(fps, n_frames - fps + 1), size=n_shots - 1, replace=False).tolist())
        if n_shots > 1
        else []
    )
    while any(b - a < fps for a, b in zip([0] + cuts, cuts + [n_frames])):
        cuts = sorted(rng.choice(np.arange(fps, n_frames - fps + 1), size=n_shots - 1, replace=False).tolist())
    bounds = list(zip([0] + cuts, cuts + [n_frames]))
    shots = [_sample_shot(rng, split, width, height) for _ in bounds]
    styles = [sample_style(rng) for _ in bounds]

    rel = f"videos/{split}-{index:06d}.mp4"
    _write_mp4(Path(out_dir) / rel, width, height, fps, bounds, shots, styles)

    manifest_shots = []
    for (f0, f1), shot in zip(bounds, shots):
        manifest_shots.append(
            {
                "t_start": round(f0 / fps, 4),
                "t_end": round(f1 / fps, 4),
                "caption": shot["caption"],
                "motion": shot["motion"],
                "object": shot["object"],
                "background": shot["background"],
                **({"color_to": shot["color_to"]} if "color_to" in shot else {}),
            }
        )
    return {
        "id": f"{split}-vid-{index:06d}",
        "file": rel,
        "kind": "video",
        "width": width,
        "height": height,
        "fps": fps,
        "n_frames": n_frames,
        "duration": round(n_frames / fps, 4),
        "cuts": [round(c / fps, 4) for c in cuts],
        "caption": video_caption(manifest_shots),
        "shots": manifest_shots,
    }
