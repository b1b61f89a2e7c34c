"""Importing clip-retrieval's embeddings folder (img_emb/img_emb_N.npy beside
metadata/metadata_N.parquet): into the model's space, where text queries find what an indexed
library finds; without a model, into an external space that answers vector queries exactly
and refuses text ones; resumed after kill -9 without duplicates; bad folders refused whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from mmsearch.indexer.clip_retrieval import media_path
from mmsearch.library import ImportFormatError, Library, ModelMismatchError
from mmsearch.search.query import SearchRequest, Term, parse_text
from mmsearch.services.models import NoModelError
from mmsearch.storage.store import JobError, Media, Vector

from ..helpers import make_corpus, open_library, store_url


def write_part(folder: Path, n: int, vectors: np.ndarray, dtype, columns: dict, digits: str | None = None) -> None:
    """img_emb_N.npy (in dtype) and metadata_N.parquet (the columns) of a clip-retrieval folder."""
    name = digits or str(n)
    (folder / "img_emb").mkdir(parents=True, exist_ok=True)
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    np.save(folder / "img_emb" / f"img_emb_{name}.npy", np.asarray(vectors, dtype))
    pq.write_table(pa.table(columns), folder / "metadata" / f"metadata_{name}.parquet")


def random_folder(folder: Path, sizes=(40, 25, 30), dim: int = 24, seed: int = 0) -> np.ndarray:
    """Parts of random vectors (float16, float32, float16), image paths that are URLs;
    returns every row's vector as stored (float32), in order."""
    rng = np.random.default_rng(seed)
    stored = []
    for n, rows in enumerate(sizes):
        dtype = np.float32 if n % 2 else np.float16
        x = rng.standard_normal((rows, dim)).astype(dtype)
        write_part(
            folder,
            n,
            x,
            dtype,
            {"image_path": [url(n, i) for i in range(rows)], "caption": [f"row {n}/{i}" for i in range(rows)]},
        )
        stored.append(x.astype(np.float32))
    return np.concatenate(stored)


def url(n: int, i: int) -> str:
    return f"https://images.example.com/{n}/{i}.jpg"


def urls(sizes) -> list[str]:
    return [url(n, i) for n, rows in enumerate(sizes) for i in range(rows)]


def captions(sizes) -> list[str]:
    return [f"row {n}/{i}" for n, rows in enumerate(sizes) for i in range(rows)]


def mini_folder(folder: Path, photos: Path, encoder) -> dict:
    """The corpus at `photos` embedded by mini, as clip-retrieval's inference writes it: two
    parts (float16, then float32) of local image paths, captions and sizes. Returns the manifest."""
    manifest = json.loads((photos / "manifest.json").read_text())
    items = manifest["items"]
    paths = [str((photos / i["file"]).resolve()) for i in items]
    vectors = encoder.embed_images(paths)
    half = len(items) // 2
    for n, (part, dtype) in enumerate(((slice(0, half), np.float16), (slice(half, None), np.float32))):
        write_part(
            folder,
            n,
            vectors[part],
            dtype,
            {
                "image_path": paths[part],
                "caption": [i["caption"] for i in items[part]],
                "width": [64] * len(paths[part]),
                "height": [48] * len(paths[part]),
                "exif": ["{}"] * len(paths[part]),
            },
        )
    return manifest


def import_folder(lib: Library, folder: Path, model: str | None = None) -> dict:
    """Import a clip-retrieval folder as `mmsearch import clip-retrieval` does; the job's summary."""
    return lib.run_job(lib.create_import_job(folder, model))


def external(path: Path, **overrides) -> Library:
    """A library opened as `mmsearch import` without --model opens it: no model named."""
    return open_library(path, model=None, generator="none", **overrides)


def counts(lib: Library) -> tuple[int, int, int]:
    with lib.store.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Media)),
            s.scalar(select(func.count()).select_from(Vector)),
            s.scalar(select(func.count(func.distinct(Media.path)))),
        )


def vector_search(lib: Library, v: np.ndarray, k: int = 3):
    return lib.search(SearchRequest(terms=[Term(vector=np.asarray(v, np.float32))], k=k))


