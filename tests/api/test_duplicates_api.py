"""GET /duplicates: the library's groups of copies over HTTP, paged, with validated thresholds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from tests.helpers import open_library
from tests.photos import make_duplicate_library


@pytest.fixture(scope="module")
def served(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("duplicates-api")
    expected = make_duplicate_library(base / "photos")
    lib = open_library(base / "lib", encoder=mini_encoder)
    lib.index([base / "photos"])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c, expected
    lib.close()


def names(group: dict) -> list[str]:
    return [Path(m["path"]).name for m in group["members"]]


def test_groups_with_their_keeper_first_and_what_each_member_is(served):
    client, expected = served
    r = client.get("/duplicates")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [names(g) for g in body["groups"]] == expected
    assert (body["total"], body["images"], body["min_similarity"], body["max_distance"]) == (2, 13, 0.95, 14)
    group = body["groups"][0]
    keeper = group["members"][0]
    assert group["keeper"] == keeper["id"]
    assert (keeper["score"], keeper["hash_distance"]) == (1.0, 0)
    assert keeper["file_url"] == f"/media/{keeper['id']}/file"
    assert client.get(keeper["thumbnail_url"]).status_code == 200
    assert {"width", "height", "size", "taken_at", "camera", "place", "kind"} <= set(keeper)
    assert (keeper["width"], keeper["height"]) == (320, 240)


def test_pages_and_thresholds(served):
    client, expected = served
    page = client.get("/duplicates", params={"limit": 1, "offset": 1}).json()
    assert ([names(g) for g in page["groups"]], page["total"]) == ([expected[1]], 2)
    assert client.get("/duplicates", params={"max_distance": 0}).json()["groups"] == []


@pytest.mark.parametrize(
    "params", [{"min_similarity": 2}, {"min_similarity": "nan"}, {"max_distance": 65}, {"limit": 0}, {"offset": -1}]
)
def test_out_of_range_parameters_answer_422_naming_them(served, params):
    client, _ = served
    r = client.get("/duplicates", params=params)
    assert r.status_code == 422
    assert next(iter(params)) in r.text
