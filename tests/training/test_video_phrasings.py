"""Which wordings of a video's shots fit which videos: a short wording fits every video it
describes, and a full or multi-shot caption only its own."""

from __future__ import annotations

import numpy as np
import torch

from mmsearch.datasets.video_features import VideoFeatures
from mmsearch.training.temporal_trainer import _examples, _fits


def test_a_short_wording_fits_every_video_it_describes_and_no_other():
    def video(motion: str, size: str, background: str, shots: int = 1) -> VideoFeatures:
        shot = {
            "motion": motion,
            "object": {"color": "red", "shape": "circle", "size": size},
            "background": background,
            "t_start": 0.0,
            "t_end": 2.0,
        }
        return VideoFeatures(
            {"shots": [shot] * shots}, np.arange(4) * 0.5, np.eye(4, 8, dtype=np.float32), [(0.0, 2.0)] * shots
        )

    videos = [
        video("moving up", "small", "gray"),
        video("moving up", "large", "white"),
        video("moving down", "small", "gray"),
        video("moving up", "small", "gray", shots=2),
    ]
    captions: dict[str, int] = {}
    data = _examples(videos, captions)  # each video forwards (even rows) and backwards (odd rows)
    full = "a small red circle moving up on a gray background"
    columns = torch.tensor([captions["a red circle moving up"], captions[full], captions[f"{full}, then {full}"]])
    rows = torch.arange(8)
    fits = _fits(data, rows, data.phrasing[rows, 0], columns)
    # rows: up small gray, its reverse (down), up large white, down, down small gray, its reverse (up),
    # two-shot up, reverse
    assert fits[:, 0].tolist() == [1, 0, 1, 0, 0, 1, 0, 0]  # "a red circle moving up": any size or background
    assert fits[:, 1].tolist() == [1, 0, 0, 0, 0, 1, 0, 0]  # the full caption: that size and background only
    assert fits[:, 2].tolist() == [0, 0, 0, 0, 0, 0, 1, 0]  # a two-shot caption: its own video only
