"""Video sampling (mmsearch/encoders/video.py): frames and their presentation times, the PyAV
fallback, shot detection, and a clear error for files that are not videos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mmsearch.encoders import video as video_mod
from mmsearch.encoders.video import ANALYSIS_FPS, SamplingConfig, UnreadableVideoError, sample_video


def _pyav_frames(path: Path) -> dict[float, np.ndarray]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return {round(float(f.pts * s.time_base), 6): f.to_ndarray(format="rgb24") for f in c.decode(s)}


@pytest.mark.slow
def test_sampled_frames_carry_pyav_presentation_times_and_pixels(videos):
    root, manifest = videos
    item = manifest["items"][0]
    decoded = _pyav_frames(root / item["file"])
    for strategy in ("uniform", "fps", "shots"):
        sampled = sample_video(str(root / item["file"]), SamplingConfig(strategy=strategy, frame_side=4096))
        assert len(sampled.times) >= 2
        for t, frame in zip(sampled.times, sampled.frames):
            reference = decoded[round(float(t), 6)]  # KeyError: a time PyAV never presented
            assert frame.shape == reference.shape
            assert np.abs(frame.astype(int) - reference.astype(int)).mean() < 3  # the same frame, not a neighbour


@pytest.mark.slow
def test_pyav_fallback_reads_the_same_times_as_decord(videos):
    root, manifest = videos
    path = str(root / manifest["items"][1]["file"])
    decord_reader = video_mod.open_video(path, 64)
    pyav_reader = video_mod._PyAVReader(path, 64)
    assert decord_reader.info.backend == "decord"
    np.testing.assert_allclose(pyav_reader.info.times, decord_reader.info.times, atol=1e-6)
    idx = np.array([0, len(pyav_reader.info.times) // 2])
    got = dict(pyav_reader.read(idx))
    assert sorted(got) == idx.tolist()


@pytest.mark.slow
def test_uniform_sampling_takes_n_frames_in_time_order(videos):
    root, manifest = videos
    sampled = sample_video(str(root / manifest["items"][2]["file"]), SamplingConfig(strategy="uniform", num_frames=6))
    assert len(sampled.times) == 6
    assert np.all(np.diff(sampled.times) > 0)


@pytest.mark.slow
def test_shot_boundaries_are_found_within_one_sampled_frame(videos):
    root, manifest = videos
    multi = [i for i in manifest["items"] if i["cuts"]]
    assert len(multi) >= 2
    for item in multi:
        sampled = sample_video(str(root / item["file"]))
        found = [a for a, _ in sampled.shots[1:]]
        assert len(found) == len(item["cuts"]), (item["file"], found, item["cuts"])
        for t_found, t_true in zip(found, item["cuts"]):
            assert t_true - 1e-6 <= t_found <= t_true + 1 / ANALYSIS_FPS + 1 / item["fps"], (t_found, t_true)
        # Every shot has at least one sampled frame.
        for a, b in sampled.shots:
            assert np.any((sampled.times >= a) & (sampled.times < b))


@pytest.mark.slow
def test_bad_videos_raise_a_clear_error(tmp_path, videos, write_audio_only):
    root, manifest = videos
    data = (root / manifest["items"][0]["file"]).read_bytes()
    cases = {
        "truncated.mp4": data[: len(data) // 2],
        "not-a-video.mp4": b"\x00\x00\x00\x18ftypmp42" + b"hello" * 100,
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UnreadableVideoError):
            sample_video(str(tmp_path / name))
    write_audio_only(tmp_path / "audio.mp4")
    with pytest.raises(UnreadableVideoError, match="no video stream"):
        sample_video(str(tmp_path / "audio.mp4"))


@pytest.mark.slow
def test_small_odd_sized_video_decodes_through_the_pyav_fallback(tmp_path):
    """decord cannot copy frames of some sizes (72x68 here) at native resolution."""
    path = tmp_path / "small.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 72, 68, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((68, 72, 3), i * 12, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    sampled = sample_video(str(path), SamplingConfig(strategy="uniform", num_frames=4))
    assert sampled.frames.shape == (4, 68, 72, 3)
    np.testing.assert_allclose(sampled.times, [0.2, 0.7, 1.2, 1.7], atol=1e-6)
    # Frame i is grey level 12 * i: the frames come back in time order, not shuffled.
    assert np.all(np.diff(sampled.frames.reshape(4, -1).mean(1)) > 0)
