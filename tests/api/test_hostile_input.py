"""Requests a client should not send, answered with a 4xx and a JSON body that JSON can carry
(never a 500), and files served as what their bytes are, whatever their names say."""

import io
import json

import httpx
import pytest
from PIL import Image

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.indexer.scan import sniff

from ..helpers import make_corpus, open_library

pytestmark = pytest.mark.slow  # builds and serves a library

HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (20, 20), 3).save(buf, format="GIF")
    return buf.getvalue()


# name -> (bytes, the content type it is served with)
ODD_FILES = {
    "page.jpg": (HTML, "application/octet-stream"),
    "really-a-png.jpg": (png_bytes(), "image/png"),
    "really-a-gif.png": (gif_bytes(), "image/gif"),
    "clip.jpg": (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(64), "video/mp4"),
    "movie.mov": (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + bytes(64), "video/quicktime"),
    "song.mp4": (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(64), "application/octet-stream"),
    "web.mp4": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87\x81\x04" + bytes(64), "video/webm"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("hostile")
    root = base / "photos"
    make_corpus(root, n=8, seed=9)
    for name, (data, _) in ODD_FILES.items():
        (root / name).write_bytes(data)
    lib = open_library(base / "lib", encoder=mini_encoder, generator="none")
    lib.index([root])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, lib, root
    lib.close()


def post_raw(client, path: str, body: bytes | str, content_type: str | None = "application/json") -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": content_type} if content_type else {})


UNICODE_MSG = "Input should be a valid string, unable to parse raw data as a unicode string"


def finite(loc: list, shown: str) -> dict:
    return {"type": "finite_number", "loc": loc, "msg": "Input should be a finite number", "input": shown}


def not_unicode(loc: list, shown: str) -> dict:
    return {"type": "string_unicode", "loc": loc, "msg": UNICODE_MSG, "input": shown}


@pytest.mark.parametrize(
    "path, body, content_type, detail",
    [
        ("/search", '{"vector": [NaN, 1.0]}', "application/json", [finite(["body", "vector", 0], "NaN")]),
        ("/search", '{"vector": [Infinity]}', "application/json", [finite(["body", "vector", 0], "Infinity")]),
        ("/search", '{"vector": [1e400]}', "application/json", [finite(["body", "vector", 0], "Infinity")]),
        ("/search", '{"vector": [-1e400]}', "application/json", [finite(["body", "vector", 0], "-Infinity")]),
        ("/search", '{"text": "red", "min_score": NaN}', "application/json", [finite(["body", "min_score"], "NaN")]),
        ("/search", '{"text": "\\ud800 red"}', "application/json", [not_unicode(["body", "text"], "\\ud800 red")]),
        (
            "/search",
            '{"text": "red", "kind": "\\ud800"}',
            "application/json",
            [not_unicode(["body", "kind"], "\\ud800")],
        ),
        ("/generate", '{"prompt": "\\ud800"}', "application/json", [not_unicode(["body", "prompt"], "\\ud800")]),
        (
            "/generate",
            '{"prompt": "x", "guidance": Infinity}',
            "application/json",
            [finite(["body", "guidance"], "Infinity")],
        ),
        (
            "/search",
            b"\xff\xfe{",  # not UTF-8, and no content type: echoed as the bytes it is
            None,
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": "\\xff\\xfe{",
                }
            ],
        ),
        (  # an ordinary error keeps the shape it always had
            "/search",
            '{"text": "red", "k": 0}',
            "application/json",
            [
                {
                    "type": "greater_than_equal",
                    "loc": ["body", "k"],
                    "msg": "Input should be greater than or equal to 1",
                    "input": 0,
                    "ctx": {"ge": 1},
                }
            ],
        ),
    ],
)
def test_a_value_json_cannot_carry_still_gets_a_422_with_a_json_detail(served, path, body, content_type, detail):
    client, *_ = served
    r = post_raw(client, path, body, content_type)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": detail}


