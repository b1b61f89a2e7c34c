import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from mmsearch.library import ModelMismatchError
from mmsearch.search.query import SearchRequest, Term, parse_text
from mmsearch.storage.store import JobError, Media, Vector

from ..helpers import CountingEncoder, child_env, library_exists, make_corpus, open_library, paths_with


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "photos"
    make_corpus(root)  # its manifest.json is neither media nor named like media: the scan ignores it
    return root


def _paths(hits) -> list[str]:
    return [h.path for h in hits]


@pytest.mark.slow
def test_index_then_search_by_colour_and_position(corpus, tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        job = lib.index([corpus])
        assert job["state"] == "done" and job["new"] == 90 and job["errors"] == 0
        red = lib.search(SearchRequest(terms=parse_text("something red"), k=3))
        top_left = lib.search(SearchRequest(terms=parse_text("a shape in the top left"), k=3))
    assert len(red) == 3 and set(_paths(red)) <= paths_with(corpus, color="red")
    assert len(top_left) == 3 and set(_paths(top_left)) <= paths_with(corpus, position="top left")


@pytest.mark.slow
def test_index_then_search_red_circle(corpus, tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        lib.index([corpus])
        hits = lib.search(SearchRequest(terms=parse_text("red circle"), k=3))
    assert len(hits) == 3 and set(_paths(hits)) <= paths_with(corpus, color="red", shape="circle")


@pytest.mark.slow
def test_reindex_embeds_only_what_changed(corpus, tmp_path, mini_encoder):
    counting = CountingEncoder(mini_encoder)
    lib_dir = tmp_path / "lib"
    with open_library(lib_dir, encoder=counting) as lib:
        lib.index([corpus])
        assert counting.images_embedded == 90
        again = lib.index([corpus])
        assert counting.images_embedded == 90
        assert again["unchanged"] == 90 and again["new"] == again["changed"] == again["deleted"] == 0

        files = sorted((corpus / "images").iterdir())
        modified, deleted = files[0], files[1]
        Image.new("RGB", (80, 80), (30, 60, 220)).save(modified, format=Image.open(modified).format)
        os.utime(modified, (time.time() + 5, time.time() + 5))
        deleted_hits_before = lib.search(SearchRequest(terms=[Term(media_id=_media_id(lib, deleted))], k=1))
        assert _paths(deleted_hits_before) == [str(deleted)]
        deleted.unlink()
        third = lib.index([corpus])
        assert counting.images_embedded == 91
        assert third["changed"] == 1 and third["deleted"] == 1 and third["unchanged"] == 88
        all_hits = lib.search(SearchRequest(terms=parse_text("a shape"), k=1000))
        assert str(deleted) not in _paths(all_hits)
        assert len(all_hits) == 89
        with lib.store.session() as s:
            assert s.scalar(select(func.count()).select_from(Vector)) == 89
        assert lib.indexes.size("image") == 89


def _media_id(lib, path: Path) -> int:
    with lib.store.session() as s:
        return s.scalar(select(Media.id).where(Media.path == str(path)))


@pytest.mark.slow
def test_bad_files_get_error_rows_and_the_job_goes_on(corpus, tmp_path, mini_encoder):
    bad = corpus / "bad"
    bad.mkdir()
    good_png = next((corpus / "images").glob("*.png"))
    (bad / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    (bad / "truncated.png").write_bytes(good_png.read_bytes()[:300])
    (bad / "empty.png").write_bytes(b"")
    Image.new("RGB", (1500, 1000), (200, 10, 10)).save(bad / "huge.png")  # over the test's pixel limit
    (bad / "notes.jpg").write_text("this is not a picture")
    (bad / "README.txt").write_text("not media and not named like media: ignored")
    shutil.copy(good_png, bad / "really-a-png.jpg")  # wrongly named but fine: indexed by content
    shutil.copy(good_png, bad / "image.dat")
    with open_library(tmp_path / "lib", encoder=mini_encoder, max_pixels=1_000_000) as lib:
        job = lib.index([corpus])
        assert job["state"] == "done"
        assert job["errors"] == 5
        with lib.store.session() as s:
            errors = {
                Path(p).name: e for p, e in s.execute(select(Media.path, Media.error).where(Media.error.is_not(None)))
            }
            job_errors = {Path(p).name for p in s.scalars(select(JobError.path))}
            indexed = set(s.scalars(select(Media.path).where(Media.error.is_(None))))
        assert set(errors) == job_errors == {"corrupt.jpg", "truncated.png", "empty.png", "huge.png", "notes.jpg"}
        assert "decompression bomb" in errors["huge.png"]
        assert "empty" in errors["empty.png"]
        assert "not an image" in errors["notes.jpg"]
        assert str(bad / "really-a-png.jpg") in indexed and str(bad / "image.dat") in indexed
        assert len(indexed) == 92
        assert lib.indexes.size("image") == 92
        for path in (bad / "really-a-png.jpg", next((corpus / "images").glob("*.jpg"))):
            hits = lib.search(SearchRequest(terms=[Term(media_id=_media_id(lib, path))], k=1))
            assert hits[0].score == pytest.approx(1.0, abs=2e-3)
        # Unchanged bad files are not retried on every run.
        assert lib.index([corpus])["errors"] == 0


def _search_answers(lib_dir: Path, queries: list[str]) -> list[list[tuple[str, float]]]:
    with open_library(lib_dir) as lib:
        return [[(h.path, h.score) for h in lib.search(SearchRequest(terms=parse_text(q), k=10))] for q in queries]


@pytest.mark.slow
def test_killed_job_resumes_and_indexes_everything_exactly_once(tmp_path):
    root = tmp_path / "photos"
    make_corpus(root, n=240, seed=21)
    killed_lib, clean_lib = tmp_path / "killed", tmp_path / "clean"
    env = child_env(killed_lib, {**os.environ, "MMSEARCH_BATCH_SIZE": "8", "MMSEARCH_DECODE_WORKERS": "1"})
    cmd = [sys.executable, "-m", "mmsearch", "index", str(root), "--library", str(killed_lib)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # generous: a loaded machine imports torch slowly
    committed = 0
    while time.time() < deadline and proc.poll() is None:
        if library_exists(killed_lib):
            with open_library(killed_lib) as lib:
                committed = lib.store.count(Vector)
            if committed >= 40:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the job finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_library(killed_lib) as lib:
        assert 0 < lib.store.count(Vector) < 241
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0

    assert (
        subprocess.run(
            [sys.executable, "-m", "mmsearch", "index", str(root), "--library", str(clean_lib)],
            env=child_env(clean_lib, env),
            capture_output=True,
        ).returncode
        == 0
    )

    files = sorted(str(p) for p in root.rglob("*") if p.suffix in (".png", ".jpg"))
    with open_library(killed_lib) as lib:
        with lib.store.session() as s:
            paths = list(s.scalars(select(Media.path)))
            vector_ids = sorted(s.scalars(select(Vector.id)))
            per_media = s.execute(select(Vector.media_id, func.count()).group_by(Vector.media_id)).all()
        assert sorted(paths) == files
        assert all(n == 1 for _, n in per_media) and len(per_media) == len(files)
        held = lib.indexes.get("image").ids()
        assert sorted(held.tolist()) == vector_ids
    queries = ["red circle", "a large blue square", "yellow star in the top left"]
    killed_answers, clean_answers = _search_answers(killed_lib, queries), _search_answers(clean_lib, queries)
    for a, b in zip(killed_answers, clean_answers):
        assert [p for p, _ in a] == [p for p, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5)


class _OtherSpace(CountingEncoder):
    """The real encoder presented as another embedding space (as after retraining or a model switch)."""

    space = "open_clip:some-other-model|squash64"


@pytest.mark.slow
def test_a_model_that_now_makes_another_space_is_refused_not_reembedded_over_the_library(
    corpus, tmp_path, mini_encoder
):
    # Before: an index job with another space deleted every media row and re-created it (new
    # ids, the old vectors gone while it ran). Models now change side by side (mmsearch model).
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        lib.index([corpus])
        ids = sorted(m.id for m in lib.media_many(list(range(1, 200))).values())
    other = _OtherSpace(mini_encoder)  # named mini, as after mini's weights changed
    with open_library(tmp_path / "lib", encoder=other) as lib:
        with pytest.raises(ModelMismatchError, match="model 'mini' now makes space 'open_clip:some-other-model"):
            lib.index([corpus])
        assert other.images_embedded == 0
        assert sorted(lib.media_many(list(range(1, 200)))) == ids
        with lib.store.session() as s:
            assert set(s.scalars(select(Vector.space).where(Vector.kind == "image"))) == {mini_encoder.space}


@pytest.mark.slow
def test_overlapping_roots_index_each_file_once(corpus, tmp_path, mini_encoder):
    counting = CountingEncoder(mini_encoder)
    with open_library(tmp_path / "lib", encoder=counting) as lib:
        sub = corpus / "images"
        assert lib.index([sub])["new"] == 90
        parent = lib.index([corpus])
        assert parent["new"] == 0 and parent["unchanged"] == 90
        both = lib.index([corpus, sub])
        assert both["unchanged"] == 90 and both["roots"] == [str(corpus.resolve())]
        assert counting.images_embedded == 90
        assert lib.store.count(Media) == 90 and lib.indexes.size("image") == 90


@pytest.mark.slow
def test_a_file_that_stops_being_an_image_loses_its_vector(corpus, tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        lib.index([corpus])
        victim = sorted((corpus / "images").glob("*.png"))[0]
        victim.write_text("overwritten with text")
        job = lib.index([corpus])
        assert job["changed"] == 1 and job["errors"] == 1
        with lib.store.session() as s:
            row = s.scalars(select(Media).where(Media.path == str(victim))).one()
            assert (
                row.error and s.scalar(select(func.count()).select_from(Vector).where(Vector.media_id == row.id)) == 0
            )
        assert lib.indexes.size("image") == 89


@pytest.mark.slow
def test_an_emptied_root_deletes_nothing(corpus, tmp_path, mini_encoder):
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        lib.index([corpus])
        hidden = tmp_path / "unmounted"
        corpus.rename(hidden)
        corpus.mkdir()  # an unmounted mount point: the folder is there, empty
        job = lib.index([corpus])
        assert job["deleted"] == 0 and "nothing was deleted" in job["message"]
        assert lib.store.count(Media) == 90
