"""POST /jobs of kind import: a clip-retrieval folder read into a served library, which then
answers vector queries (POST /search and clip-retrieval's /knn-service) exactly, refuses text
queries with a reason, and never fails on the files of its URL media; the folder rules of
index jobs apply (403 outside MMSEARCH_INDEX_ROOTS, 400 for no folder or a bad one)."""

from __future__ import annotations

import json

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer

from ..helpers import open_library, wait_for_job
from ..indexer.test_clip_retrieval_import import captions, random_folder, urls

pytestmark = pytest.mark.slow  # serves a library

SIZES = (30, 20)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("import-api")
    (base / "allowed").mkdir()
    stored = random_folder(base / "allowed" / "cr", sizes=SIZES, dim=32, seed=8)
    lib = open_library(base / "lib", model=None, generator="none", index_roots=[base / "allowed"])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, base, stored
    lib.close()


@pytest.fixture(scope="module")
def imported(served):
    client, base, stored = served
    r = client.post(
        "/jobs", json={"kind": "import", "format": "clip-retrieval", "roots": [str(base / "allowed" / "cr")]}
    )
    assert r.status_code == 202, r.text
    assert r.json()["task"] == "import"
    job = wait_for_job(client, r.json()["id"])
    assert (job["state"], job["new"], job["space"]) == ("done", 50, "external:32")
    return client, stored


def test_vector_queries_find_the_row_whose_vector_was_queried(imported):
    client, stored = imported
    paths = urls(SIZES)
    for row in (0, 17, 29, 30, 49):
        r = client.post("/search", json={"vector": stored[row].tolist(), "k": 3})
        assert r.status_code == 200, r.text
        top = r.json()["results"][0]
        assert (top["path"], top["kind"], top["generated"]) == (paths[row], "image", False)
        assert top["score"] == pytest.approx(1.0, abs=2e-3)


def test_a_text_query_is_refused_with_a_reason(imported):
    client, _ = imported
    r = client.post("/search", json={"text": "a red circle", "generate": "never"})
    assert r.status_code == 400
    assert "a text query needs the model that made this library's vectors" in r.json()["detail"]
    auto = client.post("/search", json={"text": "a red circle"})  # generation cannot help: same answer
    assert auto.status_code == 400 and auto.json()["detail"] == r.json()["detail"]


def test_clip_retrievals_knn_service_answers_embedding_queries(imported):
    client, stored = imported
    body = {"embedding_input": stored[33].tolist(), "modality": "image", "num_images": 2, "indice_name": "image"}
    r = client.post("/knn-service", content=json.dumps(body))
    assert r.status_code == 200, r.text
    first = r.json()[0]
    assert (first["image_path"], first["caption"]) == (urls(SIZES)[33], captions(SIZES)[33])
    assert first["similarity"] == pytest.approx(1.0, abs=2e-3)
    text = client.post("/knn-service", content=json.dumps({**body, "embedding_input": None, "text": "a dog"}))
    assert text.status_code == 400


def test_url_media_are_described_and_their_files_answer_404(imported):
    client, stored = imported
    media_id = client.post("/search", json={"vector": stored[5].tolist(), "k": 1}).json()["results"][0]["id"]
    described = client.get(f"/media/{media_id}")
    assert described.status_code == 200 and described.json()["path"] == urls(SIZES)[5]
    assert client.get(f"/media/{media_id}/file").status_code == 404
    assert client.get(f"/media/{media_id}/thumbnail").status_code == 404


def test_import_folders_follow_the_index_roots_rule(served, tmp_path):
    client, base, _ = served
    random_folder(tmp_path / "outside", sizes=(2,), dim=32)
    outside = client.post("/jobs", json={"kind": "import", "roots": [str(tmp_path / "outside")]})
    assert outside.status_code == 403 and "outside the folders MMSEARCH_INDEX_ROOTS allows" in outside.json()["detail"]
    missing = client.post("/jobs", json={"kind": "import", "roots": [str(base / "allowed" / "nope")]})
    assert missing.status_code == 400 and "is not a folder" in missing.json()["detail"]
    (base / "allowed" / "empty").mkdir()
    bad = client.post("/jobs", json={"kind": "import", "roots": [str(base / "allowed" / "empty")]})
    assert bad.status_code == 400 and "has no img_emb folder" in bad.json()["detail"]
    two = client.post("/jobs", json={"kind": "import", "roots": [str(base / "allowed"), str(base / "allowed")]})
    assert two.status_code == 422
    index_with_format = client.post("/jobs", json={"roots": [str(base / "allowed")], "format": "clip-retrieval"})
    assert index_with_format.status_code == 422
    other_format = client.post("/jobs", json={"kind": "import", "format": "laion-csv", "roots": [str(base)]})
    assert other_format.status_code == 422
