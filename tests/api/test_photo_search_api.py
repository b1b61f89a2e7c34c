"""POST /search's capture filters and date sort over HTTP, the metadata each hit carries, and
the 422 that names a field the body should not have."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from tests.helpers import open_library
from tests.photos import DATED_NEWEST_FIRST, make_photo_library


@pytest.fixture(scope="module")
def client(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("photo-api")
    make_photo_library(base / "photos")
    lib = open_library(base / "lib", encoder=mini_encoder, generate_default="never")
    lib.index([base / "photos"])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
    lib.close()


def names(client, **body) -> list[str]:
    r = client.post("/search", json={"text": "a photo", "k": 50, **body})
    assert r.status_code == 200, r.text
    return [Path(h["path"]).name for h in r.json()["results"]]


def test_filters_and_sort_over_http(client):
    assert set(names(client, camera="canon")) == {"canon_lisbon_2019.jpg", "canon_lisbon_2021.jpg"}
    assert set(names(client, place="porto")) == {"nikon_porto_2018.jpg", "iphone.heic"}
    assert set(names(client, near={"lat": 38.7223, "lon": -9.1393, "km": 25})) == {
        "canon_lisbon_2019.jpg",
        "canon_lisbon_2021.jpg",
    }
    assert set(names(client, taken_after="2022-01-01")) == {"iphone.heic", "pixel.avif"}
    assert set(names(client, taken_before="2017-05-05T05:05:05", taken_after="2017-05-05")) == {"leica.dng"}
    assert names(client, taken_after="2020-01-01", sort="date") == [
        "pixel.avif",
        "iphone.heic",
        "canon_lisbon_2021.jpg",
        "sony_2020.jpg",
    ]


def test_a_hit_carries_when_with_what_and_where(client):
    (hit,) = client.post("/search", json={"text": "a photo", "k": 1, "camera": "nikon"}).json()["results"]
    assert (hit["taken_at"], hit["camera"], hit["place"]) == (
        "2018-12-24T20:15:00-02:00",
        "NIKON D750",
        "Porto, Portugal",
    )
    assert hit["gps"] == pytest.approx([41.15, -8.61])
    (hit,) = client.post("/search", json={"text": "a photo", "k": 1, "camera": "sony"}).json()["results"]
    assert (hit["gps"], hit["place"]) == (None, None)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": "a shape", "taken_afterr": "2017-01-01"}, "taken_afterr"),
        ({"text": "a shape", "near": {"lat": 1, "lon": 2, "km": 3, "radius": 4}}, "radius"),
        ({"text": "a shape", "terms": [{"text": "a", "wieght": 2}]}, "wieght"),
        ({"text": "a shape", "generation": {"n": 1, "stepz": 3}}, "stepz"),
    ],
)
def test_an_unknown_field_answers_422_naming_it(client, body, field):
    r = client.post("/search", json=body)
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"][-1] == field and error["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"taken_after": "last summer"},
        {"taken_before": "2019-13-01"},
        {"near": {"lat": 91, "lon": 0, "km": 1}},
        {"near": {"lat": 0, "lon": 0, "km": 0}},
        {"near": {"lat": 0, "lon": 0}},
        {"sort": "name"},
        {"camera": ""},
    ],
)
def test_bad_filters_answer_422(client, body):
    r = client.post("/search", json={"text": "a photo", **body})
    assert r.status_code == 422 and r.json()["detail"]


def test_words_find_media_over_http(client):
    r = client.post("/search", json={"text": '"IMG_2041"', "k": 5}).json()
    assert [(Path(h["path"]).name, h["found_by"]) for h in r["results"]] == [("IMG_2041.jpg", "keyword")]
    assert r["miss"] is False
    lisbon = client.post("/search", json={"text": "Lisbon", "mode": "keyword", "k": 5}).json()["results"]
    assert {Path(h["path"]).name for h in lisbon} == {"canon_lisbon_2019.jpg", "canon_lisbon_2021.jpg"}
    vector = client.post("/search", json={"text": "Lisbon", "mode": "vector", "k": 5}).json()["results"]
    assert {h["found_by"] for h in vector} == {"vector"}
    assert client.post("/search", json={"text": "x", "mode": "fuzzy"}).status_code == 422


def timeline(client, **params) -> dict:
    r = client.get("/timeline", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_timeline_is_the_library_newest_first_filtered_and_paged(client):
    page = timeline(client)
    names_ = [Path(h["path"]).name for h in page["results"]]
    assert page["total"] == 10
    assert names_[:7] == DATED_NEWEST_FIRST
    assert set(names_[7:]) == {"IMG_2041.jpg", "plain.png", "malformed.jpg"}  # dated by their mtime, 2016
    assert {h["via"] for h in page["results"]} == {"timeline"} and {h["score"] for h in page["results"]} == {0.0}
    second = timeline(client, limit=3, offset=3)
    assert ([Path(h["path"]).name for h in second["results"]], second["total"]) == (DATED_NEWEST_FIRST[3:6], 10)
    narrowed = timeline(client, taken_after="2020-01-01", taken_before="2022-07-10")
    assert [Path(h["path"]).name for h in narrowed["results"]] == DATED_NEWEST_FIRST[1:4]
    assert narrowed["total"] == 3
    assert [Path(h["path"]).name for h in timeline(client, camera="canon", place="lisbon")["results"]] == [
        "canon_lisbon_2021.jpg",
        "canon_lisbon_2019.jpg",
    ]
    assert timeline(client, kind="video")["total"] == 0


@pytest.mark.parametrize(
    "params, field",
    [({"taken_after": "last summer"}, "taken_after"), ({"limit": 0}, "limit"), ({"kind": "photo"}, "kind")],
)
def test_bad_timeline_parameters_answer_422_naming_them(client, params, field):
    r = client.get("/timeline", params=params)
    assert r.status_code == 422
    assert field in r.text


def test_an_unknown_timeline_parameter_answers_422_naming_it(client):
    r = client.get("/timeline", params={"taken_afterr": "2020-01-01"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"][-1] == "taken_afterr" and error["type"] == "extra_forbidden"


def test_places_are_listed_the_most_photographed_first(client):
    r = client.get("/places")
    assert r.status_code == 200
    places = r.json()
    assert [p["count"] for p in places] == [2, 2]
    assert {p["place"].split(", ")[-2] for p in places} == {"Lisbon", "Porto"}
