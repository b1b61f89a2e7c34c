"""Filtered searches give the top-k of an exact filtered search: the engine's pages are
compared with a brute-force ranking over every stored vector in SQL.

The library mixes a small folder of images and videos with a large folder of images, so a
filter on the small folder leaves few candidates among each kind's top ANN results; and a
few generated images for the generated filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from mmsearch.datasets import synth
from mmsearch.search import prefilter
from mmsearch.search.engine import VECTOR_KINDS
from mmsearch.search.query import MediaNotFoundError, SearchRequest, build_terms
from mmsearch.storage.generated import GenerationParams
from mmsearch.storage.store import Media, Vector, decode_embeddings

from ..helpers import make_corpus, open_library

pytestmark = pytest.mark.slow

QUERIES = ["a red circle", "a blue square", "a small green triangle", "a yellow star moving"]


@pytest.fixture(scope="module")
def library(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("filters")
    synth.generate(base / "small", 10, 4, seed=31, split="train")
    make_corpus(base / "large", n=110, seed=32)
    synth.generate(base / "large", 0, 2, seed=33, split="train")  # beside the images, in large/videos
    drawn = synth.generate(base / "drawn", 5, 0, seed=34, split="train")
    lib = open_library(base / "lib", encoder=mini_encoder)
    lib.index([base / "small", base / "large"])
    images = [Image.open(base / "drawn" / item["file"]).convert("RGB") for item in drawn["items"]]
    lib.store_generated(images, GenerationParams("a drawing", "test", seed=1, steps=1, guidance=None, sampler="none"))
    yield lib, base.resolve()
    lib.close()


def exact_ranking(lib, req: SearchRequest) -> list[tuple[int, float]]:
    """The filtered page by brute force: every vector of the request's kinds scored, each media
    item's best, filtered, sorted by score then id, paged."""
    q = lib.engine.query_vectors(req.terms, req.kind)
    best: dict[int, float] = {}
    with lib.store.session() as s:
        for kind in VECTOR_KINDS[req.kind]:
            rows = s.execute(
                select(Vector.media_id, Vector.dim, Vector.embedding).where(
                    Vector.kind == kind, Vector.space == lib.indexes.space_of(kind)
                )
            ).all()
            vectors = decode_embeddings([r.embedding for r in rows], rows[0].dim) if rows else []
            for r, v in zip(rows, vectors):
                score = float(v @ (q.video if kind == "video" else q.main))
                best[r.media_id] = max(best.get(r.media_id, -np.inf), score)
        media = {m.id: m for m in s.scalars(select(Media))}

    def passes(m: Media, score: float) -> bool:
        return (
            (req.min_score is None or score >= req.min_score)
            and (req.kind == "any" or m.kind == req.kind)
            and (not req.path_prefix or m.path.startswith(req.path_prefix))
            and (req.generated is None or m.generated == req.generated)
        )

    ranked = sorted(((mid, sc) for mid, sc in best.items() if passes(media[mid], sc)), key=lambda x: (-x[1], x[0]))
    return ranked[req.offset : req.offset + req.k]


def requests(base: Path) -> list[tuple[str, dict]]:
    small, large = f"{base}/small/", f"{base}/large/"
    return [
        ("path_prefix small", dict(path_prefix=small)),
        ("path_prefix small, k=3", dict(path_prefix=small, k=3)),
        ("path_prefix small images", dict(path_prefix=small, kind="image")),
        ("path_prefix small videos", dict(path_prefix=small, kind="video")),
        ("path_prefix large videos", dict(path_prefix=large, kind="video", k=5)),
        ("path_prefix large", dict(path_prefix=large)),
        ("path_prefix small, page 2", dict(path_prefix=small, k=4, offset=4)),
        ("path_prefix small, page 3", dict(path_prefix=small, k=4, offset=8)),
        ("generated", dict(generated=True, k=4)),
        ("generated images", dict(generated=True, kind="image", k=3)),
        ("not generated", dict(generated=False)),
        ("not generated videos", dict(generated=False, kind="video", k=3)),
        ("min_score", dict(min_score=0.2, k=50)),
        ("min_score, path_prefix small", dict(path_prefix=small, min_score=0.1)),
        ("no filter", dict()),
        ("no filter, deep page", dict(k=10, offset=100)),
        ("video, deep page", dict(kind="video", k=3, offset=4)),
    ]


def search_subsets_by(monkeypatch, way: str) -> None:
    """Make every filter subset searched exactly (from the index's vectors, or from SQL) or
    through the ANN index with a selector."""
    limits = {"index": (10**9, 0), "sql": (0, 10**9), "selector": (0, 0)}[way]
    monkeypatch.setattr(prefilter, "EXACT_MAX_FROM_INDEX", limits[0])
    monkeypatch.setattr(prefilter, "EXACT_MAX_FROM_SQL", limits[1])