def test_media_paths_are_urls_where_rows_have_one_else_absolute_paths(tmp_path):
    assert media_path("https://a.example/x.jpg", "https://b.example/y.jpg", tmp_path) == "https://a.example/x.jpg"
    assert media_path("00000/000000001.jpg", "http://b.example/y.jpg", tmp_path) == "http://b.example/y.jpg"
    assert media_path("00000/000000001.jpg", None, tmp_path) == str(tmp_path / "00000" / "000000001.jpg")
    assert media_path("/photos/a.jpg", float("nan"), tmp_path) == "/photos/a.jpg"
    assert media_path(None, None, tmp_path) is None
    assert media_path("  ", None, tmp_path) is None


@pytest.mark.slow
def test_an_import_with_the_model_answers_text_queries_as_an_indexed_library_does(tmp_path, mini_encoder):
    photos = tmp_path / "photos"
    make_corpus(photos, n=16, seed=9)
    manifest = mini_folder(tmp_path / "cr", photos, mini_encoder)
    with open_library(tmp_path / "indexed", encoder=mini_encoder, generator="none") as indexed:
        indexed.index([photos])
        with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none") as lib:
            summary = import_folder(lib, tmp_path / "cr", model="mini")
            assert (summary["state"], summary["total"], summary["new"], summary["errors"]) == ("done", 16, 16, 0)
            assert [(m["spec"], m["covered"], m["vectors"]) for m in lib.models()] == [("mini", 16, {"image": 16})]
            for item in manifest["items"][:6]:
                query = SearchRequest(terms=parse_text(item["caption"]), k=3)
                got, want = lib.search(query), indexed.search(query)
                assert [h.path for h in got][:1] == [h.path for h in want][:1]
                assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=2e-3)
            first = str((photos / manifest["items"][0]["file"]).resolve())
            media = next(m for m in lib.media_many(list(range(1, 17))).values() if m.path == first)
            assert (media.kind, media.width, media.height, media.root) == ("image", 64, 48, str(tmp_path / "cr"))
            assert lib.caption(media) == manifest["items"][0]["caption"]


def test_an_external_import_answers_vector_queries_exactly_and_refuses_text(tmp_path):
    stored = random_folder(tmp_path / "cr")
    with external(tmp_path / "lib") as lib:
        summary = import_folder(lib, tmp_path / "cr")
        assert (summary["state"], summary["space"], summary["new"], summary["unchanged"]) == (
            "done",
            "external:24",
            95,
            0,
        )
        assert lib.model_spec == "external:24"
    with external(tmp_path / "lib") as lib:  # reopened: the recorded external space, no model loaded
        assert [(m["spec"], m["dim"], m["active"], m["covered"]) for m in lib.models()] == [
            ("external:24", 24, True, 95)
        ]
        paths, texts = urls((40, 25, 30)), captions((40, 25, 30))
        for row in range(0, 95, 7):
            hits = vector_search(lib, stored[row])
            assert hits[0].path == paths[row] and hits[0].score == pytest.approx(1.0, abs=2e-3)
            assert lib.caption(lib.media(hits[0].id)) == texts[row]
        with pytest.raises(NoModelError, match="a text query needs the model that made this library's vectors"):
            lib.search(SearchRequest(terms=parse_text("a red circle"), k=3))
        with pytest.raises(NoModelError, match="indexing files needs the model"):
            lib.create_job([tmp_path])
        with pytest.raises(ModelMismatchError, match="searches with model 'external:24', not 'mini'"):
            lib.create_import_job(tmp_path / "cr", model="mini")


def test_importing_again_adds_only_new_rows(tmp_path):
    random_folder(tmp_path / "cr", sizes=(10, 12))
    with external(tmp_path / "lib") as lib:
        import_folder(lib, tmp_path / "cr")
        extra = np.random.default_rng(5).standard_normal((6, 24))
        write_part(tmp_path / "cr", 2, extra, np.float16, {"image_path": [url(2, i) for i in range(6)]})
        again = import_folder(lib, tmp_path / "cr")
        assert (again["total"], again["new"], again["unchanged"]) == (28, 6, 22)
        assert counts(lib) == (28, 28, 28)
        assert vector_search(lib, extra[3])[0].path == url(2, 3)


