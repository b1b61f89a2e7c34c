import io
import os
import time

import httpx
import pytest
from PIL import Image

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.storage.store import Media

from ..helpers import make_corpus, open_library, paths_with

pytestmark = pytest.mark.slow  # builds and serves a library


@pytest.fixture(scope="module")
def served(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("api")
    root = base / "photos"
    make_corpus(root)
    lib = open_library(
        base / "lib",
        encoder=mini_encoder,
        max_upload_bytes=64 * 1024,
        index_roots=[tmp_path_factory.getbasetemp()],  # POST /jobs: the tests' folders
    )
    lib.index([root])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, lib, root, base
    lib.close()


def test_health(served):
    client, *_ = served
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["media"] == 90 and body["vectors"] == 90 and body["unreadable"] == 0


def test_search_red_circle_over_http(served):
    client, _, root, _ = served
    r = client.post("/search", json={"text": "red circle", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["miss"] is False and body["took_ms"] > 0
    hits = body["results"]
    assert len(hits) == 3 and {h["path"] for h in hits} <= paths_with(root, color="red", shape="circle")
    first = hits[0]
    assert set(first) == {
        "id",
        "path",
        "kind",
        "score",
        "t_start",
        "t_end",
        "generated",
        "via",
        "file_url",
        "thumbnail_url",
        "taken_at",
        "camera",
        "gps",
        "place",
        "found_by",
    }
    assert (
        first["kind"] == "image" and first["via"] == "text" and first["generated"] is False and first["t_start"] is None
    )
    assert client.get(first["file_url"]).content == open(first["path"], "rb").read()
    thumb = Image.open(io.BytesIO(client.get(first["thumbnail_url"]).content))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256


def test_paging_and_filters(served):
    client, _, root, _ = served
    page1 = client.post("/search", json={"text": "a shape", "k": 5}).json()["results"]
    page2 = client.post("/search", json={"text": "a shape", "k": 5, "offset": 5}).json()["results"]
    both = client.post("/search", json={"text": "a shape", "k": 10}).json()["results"]
    assert [h["id"] for h in page1 + page2] == [h["id"] for h in both]
    only_jpg_dir = client.post(
        "/search", json={"text": "a shape", "k": 50, "path_prefix": str(root / "images" / "train-00001")}
    ).json()["results"]
    assert only_jpg_dir and all(h["path"].startswith(str(root / "images" / "train-00001")) for h in only_jpg_dir)
    videos = client.post("/search", json={"text": "a shape", "kind": "video"}).json()
    assert videos["results"] == [] and videos["miss"] is True
    high = client.post("/search", json={"text": "red circle", "k": 50, "min_score": 0.99}).json()
    assert high["results"] == [] and high["miss"] is True


def test_a_later_page_is_judged_by_the_query_best_score(served):
    client, lib, _, _ = served
    first = client.post("/search", json={"text": "something red", "k": 5, "generate": "never"}).json()
    late = client.post("/search", json={"text": "something red", "k": 5, "offset": 80, "generate": "never"}).json()
    assert late["results"][0]["score"] < first["results"][0]["score"]
    assert first["miss"] is False and late["miss"] is False
    assert late["stages"][0]["best"] == pytest.approx(first["results"][0]["score"], abs=1e-6)
    assert late["stages"][0]["signal"] == first["stages"][0]["signal"]  # judged as the first page was


def test_selective_filter_with_offset_widens_the_search(served):
    client, _, root, _ = served
    everything = client.post("/search", json={"text": "a large shape", "k": 200}).json()["results"]
    assert len(everything) == 90
    prefix = str(root / "images" / "train-00008")  # 10 of the 90 images
    expected = [h["id"] for h in everything if h["path"].startswith(prefix)]
    assert len(expected) == 10
    page = client.post("/search", json={"text": "a large shape", "k": 4, "offset": 5, "path_prefix": prefix}).json()[
        "results"
    ]
    assert [h["id"] for h in page] == expected[5:9]


def test_search_by_media_and_weighted_terms(served):
    client, *_ = served
    top = client.post("/search", json={"text": "red circle", "k": 1}).json()["results"][0]
    same = client.post("/search", json={"image_media_id": top["id"], "k": 1}).json()["results"][0]
    assert same["id"] == top["id"] and same["score"] == pytest.approx(1.0, abs=2e-3) and same["via"] == "image"
    r = client.post(
        "/search",
        json={"text": '"red circle" - "white background"', "terms": [{"text": "large", "weight": 0.5}], "k": 3},
    )
    assert r.status_code == 200 and len(r.json()["results"]) == 3


def test_image_upload_search_and_limits(served):
    client, _, root, _ = served
    path = sorted((root / "images").glob("*.png"))[0]
    r = client.post("/search/image", files={"file": ("q.png", path.read_bytes(), "image/png")}, data={"k": "1"})
    assert r.status_code == 200
    assert r.json()["results"][0]["path"] == str(path)
    assert (
        client.post("/search/image", files={"file": ("big.png", os.urandom(70 * 1024), "image/png")}).status_code == 413
    )
    bad = client.post("/search/image", files={"file": ("x.png", b"not an image", "image/png")})
    assert bad.status_code == 400 and "not a readable image" in bad.json()["detail"]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"text": "red", "k": 0}, 422),
        ({"text": "red", "k": 100000}, 422),
        ({"text": "red", "kind": "audio"}, 422),
        ({"vector": [0.1, 0.2]}, 400),
        ({}, 400),
        ({"text": '"unclosed'}, 400),
        ({"image_media_id": 999999}, 404),
        ({"image_media_id": 10**20}, 422),
        ({"vector": [1e39] * 256}, 422),
        ({"text": "red", "weights": {"text": 1e9}}, 422),
        ({"text": "a +"}, 400),
        ({"terms": [{"text": "a", "media_id": 1}]}, 422),
    ],
)
def test_bad_requests_answer_4xx_with_a_reason(served, body, status):
    client, *_ = served
    r = client.post("/search", json=body)
    assert r.status_code == status
    assert r.json()["detail"]