@pytest.mark.parametrize("way", ["index", "sql", "selector"])
def test_filtered_pages_match_an_exact_filtered_search(library, monkeypatch, way):
    """Whichever way the filter's subset is searched, the pages are the exact filtered ones."""
    lib, base = library
    search_subsets_by(monkeypatch, way)
    failures = []
    for text in QUERIES:
        for name, options in requests(base):
            req = SearchRequest(terms=build_terms(text), **{"k": 10, **options})
            got = [(h.id, h.score) for h in lib.search(req)]
            expected = [(mid, round(sc, 6)) for mid, sc in exact_ranking(lib, req)]
            if [i for i, _ in got] != [i for i, _ in expected]:
                failures.append(f"{text!r}, {name}: got {got}, exact {expected}")
            else:
                np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("way", ["index", "selector"])
def test_queries_that_favour_the_other_folder(library, monkeypatch, way):
    """Queries made of large-folder images: the large folder fills each kind's top results and
    the small folder's best images lie deep in the image index, while its few videos are all
    read at once: they must not fill the page ahead of better images not yet read."""
    lib, base = library
    search_subsets_by(monkeypatch, way)
    with lib.store.session() as s:
        anchors = s.scalars(
            select(Media.id).where(Media.path.startswith(f"{base}/large/images/")).order_by(Media.id)
        ).all()[::6]
    failures = []
    for anchor in anchors:
        for options in (dict(k=3), dict(k=4), dict(k=5), dict(k=4, offset=2), dict(k=3, kind="image")):
            req = SearchRequest(terms=build_terms(media_id=anchor), path_prefix=f"{base}/small/", **options)
            got, expected = [h.id for h in lib.search(req)], [mid for mid, _ in exact_ranking(lib, req)]
            if got != expected:
                failures.append(f"media {anchor}, {options}: got {got}, exact {expected}")
    assert not failures, "\n".join(failures)


def test_a_filtered_search_reads_its_subset_once(library, monkeypatch):
    """A filter is resolved in SQL to each kind's vector ids; the subset search returns the
    filtered top at once, so a query whose unfiltered top holds none of the filter's media
    settles in one round; a repeated filter is not resolved again."""
    lib, base = library
    with lib.store.session() as s:
        large_images = s.scalars(
            select(Media.id).where(Media.path.startswith(f"{base}/large/images/")).order_by(Media.id)
        ).all()
        small_image_vectors = set(
            s.scalars(
                select(Vector.id)
                .join(Media, Media.id == Vector.media_id)
                .where(Media.path.startswith(f"{base}/small/images/"), Vector.kind == "image")
            )
        )
    anchor = large_images[24]  # its top 32 images hold fewer than 3 of the small folder's
    req = SearchRequest(terms=build_terms(media_id=anchor), k=3, path_prefix=f"{base}/small/", kind="image")
    asked, resolved = [], []
    monkeypatch.setattr(lib.engine, "prefilter", prefilter.Prefilter(lib.store, lib.indexes))  # nothing cached
    search, vector_ids_of_media = lib.engine.prefilter.search, prefilter.vector_ids_of_media
    monkeypatch.setattr(
        lib.engine.prefilter, "search", lambda kind, q, k, sub: asked.append((k, sub)) or search(kind, q, k, sub)
    )
    monkeypatch.setattr(prefilter, "vector_ids_of_media", lambda *a: resolved.append(a) or vector_ids_of_media(*a))
    assert [h.id for h in lib.search(req)] == [mid for mid, _ in exact_ranking(lib, req)]
    assert [k for k, _ in asked] == [10] and len(resolved) == 1  # the subset's 10 images, one round
    assert set(asked[0][1].ids.tolist()) == small_image_vectors
    asked.clear()
    assert [h.id for h in lib.search(req)] == [mid for mid, _ in exact_ranking(lib, req)]
    assert len(asked) == 1 and len(resolved) == 1  # the cached subsets


def test_media_vectors_are_media_vector_in_one_lookup(library):
    lib, _ = library
    with lib.store.session() as s:
        ids = s.scalars(select(Media.id).order_by(Media.id.desc())).all()
    ids = [*ids, ids[3], ids[0]]  # any order, repeats
    batch = lib.engine.media_vectors(ids)
    assert batch.dtype == np.float32 and batch.shape == (len(ids), lib.encoder.dim)
    np.testing.assert_array_equal(batch, np.stack([lib.media_vector(i) for i in ids]))
    assert lib.engine.media_vectors([]).shape == (0, lib.encoder.dim)
    with pytest.raises(MediaNotFoundError):
        lib.engine.media_vectors([ids[0], max(ids) + 1])