def test_rows_without_a_path_or_with_a_zero_vector_are_error_rows_and_the_rest_imported(tmp_path):
    x = np.random.default_rng(2).standard_normal((5, 8))
    x[2] = 0
    paths = [url(0, 0), None, url(0, 2), url(0, 0), url(0, 4)]  # row 3 repeats row 0's path
    write_part(tmp_path / "cr", 0, x, np.float32, {"image_path": paths, "caption": ["a", "b", "c", "d", "e"]})
    with external(tmp_path / "lib") as lib:
        summary = import_folder(lib, tmp_path / "cr")
        assert (summary["new"], summary["unchanged"], summary["errors"], summary["done"]) == (2, 1, 2, 5)
        assert sorted((e["path"], e["error"]) for e in lib.job(summary["id"])["recent_errors"]) == [
            (url(0, 2), "its vector is zero or not finite"),
            ("metadata_0.parquet row 1", "no image_path or url"),
        ]
        assert {h.path for h in vector_search(lib, x[4], k=5)} == {url(0, 0), url(0, 4)}
        assert lib.caption(lib.media(vector_search(lib, x[0])[0].id)) == "a"  # the first row of a repeated path


def test_laion_rows_are_named_by_their_url_and_relative_paths_by_the_folder(tmp_path):
    x = np.random.default_rng(3).standard_normal((3, 8))
    write_part(
        tmp_path / "cr",
        0,
        x,
        np.float16,
        {
            "image_path": ["00000/000000000.jpg", "00000/000000001.jpg", "local/c.jpg"],
            "url": ["https://laion.example/a.jpg", "http://laion.example/b.jpg", None],
            "caption": ["a", None, "c"],
            "original_width": [640.0, float("nan"), 10.0],
            "original_height": [480, 360, 0],
        },
        digits="0000",
    )
    with external(tmp_path / "lib") as lib:
        import_folder(lib, tmp_path / "cr")
        rows = {m.path: (m.caption, m.width, m.height) for m in lib.media_many([1, 2, 3]).values()}
    assert rows == {
        "https://laion.example/a.jpg": ("a", 640, 480),
        "http://laion.example/b.jpg": (None, None, 360),
        str(tmp_path / "cr" / "local" / "c.jpg"): ("c", 10, None),
    }


def _missing_metadata(folder: Path) -> str:
    random_folder(folder, sizes=(4, 5))
    (folder / "metadata" / "metadata_1.parquet").unlink()
    return "img_emb_1.npy has no metadata file"


def _row_mismatch(folder: Path) -> str:
    random_folder(folder, sizes=(4, 5))
    write_part(folder, 1, np.ones((5, 24)), np.float32, {"image_path": [url(1, i) for i in range(4)]})
    return "metadata_1.parquet has 4 rows but img_emb_1.npy has 5 vectors: they must match row for row"


def _dims_disagree(folder: Path) -> str:
    random_folder(folder, sizes=(4,))
    write_part(folder, 1, np.ones((2, 16)), np.float32, {"image_path": [url(1, i) for i in range(2)]})
    return r"disagree on the dimension: \[16, 24\]"


def _no_img_emb(folder: Path) -> str:
    (folder / "metadata").mkdir(parents=True)
    return "has no img_emb folder: not clip-retrieval's output"


def _not_npy(folder: Path) -> str:
    random_folder(folder, sizes=(4,))
    (folder / "img_emb" / "img_emb_0.npy").write_bytes(b"not numpy")
    return "img_emb_0.npy is not a readable .npy file"


def _no_path_column(folder: Path) -> str:
    write_part(folder, 0, np.ones((2, 24)), np.float32, {"caption": ["a", "b"]})
    return "has neither an image_path nor a url column"


