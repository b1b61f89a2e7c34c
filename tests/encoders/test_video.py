"""Video: sampling and timestamps, shot detection, indexing at three levels, search with
moments, bad files, and the seqTransf head."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import func, select

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.datasets import synth
from mmsearch.datasets.video_features import VideoFeatures
from mmsearch.encoders import video as video_mod
from mmsearch.encoders.temporal import SeqTransf, TemporalPooler, mean_pool
from mmsearch.encoders.video import (
    ANALYSIS_FPS,
    SamplingConfig,
    UnreadableVideoError,
    frame_at,
    sample_video,
)
from mmsearch.evaluation.video_eval import iou
from mmsearch.search.engine import SearchEngine
from mmsearch.search.query import SearchRequest, build_terms
from mmsearch.storage.store import JobError, Media, Segment, Vector
from mmsearch.training.temporal_trainer import (
    TemporalTrainConfig,
    _examples,
    _fits,
    all_captions,
    train_temporal,
)

from ..helpers import open_library

VIDEO_SEED = 21


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("videos") / "clips"
    manifest = synth.generate(root, 0, 8, seed=VIDEO_SEED, split="train")
    return root, manifest


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
def test_bad_videos_raise_a_clear_error(tmp_path, videos):
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
    _write_audio_only(tmp_path / "audio.mp4")
    with pytest.raises(UnreadableVideoError, match="no video stream"):
        sample_video(str(tmp_path / "audio.mp4"))


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


@pytest.fixture(scope="module")
def video_library(tmp_path_factory, videos, mini_encoder):
    root, manifest = videos
    lib = open_library(tmp_path_factory.mktemp("videolib"), encoder=mini_encoder, pooling="mean")
    summary = lib.index([root])
    yield lib, root, manifest, summary
    lib.close()


@pytest.mark.slow
def test_videos_are_indexed_at_three_levels(video_library):
    lib, root, manifest, summary = video_library
    assert summary["state"] == "done" and summary["errors"] == 0 and summary["done"] == 8
    with lib.store.session() as s:
        for item in manifest["items"]:
            media = s.scalars(select(Media).where(Media.path == str((root / item["file"]).resolve()))).one()
            assert media.kind == "video" and abs(media.duration - item["duration"]) < 0.05
            segments = s.scalars(select(Segment).where(Segment.media_id == media.id).order_by(Segment.t_start)).all()
            assert len(segments) == len(item["shots"])
            for seg, shot in zip(segments, item["shots"]):
                assert iou((seg.t_start, seg.t_end), (shot["t_start"], shot["t_end"])) > 0.9
                assert Path(seg.keyframe).is_file()
            kinds = dict(
                s.execute(
                    select(Vector.kind, func.count()).where(Vector.media_id == media.id).group_by(Vector.kind)
                ).all()
            )
            assert kinds["video"] == 1 and kinds["segment"] == len(segments) and kinds["frame"] >= len(segments)
            pooled_space = s.scalar(select(Vector.space).where(Vector.media_id == media.id, Vector.kind == "video"))
            assert pooled_space.endswith("|pool=mean")


@pytest.mark.slow
def test_shot_caption_finds_its_video_and_moment(video_library):
    lib, root, manifest, _ = video_library
    item = next(i for i in manifest["items"] if len(i["shots"]) >= 2)
    path = str((root / item["file"]).resolve())
    for shot in item["shots"]:
        hits = lib.search(SearchRequest(build_terms(shot["caption"]), k=3, kind="video"))
        assert hits[0].path == path, (shot["caption"], [h.path for h in hits])
        assert iou((hits[0].t_start, hits[0].t_end), (shot["t_start"], shot["t_end"])) >= 0.5


@pytest.mark.slow
def test_a_video_as_the_query_finds_itself_first(video_library):
    lib, *_ = video_library
    with lib.store.session() as s:
        video_ids = s.scalars(select(Media.id).where(Media.kind == "video")).all()
    for media_id in video_ids[:3]:
        hits = lib.search(SearchRequest(build_terms(media_id=media_id), k=2, kind="video"))
        assert hits[0].id == media_id and hits[0].score > 0.99


@pytest.mark.slow
def test_bad_video_files_get_error_rows_and_good_ones_stay_searchable(tmp_path, videos, mini_encoder):
    root, manifest = videos
    media = tmp_path / "media"
    media.mkdir()
    good = manifest["items"][0]["file"]
    (media / "good.mp4").write_bytes((root / good).read_bytes())
    data = (root / manifest["items"][1]["file"]).read_bytes()
    (media / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (media / "empty.mp4").write_bytes(b"")
    (media / "notes.mp4").write_bytes(b"this is a text file, not a video\n" * 20)
    _write_audio_only(media / "audio-only.mp4")
    lib = open_library(tmp_path / "lib", encoder=mini_encoder, pooling="mean")
    summary = lib.index([media])
    assert summary["state"] == "done" and summary["errors"] == 4 and summary["done"] == 5
    with lib.store.session() as s:
        errors = dict(s.execute(select(JobError.path, JobError.error)).all())
    assert set(map(lambda p: Path(p).name, errors)) == {"truncated.mp4", "empty.mp4", "notes.mp4", "audio-only.mp4"}
    assert "no video stream" in errors[str((media / "audio-only.mp4").resolve())]
    hits = lib.search(SearchRequest(build_terms(manifest["items"][0]["shots"][0]["caption"]), k=1, kind="video"))
    assert Path(hits[0].path).name == "good.mp4"
    lib.close()


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


def test_query_map_round_trips_and_mean_pooling_leaves_queries_alone(tmp_path):
    head = SeqTransf(16, layers=1, heads=2, query_adapter=True)
    with torch.no_grad():
        head.query_map.weight.copy_(torch.randn(16, 16))
    head.save(tmp_path)
    text = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    expected = torch.nn.functional.normalize(text + text @ head.query_map.weight.T, dim=-1).detach().numpy()
    np.testing.assert_allclose(TemporalPooler("seqTransf", tmp_path).adapt_query(text.numpy()), expected, atol=1e-5)
    np.testing.assert_array_equal(TemporalPooler("mean").adapt_query(text.numpy()), text.numpy())


@pytest.mark.slow
def test_pooled_videos_are_searched_with_the_mapped_query(video_library):
    """Pooled video vectors meet the text through the video query map; images and segments
    meet the text as encoded. A map sending every text to one video's pooled vector must
    put that video first with a score of 1."""
    lib, root, manifest, _ = video_library
    assert lib.engine.video_text_map == lib.pooler.adapt_query
    with lib.store.session() as s:
        media_id = s.scalar(select(Media.id).where(Media.path == str((root / manifest["items"][3]["file"]).resolve())))
    target = lib.engine.media_vector(media_id)
    engine = SearchEngine(
        lib.store, lib.encoder, lib.indexes, video_text_map=lambda t: np.repeat(target[None], len(t), 0)
    )
    query = manifest["items"][0]["shots"][0]["caption"]
    q = engine.query_vectors(build_terms(query), "video")
    np.testing.assert_allclose(q.video, target, atol=1e-6)
    np.testing.assert_allclose(q.main, lib.encoder.embed_texts([query])[0], atol=1e-6)
    hits = engine.search(SearchRequest(build_terms(query), k=2, kind="video"))
    assert hits[0].id == media_id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    # Mixed searches meet videos with the plain query (the map is trained on videos alone).
    mixed = engine.query_vectors(build_terms(query), "any")
    np.testing.assert_array_equal(mixed.video, mixed.main)
    assert engine.search(SearchRequest(build_terms(query), k=1, kind="any"))[0].score < 0.99


@pytest.mark.slow
def test_api_serves_moments_ranges_and_frames(video_library):
    lib, root, manifest, _ = video_library
    item = next(i for i in manifest["items"] if len(i["shots"]) >= 2)
    shot = item["shots"][-1]
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/search", json={"text": shot["caption"], "k": 2, "kind": "video"})
        assert r.status_code == 200
        top = r.json()["results"][0]
        assert top["kind"] == "video" and top["path"] == str((root / item["file"]).resolve())
        assert iou((top["t_start"], top["t_end"]), (shot["t_start"], shot["t_end"])) >= 0.5

        data = (root / item["file"]).read_bytes()
        r = client.get(f"/media/{top['id']}/file", headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"

        r = client.get(f"/media/{top['id']}/thumbnail", params={"t": shot["t_start"] + 0.1})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        thumb = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), np.float32)
        frame = frame_at(str(root / item["file"]), shot["t_start"] + 0.1, side=thumb.shape[0])
        assert thumb.shape[:2] == frame.shape[:2] and np.abs(thumb - frame).mean() < 8  # that frame, as JPEG
        assert client.get(f"/media/{top['id']}/thumbnail", params={"t": item["duration"] + 5}).status_code == 422
        assert client.get(f"/media/{top['id']}/thumbnail", params={"t": -1}).status_code == 422


def test_decode_workers_do_not_import_torch():
    """Worker processes import the decode modules; torch there would cost ~0.5 GiB each."""
    code = "import sys, mmsearch.indexer.decode_video, mmsearch.indexer.decode; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.slow
def test_switching_the_pooling_re_embeds_videos_only(tmp_path, videos, mini_encoder):
    root, manifest = videos
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes((root / manifest["items"][0]["file"]).read_bytes())
    synth.generate(media / "stills", 3, 0, seed=5)
    head = tmp_path / "head"
    SeqTransf(mini_encoder.dim, layers=1, heads=2).save(head)
    with open_library(tmp_path / "lib", encoder=mini_encoder, pooling="mean") as lib:
        assert lib.index([media])["new"] == 4
    with open_library(tmp_path / "lib", encoder=mini_encoder, pooling="mean") as lib:
        assert lib.index([media])["unchanged"] == 4
    with open_library(tmp_path / "lib", encoder=mini_encoder, pooling="seqTransf", temporal_head=head) as lib:
        job = lib.index([media])
        assert (job["changed"], job["unchanged"]) == (1, 3)
        hits = lib.search(SearchRequest(build_terms(manifest["items"][0]["shots"][0]["caption"]), k=1, kind="video"))
        assert Path(hits[0].path).name == "clip.mp4"
        with lib.store.session() as s:
            spaces = s.scalars(select(Vector.space).where(Vector.kind == "video")).all()
        assert len(spaces) == 1 and "|pool=seqTransf@" in spaces[0]


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
