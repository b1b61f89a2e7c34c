"""The facade's own answers on a small real library: what it holds, its jobs, an item's
caption and where its file may be served from (the rest is tested through the services,
the CLI and the API)."""

from __future__ import annotations

import pytest

from mmsearch.encoders.video import SamplingConfig
from mmsearch.search.query import SearchRequest, parse_text

from .helpers import make_corpus, open_library


@pytest.mark.slow
def test_a_small_library_reports_what_it_holds(tmp_path, mini_encoder):
    corpus = tmp_path / "photos"
    manifest = make_corpus(corpus, n=6)
    (corpus / "broken.jpg").write_bytes(b"not an image")
    root = corpus.resolve()
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        assert lib.index_sizes() == {}  # no index is opened before the first job or search
        job = lib.index([corpus, corpus / "images"])  # the nested root is walked once, with its parent
        assert job["roots"] == [str(root)] and job["new"] == 7 and job["errors"] == 1

        assert lib.stats() == {
            "model": mini_encoder.name,
            "space": mini_encoder.space,
            "media": 7,
            "vectors": 6,
            "unreadable": 1,
        }
        counts = lib.counts()
        assert sorted(counts["media"]) == [("image", False, 6), ("unknown", False, 1)]
        assert counts["jobs"] == [("done", 1)] and counts["job_progress"] == []
        assert lib.index_sizes() == {"image": 6}

        detail = lib.job(job["id"])
        (error,) = detail.pop("recent_errors")
        assert error["path"] == str(root / "broken.jpg") and error["error"].startswith("not an image")
        assert lib.recent_jobs() == [detail]
        assert lib.job(job["id"] + 1) is None

        hits = lib.search(SearchRequest(terms=parse_text("a shape"), k=10))
        media = lib.media_many([h.id for h in hits] + [10_000])
        assert sorted(media) == sorted(h.id for h in hits) and len(media) == 6
        assert lib.media(10_000) is None and lib.media(hits[0].id).path == hits[0].path
        first_captions = {str((corpus / i["file"]).resolve()): i["captions"][0] for i in manifest["items"]}
        assert {m.path: lib.caption(m) for m in media.values()} == first_captions
        assert all(lib.serving_roots(m) == [root] for m in media.values())
        # the default settings' video sampling: shots at 2 fps, at most 256 frames, 12 when uniform
        assert lib.sampling == SamplingConfig(strategy="shots", num_frames=12, fps=2.0, max_frames=256, frame_side=224)