def test_media_metadata_and_404(served):
    client, *_ = served
    hit = client.post("/search", json={"text": "red circle", "k": 1}).json()["results"][0]
    meta = client.get(f"/media/{hit['id']}").json()
    assert meta["path"] == hit["path"] and meta["width"] > 0 and len(meta["content_hash"]) == 64
    assert client.get("/media/999999").status_code == 404
    assert client.get("/media/999999/file").status_code == 404
    assert client.get(f"/media/{10**20}").status_code == 404


def test_file_serving_never_leaves_the_roots(served, tmp_path):
    client, lib, root, base = served
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    (root / "link.png").symlink_to(outside)
    sneaky = [
        str(root / os.path.relpath(outside, root)),
        str(root / "images" / os.path.relpath(outside, root / "images")),
        "/etc/passwd",
        str(outside),
        str(root / "link.png"),
    ]
    assert all(".." in p for p in sneaky[:2])
    ids = []
    with lib.store.session() as s:
        for p in sneaky:
            m = Media(path=p, root=str(root), kind="image", size=1, mtime=0)
            s.add(m)
            s.flush()
            ids.append(m.id)
    try:
        for media_id in ids:
            for suffix in ("file", "thumbnail"):
                r = client.get(f"/media/{media_id}/{suffix}")
                assert r.status_code == 403, (media_id, suffix)
                assert not r.content.startswith(b"\x89PNG") and b"root:" not in r.content
    finally:
        with lib.store.session() as s:
            for media_id in ids:
                s.delete(s.get(Media, media_id))
        (root / "link.png").unlink()


def test_index_job_over_http(served, tmp_path):
    client, *_ = served
    more = tmp_path / "more"
    make_corpus(more, n=12, seed=99)
    r = client.post("/jobs", json={"roots": [str(more)]})
    assert r.status_code == 202
    job_id = r.json()["id"]
    deadline = time.time() + 120
    while (job := client.get(f"/jobs/{job_id}").json())["state"] not in ("done", "failed"):
        assert time.time() < deadline
        time.sleep(0.2)
    assert job["state"] == "done" and job["new"] == 12 and job["progress"] == 1.0 and job["recent_errors"] == []
    latest = client.get("/jobs", params={"limit": 1}).json()
    assert [j["id"] for j in latest] == [job_id] and latest[0]["state"] == "done"
    assert client.get("/jobs", params={"limit": 0}).status_code == 422
    assert client.get("/health").json()["media"] >= 102
    assert client.post("/jobs", json={"roots": [str(tmp_path / "missing")]}).status_code == 400  # inside the roots
    assert client.post("/jobs", json={"roots": []}).status_code == 422
    assert client.get("/jobs/99999").status_code == 404
