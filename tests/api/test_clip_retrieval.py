"""clip-retrieval compatibility over plain HTTP: the request bodies ClipClient and clip
front send (no JSON content type, nulls for unused inputs, string aesthetic fields) and the
documented response shapes."""

import base64
import json
import shutil

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.storage.store import Media

from ..helpers import make_corpus, open_library, paths_with

pytestmark = pytest.mark.slow  # builds and serves a library

METADATA_KEYS = {"id", "similarity", "image_path", "url", "caption"}


def clip_client_body(**query) -> str:
    """What clip_retrieval.clip_client.ClipClient posts: every key, unused inputs null."""
    body = {
        "text": None,
        "image": None,
        "image_url": None,
        "embedding_input": None,
        "deduplicate": True,
        "use_safety_model": True,
        "use_violence_detector": True,
        "indice_name": "image",
        "use_mclip": False,
        "aesthetic_score": 9,
        "aesthetic_weight": 0.5,
        "modality": "image",
        "num_images": 40,
        "num_result_ids": 40,
    }
    return json.dumps(body | query)


@pytest.fixture(scope="module")
def served(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("clipret")
    root = base / "photos"
    manifest = make_corpus(root, n=40, seed=5)
    first = root / manifest["items"][0]["file"]
    shutil.copyfile(first, root / "copy-of-first.png")  # a near duplicate for deduplicate
    (root / "copy-of-first.txt").write_text("a copy with its own caption\n")
    lib = open_library(base / "lib", encoder=mini_encoder)
    lib.index([root])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, lib, root, manifest
    lib.close()


def _post(client, path, body: str, content_type: str | None = None):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(path, content=body, headers=headers)


def test_indices_list(served):
    client, *_ = served
    assert client.get("/indices-list").json() == ["image", "video", "any"]


def test_clip_client_text_query(served):
    client, lib, root, manifest = served
    r = _post(
        client,
        "/knn-service",
        clip_client_body(text="something red", num_images=3, num_result_ids=10, deduplicate=False),
    )
    assert r.status_code == 200
    results = r.json()
    assert len(results) == 10
    assert all(set(x) == METADATA_KEYS for x in results[:3])
    assert all(set(x) == {"id", "similarity"} for x in results[3:])  # past num_images: ids only, as clip back
    sims = [x["similarity"] for x in results]
    assert sims == sorted(sims, reverse=True)
    assert {x["image_path"] for x in results[:3]} <= paths_with(root, color="red")
    top = results[0]
    captions = {str((root / i["file"]).resolve()): i["caption"] for i in manifest["items"]}
    assert top["caption"] == captions[top["image_path"]]
    assert client.get(top["url"]).content == open(top["image_path"], "rb").read()


def test_front_end_request_shape(served):
    """clip front posts text/plain JSON with string aesthetic fields."""
    client, *_ = served
    body = json.dumps(
        {
            "text": "something red",
            "image": None,
            "image_url": None,
            "embedding_input": None,
            "modality": "image",
            "num_images": 5,
            "indice_name": "image",
            "num_result_ids": 5,
            "use_mclip": False,
            "deduplicate": False,
            "use_safety_model": False,
            "use_violence_detector": False,
            "aesthetic_score": "",
            "aesthetic_weight": "0.5",
        }
    )
    r = _post(client, "/knn-service", body, "text/plain;charset=UTF-8")
    assert r.status_code == 200 and len(r.json()) == 5


def test_image_query_and_deduplicate(served):
    client, lib, root, manifest = served
    first = (root / manifest["items"][0]["file"]).resolve()
    image = base64.b64encode(first.read_bytes()).decode()
    plain = _post(
        client, "/knn-service", clip_client_body(image=image, num_images=5, num_result_ids=5, deduplicate=False)
    ).json()
    copy = str((root / "copy-of-first.png").resolve())
    assert {plain[0]["image_path"], plain[1]["image_path"]} == {str(first), copy}
    assert plain[0]["similarity"] > 0.99 and plain[1]["similarity"] > 0.99
    assert (
        next(x["caption"] for x in plain if x["image_path"] == copy) == "a copy with its own caption"
    )  # the sidecar .txt
    deduped = _post(
        client, "/knn-service", clip_client_body(image=image, num_images=5, num_result_ids=5, deduplicate=True)
    ).json()
    paths = [x["image_path"] for x in deduped]
    assert len(deduped) == len(plain) - 1
    assert paths[0] == plain[0]["image_path"] and plain[1]["image_path"] not in paths


def test_embedding_input(served):
    client, lib, root, manifest = served
    target = str((root / manifest["items"][3]["file"]).resolve())
    with lib.store.session() as s:
        media_id = s.query(Media.id).filter(Media.path == target).scalar()
    vector = lib.engine.media_vector(media_id).tolist()
    results = _post(client, "/knn-service", clip_client_body(embedding_input=vector, num_images=3)).json()
    assert results[0]["id"] == media_id and results[0]["image_path"] == target
    wrong_dim = _post(client, "/knn-service", clip_client_body(embedding_input=[0.1, 0.2], num_images=3))
    assert wrong_dim.status_code == 400


def test_metadata(served):
    client, *_ = served
    hits = _post(client, "/knn-service", clip_client_body(text="a blue square", num_images=2)).json()
    ids = [hits[1]["id"], hits[0]["id"], 987654, 2**31, -3]  # past PostgreSQL's INTEGER, below any id
    r = _post(client, "/metadata", json.dumps({"ids": ids, "indice_name": "image"}))
    assert r.status_code == 200
    body = r.json()
    assert [x["id"] for x in body] == ids[:2]  # in the order asked; unknown ids left out
    assert body[1]["metadata"] == {k: hits[0][k] for k in ("image_path", "url", "caption")}
    assert _post(client, "/metadata", json.dumps({"ids": [], "indice_name": "image"})).json() == []


def test_video_index_of_an_image_library_is_empty(served):
    client, *_ = served
    assert _post(client, "/knn-service", clip_client_body(text="red", indice_name="video")).json() == []


@pytest.mark.parametrize(
    "query, status, reason",
    [
        ({"text": "red", "modality": "text"}, 400, "not served"),
        ({"text": "red", "indice_name": "laion5B"}, 400, "no index named"),
        ({}, 400, "give one of"),
        ({"image": "%%% not base64 %%%"}, 400, "not base64"),
        ({"image": base64.b64encode(b"GIF89a but not really").decode()}, 400, "not readable"),
        ({"text": "red", "num_images": 0}, 422, "num_images"),
        ({"image_url": "http://127.0.0.1:9/x.png"}, 400, "disabled"),
    ],
)
def test_bad_requests_answer_4xx_with_a_reason(served, query, status, reason):
    client, *_ = served
    r = _post(client, "/knn-service", clip_client_body(**query))
    assert r.status_code == status
    assert reason in json.dumps(r.json()["detail"])


def test_image_url_when_enabled(served, monkeypatch):
    client, lib, root, manifest = served
    monkeypatch.setattr(lib.settings, "allow_image_url", True)
    hits = _post(client, "/knn-service", clip_client_body(text="a blue square", num_images=1)).json()
    url = str(client.base_url) + f"/media/{hits[0]['id']}/file"
    r = _post(client, "/knn-service", clip_client_body(image_url=url, num_images=1))
    assert r.status_code == 200 and r.json()[0]["id"] == hits[0]["id"]
    for bad in ("file:///etc/passwd", "ftp://127.0.0.1/x.png"):
        r = _post(client, "/knn-service", clip_client_body(image_url=bad, num_images=1))
        assert r.status_code == 400 and "http or https" in r.json()["detail"]
    monkeypatch.setattr(lib.settings, "max_upload_bytes", 1024)
    r = _post(client, "/knn-service", clip_client_body(image_url=url, num_images=1))
    assert r.status_code == 413


@pytest.mark.parametrize("path", ["/knn-service", "/metadata"])
@pytest.mark.parametrize("body", [b'{"text": "red"', b'{"text": "\xff\xfe"}', b"not json at all", b"[1, 2]"])
def test_malformed_json_answers_422_with_a_json_reason(served, path, body):
    """clip back clients send raw bytes: ones that are not a JSON object get a 4xx, never a 500
    (the validation error once echoed the raw bytes, which JSON cannot carry)."""
    client, *_ = served
    r = client.post(path, content=body)
    assert r.status_code == 422
    assert r.json()["detail"] and all("input" not in err for err in r.json()["detail"])
