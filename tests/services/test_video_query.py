"""A video clip as the query: it finds itself among videos, its moments, and bad or long
clips are refused with a reason."""

from __future__ import annotations

import pytest

from mmsearch.search.query import QueryError, SearchRequest

pytestmark = pytest.mark.slow  # indexes the synthetic clips


def test_a_clip_finds_itself_and_its_moments(video_library):
    lib, root, manifest, _ = video_library
    for item in manifest["items"][:3]:
        clip = root / item["file"]
        (top,) = lib.search_video(clip, SearchRequest(terms=[], k=1, kind="video"))
        assert (top.path, top.via, top.kind) == (str(clip.resolve()), "video", "video")
        assert top.score > 0.99  # its own pooled vector
        assert top.t_start is not None and top.t_end is not None  # the moment most like the clip
        anything = lib.search_video(clip, SearchRequest(terms=[], k=3))
        assert anything[0].path == str(clip.resolve())


def test_a_clip_that_is_no_video_or_too_long_is_refused(video_library, tmp_path):
    lib, root, manifest, _ = video_library
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(QueryError, match="not a readable video"):
        lib.search_video(tmp_path / "notes.mp4", SearchRequest(terms=[]))
    settings = lib.settings
    lib.settings = settings.with_overrides(max_query_video_s=0.5)
    try:
        with pytest.raises(QueryError, match="at most 0.5 s"):
            lib.search_video(root / manifest["items"][0]["file"], SearchRequest(terms=[]))
    finally:
        lib.settings = settings
