"""Operating the service: API keys on state-changing endpoints (and on reads when asked),
CORS, Prometheus metrics and request ids, against uvicorn on loopback."""

import io
import json
import logging
import time

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.api.observability import JsonFormatter

from ..helpers import make_corpus, open_library

pytestmark = pytest.mark.slow  # builds and serves libraries

KEY = "k" * 12 + "-test-key-0001"
OTHER_KEY = "x" * 20


def _wait_for_job(client, job_id: int, headers=None) -> dict:
    deadline = time.time() + 120
    while (job := client.get(f"/jobs/{job_id}", headers=headers).json())["state"] not in ("done", "failed"):
        assert time.time() < deadline
        time.sleep(0.2)
    return job


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, mini_encoder):
    """Writes need a key; reads are open (the default)."""
    base = tmp_path_factory.mktemp("keyed")
    root = base / "photos"
    make_corpus(root, n=24, seed=3)
    lib = open_library(
        base / "lib",
        encoder=mini_encoder,
        api_keys=[KEY],
        generator="mini",
        generate_steps=2,
        cors_origins=["http://allowed.example"],
        index_roots=[tmp_path_factory.getbasetemp()],  # POST /jobs: the tests' folders
    )
    lib.index([root])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client, lib, base
    lib.close()


@pytest.fixture(scope="module")
def locked(tmp_path_factory, mini_encoder):
    """Reads need a key too."""
    base = tmp_path_factory.mktemp("locked")
    root = base / "photos"
    make_corpus(root, n=8, seed=4)
    lib = open_library(base / "lib", encoder=mini_encoder, api_keys=[KEY, OTHER_KEY], protect_reads=True)
    lib.index([root])
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, lib
    lib.close()


def test_index_jobs_need_the_key(keyed, tmp_path):
    client, lib, _ = keyed
    more = tmp_path / "more"
    make_corpus(more, n=4, seed=21)
    body = {"roots": [str(more)]}
    for headers in ({}, {"X-API-Key": "wrong-key-wrong-key"}, {"Cookie": f"mmsearch_api_key={KEY}"}):
        r = client.post("/jobs", json=body, headers=headers)
        assert r.status_code == 401, headers
        assert "X-API-Key" in r.json()["detail"] and r.headers["WWW-Authenticate"] == "ApiKey"
    r = client.post("/jobs", json=body, headers={"X-API-Key": KEY})
    assert r.status_code == 202
    assert _wait_for_job(client, r.json()["id"])["new"] == 4


def test_generation_needs_the_key(keyed):
    client, *_ = keyed
    generate = {"prompt": "a green star", "steps": 2, "seed": 3}
    assert client.post("/generate", json=generate).status_code == 401
    r = client.post("/generate", json=generate, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["results"][0]["generated"] is True
    search = {"text": "a purple cross", "kind": "image", "generate": "always", "generation": {"steps": 2, "seed": 4}}
    assert client.post("/search", json=search).status_code == 401
    r = client.post("/search", json=search, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["via"] == "generated"
    drawn = r.json()["results"][0]["id"]
    assert client.delete(f"/media/{drawn}").status_code == 401
    assert client.get(f"/media/{drawn}").status_code == 200
    assert client.delete(f"/media/{drawn}", headers={"X-API-Key": KEY}).json() == {"deleted": [drawn]}


def test_reads_stay_open_by_default(keyed):
    client, *_ = keyed
    r = client.post("/search", json={"text": "something red", "generate": "never", "k": 2})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    assert client.get("/media/1").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_protected_reads(locked):
    client, _ = locked
    assert client.post("/search", json={"text": "red"}).status_code == 401
    assert client.get("/media/1/thumbnail").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.post("/search", json={"text": "red"}, headers={"X-API-Key": OTHER_KEY}).status_code == 200
    # <img> and <video> cannot send headers: the page's cookie lets reads through
    thumb = client.get("/media/1/thumbnail", headers={"Cookie": f"mmsearch_api_key={KEY}"})
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"
    for open_path in ("/", "/health", "/openapi.json"):
        assert client.get(open_path).status_code == 200, open_path


def test_cors_only_for_configured_origins(keyed, locked):
    client, *_ = keyed
    allowed = client.get("/health", headers={"Origin": "http://allowed.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "http://evil.example"}).headers
    off, _ = locked  # no origins configured: CORS is off
    assert "access-control-allow-origin" not in off.get("/health", headers={"Origin": "http://allowed.example"}).headers


def _samples(client) -> dict:
    text = client.get("/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics(keyed, tmp_path):
    client, lib, _ = keyed
    before = _samples(client)
    search_key = ("mmsearch_http_requests_total", (("method", "POST"), ("route", "/search"), ("status", "200")))
    for _ in range(3):
        client.post("/search", json={"text": "a blue square", "generate": "never"})
    client.get("/media/987654")
    r = client.post("/generate", json={"prompt": "a white hexagon", "n": 2, "steps": 2}, headers={"X-API-Key": KEY})
    assert r.status_code == 200
    after = _samples(client)
    assert after[search_key] - before.get(search_key, 0) == 3
    assert (
        after[("mmsearch_http_requests_total", (("method", "GET"), ("route", "/media/{media_id}"), ("status", "404")))]
        >= 1
    )
    latency = ("mmsearch_http_request_duration_seconds_count", (("method", "POST"), ("route", "/search")))
    assert after[latency] - before.get(latency, 0) == 3
    generated = ("mmsearch_generated_images_total", (("endpoint", "generate"),))
    assert after[generated] - before.get(generated, 0) == 2
    media = {labels: v for (name, labels), v in after.items() if name == "mmsearch_media"}
    images = media[(("generated", "false"), ("kind", "image"))]
    assert (
        after[("mmsearch_index_vectors", (("kind", "image"),))]
        == images + media[(("generated", "true"), ("kind", "image"))]
    )
    assert images >= 24
    assert after[("mmsearch_jobs", (("state", "done"),))] >= 1


def test_request_ids_in_headers_and_logs(keyed, caplog):
    client, *_ = keyed
    with caplog.at_level(logging.INFO, logger="mmsearch.access"):
        r = client.get("/health", headers={"X-Request-ID": "trace-42"})
        fresh = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["X-Request-ID"] == "trace-42"
    assert len(fresh.headers["X-Request-ID"]) == 32 and fresh.headers["X-Request-ID"] != "bad id with spaces"
    records = [
        rec for rec in caplog.records if rec.name == "mmsearch.access" and getattr(rec, "route", None) == "/health"
    ]
    line = json.loads(JsonFormatter().format(records[-2]))
    assert line["request_id"] == "trace-42" and line["status"] == 200 and line["method"] == "GET" and line["ms"] >= 0
