"""Frame vectors of a synthetic video corpus, sampled exactly as index jobs sample them
(for training the temporal head and for evaluating video search). Cached per encoder space
and sampling config next to the manifest."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders.video import SamplingConfig
from ..indexer.decode_video import decode_video
from ..storage.files import atomic_write, digest
from .synth import load_manifest


@dataclass
class VideoFeatures:
    item: dict  # the manifest entry (caption, shots, cuts)
    times: np.ndarray  # (n,) sampled frame times
    frames: np.ndarray  # (n, d) unit frame vectors
    segments: list[tuple[float, float]]


def corpus_video_features(
    data_dir: str | Path, encoder, sampling: SamplingConfig | None = None, progress=None
) -> list[VideoFeatures]:
    data_dir = Path(data_dir)
    sampling = sampling or SamplingConfig()
    items = [i for i in load_manifest(data_dir)["items"] if i["kind"] == "video"]
    if not items:
        raise ValueError(f"{data_dir} holds no videos")
    key = digest(json.dumps([encoder.space, asdict(sampling), [i["file"] for i in items]]), "sha1", 12)
    cache = data_dir / f".video-features-{key}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    out = []
    for item in items:
        video = decode_video(str(data_dir / item["file"]), sampling)
        if video.error:
            raise ValueError(f"{item['file']}: {video.error}")
        vecs = encoder.embed_images([Image.fromarray(f) for f in video.frames])
        out.append(VideoFeatures(item, video.times, vecs, video.segments))
        if progress:
            progress(1)
    atomic_write(cache, pickle.dumps(out), durable=False)  # a cache: made again if lost
    return out
