"""The seqTransf temporal head and its video query map (mmsearch/encoders/temporal.py): it
starts as mean pooling, round-trips through disk, and once trained tells a video from itself
played backwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsearch.datasets.video_features import VideoFeatures
from mmsearch.encoders.temporal import SeqTransf, TemporalPooler, mean_pool
from mmsearch.training.temporal_trainer import TemporalTrainConfig, all_captions, train_temporal


def test_seqtransf_starts_as_mean_pooling_and_round_trips(tmp_path):
    head = SeqTransf(16, layers=1, heads=2)
    frames = torch.nn.functional.normalize(torch.randn(1, 5, 16), dim=-1)
    np.testing.assert_allclose(head.eval()(frames)[0].detach().numpy(), mean_pool(frames[0].numpy()), atol=1e-5)
    with torch.no_grad():
        head.gate.fill_(1.0)
    head.save(tmp_path)
    pooler = TemporalPooler("seqTransf", tmp_path)
    assert pooler.name.startswith("seqTransf@")
    np.testing.assert_allclose(
        pooler.pool(frames[0].numpy(), np.arange(5.0)), head.eval()(frames)[0].detach().numpy(), atol=1e-5
    )


def test_query_map_round_trips_and_mean_pooling_leaves_queries_alone(tmp_path):
    head = SeqTransf(16, layers=1, heads=2, query_adapter=True)
    with torch.no_grad():
        head.query_map.weight.copy_(torch.randn(16, 16))
    head.save(tmp_path)
    text = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    expected = torch.nn.functional.normalize(text + text @ head.query_map.weight.T, dim=-1).detach().numpy()
    np.testing.assert_allclose(TemporalPooler("seqTransf", tmp_path).adapt_query(text.numpy()), expected, atol=1e-5)
    np.testing.assert_array_equal(TemporalPooler("mean").adapt_query(text.numpy()), text.numpy())


def _sliding_videos(
    rng: np.random.Generator, forward: str, backward: str, dim: int = 32
) -> tuple[list[VideoFeatures], tuple]:
    """48 one-shot videos of frame vectors sliding between two random points, half each way;
    the caption names the motion. Returns the videos and (the point `forward` moves towards,
    the other point, the shared base vector)."""
    to, away, base = (rng.standard_normal(dim) for _ in range(3))
    videos = []
    for k in range(48):
        motion = [forward, backward][k % 2]
        u = np.linspace(0, 1, 8)[:, None]
        path = (1 - u) * away + u * to if motion == forward else (1 - u) * to + u * away
        frames = path + base + 0.1 * rng.standard_normal((8, dim))
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        shot = {
            "caption": f"a red circle {motion} on a blue background",
            "motion": motion,
            "t_start": 0.0,
            "t_end": 4.0,
            "object": {"color": "red", "shape": "circle", "size": "small"},
            "background": "blue",
        }
        videos.append(
            VideoFeatures(
                {"caption": shot["caption"], "shots": [shot]},
                np.arange(8) * 0.5,
                frames.astype(np.float32),
                [(0.0, 4.0)],
            )
        )
    return videos, (to, away, base)


@pytest.mark.slow
def test_seqtransf_learns_direction_that_mean_pooling_cannot_see(tmp_path):
    """Frame vectors of an object sliding along one axis; the caption says which way.
    Trained with reversed copies, the head must tell a video from itself played backwards."""
    videos, (left, right, base) = _sliding_videos(np.random.default_rng(0), "moving left", "moving right")
    captions = all_captions(videos)
    # the manifest captions and the shorter ways people word them
    assert {
        "a small red circle moving left on a blue background",
        "a red circle moving right",
        "a circle moving left",
        "a small red circle moving right",
    } <= set(captions)
    text_vectors = np.stack([base + (left if "left" in c else right) for c in captions])
    train_temporal(
        videos, text_vectors, captions, tmp_path, TemporalTrainConfig(steps=150, batch_size=32, frame_dropout=0.0)
    )
    pooler = TemporalPooler("seqTransf", tmp_path)
    t = {c: v / np.linalg.norm(v) for c, v in zip(captions, text_vectors)}
    correct = 0
    for v in videos:
        q = t[f"a small red circle {v.item['shots'][0]['motion']} on a blue background"]
        correct += float(pooler.pool(v.frames, v.times) @ q) > float(pooler.pool(v.frames[::-1].copy(), v.times) @ q)
    assert correct == len(videos)
    with pytest.raises(FileNotFoundError, match="train one"):
        TemporalPooler("seqTransf", tmp_path / "missing")


@pytest.mark.slow
def test_query_map_separates_captions_the_text_encoder_barely_tells_apart(tmp_path):
    """A text encoder trained on stills puts "moving up" and "moving down" almost on top of
    each other (cosine 0.996 for mini). The head's query map must pull them apart far enough
    for every video to beat itself played backwards."""
    videos, (up, down, base) = _sliding_videos(np.random.default_rng(1), "moving up", "moving down")
    captions = all_captions(videos)
    nudge = {c: (0.03 if "up" in c else -0.03) * (up - down) / np.linalg.norm(up - down) for c in captions}
    text_vectors = np.stack([base / np.linalg.norm(base) + nudge[c] for c in captions]).astype(np.float32)
    text_vectors /= np.linalg.norm(text_vectors, axis=1, keepdims=True)
    assert float(text_vectors[0] @ text_vectors[1]) > 0.998
    train_temporal(
        videos, text_vectors, captions, tmp_path, TemporalTrainConfig(steps=200, batch_size=32, frame_dropout=0.0)
    )
    pooler = TemporalPooler("seqTransf", tmp_path)
    queries = dict(zip(captions, pooler.adapt_query(text_vectors)))
    assert float(queries[captions[0]] @ queries[captions[1]]) < 0.99
    for v in videos:
        q = queries[f"a small red circle {v.item['shots'][0]['motion']} on a blue background"]
        assert float(pooler.pool(v.frames, v.times) @ q) > float(pooler.pool(v.frames[::-1].copy(), v.times) @ q)
