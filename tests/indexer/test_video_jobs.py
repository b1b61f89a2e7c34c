"""Index jobs over videos: each video stored at three levels (pooled video, shot segments,
frames), searched by caption and by itself, bad files as error rows, a pooling switch that
re-embeds videos only, and pooled videos met by the video query map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from mmsearch.datasets import synth
from mmsearch.encoders.temporal import SeqTransf
from mmsearch.evaluation.video_eval import iou
from mmsearch.search.engine import SearchEngine
from mmsearch.search.query import SearchRequest, build_terms
from mmsearch.storage.store import JobError, Media, Segment, Vector

from ..helpers import open_library


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
def test_bad_video_files_get_error_rows_and_good_ones_stay_searchable(tmp_path, videos, mini_encoder, write_audio_only):
    root, manifest = videos
    media = tmp_path / "media"
    media.mkdir()
    good = manifest["items"][0]["file"]
    (media / "good.mp4").write_bytes((root / good).read_bytes())
    data = (root / manifest["items"][1]["file"]).read_bytes()
    (media / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (media / "empty.mp4").write_bytes(b"")
    (media / "notes.mp4").write_bytes(b"this is a text file, not a video\n" * 20)
    write_audio_only(media / "audio-only.mp4")
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