def test_a_surrogate_map_key_gets_a_422(served):
    client, *_ = served
    r = post_raw(client, "/search", '{"text": "red", "weights": {"\\ud800": 1}}')
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert (error["type"], error["loc"][:2], error["input"]) == ("string_unicode", ["body", "weights"], "\\ud800")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/knn-service", "/metadata"])
@pytest.mark.parametrize(
    "body",
    [
        nested(10_000),
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        '{"modality": "image", "num_images": 1, "text": "x", "ids": [1], "extra": ' + nested(10_000) + "}",
        "[" * 10_000,  # and never closed
    ],
    ids=["arrays", "objects", "inside-a-field", "unclosed"],
)
def test_deeply_nested_json_to_the_clip_retrieval_endpoints_is_a_422(served, path, body):
    client, *_ = served
    for content_type in ("application/json", None):
        r = post_raw(client, path, body, content_type)
        assert r.status_code == 422
        (error,) = r.json()["detail"]
        assert (error["type"], error["loc"]) == ("json_invalid", [])
        assert error["msg"].startswith("Invalid JSON: recursion limit exceeded at line 1 column ")


def test_deeply_nested_json_to_search_is_a_400(served):
    client, *_ = served
    r = post_raw(client, "/search", '{"text": ' + nested(10_000) + "}")
    assert (r.status_code, r.json()) == (400, {"detail": "There was an error parsing the body"})


@pytest.mark.parametrize(
    "text, detail",
    [
        (
            '99999999999999999999999*"red"',
            "weight 99999999999999999999999 is out of range: a term's weight is at most 100",
        ),
        ('"blue" - 1000*"red"', "weight 1000 is out of range: a term's weight is at most 100"),
    ],
)
def test_a_huge_weight_is_a_400_not_a_zero_query(served, text, detail):
    client, *_ = served
    r = client.post("/search", json={"text": text})
    assert (r.status_code, r.json()) == (400, {"detail": detail})


def test_the_largest_weights_still_search(served):
    client, *_ = served
    r = client.post("/search", json={"text": '100*"red" - 0.5*"blue"', "weights": {"text": 100}, "k": 3})
    assert r.status_code == 200
    scores = [h["score"] for h in r.json()["results"]]
    assert len(scores) == 3 and scores[0] > 0 and scores == sorted(scores, reverse=True)


def media_ids_by_name(lib, root) -> dict[str, int]:
    found = lib.media_many(list(range(1, 100)))
    return {m.path.removeprefix(str(root) + "/"): m.id for m in found.values()}


def test_a_file_is_served_as_what_its_bytes_are(served):
    client, lib, root = served
    ids = media_ids_by_name(lib, root)
    for name, (data, content_type) in ODD_FILES.items():
        r = client.get(f"/media/{ids[name]}/file")
        assert r.status_code == 200, name
        assert r.content == data, name
        assert r.headers["content-type"] == content_type, name
        assert r.headers["x-content-type-options"] == "nosniff", name
        kind = sniff(root / name)  # what the index job took it for, named exactly here
        assert content_type.split("/")[0] == kind if kind else content_type == "application/octet-stream", name
        if content_type == "application/octet-stream":  # not media: downloaded, never shown
            assert r.headers["content-disposition"] == f'attachment; filename="{name}"', name
        else:
            assert "content-disposition" not in r.headers, name


def test_the_library_own_images_keep_their_types(served):
    client, lib, root = served
    ids = media_ids_by_name(lib, root)
    jpg = next(name for name in ids if name.startswith("images/") and name.endswith(".jpg"))
    png = next(name for name in ids if name.startswith("images/") and name.endswith(".png"))
    for name, content_type in ((jpg, "image/jpeg"), (png, "image/png")):
        r = client.get(f"/media/{ids[name]}/file")
        assert (r.status_code, r.headers["content-type"]) == (200, content_type)
        assert r.content == (root / name).read_bytes()


def test_clip_retrieval_json_bodies_with_odd_values(served):
    client, *_ = served
    body = {"modality": "image", "num_images": 1, "embedding_input": [1.0] * 256}
    r = post_raw(client, "/knn-service", json.dumps(body).replace("1.0", "NaN", 1))
    assert r.status_code == 400  # NaN is JSON to pydantic's parser; the engine refuses the vector
    assert r.json() == {"detail": "the query has non-finite values"}