@pytest.mark.parametrize(
    "make", [_missing_metadata, _row_mismatch, _dims_disagree, _no_img_emb, _not_npy, _no_path_column]
)
def test_a_bad_folder_is_refused_whole_and_the_library_keeps_what_it_had(tmp_path, make):
    random_folder(tmp_path / "good", sizes=(6,))
    message = make(tmp_path / "bad")
    with external(tmp_path / "lib") as lib:
        import_folder(lib, tmp_path / "good")
        with pytest.raises(ImportFormatError, match=message):
            lib.create_import_job(tmp_path / "bad")
        assert counts(lib) == (6, 6, 6) and len(lib.recent_jobs()) == 1
        assert lib.models()[0]["spec"] == "external:24"


def test_vectors_of_another_dimension_than_the_model_are_refused_before_anything_is_written(tmp_path, mini_encoder):
    random_folder(tmp_path / "cr", sizes=(3,), dim=mini_encoder.dim + 1)
    with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none") as lib:
        with pytest.raises(ImportFormatError, match=f"holds {mini_encoder.dim + 1}-d vectors; model 'mini' makes"):
            lib.create_import_job(tmp_path / "cr", model="mini")
        assert (lib.models(), lib.recent_jobs(), counts(lib)) == ([], [], (0, 0, 0))


CHILD = textwrap.dedent(
    """
    import sys
    from mmsearch.indexer.clip_retrieval import ClipRetrievalImporter
    from mmsearch.cli import app
    ClipRetrievalImporter.chunk_rows = 100  # many small transactions: a kill lands between two
    sys.argv = ["mmsearch", *sys.argv[1:]]
    app()
    """
)


@pytest.mark.slow
def test_an_import_killed_with_sigkill_resumes_and_imports_each_row_once(tmp_path):
    sizes = (20_000, 15_000, 15_000)
    stored = random_folder(tmp_path / "cr", sizes=sizes, dim=16, seed=4)
    env = {k: v for k, v in os.environ.items() if k != "MMSEARCH_MODEL"}
    env["MMSEARCH_DATABASE_URL"] = store_url(tmp_path / "lib", "mmsearch.db")
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        "import",
        "clip-retrieval",
        str(tmp_path / "cr"),
        "--library",
        str(tmp_path / "lib"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, done = time.time() + 600, 0
    # read without opening the library: an open would migrate a database the child is creating
    progress = create_engine(store_url(tmp_path / "lib", "mmsearch.db"))
    while time.time() < deadline and proc.poll() is None and done < 3000:
        try:
            with progress.connect() as c:
                done = c.execute(text("SELECT max(done) FROM jobs")).scalar() or 0
        except DBAPIError:
            pass  # no file, or no tables yet
        time.sleep(0.05)
    progress.dispose()
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with external(tmp_path / "lib") as lib:
        killed = lib.recent_jobs(1)[0]
        assert killed["state"] == "interrupted" and 3000 <= killed["done"] < 50_000
        committed = counts(lib)[0]
        assert committed == killed["new"] and counts(lib) == (committed,) * 3
        resumed = import_folder(lib, tmp_path / "cr")
        assert (resumed["state"], resumed["new"], resumed["unchanged"]) == ("done", 50_000 - committed, committed)
        assert counts(lib) == (50_000, 50_000, 50_000)  # media, vectors, distinct paths: none twice
        paths = urls(sizes)
        for row in (0, 19_999, 20_000, 34_999, 49_999):
            assert vector_search(lib, stored[row], k=1)[0].path == paths[row]
        with lib.store.session() as s:
            assert s.scalar(select(func.count()).select_from(JobError)) == 0


def test_a_library_of_a_model_refuses_vectors_of_an_unknown_one(tmp_path, mini_encoder):
    random_folder(tmp_path / "cr", sizes=(3,), dim=mini_encoder.dim)
    (tmp_path / "photos").mkdir()
    with open_library(tmp_path / "lib", encoder=mini_encoder, generator="none") as lib:
        lib.index([tmp_path / "photos"])  # records mini as the library's model
        with pytest.raises(ModelMismatchError, match="searches with model 'mini': to import vectors made by it"):
            lib.create_import_job(tmp_path / "cr")
        assert [m["spec"] for m in lib.models()] == ["mini"] and counts(lib) == (0, 0, 0)
